//! A minimal, reproducible tar writer over a regular file.
//!
//! `tar::Builder` needs an entry's size before its data; a layer's uncompressed size is only
//! known once it has been decompressed. Rather than decompressing twice or buffering, a member
//! can be *streamed*: a placeholder header is written, the data follows, then the header is
//! rewritten in place with the real size and checksum (the output is a seekable file).
//! Every member is plain-named, owned by 0:0 with mtime 0, so the same image gives the same bytes.

use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};

const BLOCK: u64 = 512;

pub(super) struct TarOut {
    file: BufWriter<File>,
    /// Bytes written so far (the position of the next header).
    pos: u64,
}

/// A streamed member whose header still says size 0.
pub(super) struct Open {
    name: String,
    header_pos: u64,
    size: u64,
}

impl Open {
    pub(super) fn size(&self) -> u64 {
        self.size
    }
}

fn header(name: &str, kind: tar::EntryType, mode: u32, size: u64) -> io::Result<tar::Header> {
    // A ustar name field holds 100 bytes; our names (`<64 hex>/layer.tar`) always fit, so no
    // long-name extension member is ever needed and a header is exactly one block.
    if name.len() > 100 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("member name {name:?} is longer than 100 bytes"),
        ));
    }
    let mut h = tar::Header::new_ustar();
    h.set_path(name)?;
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    // Above 8 GiB the tar crate switches the size field to base-256, which Go's archive/tar
    // (the engine) and Python's tarfile (the device loader) both read.
    h.set_size(size);
    h.set_cksum();
    Ok(h)
}

impl TarOut {
    pub(super) fn new(file: File) -> Self {
        Self {
            file: BufWriter::with_capacity(1 << 20, file),
            pos: 0,
        }
    }

    pub(super) fn dir(&mut self, name: &str) -> io::Result<()> {
        let h = header(&format!("{name}/"), tar::EntryType::Directory, 0o755, 0)?;
        self.raw(h.as_bytes())
    }

    pub(super) fn file(&mut self, name: &str, data: &[u8]) -> io::Result<()> {
        let h = header(name, tar::EntryType::Regular, 0o644, data.len() as u64)?;
        self.raw(h.as_bytes())?;
        self.raw(data)?;
        self.pad()
    }

    /// Starts a member whose size is not known yet; feed it with [`TarOut::write`].
    pub(super) fn begin(&mut self, name: &str) -> io::Result<Open> {
        let header_pos = self.pos;
        let h = header(name, tar::EntryType::Regular, 0o644, 0)?;
        self.raw(h.as_bytes())?;
        Ok(Open {
            name: name.to_string(),
            header_pos,
            size: 0,
        })
    }

    pub(super) fn write(&mut self, member: &mut Open, data: &[u8]) -> io::Result<()> {
        self.raw(data)?;
        member.size += data.len() as u64;
        Ok(())
    }

    /// Pads the member's data and rewrites its header with the real size.
    pub(super) fn end(&mut self, member: Open) -> io::Result<u64> {
        self.pad()?;
        let h = header(&member.name, tar::EntryType::Regular, 0o644, member.size)?;
        self.file.seek(SeekFrom::Start(member.header_pos))?;
        self.file.write_all(h.as_bytes())?;
        self.file.seek(SeekFrom::Start(self.pos))?;
        Ok(member.size)
    }

    /// Writes the end-of-archive marker, flushes to disk and returns the archive's size.
    pub(super) fn finish(mut self) -> io::Result<u64> {
        self.raw(&[0u8; 2 * BLOCK as usize])?;
        let file = self.file.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(self.pos)
    }

    fn pad(&mut self) -> io::Result<()> {
        let rem = self.pos % BLOCK;
        if rem != 0 {
            let zeros = [0u8; BLOCK as usize];
            self.raw(&zeros[..(BLOCK - rem) as usize])?;
        }
        Ok(())
    }

    fn raw(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all(data)?;
        self.pos += data.len() as u64;
        Ok(())
    }
}
