//! The image to write: a seekable raw file plus the byte ranges that carry data. A compressed image is
//! decompressed once, whatever the number of cards; its ranges come from a bmap beside it, else the
//! whole image is written (see [`crate::disk::sparse`] for why a compressed image's zeros cannot be
//! trusted as holes).

use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::FlashError;
use crate::archive::{self, Compression};
use crate::disk::bmap::{bmap_path, Bmap};
use crate::disk::sparse::{self, SparseError};
use crate::progress::{Progress, Task, TaskKind};
use crate::CancellationToken;

/// A raw (already decompressed) image and its mapped ranges. Shared read-only by every device thread
/// (`Arc<Image>`): each one reads it with `pread`, so no thread waits for another. A decompressed copy
/// lives as long as the value.
#[derive(Debug)]
pub struct Image {
    /// What the user named (compressed or not).
    origin: PathBuf,
    /// The raw file read.
    path: PathBuf,
    file: File,
    ranges: Vec<(u64, u64)>,
    image_size: u64,
    _temp: Option<tempfile::TempDir>,
}

impl Image {
    /// Opens `origin` for writing to cards: a raw image as is, a compressed one (xz, zstd, gzip, bzip2)
    /// decompressed into a temporary sparse file first (a `Decode` task counts the compressed bytes).
    /// Mapped ranges: from `IMAGE.bmap` (or `x.img.bmap` beside `x.img.xz`) when present, else
    /// `SEEK_DATA` for a raw image and everything for a compressed one.
    pub fn open(
        origin: &Path,
        progress: &Progress,
        cancel: &CancellationToken,
    ) -> Result<Image, FlashError> {
        let err = |source| FlashError::Image {
            path: origin.to_path_buf(),
            source,
        };
        let mut head = [0u8; 6];
        let n = File::open(origin)
            .and_then(|mut f| f.read(&mut head))
            .map_err(err)?;
        let compression = Compression::sniff(&head[..n]);
        if compression == Compression::None {
            let size = std::fs::metadata(origin).map_err(err)?.len();
            let ranges = match bmap_beside(origin, size)? {
                Some(ranges) => ranges,
                None => mapped_ranges(origin)?,
            };
            return Image::from_parts(origin, origin, ranges, size, None);
        }
        // Zero blocks become holes in the temporary file (to spare its disk); which ranges reach the
        // card is the bmap's say, or all of them.
        let temp = tempfile::Builder::new()
            .prefix("image-creator-write-")
            .tempdir()
            .map_err(|source| FlashError::TempDir {
                dir: std::env::temp_dir(),
                source,
            })?;
        let raw = temp.path().join("image.img");
        let input = File::open(origin).map_err(err)?;
        let total = input.metadata().map(|m| m.len()).ok();
        let mut task = progress.task(
            TaskKind::Decode,
            format!("decompressing {}", origin.display()),
            total,
        );
        let counting = Counting {
            inner: std::io::BufReader::with_capacity(1 << 20, input),
            task: &mut task,
        };
        let mut reader = archive::decoder(compression, counting, 0)?;
        let out = File::create(&raw).map_err(|source| FlashError::Decompress {
            image: origin.to_path_buf(),
            source,
        })?;
        // The bar counts compressed bytes (the Counting reader); this task only satisfies the copy.
        let mut decoded = Progress::silent().task(TaskKind::Decode, "", None);
        let size = sparse::copy(&mut reader, &out, None, 0, &mut decoded, cancel).map_err(|e| {
            let source = match e {
                SparseError::Cancelled => {
                    return FlashError::Cancelled {
                        what: origin.to_path_buf(),
                    }
                }
                SparseError::Read { source } | SparseError::Write { source, .. } => source,
                SparseError::Truncated { .. } => std::io::Error::other(e),
            };
            FlashError::Decompress {
                image: origin.to_path_buf(),
                source,
            }
        })?;
        out.set_len(size).map_err(|source| FlashError::Decompress {
            image: origin.to_path_buf(),
            source,
        })?;
        drop(out);
        drop(reader);
        task.finish();
        let ranges = bmap_beside(origin, size)?.unwrap_or_else(|| vec![(0, size)]);
        Image::from_parts(origin, &raw, ranges, size, Some(temp))
    }

    /// The user-named image (`x.img.xz`), not the decompressed copy.
    pub fn origin(&self) -> &Path {
        &self.origin
    }

    /// Bytes the ranges cover.
    pub fn mapped_bytes(&self) -> u64 {
        self.ranges.iter().map(|r| r.1).sum()
    }

    /// Starts reading `[offset, offset+len)` of the image in the background (kernel readahead), so that
    /// reading the next chunk overlaps writing the current one: without it a cold image is read and
    /// written strictly in turn, at about half of dd's speed. Advisory: errors are ignored.
    pub fn prefetch(&self, offset: u64, len: u64) {
        let _ = nix::fcntl::posix_fadvise(
            self.file.as_raw_fd(),
            offset as libc::off_t,
            len as libc::off_t,
            nix::fcntl::PosixFadviseAdvice::POSIX_FADV_WILLNEED,
        );
    }

