//! Block maps (bmaptool format 2.0): which 4 KiB blocks of a sparse image hold data, with the SHA-256 of
//! each range. The build writes `OUTPUT.bmap` next to file outputs so `bmaptool copy` can flash them, and
//! the writer reads `.bmap` files (ours or `bmaptool create`'s) to write only mapped ranges.

mod format;
mod xml;

#[cfg(test)]
mod tests;

use crate::digest::{Algo, Hasher};
use crate::progress::{Progress, TaskKind};
use crate::{CancellationToken, Classify, ErrorClass};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Block size of the maps we create; bmaptool uses the filesystem block size, 4096 on ext4/xfs/btrfs.
pub const BLOCK_SIZE: u64 = 4096;

/// Bytes hashed per read: bounded memory whatever the range length.
const CHUNK: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum BmapError {
    /// The bmap text is not a bmap this reader accepts; `line` is 1-based.
    #[error("{origin}:{line}: expected {expected}")]
    Parse {
        origin: String,
        line: usize,
        expected: String,
    },

    /// The bmap's own checksum does not match its content: edited or damaged.
    #[error("{origin}: bmap file checksum mismatch (stored {stored}, computed {computed})")]
    ChecksumMismatch {
        origin: String,
        stored: String,
        computed: String,
    },

    /// A bmap can only be computed for a regular file.
    #[error("{path}: not a regular file", path = path.display())]
    NotAFile { path: PathBuf },

    /// I/O on a path; `what` says which operation.
    #[error("{what} {path}", path = path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("bmap of {path} cancelled", path = path.display())]
    Cancelled { path: PathBuf },
}

impl Classify for BmapError {
    fn class(&self) -> ErrorClass {
        match self {
            BmapError::Parse { .. }
            | BmapError::ChecksumMismatch { .. }
            | BmapError::NotAFile { .. } => ErrorClass::BadInput,
            BmapError::Io { .. } | BmapError::Cancelled { .. } => ErrorClass::Failure,
        }
    }
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> BmapError + 'a {
    move |source| BmapError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// A run of mapped blocks, `first..=last`, with the lowercase hex SHA-256 of its bytes (clipped to the
/// image size) when the bmap carries sha256 checksums.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub first: u64,
    pub last: u64,
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bmap {
    pub image_size: u64,
    pub block_size: u64,
    /// Sorted, non-overlapping.
    pub ranges: Vec<Range>,
}

impl Bmap {
    /// Mapped ranges of a (sparse) file via SEEK_DATA/SEEK_HOLE, rounded out to [`BLOCK_SIZE`], with the
    /// SHA-256 of each range's bytes (streamed). Progress: one `Check` task over the bytes hashed.
    pub fn from_file(
        path: &Path,
        progress: &Progress,
        cancel: &CancellationToken,
    ) -> Result<Bmap, BmapError> {
        Bmap::from_file_shown(path, path, progress, cancel)
    }

    /// [`Bmap::from_file`] whose progress names `shown` (the OUTPUT the user gave, not the temporary
    /// file being finished).
    pub fn from_file_shown(
        path: &Path,
        shown: &Path,
        progress: &Progress,
        cancel: &CancellationToken,
    ) -> Result<Bmap, BmapError> {
        let file = File::open(path).map_err(io("open", path))?;
        let meta = file.metadata().map_err(io("stat", path))?;
        if !meta.is_file() {
            return Err(BmapError::NotAFile {
                path: path.to_path_buf(),
            });
        }
        let image_size = meta.len();
        let extents = super::sparse::data_extents(&file, image_size)
            .map_err(io("seek data/holes in", path))?;
        let mut bmap = Bmap {
            image_size,
            block_size: BLOCK_SIZE,
            ranges: blocks_of(&extents, BLOCK_SIZE),
        };
        let label = format!(
            "bmap {}",
            shown
                .file_name()
                .unwrap_or(shown.as_os_str())
                .to_string_lossy()
        );
        let mut task = progress.task(TaskKind::Check, label, Some(bmap.mapped_bytes()));
        let mut buf = vec![0u8; CHUNK];
        let byte_ranges = bmap.byte_ranges();
        for (range, (offset, len)) in bmap.ranges.iter_mut().zip(byte_ranges) {
            let mut hasher = Hasher::new(Algo::Sha256);
            let mut done = 0u64;
            while done < len {
                if cancel.is_cancelled() {
                    return Err(BmapError::Cancelled {
                        path: path.to_path_buf(),
                    });
                }
                let want = (len - done).min(CHUNK as u64) as usize;
                let chunk = &mut buf[..want];
                file.read_exact_at(chunk, offset + done)
                    .map_err(io("read", path))?;
                hasher.update(&*chunk);
                done += want as u64;
                task.advance(want as u64);
            }
            range.sha256 = Some(hasher.finish());
        }
        task.finish();
        Ok(bmap)
    }

