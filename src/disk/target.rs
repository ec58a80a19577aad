//! The output: a new sparse regular file or a whole block device, written with positioned I/O.

use super::sparse::{self, SparseError};
use super::DiskError;
use crate::progress::Task;
use crate::CancellationToken;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    File,
    BlockDevice,
}

#[derive(Debug)]
pub struct Target {
    pub path: PathBuf,
    pub file: File,
    pub kind: TargetKind,
    /// Size of the block device in bytes (None for a file).
    pub device_size: Option<u64>,
}

use super::ioctl::blkgetsize64;

impl Target {
    /// Regular file: created new (O_EXCL) at `path`; the caller decides the path (it may be a temp name
    /// next to the final OUTPUT). Because it is new, unwritten ranges are holes that read as zeros —
    /// [`Target::copy_from`] relies on that to skip zero blocks.
    pub fn create_file(path: &Path) -> Result<Target, DiskError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| open_error(path, "create", e))?;
        Ok(Target {
            path: path.to_path_buf(),
            file,
            kind: TargetKind::File,
            device_size: None,
        })
    }

    /// Block device: opened O_RDWR|O_EXCL, which the kernel refuses (EBUSY) while the device or one
    /// of its partitions is mounted or claimed by another exclusive opener; size via BLKGETSIZE64.
    pub fn open_device(path: &Path) -> Result<Target, DiskError> {
        if !Target::is_block_device(path) {
            return Err(DiskError::NotBlockDevice {
                path: path.to_path_buf(),
            });
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_EXCL)
            .open(path)
            .map_err(|e| open_error(path, "open", e))?;
        let mut size = 0u64;
        // SAFETY: BLKGETSIZE64 writes one u64 into `size`; the fd is a block device opened above.
        unsafe { blkgetsize64(std::os::fd::AsRawFd::as_raw_fd(&file), &mut size) }
            .map_err(|e| DiskError::io("get the size of", path, io::Error::from(e)))?;
        Ok(Target {
            path: path.to_path_buf(),
            file,
            kind: TargetKind::BlockDevice,
            device_size: Some(size),
        })
    }

    /// Re-opens an existing file target (after mke2fs/debugfs, which write through their own fds).
    pub fn reopen_file(path: &Path) -> Result<Target, DiskError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| open_error(path, "open", e))?;
        Ok(Target {
            path: path.to_path_buf(),
            file,
            kind: TargetKind::File,
            device_size: None,
        })
    }

    /// Turns everything from `offset` to the end of a file target into a hole: the base's old data
    /// partition is about to be replaced, and leftovers would make the image (and its bmap) larger.
    pub fn discard_from(&self, offset: u64) -> Result<(), DiskError> {
        if self.kind != TargetKind::File {
            return Ok(());
        }
        let len = self
            .file
            .metadata()
            .map_err(|e| DiskError::io("inspect", &self.path, e))?
            .len();
        if len <= offset {
            return Ok(());
        }
        let flags = nix::fcntl::FallocateFlags::FALLOC_FL_PUNCH_HOLE
            | nix::fcntl::FallocateFlags::FALLOC_FL_KEEP_SIZE;
        nix::fcntl::fallocate(
            std::os::fd::AsRawFd::as_raw_fd(&self.file),
            flags,
            offset as libc::off_t,
            (len - offset) as libc::off_t,
        )
        .map_err(|e| DiskError::io("punch a hole in", &self.path, io::Error::from(e)))
    }

    pub fn is_block_device(path: &Path) -> bool {
        std::fs::metadata(path).is_ok_and(|m| m.file_type().is_block_device())
    }

    /// Make a file target exactly `len` bytes (sparse). On a device, only checks that `len` fits.
    pub fn set_len(&self, len: u64) -> Result<(), DiskError> {
        match self.kind {
            TargetKind::File => self
                .file
                .set_len(len)
                .map_err(|e| DiskError::io("resize", &self.path, e)),
            TargetKind::BlockDevice => self.check_fits(0, len),
        }
    }

    /// Stream `len` bytes from `src` to offset 0.. of the target ([`super::sparse::copy`]). On a file
    /// target, all-zero blocks at or beyond `holes_from` become holes (the file is new so they read as
    /// zeros) and the file is extended to at least `len`. On a block device everything is written, since
    /// old card content must not show through. Advances `task` by the bytes copied; checks `cancel`.
    pub fn copy_from(
        &mut self,
        src: &mut dyn Read,
        len: u64,
        holes_from: u64,
        task: &mut Task,
        cancel: &CancellationToken,
    ) -> Result<(), DiskError> {
        self.check_fits(0, len)?;
        let holes_from = match self.kind {
            TargetKind::File => holes_from,
            TargetKind::BlockDevice => u64::MAX,
        };
        sparse::copy(src, &self.file, Some(len), holes_from, task, cancel).map_err(
            |e| match e {
                SparseError::Read { source } => DiskError::SourceRead { source },
                SparseError::Truncated { expected, got } => {
                    DiskError::SourceTruncated { expected, got }
                }
                SparseError::Write { source, .. } => DiskError::io("write to", &self.path, source),
                SparseError::Cancelled => DiskError::Cancelled,
            },
        )?;
        if self.kind == TargetKind::File {
            let cur = self
                .file
                .metadata()
                .map_err(|e| DiskError::io("stat", &self.path, e))?
                .len();
            if cur < len {
                self.set_len(len)?;
            }
        }
        Ok(())
    }

    pub fn write_at(&self, offset: u64, data: &[u8]) -> Result<(), DiskError> {
        self.check_fits(offset, data.len() as u64)?;
        self.file
            .write_all_at(data, offset)
            .map_err(|e| DiskError::io("write to", &self.path, e))
    }

    /// fsync: data and metadata reach the medium (for a device, its write cache is flushed too).
    pub fn sync(&self) -> Result<(), DiskError> {
        self.file
            .sync_all()
            .map_err(|e| DiskError::io("sync", &self.path, e))
    }

    fn check_fits(&self, offset: u64, len: u64) -> Result<(), DiskError> {
        match self.device_size {
            Some(size) if offset.saturating_add(len) > size => Err(DiskError::DeviceTooSmall {
                path: self.path.clone(),
                needed: offset.saturating_add(len),
                size,
            }),
            _ => Ok(()),
        }
    }
}

