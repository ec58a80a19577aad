//! The writer engine: one image to many devices, each independently, verified by reading the medium back.
//!
//! Design (after caligula): one named thread per device; each thread reads the image itself with `pread`
//! (no shared buffer, no lock-step, so a slow or failing card never gates the others), writes only the
//! mapped ranges with O_DIRECT in aligned `chunk`-sized writes, syncs, then re-reads every written range
//! with O_DIRECT and compares it with the image. No async runtime and no terminal code: callers get
//! [`DeviceEvent`]s from the device threads and turn them into progress.

mod buf;
mod job;
mod plan;
mod source;
mod target;

#[cfg(test)]
mod loop_tests;
#[cfg(test)]
mod mock_tests;

use std::path::{Path, PathBuf};

use crate::{CancellationToken, Classify, ErrorClass};

pub use source::{mapped_ranges, Source};

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

/// Where a device is in its job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    Opening,
    Discarding,
    Writing,
    Syncing,
    Verifying,
    Done,
    Failed,
}

/// What the device threads report; `dev` is the index in the `devices` slice.
#[derive(Debug, Clone, PartialEq)]
pub enum DeviceEvent {
    /// The device entered `phase`.
    Phase { dev: usize, phase: Phase },
    /// Bytes done in the current phase (Discarding, Writing or Verifying).
    Progress {
        dev: usize,
        phase: Phase,
        done: u64,
        total: u64,
    },
    /// The device's job ended; the error is rendered with its causes.
    Finished {
        dev: usize,
        result: Result<DeviceReport, String>,
    },
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
    #[error("{device}: cancelled")]
    Cancelled { device: PathBuf },
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
            | FlashError::TooSmall { .. } => ErrorClass::BadInput,
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

/// The error and its causes on one line, for [`DeviceEvent::Finished`].
fn render(e: &FlashError) -> String {
    crate::Chain(e).to_string()
}

/// Writes `source` to every device, each in its own named thread; a slow or failing device never slows or
/// stops the others. Returns one result per device, in order. `events` is called from the device threads.
/// `cancel` stops every device at its next chunk.
pub fn write_all(
    source: &Source,
    devices: &[PathBuf],
    opts: &Options,
    events: &(dyn Fn(DeviceEvent) + Send + Sync),
    cancel: &CancellationToken,
) -> Vec<Result<DeviceReport, FlashError>> {
    if let Err(e) = opts.validate() {
        let reason = render(&e);
        return devices
            .iter()
            .enumerate()
            .map(|(dev, _)| {
                events(DeviceEvent::Finished {
                    dev,
                    result: Err(reason.clone()),
                });
                Err(FlashError::BadChunk { chunk: opts.chunk })
            })
            .collect();
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = devices
            .iter()
            .enumerate()
            .map(|(dev, path)| {
                let name = format!("flash-{dev}");
                let spawned = std::thread::Builder::new()
                    .name(name)
                    .spawn_scoped(scope, move || {
                        run_device(dev, path, source, opts, events, cancel)
                    });
                (path, spawned)
            })
            .collect();
        handles
            .into_iter()
            .map(|(path, spawned)| {
                let thread_err = |reason: String| FlashError::Thread {
                    device: path.clone(),
                    reason,
                };
                match spawned {
                    Ok(h) => h
                        .join()
                        .unwrap_or_else(|_| Err(thread_err("panicked".into()))),
                    Err(e) => Err(thread_err(e.to_string())),
                }
            })
            .collect()
    })
}

/// One device, start to end, reporting its phases and its final result.
fn run_device(
    dev: usize,
    path: &Path,
    source: &Source,
    opts: &Options,
    events: &(dyn Fn(DeviceEvent) + Send + Sync),
    cancel: &CancellationToken,
) -> Result<DeviceReport, FlashError> {
    events(DeviceEvent::Phase {
        dev,
        phase: Phase::Opening,
    });
    let result = target::DeviceFile::open(path)
        .and_then(|mut t| job::flash(&mut t, dev, path, source, opts, events, cancel));
    match &result {
        Ok(report) => {
            tracing::info!(device = %path.display(), written = report.written, verified = report.verified, "device done");
            events(DeviceEvent::Phase {
                dev,
                phase: Phase::Done,
            });
            events(DeviceEvent::Finished {
                dev,
                result: Ok(report.clone()),
            });
        }
        Err(e) => {
            tracing::warn!(device = %path.display(), error = %render(e), "device failed");
            events(DeviceEvent::Phase {
                dev,
                phase: Phase::Failed,
            });
            events(DeviceEvent::Finished {
                dev,
                result: Err(render(e)),
            });
        }
    }
    result
}
