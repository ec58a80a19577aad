//! The safety layer shared by the tar and zip readers: every member goes through an
//! [`Extractor`], which validates its path, creates it without following symlinks and counts the
//! bytes written against the declared size.
//!
//! Invariants that make the checks sound:
//! - every directory on the way to a member is checked with `symlink_metadata` and must be a real
//!   directory (never a symlink), and real directories are never removed or replaced afterwards;
//! - files are created with `O_CREAT|O_EXCL|O_NOFOLLOW`, so a symlink at the final name is never
//!   followed (an existing non-directory is unlinked first, as tar does);
//! - symlink targets are relative, with `..` only as leading components and never more of them
//!   than the link's depth. Since the link's parent is a real directory, those `..` stay inside the
//!   destination, and the remaining components only descend (through links that obey the same
//!   rule). A lexical check that allowed `x/..` would be fooled by `x` being a symlink.

use super::{junk, ArchiveError, Expanded};
use crate::CancellationToken;
use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::{self, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

const CHUNK: usize = 256 * 1024;
/// Permission bits kept from the archive: setuid, setgid and sticky are dropped.
const PERM_MASK: u32 = 0o777;

pub(super) struct Extractor<'a> {
    archive: &'a Path,
    dest: PathBuf,
    limit: Option<u64>,
    cancel: &'a CancellationToken,
    written: u64,
    files: u64,
    /// Relative directories known to be real directories (created or checked).
    real_dirs: HashSet<PathBuf>,
    /// Relative paths of regular files this expansion wrote: the only valid hard link targets.
    regular: HashSet<PathBuf>,
    /// Directory modes, applied at the end so a read-only directory can still be filled.
    dir_modes: Vec<(PathBuf, u32)>,
    buf: Vec<u8>,
}

/// A regular file member to write.
pub(super) struct FileMember<'m> {
    pub name: &'m str,
    pub rel: &'m Path,
    pub mode: u32,
    /// Size the archive declares; more real bytes than this is an error.
    pub declared: Option<u64>,
    pub mtime: Option<SystemTime>,
}

impl<'a> Extractor<'a> {
    pub fn new(
        archive: &'a Path,
        dest: &Path,
        limit: Option<u64>,
        cancel: &'a CancellationToken,
    ) -> Result<Self, ArchiveError> {
        fs::create_dir_all(dest).map_err(|source| ArchiveError::Io {
            path: dest.to_path_buf(),
            op: "create the destination directory",
            source,
        })?;
        Ok(Self {
            archive,
            dest: dest.to_path_buf(),
            limit,
            cancel,
            written: 0,
            files: 0,
            real_dirs: HashSet::new(),
            regular: HashSet::new(),
            dir_modes: Vec::new(),
            buf: vec![0; CHUNK],
        })
    }

    pub fn check_cancel(&self) -> Result<(), ArchiveError> {
        if self.cancel.is_cancelled() {
            Err(ArchiveError::Cancelled {
                archive: self.archive.to_path_buf(),
            })
        } else {
            Ok(())
        }
    }

    pub fn unsafe_member(&self, member: &str, reason: impl Into<String>) -> ArchiveError {
        ArchiveError::Unsafe {
            archive: self.archive.to_path_buf(),
            member: member.to_string(),
            reason: reason.into(),
        }
    }

    /// An error while reading the archive; a read aborted by cancellation reports the cancel.
    pub fn read_error(&self, source: io::Error) -> ArchiveError {
        read_error(self.archive, self.cancel, source)
    }

    fn io(path: PathBuf, op: &'static str) -> impl FnOnce(io::Error) -> ArchiveError {
        move |source| ArchiveError::Io { path, op, source }
    }

    /// The checked relative path of a member, or `None` when it is to be skipped (junk, or the
    /// archive's root directory `./`).
    pub fn member_path(
        &self,
        name: &str,
        raw: &[u8],
        is_dir: bool,
    ) -> Result<Option<PathBuf>, ArchiveError> {
        match member_rel(raw) {
            Err(reason) => Err(self.unsafe_member(name, reason)),
            Ok(rel) if rel.as_os_str().is_empty() => {
                if is_dir {
                    Ok(None)
                } else {
                    Err(self.unsafe_member(name, "empty name"))
                }
            }
            Ok(rel) if junk::is_junk_path(&rel) => {
                tracing::debug!(archive = %self.archive.display(), member = name, "skipping OS junk");
                Ok(None)
            }
            Ok(rel) => Ok(Some(rel)),
        }
    }