fn open_error(path: &Path, what: &'static str, e: io::Error) -> DiskError {
    let path = path.to_path_buf();
    match e.raw_os_error() {
        Some(libc::EEXIST) => DiskError::Exists { path },
        Some(libc::EBUSY) => DiskError::DeviceBusy { path },
        Some(libc::EACCES) | Some(libc::EPERM) => DiskError::PermissionDenied { path },
        _ => DiskError::io(what, path, e),
    }
}

/// Free bytes (for an unprivileged user) on the filesystem holding `path`; walks up to the nearest
/// existing ancestor so it works for an output or cache path not created yet.
pub fn free_space(path: &Path) -> Result<u64, DiskError> {
    let mut p = path;
    while std::fs::symlink_metadata(p).is_err() {
        match p.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => p = parent,
            _ => {
                p = Path::new(".");
                break;
            }
        }
    }
    let st = nix::sys::statvfs::statvfs(p)
        .map_err(|e| DiskError::io("get free space of", p, io::Error::from(e)))?;
    // The conversions are no-ops on 64-bit Linux but not on 32-bit ARM, where c_ulong is u32.
    #[allow(clippy::useless_conversion)]
    let (blocks, frsize) = (
        u64::from(st.blocks_available()),
        u64::from(st.fragment_size()),
    );
    Ok(blocks.saturating_mul(frsize))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::{Event, Progress, TaskKind};
    use std::os::unix::fs::MetadataExt;
    use std::sync::{Arc, Mutex};

    const MIB: usize = 1 << 20;

    /// A progress handle recording the last `done` reported.
    fn recorder() -> (Progress, Arc<Mutex<u64>>) {
        let last = Arc::new(Mutex::new(0));
        let l = last.clone();
        let p = Progress::new(move |e| {
            if let Event::TaskProgress { done, .. } = e {
                *l.lock().unwrap() = *done;
            }
        });
        (p, last)
    }

    /// 20 MiB of zeros with a few non-zero spots, one straddling a 4 KiB boundary and a chunk
    /// boundary, and the very last byte.
    fn sparse_input() -> Vec<u8> {
        let mut v = vec![0u8; 20 * MIB];
        v[..100].fill(1);
        v[4 * MIB - 10..4 * MIB + 10].fill(2);
        v[10 * MIB + 4000..10 * MIB + 5000].fill(3);
        *v.last_mut().unwrap() = 4;
        v
    }

    #[test]
    fn copy_to_file_makes_holes_and_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.img");
        let mut t = Target::create_file(&path).unwrap();
        assert_eq!(t.kind, TargetKind::File);
        let input = sparse_input();
        let (progress, last) = recorder();
        let mut task = progress.task(TaskKind::Copy, "copy", Some(input.len() as u64));
        t.copy_from(
            &mut input.as_slice(),
            input.len() as u64,
            0,
            &mut task,
            &CancellationToken::new(),
        )
        .unwrap();
        task.finish();
        t.sync().unwrap();
        assert_eq!(*last.lock().unwrap(), input.len() as u64);
        assert_eq!(std::fs::read(&path).unwrap(), input);
        // 5 non-zero 4 KiB blocks written (one spot spans two blocks); allow filesystem overhead.
        let allocated = std::fs::metadata(&path).unwrap().blocks() * 512;
        assert!(allocated <= 64 * 1024, "allocated {allocated} bytes");

        // Trailing zeros still give the full length (as a hole).
        let path2 = dir.path().join("zeros.img");
        let mut t2 = Target::create_file(&path2).unwrap();
        let mut task = progress.task(TaskKind::Copy, "copy", None);
        t2.copy_from(
            &mut io::repeat(0).take(9 * MIB as u64),
            9 * MIB as u64,
            0,
            &mut task,
            &CancellationToken::new(),
        )
        .unwrap();
        let m = std::fs::metadata(&path2).unwrap();
        assert_eq!(m.len(), 9 * MIB as u64);
        assert!(m.blocks() * 512 <= 64 * 1024);
    }

    #[test]
    fn file_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.img");
        let mut t = Target::create_file(&path).unwrap();
        let e = Target::create_file(&path).unwrap_err();
        assert!(matches!(e, DiskError::Exists { .. }), "{e:?}");
        assert_eq!(crate::Classify::class(&e), crate::ErrorClass::BadInput);

        let progress = Progress::silent();
        let mut task = progress.task(TaskKind::Copy, "copy", None);
        let e = t
            .copy_from(
                &mut &[1u8; 1000][..],
                5000,
                0,
                &mut task,
                &CancellationToken::new(),
            )
            .unwrap_err();
        assert!(
            matches!(
                e,
                DiskError::SourceTruncated {
                    expected: 5000,
                    got: 1000
                }
            ),
            "{e:?}"
        );
        let cancel = CancellationToken::new();
        cancel.cancel();
        let e = t
            .copy_from(&mut io::repeat(1), 5000, 0, &mut task, &cancel)
            .unwrap_err();
        assert!(matches!(e, DiskError::Cancelled), "{e:?}");

        let e = Target::open_device(&path).unwrap_err();
        assert!(matches!(e, DiskError::NotBlockDevice { .. }), "{e:?}");
        let e = open_error(&path, "open", io::Error::from_raw_os_error(libc::EACCES));
        assert_eq!(
            crate::Classify::class(&e),
            crate::ErrorClass::MissingRequirement
        );
        assert!(e.to_string().contains("out.img"));
    }

    #[test]
    fn block_device_is_exclusive_and_fully_written() {
        let dir = tempfile::tempdir().unwrap();
        let backing = dir.path().join("card.img");
        // Old card content that zero blocks of the image must overwrite.
        std::fs::write(&backing, vec![0xeeu8; 32 * MIB]).unwrap();
        let dev = crate::testutil::Loop::attach(&backing);
        let path = dev.path();
        assert!(Target::is_block_device(path));

        let mut t = Target::open_device(path).unwrap();
        assert_eq!(t.kind, TargetKind::BlockDevice);
        assert_eq!(t.device_size, Some(32 * MIB as u64));
        let e = Target::open_device(path).unwrap_err();
        assert!(matches!(e, DiskError::DeviceBusy { .. }), "{e:?}");

        let input = sparse_input();
        let progress = Progress::silent();
        let mut task = progress.task(TaskKind::Copy, "copy", None);
        t.copy_from(
            &mut input.as_slice(),
            input.len() as u64,
            0,
            &mut task,
            &CancellationToken::new(),
        )
        .unwrap();
        t.write_at(31 * MIB as u64, b"tail").unwrap();
        let e = t.write_at(32 * MIB as u64 - 2, b"tail").unwrap_err();
        assert!(matches!(e, DiskError::DeviceTooSmall { .. }), "{e:?}");
        assert!(t.set_len(33 * MIB as u64).is_err());
        t.sync().unwrap();
        drop(t);

        let data = std::fs::read(&backing).unwrap();
        assert_eq!(&data[..input.len()], &input[..]);
        assert_eq!(&data[31 * MIB..31 * MIB + 4], b"tail");
        assert_eq!(data[input.len()], 0xee);
    }

    #[test]
    fn free_space_walks_up_to_an_existing_dir() {
        let dir = tempfile::tempdir().unwrap();
        let direct = free_space(dir.path()).unwrap();
        let deep = free_space(&dir.path().join("not/yet/created.img")).unwrap();
        assert!(direct > 0);
        // Same filesystem; allow for concurrent activity on the machine.
        assert!(
            direct.abs_diff(deep) < 64 * MIB as u64,
            "{direct} vs {deep}"
        );
        assert!(free_space(Path::new("relative-missing/x")).unwrap() > 0);
    }

    #[test]
    fn zeros_before_holes_from_are_written_not_holes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("img");
        let mut t = Target::create_file(&path).unwrap();
        let mut task = Progress::silent().task(TaskKind::Copy, "t", None);
        // 8 MiB of zeros: the first 4 MiB must be allocated, the rest may be holes.
        t.copy_from(
            &mut io::repeat(0).take(8 << 20),
            8 << 20,
            4 << 20,
            &mut task,
            &CancellationToken::new(),
        )
        .unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.len(), 8 << 20);
        let allocated = std::os::unix::fs::MetadataExt::blocks(&meta) * 512;
        assert!(
            (4 << 20..5 << 20).contains(&allocated),
            "allocated {allocated}"
        );
    }
}
