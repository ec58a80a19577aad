//! The image to write: a seekable raw file plus the byte ranges that carry data.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::FlashError;

/// A raw (already decompressed) image and its mapped ranges. Shared read-only by every device thread:
/// each one reads it with `pread`, so no thread waits for another.
#[derive(Debug)]
pub struct Source {
    path: PathBuf,
    file: File,
    ranges: Vec<(u64, u64)>,
    image_size: u64,
}

impl Source {
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

    /// `ranges` are `(offset, len)`, sorted and non-overlapping (from a bmap or [`mapped_ranges`]); a
    /// range's end past `image_size` is clipped (bmap ranges are whole blocks), empty ranges are dropped.
    pub fn new(
        image: &Path,
        ranges: Vec<(u64, u64)>,
        image_size: u64,
    ) -> Result<Source, FlashError> {
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
        Ok(Source {
            path: image.to_path_buf(),
            file,
            ranges: clean,
            image_size,
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
