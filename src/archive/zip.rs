//! Zip expansion through the [`Extractor`] safety layer. Declared sizes are checked before a
//! member is written and real bytes are counted while it streams, so a header that lies about the
//! size cannot beat the limit.

use super::extract::{member_rel, Extractor, FileMember};
use super::{junk, ArchiveError, Expanded};
use crate::progress::Task;
use ::zip::ZipArchive;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

const S_IFMT: u32 = 0o170_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFREG: u32 = 0o100_000;
/// Longer symlink targets than PATH_MAX are not real symlinks.
const MAX_LINK: u64 = 4096;

fn open(archive: &Path) -> Result<ZipArchive<BufReader<File>>, ArchiveError> {
    let file = File::open(archive).map_err(|source| ArchiveError::Io {
        path: archive.to_path_buf(),
        op: "open",
        source,
    })?;
    ZipArchive::new(BufReader::new(file)).map_err(|source| zip_error(archive, source))
}

fn zip_error(archive: &Path, source: ::zip::result::ZipError) -> ArchiveError {
    ArchiveError::Zip {
        archive: archive.to_path_buf(),
        source,
    }
}

/// What a zip member is, from its name and its Unix mode when the archiver stored one.
#[derive(PartialEq)]
enum Kind {
    Dir,
    File,
    Symlink,
    Special,
}

fn kind(name_is_dir: bool, mode: Option<u32>) -> Kind {
    match mode.map(|m| m & S_IFMT) {
        _ if name_is_dir => Kind::Dir,
        Some(S_IFDIR) => Kind::Dir,
        Some(S_IFLNK) => Kind::Symlink,
        // 0: archivers that store permission bits only.
        None | Some(0) | Some(S_IFREG) => Kind::File,
        Some(_) => Kind::Special,
    }
}

pub(super) fn expand(
    archive: &Path,
    mut out: Extractor<'_>,
    task: &mut Task,
) -> Result<Expanded, ArchiveError> {
    let mut zip = open(archive)?;
    for i in 0..zip.len() {
        out.check_cancel()?;
        // The raw view gives the metadata without trying to decrypt.
        let (name, encrypted) = {
            let raw = zip.by_index_raw(i).map_err(|e| zip_error(archive, e))?;
            (raw.name().to_string(), raw.encrypted())
        };
        if encrypted {
            return Err(ArchiveError::Encrypted {
                archive: archive.to_path_buf(),
                member: name,
            });
        }
        let mut entry = zip.by_index(i).map_err(|e| zip_error(archive, e))?;
        let mode = entry.unix_mode();
        let kind = kind(entry.is_dir(), mode);
        let Some(rel) = out.member_path(&name, name.as_bytes(), kind == Kind::Dir)? else {
            continue;
        };
        let (start, csize, size) = (entry.header_start(), entry.compressed_size(), entry.size());
        match kind {
            Kind::Dir => out.dir(&name, &rel, mode.unwrap_or(0o755))?,
            Kind::Special => return Err(out.unsafe_member(&name, "device node, FIFO or socket")),
            Kind::Symlink => {
                let mut target = Vec::new();
                (&mut entry)
                    .take(MAX_LINK + 1)
                    .read_to_end(&mut target)
                    .map_err(|e| out.read_error(e))?;
                if target.len() as u64 > MAX_LINK {
                    return Err(out.unsafe_member(&name, "symlink target too long"));
                }
                out.symlink(&name, &rel, &target)?;
            }
            Kind::File => {
                let member = FileMember {
                    name: &name,
                    rel: &rel,
                    mode: mode.unwrap_or(0o644),
                    declared: Some(size),
                    mtime: None,
                };
                out.file(&member, &mut entry, &mut |done| {
                    // Progress in archive bytes: the member's compressed share of what is done.
                    let part = if size == 0 {
                        csize
                    } else {
                        u64::try_from(u128::from(csize) * u128::from(done) / u128::from(size))
                            .unwrap_or(csize)
                            .min(csize)
                    };
                    task.set(start + part);
                })?;
            }
        }
        task.set(start.saturating_add(csize));
    }
    out.finish()
}

pub(super) fn expanded_size(archive: &Path) -> Result<u64, ArchiveError> {
    let mut zip = open(archive)?;
    let mut total: u64 = 0;
    for i in 0..zip.len() {
        let entry = zip.by_index_raw(i).map_err(|e| zip_error(archive, e))?;
        let counted = kind(entry.is_dir(), entry.unix_mode()) == Kind::File
            && member_rel(entry.name().as_bytes()).is_ok_and(|rel| !junk::is_junk_path(&rel));
        if counted {
            total = total.saturating_add(entry.size());
        }
    }
    Ok(total)
}
