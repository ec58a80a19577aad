//! Stream decompressors: gzip, bzip2, xz (multi-threaded over multi-block streams), zstd.
//! Every decoder accepts concatenated streams/members, as produced by `pigz`, `pbzip2`, `pixz`
//! or plain `cat a.xz b.xz`, so a multi-part file never decodes silently truncated.

use super::ArchiveError;
use std::io::{self, BufRead, BufReader, Read};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

impl Compression {
    /// Compression recognised from the first bytes of a file (6 bytes are enough).
    pub fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(b"BZh") {
            Compression::Bzip2
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
            Compression::Xz
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// Compression guessed from a file name's extension (`.gz`, `.tgz`, `.bz2`, `.xz`, `.zst`, …).
    pub fn from_name(name: &str) -> Compression {
        let lower = name.to_ascii_lowercase();
        let ends = |exts: &[&str]| exts.iter().any(|e| lower.ends_with(e));
        if ends(&[".gz", ".tgz"]) {
            Compression::Gzip
        } else if ends(&[".bz2", ".tbz2", ".tbz"]) {
            Compression::Bzip2
        } else if ends(&[".xz", ".txz"]) {
            Compression::Xz
        } else if ends(&[".zst", ".zstd", ".tzst"]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Bzip2 => "bzip2",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
        }
    }
}

/// A reader that decompresses `r`. `threads` is used by xz, whose multi-block streams decode in
/// parallel (0 = all CPUs); single-block streams decode on one thread whatever the setting.
pub fn decoder<'a>(
    c: Compression,
    r: impl Read + Send + 'a,
    threads: u32,
) -> Result<Box<dyn Read + Send + 'a>, ArchiveError> {
    Ok(match c {
        Compression::None => Box::new(r),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(r))),
        Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(r)),
        Compression::Xz => Box::new(XzReader::new(r, threads)?),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(r).map_err(|source| {
            ArchiveError::Decoder {
                what: "zstd",
                source,
            }
        })?),
    })
}

/// liblzma's decoder stops at the end of the first stream; this one goes on with the next
/// stream (after the zero padding the format allows between streams) until the input ends.
struct XzReader<R: Read> {
    inner: Option<liblzma::bufread::XzDecoder<BufReader<R>>>,
    threads: u32,
}

impl<R: Read> XzReader<R> {
    fn new(r: R, threads: u32) -> Result<Self, ArchiveError> {
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(1))
        } else {
            threads
        };
        let stream = xz_stream(threads)?;
        Ok(Self {
            inner: Some(liblzma::bufread::XzDecoder::new_stream(
                BufReader::with_capacity(256 * 1024, r),
                stream,
            )),
            threads,
        })
    }
}

fn xz_stream(threads: u32) -> Result<liblzma::stream::Stream, ArchiveError> {
    liblzma::stream::MtStreamBuilder::new()
        .threads(threads)
        // Threads are dropped when they would need more than this (liblzma's advice: a quarter
        // of RAM); it never makes decoding fail.
        .memlimit_threading(physical_memory() / 4)
        .memlimit_stop(u64::MAX)
        // 0 = no timeout: the bufread adapter treats an early return with no progress as corruption.
        .timeout_ms(0)
        .decoder()
        .map_err(|e| ArchiveError::Decoder {
            what: "xz",
            source: io::Error::other(e),
        })
}

/// Physical memory in bytes, 1 GiB when unknown.
fn physical_memory() -> u64 {
    // SAFETY: sysconf only reads system configuration.
    let (pages, size) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    match (u64::try_from(pages), u64::try_from(size)) {
        (Ok(p), Ok(s)) if p > 0 && s > 0 => p.saturating_mul(s),
        _ => 1 << 30,
    }
}

impl<R: Read> Read for XzReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let Some(dec) = self.inner.as_mut() else {
                return Ok(0);
            };
            let n = dec.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            // Ok(0) from the adapter means "stream end"; look for another stream.
            let Some(dec) = self.inner.take() else {
                return Ok(0);
            };
            let mut input = dec.into_inner();
            loop {
                let chunk = input.fill_buf()?;
                if chunk.is_empty() {
                    return Ok(0);
                }
                let zeros = chunk.iter().take_while(|&&b| b == 0).count();
                let more = zeros < chunk.len();
                input.consume(zeros);
                if more {
                    break;
                }
            }
            let stream = xz_stream(self.threads).map_err(io::Error::other)?;
            self.inner = Some(liblzma::bufread::XzDecoder::new_stream(input, stream));
        }
    }
}
