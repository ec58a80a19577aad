//! Fake-capacity probe: a "256 GB" card whose controller really holds 32 GB maps every address modulo its
//! real size, so a block written high lands on top of one written low. We write distinct sentinels spread
//! over the advertised size (in ascending order), sync, read them all back with O_DIRECT, and any sentinel
//! found at the wrong offset proves the wrap; one that does not come back at all proves lost writes.
//!
//! Offsets: every multiple of a power-of-two step (≈ size/64 … size/128), every power of two below the step,
//! and the last block. A card that wraps modulo a power of two (how fake controllers alias their address
//! space) therefore always has two sentinels on one physical block. A card wrapping at an arbitrary size
//! that is not a power of two may escape the alias test; it is still caught if it drops or errors writes.

use super::DeviceError;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// The block I/O the probe needs; the real device uses O_DIRECT, tests use an in-memory lying card.
pub trait BlockIo {
    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()>;
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    fn sync(&mut self) -> io::Result<()>;
}

/// A block device opened with O_DIRECT (past the page cache, so reads come from the card) and O_EXCL (the
/// kernel refuses if anything has it mounted or claimed).
struct Direct(File);

impl BlockIo for Direct {
    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.0.read_exact_at(buf, offset)
    }
    fn sync(&mut self) -> io::Result<()> {
        self.0.sync_all()
    }
}

const MAGIC: &[u8; 8] = b"ICPROBE\x01";
/// O_DIRECT buffers must be aligned to the logical block; 4096 covers every size we accept below it.
const ALIGN: usize = 4096;

/// Probes the device at `path` advertising `size` bytes; see the module comment. Overwrites the sentinel
/// blocks and restores nothing: the device is about to be written anyway.
pub fn probe_capacity(path: &Path, size: u64, logical_block: u32) -> Result<(), DeviceError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_DIRECT | libc::O_EXCL)
        .open(path)
        .map_err(|e| DeviceError::io(path, e))?;
    probe_with(&mut Direct(file), path, size, logical_block)
}

/// The probe over any [`BlockIo`]; `device` only names it in errors.
pub fn probe_with(
    io: &mut dyn BlockIo,
    device: &Path,
    size: u64,
    logical_block: u32,
) -> Result<(), DeviceError> {
    let block = u64::from(logical_block);
    if !logical_block.is_power_of_two() || !(512..=65536).contains(&logical_block) || size < block {
        return Err(DeviceError::BadGeometry {
            device: device.to_path_buf(),
            size,
            logical_block,
        });
    }
    let offsets = positions(size, block);
    let run = run_id();
    let len = logical_block as usize;
    let mut storage = vec![0u8; len + ALIGN];
    let start = storage.as_ptr().align_offset(ALIGN).min(ALIGN);
    let buf = &mut storage[start..start + len];
    let io_err = |offset: u64, source: io::Error| DeviceError::ProbeIo {
        device: device.to_path_buf(),
        offset,
        source,
    };

    // Ascending order: a high block aliasing a low one is written last and wins, which is what reads reveal.
    for &off in &offsets {
        fill_sentinel(buf, &run, off);
        io.write_at(buf, off).map_err(|e| io_err(off, e))?;
    }
    io.sync().map_err(|e| io_err(0, e))?;

    let mut expected = vec![0u8; len];
    // The smallest distance between a read offset and the sentinel it returned is the real wrap size.
    let mut wrap: Option<(u64, u64)> = None;
    for &off in &offsets {
        io.read_at(buf, off).map_err(|e| io_err(off, e))?;
        fill_sentinel(&mut expected, &run, off);
        if *buf == *expected {
            continue;
        }
        let found = sentinel_offset(buf, &run).filter(|&w| {
            fill_sentinel(&mut expected, &run, w);
            *buf == *expected
        });
        match found {
            Some(written) if written > off => {
                if wrap.is_none_or(|(w, r)| written - off < w - r) {
                    wrap = Some((written, off));
                }
            }
            _ => {
                return Err(DeviceError::Lost {
                    device: device.to_path_buf(),
                    size,
                    offset: off,
                })
            }
        }
    }
    match wrap {
        Some((written, read)) => Err(DeviceError::Wrapped {
            device: device.to_path_buf(),
            size,
            written,
            read,
            wrap: written - read,
        }),
        None => Ok(()),
    }
}

/// Sorted, distinct, block-aligned offsets to probe (see the module comment for why these).
pub(crate) fn positions(size: u64, block: u64) -> Vec<u64> {
    let last = (size / block - 1) * block;
    let mut step = block;
    while step.saturating_mul(2) <= size / 64 {
        step *= 2;
    }
    let mut out: Vec<u64> = (0..)
        .map(|i: u64| i * step)
        .take_while(|&o| o <= last)
        .collect();
    let mut p = block;
    while p < step {
        out.push(p);
        p *= 2;
    }
    out.push(last);
    out.sort_unstable();
    out.dedup();
    out
}

/// Sentinel for `offset`: magic, run id, offset, then a pseudo-random fill seeded by both, so no two blocks
/// of this run (nor any earlier run or leftover data) look alike anywhere in the block.
fn fill_sentinel(buf: &mut [u8], run: &[u8; 16], offset: u64) {
    buf[..8].copy_from_slice(MAGIC);
    buf[8..24].copy_from_slice(run);
    buf[24..32].copy_from_slice(&offset.to_le_bytes());
    let mut seed = u64::from_le_bytes(run[..8].try_into().unwrap_or([1; 8]))
        ^ offset.rotate_left(17)
        ^ 0x9e37_79b9_7f4a_7c15;
    for chunk in buf[32..].chunks_mut(8) {
        // xorshift64: cheap, and never stuck at zero because the seed is never zero after the xor constant.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let bytes = seed.to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
}

/// The offset recorded in a block if it is one of this run's sentinels.
fn sentinel_offset(buf: &[u8], run: &[u8; 16]) -> Option<u64> {
    if buf.len() < 32 || &buf[..8] != MAGIC || buf[8..24] != run[..] {
        return None;
    }
    Some(u64::from_le_bytes(buf[24..32].try_into().ok()?))
}

/// 16 random bytes; if the kernel's generator is unavailable, time and pid still differ between runs.
fn run_id() -> [u8; 16] {
    let mut id = [0u8; 16];
    if File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut id))
        .is_ok()
    {
        return id;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    id.copy_from_slice(&(nanos ^ (u128::from(std::process::id()) << 64)).to_le_bytes());
    id
}
