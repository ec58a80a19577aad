//! Reading an ext4 without mounting it: debugfs (extract, cat, stat) and e2fsck.

use super::run::{self, DeviceSpec, Opts, Output};
use super::{io_err, Ext4Error, Tools};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;

/// A path as one debugfs argument: inside double quotes a `"` is written `""`; every other byte,
/// backslash included, is literal (checked with debugfs 1.47.0). CR and LF cannot appear in a
/// command-file line but are fine in a `-R` request.
pub(super) fn quote(path: &[u8]) -> Vec<u8> {
    let mut q = Vec::with_capacity(path.len() + 2);
    q.push(b'"');
    for &b in path {
        if b == b'"' {
            q.push(b'"');
        }
        q.push(b);
    }
    q.push(b'"');
    q
}

/// `debugfs 1.47.0 (5-Feb-2023)`: printed on stderr by every run, not an error.
fn is_banner(line: &str) -> bool {
    line.strip_prefix("debugfs ")
        .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
}

/// Does `line` start a debugfs message (`rdump: …`, `dump_file: …`, `debugfs: …`)?
fn starts_message(line: &str) -> bool {
    line.split_once(": ").is_some_and(|(who, _)| {
        !who.is_empty() && who.chars().all(|c| c.is_ascii_lowercase() || c == '_')
    })
}

/// Drops the complaints of an unprivileged rdump, which cannot give extracted files the owners
/// recorded in the fs and says so once per file (the content is extracted all the same). The file
/// name ends the message and may contain LF: the lines that follow a complaint and do not start a
/// new message belong to it.
pub(super) fn chown_complaint_filter() -> impl FnMut(&str) -> bool {
    let mut in_complaint = false;
    move |line: &str| {
        if starts_message(line) {
            in_complaint = line.contains("while changing ownership of");
        }
        is_banner(line) || in_complaint
    }
}

impl Tools {
    /// A debugfs command with the settings every run needs.
    fn debugfs_command(&self, request: &[u8], device: &DeviceSpec) -> Command {
        let mut cmd = Command::new(&self.debugfs);
        // No pager even if the environment names one.
        cmd.env("DEBUGFS_PAGER", "__none__")
            .arg("-R")
            .arg(OsStr::from_bytes(request))
            .arg(device.as_os_str());
        cmd
    }

    /// Runs debugfs, which exits 0 whatever happens: any stderr line other than the banner is an
    /// error.
    pub(super) fn debugfs_checked(
        &self,
        mut cmd: Command,
        stdout_limit: usize,
    ) -> Result<Output, Ext4Error> {
        cmd.env("DEBUGFS_PAGER", "__none__");
        self.debugfs_filtered(cmd, stdout_limit, Box::new(is_banner))
    }

    fn debugfs_filtered(
        &self,
        cmd: Command,
        stdout_limit: usize,
        drop_line: Box<dyn FnMut(&str) -> bool + Send + '_>,
    ) -> Result<Output, Ext4Error> {
        let mut opts = Opts::new("debugfs");
        opts.stdout_limit = stdout_limit;
        opts.drop_line = drop_line;
        let out = run::run(cmd, opts, |_| {})?;
        if !out.status.success() {
            return Err(out.failed());
        }
        if !out.stderr.trim().is_empty() {
            return Err(Ext4Error::DebugfsErrors {
                command: out.command,
                stderr: out.stderr,
            });
        }
        Ok(out)
    }

    /// Extracts the whole content of the ext4 at `offset` of `image` into `dest` (created if
    /// missing, must be empty): `dest` receives the fs root's children, without `lost+found`.
    /// Limits of debugfs rdump: hard links become separate copies and holes are written out as
    /// zeros. Run unprivileged, files belong to the caller instead of their recorded owners.
    pub fn extract(&self, image: &Path, offset: u64, dest: &Path) -> Result<(), Ext4Error> {
        std::fs::create_dir_all(dest).map_err(io_err(dest))?;
        let mut entries = std::fs::read_dir(dest).map_err(io_err(dest))?;
        if entries.next().is_some() {
            return Err(Ext4Error::DestNotEmpty {
                path: dest.to_path_buf(),
            });
        }
        let device = DeviceSpec::new(image, offset)?;
        // `rdump / DEST` writes the root's children straight into DEST (the root has an empty name).
        let mut request = b"rdump / ".to_vec();
        request.extend_from_slice(&quote(dest.as_os_str().as_bytes()));
        let cmd = self.debugfs_command(&request, &device);
        let privileged = nix::unistd::geteuid().is_root();
        let filter: Box<dyn FnMut(&str) -> bool + Send> = if privileged {
            Box::new(is_banner)
        } else {
            Box::new(chown_complaint_filter())
        };
        self.debugfs_filtered(cmd, run::KEEP, filter)?;
        let lost = dest.join("lost+found");
        if std::fs::symlink_metadata(&lost).is_ok_and(|m| m.is_dir()) {
            std::fs::remove_dir_all(&lost).map_err(io_err(&lost))?;
        }
        Ok(())
    }

    /// `e2fsck -fn` (forced full check, read-only): `Ok(())` when the filesystem is clean.
    pub fn fsck(&self, image: &Path, offset: u64) -> Result<(), Ext4Error> {
        let device = DeviceSpec::new(image, offset)?;
        let mut cmd = Command::new(&self.e2fsck);
        cmd.arg("-fn").arg(device.as_os_str());
        let out = run::run(cmd, Opts::new("e2fsck"), |_| {})?;
        if out.status.success() {
            return Ok(());
        }
        Err(Ext4Error::FsckFailed {
            image: image.to_path_buf(),
            offset,
            output: format!("{}\n{}", out.status, out.text()),
        })
    }

    /// The bytes of one file (whole file in memory: for tests and verification of small files).
    pub fn cat(&self, image: &Path, offset: u64, path: &str) -> Result<Vec<u8>, Ext4Error> {
        let device = DeviceSpec::new(image, offset)?;
        let mut request = b"cat ".to_vec();
        request.extend_from_slice(&quote(path.as_bytes()));
        let cmd = self.debugfs_command(&request, &device);
        Ok(self.debugfs_checked(cmd, usize::MAX)?.stdout)
    }

    /// `debugfs stat` output of one inode (symlinks are not followed).
    pub fn stat(&self, image: &Path, offset: u64, path: &str) -> Result<String, Ext4Error> {
        let device = DeviceSpec::new(image, offset)?;
        let mut request = b"stat ".to_vec();
        request.extend_from_slice(&quote(path.as_bytes()));
        let cmd = self.debugfs_command(&request, &device);
        let out = self.debugfs_checked(cmd, run::KEEP)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Owner (uid, gid) of one inode.
    pub fn owner(&self, image: &Path, offset: u64, path: &str) -> Result<(u32, u32), Ext4Error> {
        let text = self.stat(image, offset, path)?;
        let uid = stat_field(&text, "User:");
        let gid = stat_field(&text, "Group:");
        match (uid, gid) {
            (Some(uid), Some(gid)) => Ok((uid, gid)),
            _ => Err(Ext4Error::Parse {
                path: path.to_string(),
                field: "User/Group",
                output: text,
            }),
        }
    }
}

/// The number after `label` in debugfs stat output (`User:     0   Group:     0   Project: …`).
pub(super) fn stat_field<T: std::str::FromStr>(text: &str, label: &str) -> Option<T> {
    text.split_whitespace()
        .skip_while(|w| *w != label)
        .nth(1)
        .and_then(|v| v.parse().ok())
}