    /// Makes every parent of `rel` a real directory, creating the missing ones.
    fn ensure_parents(&mut self, name: &str, rel: &Path) -> Result<(), ArchiveError> {
        let Some(parent) = rel.parent() else {
            return Ok(());
        };
        let mut cur = PathBuf::new();
        for comp in parent.components() {
            cur.push(comp);
            if self.real_dirs.contains(&cur) {
                continue;
            }
            let full = self.dest.join(&cur);
            match fs::symlink_metadata(&full) {
                Ok(m) if m.file_type().is_dir() => {}
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(self.unsafe_member(
                        name,
                        format!(
                            "its parent {} is a symlink; refusing to write through it",
                            cur.display()
                        ),
                    ))
                }
                Ok(_) => {
                    return Err(self.unsafe_member(
                        name,
                        format!("its parent {} is not a directory", cur.display()),
                    ))
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir(&full).map_err(Self::io(full, "create directory"))?;
                }
                Err(e) => return Err(Self::io(full, "inspect")(e)),
            }
            self.real_dirs.insert(cur.clone());
        }
        Ok(())
    }

    /// Frees the final name for a new non-directory: unlinks an existing file or symlink (never
    /// following it), refuses to replace a directory.
    fn free_slot(&self, name: &str, full: &Path) -> Result<(), ArchiveError> {
        match fs::symlink_metadata(full) {
            Ok(m) if m.file_type().is_dir() => {
                Err(self.unsafe_member(name, "a directory already exists at this path"))
            }
            Ok(_) => fs::remove_file(full).map_err(Self::io(full.to_path_buf(), "replace")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Self::io(full.to_path_buf(), "inspect")(e)),
        }
    }

    pub fn dir(&mut self, name: &str, rel: &Path, mode: u32) -> Result<(), ArchiveError> {
        self.check_cancel()?;
        self.ensure_parents(name, rel)?;
        let full = self.dest.join(rel);
        if !self.real_dirs.contains(rel) {
            match fs::symlink_metadata(&full) {
                Ok(m) if m.file_type().is_dir() => {}
                Ok(_) => {
                    self.free_slot(name, &full)?;
                    self.regular.remove(rel);
                    fs::create_dir(&full).map_err(Self::io(full.clone(), "create directory"))?;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir(&full).map_err(Self::io(full.clone(), "create directory"))?;
                }
                Err(e) => return Err(Self::io(full, "inspect")(e)),
            }
            self.real_dirs.insert(rel.to_path_buf());
        }
        self.dir_modes.push((rel.to_path_buf(), mode & PERM_MASK));
        Ok(())
    }

    /// Streams one regular file from `data`; `on_chunk` gets the member's bytes written so far.
    pub fn file(
        &mut self,
        m: &FileMember<'_>,
        data: &mut dyn Read,
        on_chunk: &mut dyn FnMut(u64),
    ) -> Result<(), ArchiveError> {
        self.check_cancel()?;
        if let (Some(limit), Some(declared)) = (self.limit, m.declared) {
            if self.written.saturating_add(declared) > limit {
                return Err(self.too_large(m.name, limit));
            }
        }
        self.ensure_parents(m.name, m.rel)?;
        let full = self.dest.join(m.rel);
        self.free_slot(m.name, &full)?;
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(0o600)
            .open(&full)
            .map_err(Self::io(full.clone(), "create file"))?;
        let mut done: u64 = 0;
        loop {
            self.check_cancel()?;
            let n = match data.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.read_error(e)),
            };
            let n64 = n as u64;
            if m.declared.is_some_and(|d| done + n64 > d) {
                return Err(self.unsafe_member(m.name, "holds more data than its declared size"));
            }
            if let Some(limit) = self.limit {
                if self.written + n64 > limit {
                    return Err(self.too_large(m.name, limit));
                }
            }
            out.write_all(&self.buf[..n])
                .map_err(Self::io(full.clone(), "write"))?;
            done += n64;
            self.written += n64;
            on_chunk(done);
        }
        out.set_permissions(Permissions::from_mode(m.mode & PERM_MASK))
            .map_err(Self::io(full.clone(), "set the mode of"))?;
        if let Some(t) = m.mtime {
            out.set_modified(t)
                .map_err(Self::io(full.clone(), "set the modification time of"))?;
        }
        self.files += 1;
        self.regular.insert(m.rel.to_path_buf());
        Ok(())
    }

    fn too_large(&self, name: &str, limit: u64) -> ArchiveError {
        ArchiveError::TooLarge {
            archive: self.archive.to_path_buf(),
            member: name.to_string(),
            limit,
        }
    }

    pub fn symlink(&mut self, name: &str, rel: &Path, target: &[u8]) -> Result<(), ArchiveError> {
        self.check_cancel()?;
        let depth = rel.components().count().saturating_sub(1);
        check_link_target(target, depth).map_err(|reason| self.unsafe_member(name, reason))?;
        self.ensure_parents(name, rel)?;
        let full = self.dest.join(rel);
        self.free_slot(name, &full)?;
        std::os::unix::fs::symlink(OsStr::from_bytes(target), &full)
            .map_err(Self::io(full, "create symlink"))?;
        self.regular.remove(rel);
        Ok(())
    }

    pub fn hardlink(&mut self, name: &str, rel: &Path, target: &[u8]) -> Result<(), ArchiveError> {
        self.check_cancel()?;
        let target_rel = match member_rel(target) {
            Ok(t) if self.regular.contains(&t) => t,
            Ok(_) => {
                return Err(self.unsafe_member(
                    name,
                    format!(
                        "hard link to {:?}, which is not a file this archive extracted before",
                        String::from_utf8_lossy(target)
                    ),
                ))
            }
            Err(reason) => {
                return Err(self.unsafe_member(name, format!("hard link target: {reason}")))
            }
        };
        if target_rel == rel {
            // A link to itself: the file is already there.
            return Ok(());
        }
        self.ensure_parents(name, rel)?;
        let full = self.dest.join(rel);
        self.free_slot(name, &full)?;
        // linkat without AT_SYMLINK_FOLLOW: never follows a symlink at the target name.
        fs::hard_link(self.dest.join(&target_rel), &full)
            .map_err(Self::io(full, "create hard link"))?;
        self.files += 1;
        self.regular.insert(rel.to_path_buf());
        Ok(())
    }

    /// Applies directory modes (deepest first, so parents stay traversable) and reports totals.
    pub fn finish(mut self) -> Result<Expanded, ArchiveError> {
        self.dir_modes
            .sort_by_key(|(rel, _)| std::cmp::Reverse(rel.components().count()));
        for (rel, mode) in &self.dir_modes {
            let full = self.dest.join(rel);
            fs::set_permissions(&full, Permissions::from_mode(*mode))
                .map_err(Self::io(full.clone(), "set the mode of"))?;
        }
        Ok(Expanded {
            files: self.files,
            bytes: self.written,
        })
    }
}

