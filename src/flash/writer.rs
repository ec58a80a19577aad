//! One device's pass over the [`Medium`] trait: discard, write, sync, verify. Phases go to the job's
//! [`Progress`] handle, bytes to one task per phase.

use std::path::Path;
use std::time::Instant;

use super::buf::AlignedBuf;
use super::medium::Medium;
use super::plan;
use super::{DeviceReport, FlashError, Image, Options};
use crate::progress::{Phase, Progress, TaskKind};
use crate::CancellationToken;

/// Discard pieces are bounded so that cancellation is noticed on slow cards.
const DISCARD_STEP: u64 = 1 << 30;

pub(crate) fn flash<T: Medium>(
    target: &mut T,
    device: &Path,
    source: &Image,
    opts: &Options,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<DeviceReport, FlashError> {
    let block = target.logical_block();
    let ranges = plan::rounded_ranges(source.ranges(), block);
    let total: u64 = ranges.iter().map(|r| r.1).sum();
    let image_end = source.image_size().div_ceil(block) * block;
    let needed = match ranges.last() {
        Some(&(off, len)) if !opts.discard => off + len,
        Some(&(off, len)) => (off + len).max(image_end),
        None if opts.discard => image_end,
        None => 0,
    };
    if let Some(size) = target.size() {
        if size < needed {
            return Err(FlashError::TooSmall {
                device: device.to_path_buf(),
                size,
                needed,
            });
        }
    }
    let cancelled = || {
        if cancel.is_cancelled() {
            Err(FlashError::Cancelled {
                what: device.to_path_buf(),
            })
        } else {
            Ok(())
        }
    };
    let chunk = opts.chunk;
    let mut buf =
        AlignedBuf::new(chunk, target.buffer_align()).ok_or_else(|| FlashError::NoMemory {
            device: device.to_path_buf(),
            len: chunk,
        })?;
    let label = |what: &str| format!("{} {what}", device.display());

    let started = Instant::now();
    if opts.discard {
        let gaps = plan::gaps(&ranges, image_end);
        let gap_total: u64 = gaps.iter().map(|g| g.1).sum();
        progress.phase(Phase::Discarding);
        let mut task = progress.task(TaskKind::Write, label("discarding"), Some(gap_total));
        'gaps: for (off, len) in gaps {
            let mut pos = off;
            while pos < off + len {
                cancelled()?;
                let n = (off + len - pos).min(DISCARD_STEP);
                let supported = target
                    .discard(pos, n)
                    .map_err(|source| FlashError::Discard {
                        device: device.to_path_buf(),
                        offset: pos,
                        source,
                    })?;
                if !supported {
                    tracing::debug!(device = %device.display(), "no discard support, skipped");
                    break 'gaps;
                }
                pos += n;
                task.advance(n);
            }
        }
        task.finish();
    }

    progress.phase(Phase::Writing);
    let mut task = progress.task(TaskKind::Write, label("writing"), Some(total));
    let mut written = 0u64;
    let chunks: Vec<(u64, usize)> = plan::chunks(&ranges, chunk as u64).collect();
    for (i, &(off, n)) in chunks.iter().enumerate() {
        cancelled()?;
        for &(next_off, next_n) in chunks.iter().skip(i + 1).take(2) {
            source.prefetch(next_off, next_n as u64);
        }
        let piece = &mut buf[..n];
        source.read_padded(off, piece)?;
        target
            .write_at(piece, off)
            .map_err(|source| FlashError::Write {
                device: device.to_path_buf(),
                offset: off,
                source,
            })?;
        written += n as u64;
        task.set(written);
    }
    task.finish();
    progress.phase(Phase::Syncing);
    target.sync().map_err(|source| FlashError::Sync {
        device: device.to_path_buf(),
        source,
    })?;
    let write_secs = started.elapsed().as_secs_f64();

    let mut verified = 0u64;
    let mut verify_secs = 0.0;
    if opts.verify {
        progress.phase(Phase::Verifying);
        let mut task = progress.task(TaskKind::Verify, label("verifying"), Some(total));
        let started = Instant::now();
        let mut expected = vec![0u8; chunk];
        for (off, n) in plan::chunks(&ranges, chunk as u64) {
            cancelled()?;
            let got = &mut buf[..n];
            target
                .read_at(got, off)
                .map_err(|source| FlashError::ReadBack {
                    device: device.to_path_buf(),
                    offset: off,
                    source,
                })?;
            let want = &mut expected[..n];
            source.read_padded(off, want)?;
            if got != want {
                let at = got
                    .iter()
                    .zip(want.iter())
                    .position(|(a, b)| a != b)
                    .unwrap_or(0);
                return Err(FlashError::Mismatch {
                    device: device.to_path_buf(),
                    offset: off + at as u64,
                });
            }
            verified += n as u64;
            task.set(verified);
        }
        task.finish();
        verify_secs = started.elapsed().as_secs_f64();
    }
    Ok(DeviceReport {
        written,
        verified,
        write_secs,
        verify_secs,
    })
}
