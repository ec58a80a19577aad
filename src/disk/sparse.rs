//! Sparse files, in one place: where a file's data is (`SEEK_DATA`/`SEEK_HOLE`), and the copy of a stream
//! into a file that leaves zero blocks as holes **only where holes are safe**.
//!
//! Why "only where safe": a card is flashed with an image's mapped ranges only (bmap or [`data_extents`]),
//! so a hole in the image leaves the card's old bytes in place. That is fine in the data partition, which
//! holds a filesystem that never reads blocks it has not written, and fatal in a FAT table or a zeroed
//! inode table of the boot and system partitions. The build's base copy makes holes only from the data
//! partition, which it re-creates; `write` decompresses with holes everywhere but then writes a compressed
//! image densely unless a bmap says which blocks matter: once compressed, a zero block that the image's
//! creator wrote (the resize inode's blocks, a zeroed table) cannot be told from an unused one.
//!
//! Ranges are `(offset, len)` in bytes everywhere, like the flash engine's and the bmap's byte ranges.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

use crate::progress::Task;
use crate::CancellationToken;

/// Hole granularity: the page and filesystem block size everywhere we write images.
pub const BLOCK: usize = 4096;
/// Copy unit: large enough for full-speed sequential I/O, small enough to notice cancellation quickly.
const CHUNK: usize = 4 << 20;

/// Data ranges `(offset, len)` of `file` (of `size` bytes) found with `SEEK_DATA`/`SEEK_HOLE`. A
/// filesystem without hole support reports the whole file as data (Linux's generic fallback, or EINVAL
/// on the first seek), which is correct, only not sparse.
pub fn data_extents(file: &File, size: u64) -> io::Result<Vec<(u64, u64)>> {
    use nix::errno::Errno;
    use nix::unistd::{lseek, Whence};
    let fd = file.as_raw_fd();
    let mut out = Vec::new();
    let mut pos = 0u64;
    while pos < size {
        let data = match lseek(fd, pos as libc::off_t, Whence::SeekData) {
            Ok(d) => d as u64,
            // ENXIO: no data after `pos`, the rest is a hole.
            Err(Errno::ENXIO) => break,
            Err(Errno::EINVAL) if pos == 0 => {
                out.push((0, size));
                break;
            }
            Err(e) => return Err(e.into()),
        };
        let hole = (lseek(fd, data as libc::off_t, Whence::SeekHole)? as u64).min(size);
        if hole <= data {
            break;
        }
        out.push((data, hole - data));
        pos = hole;
    }
    Ok(out)
}

#[derive(Debug, thiserror::Error)]
pub enum SparseError {
    #[error("reading the source stream")]
    Read {
        #[source]
        source: io::Error,
    },
    #[error("the source ended after {got} of {expected} bytes")]
    Truncated { expected: u64, got: u64 },
    #[error("writing at offset {offset}")]
    Write {
        offset: u64,
        #[source]
        source: io::Error,
    },
    #[error("cancelled")]
    Cancelled,
}

/// Copies `src` to offsets `0..` of `dst`: exactly `len` bytes when given (a shorter stream is an error),
/// else up to the end of the stream; returns the bytes copied. All-zero [`BLOCK`]s at or beyond
/// `holes_from` are skipped, so `dst` must read unwritten ranges as zeros (a new or truncated file); before
/// `holes_from` every byte is written. `dst` is not extended when the stream ends in zeros: the caller sets
/// the length. Advances `task` by the bytes copied; checks `cancel` per chunk.
pub fn copy(
    src: &mut dyn Read,
    dst: &File,
    len: Option<u64>,
    holes_from: u64,
    task: &mut Task,
    cancel: &CancellationToken,
) -> Result<u64, SparseError> {
    let mut buf = vec![0u8; CHUNK];
    let mut offset = 0u64;
    while len.is_none_or(|len| offset < len) {
        if cancel.is_cancelled() {
            return Err(SparseError::Cancelled);
        }
        let want = len.map_or(CHUNK, |len| {
            usize::try_from(len - offset).map_or(CHUNK, |n| n.min(CHUNK))
        });
        let chunk = &mut buf[..want];
        let got = read_full(src, chunk).map_err(|source| SparseError::Read { source })?;
        if let (Some(expected), true) = (len, got < want) {
            return Err(SparseError::Truncated {
                expected,
                got: offset + got as u64,
            });
        }
        write_chunk(dst, offset, &chunk[..got], holes_from)?;
        offset += got as u64;
        task.advance(got as u64);
        if got < want {
            break;
        }
    }
    Ok(offset)
}

