//! The writer engine: one image to many devices, each independently, verified by reading the medium back.
//!
//! Design (after caligula): one named thread per device; each thread reads the image itself with `pread`
//! (no shared buffer, no lock-step, so a slow or failing card never gates the others), writes only the
//! mapped ranges with O_DIRECT in aligned `chunk`-sized writes, syncs, then re-reads every written range
//! with O_DIRECT and compares it with the image. No async runtime and no terminal code: [`write_one`]
//! writes one device in the calling thread and reports through a job's [`Progress`] handle; the `job`
//! module runs one thread per device.

mod buf;
mod image;
mod medium;
mod plan;
mod writer;

#[cfg(test)]
mod loop_tests;
#[cfg(test)]
mod mock_tests;

use std::path::{Path, PathBuf};

use crate::progress::{Phase, Progress};
use crate::{CancellationToken, Classify, ErrorClass};

pub use image::{mapped_ranges, Image};

/// How devices are written.
#[derive(Debug, Clone)]
pub struct Options {
    /// Bytes per write: a multiple of 64 KiB in 1–8 MiB (4 MiB by default).
    pub chunk: usize,
    /// Read every written range back from the device and compare it with the image.
    pub verify: bool,
    /// BLKDISCARD the image's unmapped ranges before writing (ignored on regular files and on devices
    /// without discard). Only the area the image spans is discarded; the rest of the device is untouched.
    pub discard: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            chunk: 4 << 20,
            verify: true,
            discard: false,
        }
    }
}

pub const MIN_CHUNK: usize = 1 << 20;
pub const MAX_CHUNK: usize = 8 << 20;

impl Options {
    /// The chunk must be a multiple of every buffer alignment in use (up to 64 KiB logical blocks).
    pub fn validate(&self) -> Result<(), FlashError> {
        if !(MIN_CHUNK..=MAX_CHUNK).contains(&self.chunk) || self.chunk % 65536 != 0 {
            return Err(FlashError::BadChunk { chunk: self.chunk });
        }
        Ok(())
    }
}

/// What one device received.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceReport {
    /// Bytes written (mapped ranges rounded out to the logical block size).
    pub written: u64,
    /// Bytes read back and found equal to the image (0 without verification).
    pub verified: u64,
    /// Seconds spent writing, including the final sync.
    pub write_secs: f64,
    pub verify_secs: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum FlashError {
    #[error("chunk size {chunk} is not a multiple of 64 KiB between 1 and 8 MiB")]
    BadChunk { chunk: usize },
    #[error("cannot read image {path}")]
    Image {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("image {path}: bad mapped ranges: {reason}")]
    BadRanges { path: PathBuf, reason: String },
    #[error("cannot read image {path} at offset {offset}")]
    ImageRead {
        path: PathBuf,
        offset: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open {device} for writing")]
    Open {
        device: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{device}: {what} failed")]
    Ioctl {
        device: PathBuf,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{device} holds {size} bytes, the image needs {needed}")]
    TooSmall {
        device: PathBuf,
        size: u64,
        needed: u64,
    },
    #[error("{device}: discard at offset {offset} failed")]
    Discard {
        device: PathBuf,
        offset: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("{device}: write at offset {offset} failed")]
    Write {
        device: PathBuf,
        offset: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("{device}: sync failed")]
    Sync {
        device: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{device}: read-back at offset {offset} failed")]
    ReadBack {
        device: PathBuf,
        offset: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("{device}: verification failed: first differing byte at offset {offset}")]
    Mismatch { device: PathBuf, offset: u64 },
    #[error("{what}: cancelled")]
    Cancelled { what: PathBuf },
    #[error("cannot decompress {image}")]
    Decompress {
        image: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create a temporary directory in {dir}")]
    TempDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{bmap} describes an image of {described} bytes, the image has {actual}")]
    BmapSize {
        bmap: PathBuf,
        described: u64,
        actual: u64,
    },
    #[error(transparent)]
    Bmap(#[from] crate::disk::bmap::BmapError),
    #[error(transparent)]
    Archive(#[from] crate::archive::ArchiveError),
    #[error("{device}: cannot allocate a {len}-byte I/O buffer")]
    NoMemory { device: PathBuf, len: usize },
    #[error("{device}: the writer thread failed: {reason}")]
    Thread { device: PathBuf, reason: String },
}

impl Classify for FlashError {
    fn class(&self) -> ErrorClass {
        use std::io::ErrorKind;
        match self {
            FlashError::BadChunk { .. }
            | FlashError::BadRanges { .. }
            | FlashError::TooSmall { .. }
            | FlashError::BmapSize { .. } => ErrorClass::BadInput,
            FlashError::Bmap(e) => e.class(),
            FlashError::Archive(e) => e.class(),
            FlashError::Image { source, .. } if source.kind() == ErrorKind::NotFound => {
                ErrorClass::BadInput
            }
            FlashError::Open { source, .. } => match source.kind() {
                ErrorKind::PermissionDenied => ErrorClass::MissingRequirement,
                ErrorKind::NotFound => ErrorClass::BadInput,
                _ => ErrorClass::Failure,
            },
            _ => ErrorClass::Failure,
        }
    }
}

/// Writes `image` to `device` (a whole-disk block device, or a regular file in tests) in the calling
/// thread, then reads it back when `opts.verify`. Reports phases and bytes through `progress` (a job's
/// handle); `cancel` stops it at its next chunk.
pub fn write_one(
    image: &Image,
    device: &Path,
    opts: &Options,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<DeviceReport, FlashError> {
    opts.validate()?;
    progress.phase(Phase::Opening);
    let mut target = medium::DeviceFile::open(device)?;
    writer::flash(&mut target, device, image, opts, progress, cancel)
}
