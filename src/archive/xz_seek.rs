//! Reading a few bytes deep inside a multi-block `.xz` without decoding everything before them. The xz
//! index (at the end of the file) lists every block's compressed and uncompressed size, so the block that
//! holds an offset can be found and decoded alone. Used by the planner to read the base's data-partition
//! superblock, gigabytes into an official base image. No crate exposes the index for random access
//! (liblzma's `lzma_index` is not wrapped by the `liblzma` crate), hence this small reader of the format
//! (<https://tukaani.org/xz/xz-file-format.txt>, sections 2.1.2 and 4).

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;

const HEADER_LEN: u64 = 12;
const FOOTER_LEN: u64 = 12;
const FOOTER_MAGIC: &[u8; 2] = b"YZ";

/// One block: where it starts in the file, and the uncompressed offset it starts at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    pub file_offset: u64,
    /// Block header + compressed data + check, without the padding to 4 bytes.
    unpadded: u64,
    data_offset: u64,
    data_len: u64,
}

impl Block {
    /// Bytes of the block in the file, padding included.
    pub fn file_len(&self) -> u64 {
        self.unpadded.div_ceil(4) * 4
    }
}

/// Bytes at the end of an xz file that [`index_location`] reads.
pub const FOOTER: u64 = FOOTER_LEN;
/// Bytes at the start of an xz file that [`decode_block`] needs.
pub const HEADER: u64 = HEADER_LEN;

/// Where the index is (offset, length) in an xz file of `len` bytes, from its last [`FOOTER`] bytes;
/// `None` when they are not an xz footer.
pub fn index_location(len: u64, footer: &[u8]) -> Option<(u64, u64)> {
    if len < HEADER_LEN + FOOTER_LEN
        || footer.len() != FOOTER_LEN as usize
        || &footer[10..12] != FOOTER_MAGIC
    {
        return None;
    }
    let backward = (u64::from(u32::from_le_bytes([
        footer[4], footer[5], footer[6], footer[7],
    ])) + 1)
        * 4;
    let start = (len - FOOTER_LEN).checked_sub(backward)?;
    Some((start, backward))
}

/// The block holding uncompressed byte `offset`, from the index read at `index_start`; `None` when the
/// file is not a single stream whose blocks end at its index (the caller then decodes from the start).
pub fn locate(index: &[u8], index_start: u64, offset: u64) -> Option<Block> {
    parse_index(index, index_start)?
        .into_iter()
        .find(|b| (b.data_offset..b.data_offset + b.data_len).contains(&offset))
}

/// Parses an index (indicator 0x00, record count, then unpadded and uncompressed sizes per block) whose
/// blocks must end exactly at `index_start`.
fn parse_index(index: &[u8], index_start: u64) -> Option<Vec<Block>> {
    let mut pos = 1usize;
    if index.first() != Some(&0) {
        return None;
    }
    let count = varint(index, &mut pos)?;
    let mut out = Vec::new();
    let (mut file_offset, mut data_offset) = (HEADER_LEN, 0u64);
    for _ in 0..count {
        let unpadded = varint(index, &mut pos)?;
        let data_len = varint(index, &mut pos)?;
        out.push(Block {
            file_offset,
            unpadded,
            data_offset,
            data_len,
        });
        file_offset = file_offset.checked_add(unpadded.div_ceil(4) * 4)?;
        data_offset = data_offset.checked_add(data_len)?;
    }
    (file_offset == index_start).then_some(out)
}