/// Copies `src` (a file of `size` bytes) into the new file `dst` keeping its mapping exactly: its data
/// extents are written byte for byte, zero blocks included, and its holes stay holes. Unlike [`copy`], it
/// never turns a zero block into a hole, so a copy's bmap maps what the original's did (a kept build's
/// resize inode, zeroed tables). `hasher` sees every byte of the content, holes as zeros.
pub fn copy_extents(
    src: &File,
    dst: &File,
    size: u64,
    hasher: &mut crate::digest::Hasher,
    task: &mut Task,
    cancel: &CancellationToken,
) -> Result<(), SparseError> {
    let zeros = vec![0u8; CHUNK];
    let mut buf = vec![0u8; CHUNK];
    let hash_zeros = |from: u64, to: u64, hasher: &mut crate::digest::Hasher, task: &mut Task| {
        let mut pos = from;
        while pos < to {
            let n = (to - pos).min(CHUNK as u64) as usize;
            hasher.update(&zeros[..n]);
            task.advance(n as u64);
            pos += n as u64;
        }
    };
    let mut pos = 0u64;
    for (off, len) in data_extents(src, size).map_err(|source| SparseError::Read { source })? {
        hash_zeros(pos, off, hasher, task);
        let end = off + len;
        let mut at = off;
        while at < end {
            if cancel.is_cancelled() {
                return Err(SparseError::Cancelled);
            }
            let chunk = &mut buf[..(end - at).min(CHUNK as u64) as usize];
            src.read_exact_at(chunk, at)
                .map_err(|source| SparseError::Read { source })?;
            dst.write_all_at(chunk, at)
                .map_err(|source| SparseError::Write { offset: at, source })?;
            hasher.update(chunk);
            task.advance(chunk.len() as u64);
            at += chunk.len() as u64;
        }
        pos = end;
    }
    hash_zeros(pos, size, hasher, task);
    dst.set_len(size).map_err(|source| SparseError::Write {
        offset: size,
        source,
    })
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
pub fn read_full(src: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match src.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Writes `chunk` at `offset`: densely below `holes_from`, only its non-zero blocks above.
fn write_chunk(dst: &File, offset: u64, chunk: &[u8], holes_from: u64) -> Result<(), SparseError> {
    let dense = usize::try_from(holes_from.saturating_sub(offset))
        .map_or(chunk.len(), |d| d.min(chunk.len()));
    write_at(dst, offset, &chunk[..dense])?;
    let rest = &chunk[dense..];
    let base = offset + dense as u64;
    let mut run: Option<usize> = None;
    for (i, block) in rest.chunks(BLOCK).enumerate() {
        let zero = block.iter().all(|&b| b == 0);
        match (zero, run) {
            (false, None) => run = Some(i * BLOCK),
            (true, Some(s)) => {
                write_at(dst, base + s as u64, &rest[s..i * BLOCK])?;
                run = None;
            }
            _ => {}
        }
    }
    if let Some(s) = run {
        write_at(dst, base + s as u64, &rest[s..])?;
    }
    Ok(())
}

fn write_at(dst: &File, offset: u64, data: &[u8]) -> Result<(), SparseError> {
    if data.is_empty() {
        return Ok(());
    }
    dst.write_all_at(data, offset)
        .map_err(|source| SparseError::Write { offset, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::{Progress, TaskKind};
    use std::os::unix::fs::MetadataExt;

    const MIB: u64 = 1 << 20;

    fn copied(input: &[u8], holes_from: u64) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let file = File::create(&path).unwrap();
        let mut task = Progress::silent().task(TaskKind::Copy, "t", None);
        let mut src = input;
        copy(
            &mut src,
            &file,
            Some(input.len() as u64),
            holes_from,
            &mut task,
            &CancellationToken::new(),
        )
        .unwrap();
        file.set_len(input.len() as u64).unwrap();
        (dir, path)
    }

    #[test]
    fn zeros_become_holes_only_from_holes_from() {
        let mut input = vec![0u8; 12 * MIB as usize];
        input[..100].fill(1);
        input[(6 * MIB) as usize + 10] = 2;
        *input.last_mut().unwrap() = 3;
        let (_dir, path) = copied(&input, 4 * MIB);
        assert_eq!(std::fs::read(&path).unwrap(), input);
        let file = File::open(&path).unwrap();
        let extents = data_extents(&file, input.len() as u64).unwrap();
        // Dense up to 4 MiB, then only the two non-zero blocks.
        assert_eq!(extents[0].0, 0);
        assert!(extents[0].1 >= 4 * MIB, "{extents:?}");
        let mapped: u64 = extents.iter().map(|e| e.1).sum();
        assert!(mapped <= 4 * MIB + 2 * BLOCK as u64 * 16, "{extents:?}");
        let allocated = file.metadata().unwrap().blocks() * 512;
        assert!(allocated >= 4 * MIB, "allocated {allocated}");
    }

    #[test]
    fn never_holes_when_holes_from_is_past_the_end() {
        let input = vec![0u8; 3 * MIB as usize];
        let (_dir, path) = copied(&input, u64::MAX);
        let file = File::open(&path).unwrap();
        assert_eq!(
            data_extents(&file, input.len() as u64).unwrap(),
            vec![(0, 3 * MIB)]
        );
    }

    #[test]
    fn truncated_and_cancelled_sources_fail() {
        let dir = tempfile::tempdir().unwrap();
        let file = File::create(dir.path().join("out")).unwrap();
        let mut task = Progress::silent().task(TaskKind::Copy, "t", None);
        let e = copy(
            &mut &[1u8; 1000][..],
            &file,
            Some(5000),
            0,
            &mut task,
            &CancellationToken::new(),
        )
        .unwrap_err();
        assert!(
            matches!(
                e,
                SparseError::Truncated {
                    expected: 5000,
                    got: 1000
                }
            ),
            "{e:?}"
        );
        let cancel = CancellationToken::new();
        cancel.cancel();
        let e = copy(&mut io::repeat(1), &file, None, 0, &mut task, &cancel).unwrap_err();
        assert!(matches!(e, SparseError::Cancelled), "{e:?}");
    }

    #[test]
    fn without_a_length_the_whole_stream_is_copied() {
        let dir = tempfile::tempdir().unwrap();
        let file = File::create(dir.path().join("out")).unwrap();
        let mut task = Progress::silent().task(TaskKind::Copy, "t", None);
        let input = vec![7u8; CHUNK + 123];
        let n = copy(
            &mut input.as_slice(),
            &file,
            None,
            0,
            &mut task,
            &CancellationToken::new(),
        )
        .unwrap();
        assert_eq!(n, input.len() as u64);
        assert_eq!(task.done(), n);
        assert_eq!(std::fs::read(dir.path().join("out")).unwrap(), input);
    }
}