    /// A raw image with known ranges: `(offset, len)`, sorted and non-overlapping (from a bmap or
    /// [`mapped_ranges`]); a range's end past `image_size` is clipped (bmap ranges are whole blocks),
    /// empty ranges are dropped.
    pub fn new(
        image: &Path,
        ranges: Vec<(u64, u64)>,
        image_size: u64,
    ) -> Result<Image, FlashError> {
        Image::from_parts(image, image, ranges, image_size, None)
    }

    fn from_parts(
        origin: &Path,
        image: &Path,
        ranges: Vec<(u64, u64)>,
        image_size: u64,
        temp: Option<tempfile::TempDir>,
    ) -> Result<Image, FlashError> {
        let open = |source| FlashError::Image {
            path: image.to_path_buf(),
            source,
        };
        let file = File::open(image).map_err(open)?;
        let len = file.metadata().map_err(open)?.len();
        if len < image_size {
            return Err(FlashError::BadRanges {
                path: image.to_path_buf(),
                reason: format!("the image holds {len} bytes, {image_size} were announced"),
            });
        }
        let mut clean: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
        let mut prev_end = 0u64;
        for (off, len) in ranges {
            let bad = |reason: String| FlashError::BadRanges {
                path: image.to_path_buf(),
                reason,
            };
            if len == 0 {
                continue;
            }
            if off >= image_size {
                return Err(bad(format!(
                    "range at {off} starts past the image end ({image_size})"
                )));
            }
            if off < prev_end {
                return Err(bad(format!(
                    "range at {off} overlaps or precedes the previous one"
                )));
            }
            let end = off.saturating_add(len).min(image_size);
            clean.push((off, end - off));
            prev_end = end;
        }
        Ok(Image {
            origin: origin.to_path_buf(),
            path: image.to_path_buf(),
            file,
            ranges: clean,
            image_size,
            _temp: temp,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.ranges
    }

    pub fn image_size(&self) -> u64 {
        self.image_size
    }

    /// Fills `buf` with the image bytes at `offset`; bytes past the image end are zeros (the last
    /// logical block of an image whose size is not a multiple of it).
    pub(crate) fn read_padded(&self, offset: u64, buf: &mut [u8]) -> Result<(), FlashError> {
        let avail = self.image_size.saturating_sub(offset).min(buf.len() as u64) as usize;
        let mut got = 0;
        while got < avail {
            match self.file.read_at(&mut buf[got..avail], offset + got as u64) {
                Ok(0) => {
                    let source = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
                    return Err(self.read_error(offset + got as u64, source));
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.read_error(offset + got as u64, e)),
            }
        }
        buf[avail..].fill(0);
        Ok(())
    }

    fn read_error(&self, offset: u64, source: std::io::Error) -> FlashError {
        FlashError::ImageRead {
            path: self.path.clone(),
            offset,
            source,
        }
    }
}

/// Data ranges of a sparse file (for images without a `.bmap`): [`crate::disk::sparse::data_extents`].
pub fn mapped_ranges(image: &Path) -> Result<Vec<(u64, u64)>, FlashError> {
    let err = |source: std::io::Error| FlashError::Image {
        path: image.to_path_buf(),
        source,
    };
    let file = File::open(image).map_err(err)?;
    let size = file.metadata().map_err(err)?.len();
    crate::disk::sparse::data_extents(&file, size).map_err(err)
}

/// Where a bmap for `image` may be: `IMAGE.bmap`, and for a compressed image also the name without its
/// compression suffix plus `.bmap` (`x.img.xz` → `x.img.bmap`), where bmaptool looks for it.
fn bmap_candidates(image: &Path) -> Vec<PathBuf> {
    let mut out = vec![bmap_path(image)];
    if let Some(ext) = image.extension().and_then(|e| e.to_str()) {
        if ["xz", "zst", "gz", "bz2"].contains(&ext) {
            out.push(bmap_path(&image.with_extension("")));
        }
    }
    out
}

/// The byte ranges of the first bmap found beside `image`, checked against the (decoded) image size.
fn bmap_beside(image: &Path, size: u64) -> Result<Option<Vec<(u64, u64)>>, FlashError> {
    let Some(path) = bmap_candidates(image).into_iter().find(|p| p.is_file()) else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(&path).map_err(|source| FlashError::Image {
        path: path.clone(),
        source,
    })?;
    let bmap = Bmap::parse(&text, &path.display().to_string())?;
    if bmap.image_size != size {
        return Err(FlashError::BmapSize {
            bmap: path,
            described: bmap.image_size,
            actual: size,
        });
    }
    Ok(Some(bmap.byte_ranges()))
}

/// Counts compressed bytes read, for the decompression bar.
struct Counting<'a, R> {
    inner: R,
    task: &'a mut Task,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.task.advance(n as u64);
        Ok(n)
    }
}