    /// The bmaptool 2.0 XML, with sha256 range checksums and a correct BmapFileChecksum.
    pub fn to_xml(&self) -> String {
        format::to_xml(self)
    }

    /// Parses a bmap (format 1.0 to 2.x); `origin` names it in errors. Range checksums are kept only when
    /// they are sha256. The file checksum (1.3 and later) is verified.
    pub fn parse(xml: &str, origin: &str) -> Result<Bmap, BmapError> {
        format::parse(xml, origin)
    }

    /// Blocks in the image: the image size rounded up to whole blocks.
    pub fn blocks_count(&self) -> u64 {
        self.image_size.div_ceil(self.block_size.max(1))
    }

    /// Bytes covered by the ranges, clipped to the image size.
    pub fn mapped_bytes(&self) -> u64 {
        self.byte_ranges().iter().map(|(_, len)| len).sum()
    }

    /// Byte ranges `(offset, len)` of the mapped blocks, clipped to `image_size` (the last block of an
    /// image whose size is not a multiple of the block size is partial).
    pub fn byte_ranges(&self) -> Vec<(u64, u64)> {
        self.ranges
            .iter()
            .filter_map(|r| {
                let start = r.first.saturating_mul(self.block_size);
                let end = r
                    .last
                    .saturating_add(1)
                    .saturating_mul(self.block_size)
                    .min(self.image_size);
                (end > start).then(|| (start, end - start))
            })
            .collect()
    }
}

/// Rounds byte extents `(offset, len)` out to whole blocks and merges those that touch once rounded.
fn blocks_of(extents: &[(u64, u64)], block: u64) -> Vec<Range> {
    let mut out: Vec<Range> = Vec::new();
    for &(start, len) in extents {
        let end = start + len;
        let first = start / block;
        let last = (end - 1) / block;
        match out.last_mut() {
            Some(prev) if first <= prev.last + 1 => prev.last = prev.last.max(last),
            _ => out.push(Range {
                first,
                last,
                sha256: None,
            }),
        }
    }
    out
}

/// The bmap path for an image: the image path with `.bmap` appended (`out.img` → `out.img.bmap`).
pub fn bmap_path(image: &Path) -> PathBuf {
    let mut name = image.as_os_str().to_os_string();
    name.push(".bmap");
    PathBuf::from(name)
}

/// Computes the bmap of `image` and writes it to `<image>.bmap` atomically (temporary file in the same
/// directory, synced, then renamed over), so a reader never sees a half-written map. Progress names
/// `shown`.
pub fn write_for(
    image: &Path,
    shown: &Path,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<PathBuf, BmapError> {
    let bmap = Bmap::from_file_shown(image, shown, progress, cancel)?;
    let target = bmap_path(image);
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".bmap-")
        .tempfile_in(&dir)
        .map_err(io("create a temporary file in", &dir))?;
    tmp.write_all(bmap.to_xml().as_bytes())
        .map_err(io("write", tmp.path()))?;
    // The image's mode, not tempfile's 0600: whoever may read the image may read its bmap.
    let mode = std::fs::metadata(image)
        .map_err(io("inspect", image))?
        .permissions();
    tmp.as_file()
        .set_permissions(mode)
        .map_err(io("set the mode of", tmp.path()))?;
    tmp.as_file().sync_all().map_err(io("sync", &target))?;
    tmp.persist(&target).map_err(|e| BmapError::Io {
        what: "rename into place",
        path: target.clone(),
        source: e.error,
    })?;
    tracing::debug!(path = %target.display(), "bmap written");
    Ok(target)
}
