//! Tar (plain, gz, bz2, xz) expansion through the [`Extractor`] safety layer. The tar crate
//! handles the header formats (ustar, GNU long names, pax); this module decides what each member
//! may become.

use super::extract::{member_rel, read_error, Extractor, FileMember};
use super::{decoder, junk, ArchiveError, Compression, Expanded};
use crate::progress::Task;
use crate::CancellationToken;
use ::tar::{Archive, EntryType};
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

/// Counts the compressed bytes read from the archive file (progress) and stops on cancel.
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
    cancel: CancellationToken,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cancel.is_cancelled() {
            return Err(io::Error::other("cancelled"));
        }
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

fn open(
    archive: &Path,
    c: Compression,
    count: Arc<AtomicU64>,
    cancel: CancellationToken,
) -> Result<Archive<Box<dyn Read + Send>>, ArchiveError> {
    let file = File::open(archive).map_err(|source| ArchiveError::Io {
        path: archive.to_path_buf(),
        op: "open",
        source,
    })?;
    let counting = Counting {
        inner: BufReader::with_capacity(256 * 1024, file),
        count,
        cancel,
    };
    Ok(Archive::new(decoder(c, counting, 0)?))
}

pub(super) fn expand(
    archive: &Path,
    c: Compression,
    mut out: Extractor<'_>,
    cancel: &CancellationToken,
    task: &mut Task,
) -> Result<Expanded, ArchiveError> {
    let count = Arc::new(AtomicU64::new(0));
    let mut ar = open(archive, c, count.clone(), cancel.clone())?;
    let entries = ar.entries().map_err(|e| out.read_error(e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| out.read_error(e))?;
        out.check_cancel()?;
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw).into_owned();
        let kind = entry.header().entry_type();
        // Pre-POSIX tars mark directories only by a trailing slash.
        let is_dir = kind.is_dir() || (kind.is_file() && raw.ends_with(b"/"));
        if kind.is_pax_global_extensions() || kind == EntryType::new(b'V') {
            // Archive-wide metadata and GNU volume labels: nothing to extract.
            continue;
        }
        let Some(rel) = out.member_path(&name, &raw, is_dir)? else {
            continue;
        };
        let mode = entry.header().mode().map_err(|e| out.read_error(e))?;
        if is_dir {
            out.dir(&name, &rel, mode)?;
        } else if kind.is_file() || kind.is_contiguous() || kind.is_gnu_sparse() {
            let mtime = entry
                .header()
                .mtime()
                .ok()
                .map(|s| UNIX_EPOCH + Duration::from_secs(s));
            let member = FileMember {
                name: &name,
                rel: &rel,
                mode,
                declared: Some(entry.size()),
                mtime,
            };
            out.file(&member, &mut entry, &mut |_| {
                task.set(count.load(Ordering::Relaxed))
            })?;
        } else if kind.is_symlink() || kind.is_hard_link() {
            let Some(target) = entry.link_name_bytes().map(|t| t.into_owned()) else {
                return Err(out.unsafe_member(&name, "link without a target"));
            };
            if kind.is_symlink() {
                out.symlink(&name, &rel, &target)?;
            } else {
                out.hardlink(&name, &rel, &target)?;
            }
        } else if kind.is_character_special() || kind.is_block_special() {
            return Err(out.unsafe_member(&name, "device node"));
        } else if kind.is_fifo() {
            return Err(out.unsafe_member(&name, "FIFO"));
        } else {
            return Err(out.unsafe_member(
                &name,
                format!("unsupported member type {:?}", kind.as_byte() as char),
            ));
        }
        task.set(count.load(Ordering::Relaxed));
    }
    out.finish()
}

pub(super) fn expanded_size(
    archive: &Path,
    c: Compression,
    cancel: &CancellationToken,
) -> Result<u64, ArchiveError> {
    let mut ar = open(archive, c, Arc::new(AtomicU64::new(0)), cancel.clone())?;
    let err = |e| read_error(archive, cancel, e);
    let mut total: u64 = 0;
    for entry in ar.entries().map_err(err)? {
        let entry = entry.map_err(err)?;
        let kind = entry.header().entry_type();
        let raw = entry.path_bytes();
        let regular = (kind.is_file() && !raw.ends_with(b"/"))
            || kind.is_contiguous()
            || kind.is_gnu_sparse();
        let counted = regular && member_rel(&raw).is_ok_and(|rel| !junk::is_junk_path(&rel));
        if counted {
            total = total.saturating_add(entry.size());
        }
    }
    Ok(total)
}
