//! Where the bytes go: a small trait (mocked in tests to check alignment) and the real block device / file.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::Path;

use super::FlashError;

/// The operations the writer needs from a device. Callers guarantee that offsets, lengths and buffer
/// addresses are multiples of [`Medium::logical_block`] (buffer addresses of [`Medium::buffer_align`]).
pub(crate) trait Medium {
    /// Logical block size: the O_DIRECT granularity.
    fn logical_block(&self) -> u64;
    /// Alignment of the I/O buffers.
    fn buffer_align(&self) -> usize {
        (self.logical_block() as usize).max(4096)
    }
    /// Capacity in bytes; `None` for a regular file (it grows).
    fn size(&self) -> Option<u64>;
    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()>;
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Makes every write durable (data on the medium, device cache flushed) and, if the target may still
    /// hold them in a cache, drops them so that verification reads the medium.
    fn sync(&mut self) -> io::Result<()>;
    /// Releases `[offset, offset+len)`; `Ok(false)` when the target has no discard.
    fn discard(&mut self, offset: u64, len: u64) -> io::Result<bool>;
}

use crate::disk::ioctl::{blkdiscard, blkgetsize64, blksszget};

/// A block device (O_DIRECT|O_EXCL) or, in tests and for image files, a regular file.
pub(crate) struct DeviceFile {
    file: File,
    block_device: bool,
    direct: bool,
    logical_block: u64,
    size: Option<u64>,
}

impl DeviceFile {
    pub(crate) fn open(path: &Path) -> Result<DeviceFile, FlashError> {
        let open_err = |source| FlashError::Open {
            device: path.to_path_buf(),
            source,
        };
        let block_device = std::fs::metadata(path)
            .map_err(open_err)?
            .file_type()
            .is_block_device();
        let open = |flags: libc::c_int| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(flags)
                .open(path)
        };
        let (file, direct) = if block_device {
            // O_EXCL on a block device: EBUSY if it is mounted or held by another exclusive opener.
            (open(libc::O_DIRECT | libc::O_EXCL).map_err(open_err)?, true)
        } else {
            match open(libc::O_DIRECT) {
                Ok(f) => (f, true),
                // tmpfs and some others refuse O_DIRECT on files; fine for a file target.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    (open(0).map_err(open_err)?, false)
                }
                Err(e) => return Err(open_err(e)),
            }
        };
        let (logical_block, size) = if block_device {
            let ioctl_err = |what, source| FlashError::Ioctl {
                device: path.to_path_buf(),
                what,
                source,
            };
            let fd = file.as_raw_fd();
            let mut lbs: libc::c_int = 0;
            // SAFETY: BLKSSZGET writes one c_int to the pointer, which points to a live local.
            unsafe { blksszget(fd, &mut lbs) }.map_err(|e| ioctl_err("BLKSSZGET", e.into()))?;
            let mut size: u64 = 0;
            // SAFETY: BLKGETSIZE64 writes one u64 to the pointer, which points to a live local.
            unsafe { blkgetsize64(fd, &mut size) }
                .map_err(|e| ioctl_err("BLKGETSIZE64", e.into()))?;
            let lbs = u64::try_from(lbs).unwrap_or(0);
            if !lbs.is_power_of_two() || !(512..=65536).contains(&lbs) {
                let source = io::Error::other(format!("logical block size {lbs}"));
                return Err(ioctl_err("BLKSSZGET", source));
            }
            (lbs, Some(size))
        } else {
            (512, None)
        };
        Ok(DeviceFile {
            file,
            block_device,
            direct,
            logical_block,
            size,
        })
    }
}

impl Medium for DeviceFile {
    fn logical_block(&self) -> u64 {
        self.logical_block
    }

    fn size(&self) -> Option<u64> {
        self.size
    }

    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }

    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()?;
        if !self.direct {
            // Buffered file target: drop its cached pages so verification reads what reached the disk.
            let fd = self.file.as_raw_fd();
            nix::fcntl::posix_fadvise(
                fd,
                0,
                0,
                nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
            )?;
        }
        Ok(())
    }

    fn discard(&mut self, offset: u64, len: u64) -> io::Result<bool> {
        if !self.block_device {
            return Ok(false);
        }
        let range = [offset, len];
        // SAFETY: BLKDISCARD reads two u64 (start, length) from the pointer, which points to a live local.
        match unsafe { blkdiscard(self.file.as_raw_fd(), &range) } {
            Ok(_) => Ok(true),
            Err(nix::errno::Errno::EOPNOTSUPP) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}
