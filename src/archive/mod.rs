//! Safe archive expansion (zip, tar, gz/bz2/xz tar) and stream decompressors (gz, bz2, xz, zstd).
//!
//! Archives come from the network, so every member is treated as hostile: paths are checked
//! lexically (no absolute path, no `..`), nothing is ever written through a symlink, links must
//! stay inside the destination, special files are refused and the expanded size is counted as it
//! is written so a decompression bomb stops at the declared size. OS junk (`__MACOSX`,
//! `.DS_Store`, `Thumbs.db`, …) is skipped while expanding.

mod decode;
mod extract;
mod junk;
mod tar;
#[cfg(test)]
mod tests;
mod via;
pub mod xz_seek;
mod zip;

pub use decode::{decoder, Compression};
pub use via::Via;

use crate::progress::{Progress, TaskKind};
use crate::{CancellationToken, Classify, ErrorClass};
use std::path::{Path, PathBuf};

/// What an expansion wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Expanded {
    /// Regular files written (hardlinks included).
    pub files: u64,
    /// Bytes written to regular files.
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// A member that would escape the destination or is of a forbidden kind.
    #[error("{}: refusing member {member:?}: {reason}", archive.display())]
    Unsafe {
        archive: PathBuf,
        member: String,
        reason: String,
    },
    /// The expansion grew past the declared size: the declared `size` is wrong or this is a bomb.
    #[error("{}: expands to more than the declared {limit} bytes (stopped at member {member:?})", archive.display())]
    TooLarge {
        archive: PathBuf,
        member: String,
        limit: u64,
    },
    #[error("{}: member {member:?} is encrypted, which is not supported", archive.display())]
    Encrypted { archive: PathBuf, member: String },
    /// The archive could not be read: corrupt, truncated or unreadable.
    #[error("{}: corrupt or unreadable archive", archive.display())]
    Corrupt {
        archive: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: corrupt or unreadable zip archive", archive.display())]
    Zip {
        archive: PathBuf,
        #[source]
        source: ::zip::result::ZipError,
    },
    #[error("{}: cannot {op}", path.display())]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the {what} decoder")]
    Decoder {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: cancelled", archive.display())]
    Cancelled { archive: PathBuf },
    #[error("{} is not an archive format (via: {via})", archive.display())]
    NotAnArchive { archive: PathBuf, via: &'static str },
}

impl Classify for ArchiveError {
    fn class(&self) -> ErrorClass {
        match self {
            // Hostile or mis-declared content is the user's input to fix (another archive, a
            // correct `size`). A corrupt archive is classed like a checksum mismatch, a Failure:
            // it usually means a damaged download, not a config the user wrote wrong.
            ArchiveError::Unsafe { .. }
            | ArchiveError::TooLarge { .. }
            | ArchiveError::Encrypted { .. }
            | ArchiveError::NotAnArchive { .. } => ErrorClass::BadInput,
            ArchiveError::Corrupt { .. }
            | ArchiveError::Zip { .. }
            | ArchiveError::Io { .. }
            | ArchiveError::Decoder { .. }
            | ArchiveError::Cancelled { .. } => ErrorClass::Failure,
        }
    }
}

/// Compression of a tar-based `via`, `None` for zip and non-archives.
fn tar_compression(via: Via) -> Option<Compression> {
    match via {
        Via::Tar => Some(Compression::None),
        Via::Gztar => Some(Compression::Gzip),
        Via::Bztar => Some(Compression::Bzip2),
        Via::Xztar => Some(Compression::Xz),
        Via::Zip | Via::Direct | Via::Base64 => None,
    }
}

/// Expand `archive` into `dest` (created if missing; may already hold other files).
///
/// `limit` is the declared expanded size: the expansion stops with [`ArchiveError::TooLarge`]
/// before the bytes written exceed it. On error, what was written so far stays in `dest`; the
/// caller owns the cleanup. Directories keep their archived modes (minus setuid/setgid/sticky),
/// so a cleanup must be ready to `chmod u+rwx` read-only directories before removing them.
pub fn expand(
    archive: &Path,
    via: Via,
    dest: &Path,
    limit: Option<u64>,
    label: &str,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<Expanded, ArchiveError> {
    enum Format {
        Zip,
        Tar(Compression),
    }
    let format = match (via, tar_compression(via)) {
        (Via::Zip, _) => Format::Zip,
        (_, Some(c)) => Format::Tar(c),
        (_, None) => {
            return Err(ArchiveError::NotAnArchive {
                archive: archive.to_path_buf(),
                via: via.name(),
            })
        }
    };
    let total = std::fs::metadata(archive)
        .map_err(|source| ArchiveError::Io {
            path: archive.to_path_buf(),
            op: "read the archive's metadata",
            source,
        })?
        .len();
    let mut task = progress.task(TaskKind::Extract, label, Some(total));
    let out = extract::Extractor::new(archive, dest, limit, cancel)?;
    let expanded = match format {
        Format::Zip => zip::expand(archive, out, &mut task)?,
        Format::Tar(c) => tar::expand(archive, c, out, cancel, &mut task)?,
    };
    task.set(total);
    task.finish();
    tracing::debug!(
        archive = %archive.display(),
        dest = %dest.display(),
        files = expanded.files,
        bytes = expanded.bytes,
        "expanded archive"
    );
    Ok(expanded)
}

/// Size `archive` would expand to, without writing anything: the sum of its regular members'
/// sizes (junk members excluded, like [`expand`] skips them). A tar is read whole (stopped by `cancel`);
/// a zip's central directory is enough.
pub fn expanded_size(
    archive: &Path,
    via: Via,
    cancel: &CancellationToken,
) -> Result<u64, ArchiveError> {
    match (via, tar_compression(via)) {
        (Via::Zip, _) => zip::expanded_size(archive),
        (_, Some(c)) => tar::expanded_size(archive, c, cancel),
        (_, None) => Err(ArchiveError::NotAnArchive {
            archive: archive.to_path_buf(),
            via: via.name(),
        }),
    }
}