pub(super) fn read_error(
    archive: &Path,
    cancel: &CancellationToken,
    source: io::Error,
) -> ArchiveError {
    if cancel.is_cancelled() {
        ArchiveError::Cancelled {
            archive: archive.to_path_buf(),
        }
    } else {
        ArchiveError::Corrupt {
            archive: archive.to_path_buf(),
            source,
        }
    }
}

/// A member name as a relative path of normal components (`.` and empty components dropped).
pub(super) fn member_rel(raw: &[u8]) -> Result<PathBuf, &'static str> {
    if raw.is_empty() {
        return Err("empty name");
    }
    if raw.first() == Some(&b'/') {
        return Err("absolute path");
    }
    let mut rel = PathBuf::new();
    for part in raw.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err("`..` in path"),
            _ => rel.push(OsStr::from_bytes(part)),
        }
    }
    // Defensive: what we built must be plain relative components.
    if rel.components().all(|c| matches!(c, Component::Normal(_))) {
        Ok(rel)
    } else {
        Err("unexpected path component")
    }
}

/// Checks a symlink target for a link whose parent is `depth` directories below the destination.
fn check_link_target(target: &[u8], depth: usize) -> Result<(), String> {
    if target.is_empty() {
        return Err("empty symlink target".into());
    }
    if target.first() == Some(&b'/') {
        return Err(format!(
            "absolute symlink target {:?}",
            String::from_utf8_lossy(target)
        ));
    }
    let mut ups = 0usize;
    let mut descended = false;
    for part in target.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." if descended => {
                return Err(format!(
                    "symlink target {:?} has `..` after a name (a symlink there could escape)",
                    String::from_utf8_lossy(target)
                ))
            }
            b".." => {
                ups += 1;
                if ups > depth {
                    return Err(format!(
                        "symlink target {:?} points outside the destination",
                        String::from_utf8_lossy(target)
                    ));
                }
            }
            _ => descended = true,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_paths() {
        assert_eq!(member_rel(b"./a//b/./c").unwrap(), PathBuf::from("a/b/c"));
        assert_eq!(member_rel(b"./").unwrap(), PathBuf::new());
        assert!(member_rel(b"").is_err());
        assert!(member_rel(b"/etc/passwd").is_err());
        assert!(member_rel(b"a/../../x").is_err());
        assert!(member_rel(b"a/..").is_err());
        assert_eq!(member_rel(b"a..b/..c").unwrap(), PathBuf::from("a..b/..c"));
    }

    #[test]
    fn link_targets() {
        assert!(check_link_target(b"file", 0).is_ok());
        assert!(check_link_target(b".", 0).is_ok());
        assert!(check_link_target(b"../x", 1).is_ok());
        assert!(check_link_target(b"./../../x/y", 2).is_ok());
        assert!(check_link_target(b"../x", 0).is_err());
        assert!(check_link_target(b"../../etc", 1).is_err());
        assert!(check_link_target(b"/tmp", 3).is_err());
        assert!(check_link_target(b"x/../y", 3).is_err());
        assert!(check_link_target(b"", 0).is_err());
    }
}