/// A multibyte integer of the xz format: 7 bits per byte, low first, at most 9 bytes.
fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for i in 0..9 {
        let b = *buf.get(*pos)?;
        *pos += 1;
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// A reader of the uncompressed bytes of the `.xz` at `path` from `offset` to the end of the block that
/// holds it (only that block is read and decoded, its check verified); `None` when the file has no usable
/// index (the caller decodes from the start).
pub fn reader_at(path: &std::path::Path, offset: u64) -> io::Result<Option<Box<dyn Read>>> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let read = |at: u64, n: u64| -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; n as usize];
        file.read_exact_at(&mut buf, at)?;
        Ok(buf)
    };
    if len < HEADER_LEN + FOOTER_LEN {
        return Ok(None);
    }
    let Some((index_start, index_len)) = index_location(len, &read(len - FOOTER_LEN, FOOTER_LEN)?)
    else {
        return Ok(None);
    };
    let Some(block) = locate(&read(index_start, index_len)?, index_start, offset) else {
        return Ok(None);
    };
    let header = read(0, HEADER_LEN)?;
    let bytes = read(block.file_offset, block.file_len())?;
    decode_block(&header, bytes, &block, offset).map(Some)
}

/// The uncompressed bytes of `block` (its [`Block::file_len`] bytes, read from the file) from `offset` on,
/// given the file's first [`HEADER`] bytes.
pub fn decode_block(
    header: &[u8],
    bytes: Vec<u8>,
    block: &Block,
    offset: u64,
) -> io::Result<Box<dyn Read>> {
    if header.len() != HEADER_LEN as usize
        || !(block.data_offset..block.data_offset + block.data_len).contains(&offset)
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not this block's header or offset",
        ));
    }
    // A stream of its own around this one block (header, block, an index listing only it, footer), so
    // the decoder checks everything and ends cleanly where the block ends.
    let mut stream = header.to_vec();
    stream.extend_from_slice(&bytes);
    stream.extend_from_slice(&index_of(
        block.unpadded,
        block.data_len,
        [header[6], header[7]],
    ));
    let mut decoded = liblzma::read::XzDecoder::new(io::Cursor::new(stream));
    io::copy(
        &mut (&mut decoded).take(offset - block.data_offset),
        &mut io::sink(),
    )?;
    Ok(Box::new(decoded))
}

/// The index and footer of a one-block stream whose header carries `flags`.
fn index_of(unpadded: u64, data_len: u64, flags: [u8; 2]) -> Vec<u8> {
    let mut index = vec![0u8];
    for v in [1, unpadded, data_len] {
        put_varint(&mut index, v);
    }
    while index.len() % 4 != 0 {
        index.push(0);
    }
    let crc = crc32fast::hash(&index);
    index.extend_from_slice(&crc.to_le_bytes());
    let backward = (index.len() as u32 / 4) - 1;
    let mut tail = backward.to_le_bytes().to_vec();
    tail.extend_from_slice(&flags);
    let mut footer = crc32fast::hash(&tail).to_le_bytes().to_vec();
    footer.extend_from_slice(&tail);
    footer.extend_from_slice(FOOTER_MAGIC);
    index.extend_from_slice(&footer);
    index
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Against xz(1) itself: a multi-block file made by `xz --block-size`, read at offsets in several
    /// blocks, gives the bytes of the original; a single-block file has one block to seek in too.
    #[test]
    fn reads_inside_any_block_of_a_file_made_by_xz() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("data");
        let data: Vec<u8> = (0..3_000_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 20) as u8)
            .collect();
        std::fs::write(&raw, &data).unwrap();
        for args in [&["--block-size=1MiB", "-T2"][..], &["-T1"][..]] {
            let ok = Command::new("xz")
                .args(["-k", "-f", "-0"])
                .args(args)
                .arg(&raw)
                .status()
                .unwrap()
                .success();
            assert!(ok, "xz");
            let xz = dir.path().join("data.xz");
            for offset in [0u64, 1, 1 << 20, (1 << 20) + 17, 2_999_000] {
                let mut r = reader_at(&xz, offset).unwrap().expect("an index");
                let mut got = vec![0u8; 1000];
                r.read_exact(&mut got).unwrap();
                let at = offset as usize;
                assert_eq!(got, data[at..at + 1000], "{args:?} at {offset}");
            }
            assert!(reader_at(&xz, 3_000_000).unwrap().is_none(), "past the end");
        }
        assert!(reader_at(&raw, 0).unwrap().is_none(), "not xz");
    }
}
