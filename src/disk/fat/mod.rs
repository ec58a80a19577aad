//! FAT access by byte range: the boot partition (p1) is read and written in place inside the image
//! file or block device, through a slice wrapper, with the `fatfs` crate (long file names included).

use super::DiskError;
use fatfs::{Date, DateTime, FileSystem, FsOptions, Time, TimeProvider};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

/// Create or replace `name` (long file name, e.g. "offspot.yaml") at the root of the FAT filesystem that
/// lives at bytes [offset, offset+len) of `file` (regular file or block device).
pub fn write_root_file(
    file: &File,
    offset: u64,
    len: u64,
    name: &str,
    data: &[u8],
) -> Result<(), DiskError> {
    write_root_file_with(file, offset, len, name, data, &SYSTEM_CLOCK)
}

/// Reads `name` from the root of the FAT filesystem at [offset, offset+len); `None` if absent.
pub fn read_root_file(
    file: &File,
    offset: u64,
    len: u64,
    name: &str,
) -> Result<Option<Vec<u8>>, DiskError> {
    let err = FatErr::new(file, offset);
    check_name(name).map_err(|e| err.wrap(format!("invalid file name {name:?}"), e))?;
    let fs = open_fs(file, offset, len, &SYSTEM_CLOCK).map_err(|e| err.wrap("open", e))?;
    let found = find_root_entry(&fs, name).map_err(|e| err.wrap("read root directory", e))?;
    let Some((_, is_dir)) = found else {
        return Ok(None);
    };
    if is_dir {
        return Err(err.wrap(
            format!("read {name}"),
            io::Error::new(io::ErrorKind::InvalidInput, "is a directory"),
        ));
    }
    let mut out = Vec::new();
    fs.root_dir()
        .open_file(name)
        .and_then(|mut f| f.read_to_end(&mut out))
        .map_err(|e| err.wrap(format!("read {name}"), e))?;
    Ok(Some(out))
}

/// [`write_root_file`] with an explicit clock for the entry's timestamps (fixed in the demo image so
/// it is reproducible).
pub(crate) fn write_root_file_with(
    file: &File,
    offset: u64,
    len: u64,
    name: &str,
    data: &[u8],
    clock: &'static dyn TimeProvider,
) -> Result<(), DiskError> {
    let err = FatErr::new(file, offset);
    check_name(name).map_err(|e| err.wrap(format!("invalid file name {name:?}"), e))?;
    let fs = open_fs(file, offset, len, clock).map_err(|e| err.wrap("open", e))?;
    let what = format!("write {name}");
    let root = fs.root_dir();
    // Remove then create (rather than open + truncate) so the long name is exactly `name` even if an
    // existing entry differs in case, and so the old clusters are freed before the new ones are taken.
    match find_root_entry(&fs, name).map_err(|e| err.wrap("read root directory", e))? {
        Some((_, true)) => {
            return Err(err.wrap(
                what,
                io::Error::new(io::ErrorKind::InvalidInput, "a directory has that name"),
            ))
        }
        Some((existing, false)) => root
            .remove(&existing)
            .map_err(|e| err.wrap(format!("remove old {existing}"), e))?,
        None => {}
    }
    let mut f = root
        .create_file(name)
        .map_err(|e| err.wrap(what.clone(), e))?;
    f.write_all(data)
        .and_then(|()| f.flush())
        .map_err(|e| err.wrap(what, e))?;
    drop(f);
    drop(root);
    fs.unmount().map_err(|e| err.wrap("unmount", e))
}

/// Formats a FAT32 filesystem (512-byte clusters, so tiny partitions still count ≥ 65525 clusters)
/// at [offset, offset+len), labelled `label`, with a fixed volume id. `hidden_sectors` (the partition's
/// start sector) is recorded in the boot sector like mkfs.fat does.
pub(crate) fn format_fat32(
    file: &File,
    offset: u64,
    len: u64,
    label: &str,
    volume_id: u32,
) -> Result<(), DiskError> {
    let err = FatErr::new(file, offset);
    let mut label11 = [b' '; 11];
    for (dst, src) in label11.iter_mut().zip(label.bytes()) {
        *dst = src;
    }
    let sectors = u32::try_from(len / 512).map_err(|_| {
        err.wrap(
            "format",
            io::Error::new(io::ErrorKind::InvalidInput, "partition too large"),
        )
    })?;
    let opts = fatfs::FormatVolumeOptions::new()
        .fat_type(fatfs::FatType::Fat32)
        .bytes_per_cluster(512)
        .total_sectors(sectors)
        .volume_id(volume_id)
        .volume_label(label11);
    fatfs::format_volume(Slice::new(file, offset, len), opts).map_err(|e| err.wrap("format", e))?;
    // fatfs leaves the FSInfo free-cluster count "unknown"; counting once records it, as mkfs.fat
    // does (fsck.fat otherwise reports it uninitialised). Writers then keep it up to date.
    let fs = open_fs(file, offset, len, &SYSTEM_CLOCK).map_err(|e| err.wrap("open", e))?;
    fs.stats().map_err(|e| err.wrap("count free clusters", e))?;
    fs.unmount().map_err(|e| err.wrap("unmount", e))?;
    // fatfs leaves "hidden sectors" (BPB offset 28) at 0; mkfs.fat records the partition start
    // there, in the boot sector and its backup (sector number at BPB offset 50).
    let hidden = u32::try_from(offset / 512).unwrap_or(0).to_le_bytes();
    let mut backup = [0u8; 2];
    file.read_exact_at(&mut backup, offset + 50)
        .and_then(|()| file.write_all_at(&hidden, offset + 28))
        .and_then(|()| {
            let backup = u64::from(u16::from_le_bytes(backup));
            if backup != 0 {
                file.write_all_at(&hidden, offset + backup * 512 + 28)?;
            }
            Ok(())
        })
        .map_err(|e| err.wrap("set hidden sectors", e))
}

fn open_fs<'a>(
    file: &'a File,
    offset: u64,
    len: u64,
    clock: &'static dyn TimeProvider,
) -> io::Result<FileSystem<Slice<'a>>> {
    FileSystem::new(
        Slice::new(file, offset, len),
        FsOptions::new().time_provider(clock),
    )
}

/// The stored name (long name if any) of the root entry matching `name` case-insensitively, as
/// FAT does, and whether it is a directory.
fn find_root_entry(fs: &FileSystem<Slice<'_>>, name: &str) -> io::Result<Option<(String, bool)>> {
    for entry in fs.root_dir().iter() {
        let entry = entry?;
        let long = entry.file_name();
        if long.eq_ignore_ascii_case(name) || entry.short_file_name().eq_ignore_ascii_case(name) {
            return Ok(Some((long, entry.is_dir())));
        }
    }
    Ok(None)
}

fn check_name(name: &str) -> io::Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\']) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a root file name must be a single path component",
        ));
    }
    Ok(())
}

/// Builds [`DiskError::Fat`] with the file's path (recovered from /proc, since callers pass a `File`).
struct FatErr {
    path: PathBuf,
    offset: u64,
}

impl FatErr {
    fn new(file: &File, offset: u64) -> Self {
        let fd = file.as_raw_fd();
        let path = std::fs::read_link(format!("/proc/self/fd/{fd}"))
            .unwrap_or_else(|_| PathBuf::from(format!("<fd {fd}>")));
        FatErr { path, offset }
    }
    fn wrap(&self, what: impl Into<String>, source: io::Error) -> DiskError {
        DiskError::Fat {
            what: what.into(),
            path: self.path.clone(),
            offset: self.offset,
            source,
        }
    }
}

/// Read + Write + Seek over bytes [start, start+len) of a file, using positioned I/O so it never
/// moves (or depends on) the file's own cursor. Reads stop at the end of the range; writes past it
/// fail, so a corrupt FAT can never make us write into the next partition.
pub(crate) struct Slice<'a> {
    file: &'a File,
    start: u64,
    len: u64,
    pos: u64,
}

impl<'a> Slice<'a> {
    pub(crate) fn new(file: &'a File, start: u64, len: u64) -> Self {
        Slice {
            file,
            start,
            len,
            pos: 0,
        }
    }
}

impl Read for Slice<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let avail = self.len.saturating_sub(self.pos);
        let n = buf.len().min(usize::try_from(avail).unwrap_or(usize::MAX));
        if n == 0 {
            return Ok(0);
        }
        let got = self.file.read_at(&mut buf[..n], self.start + self.pos)?;
        self.pos += got as u64;
        Ok(got)
    }
}

impl Write for Slice<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let avail = self.len.saturating_sub(self.pos);
        let n = buf.len().min(usize::try_from(avail).unwrap_or(usize::MAX));
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "write past the end of the partition",
            ));
        }
        let put = self.file.write_at(&buf[..n], self.start + self.pos)?;
        self.pos += put as u64;
        Ok(put)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for Slice<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        let target = target.ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "seek before the partition")
        })?;
        self.pos = target;
        Ok(target)
    }
}

/// UTC wall clock for entry timestamps; `SOURCE_DATE_EPOCH` (reproducible builds) wins if set.
#[derive(Debug)]
struct SystemClock;
static SYSTEM_CLOCK: SystemClock = SystemClock;

impl TimeProvider for SystemClock {
    fn get_current_date(&self) -> Date {
        self.get_current_date_time().date
    }
    fn get_current_date_time(&self) -> DateTime {
        let secs = std::env::var("SOURCE_DATE_EPOCH")
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(0)
            });
        dos_datetime(secs)
    }
}

/// A fixed instant (seconds since the epoch, UTC) for reproducible images.
#[derive(Debug)]
pub(crate) struct FixedClock(pub i64);

impl TimeProvider for FixedClock {
    fn get_current_date(&self) -> Date {
        dos_datetime(self.0).date
    }
    fn get_current_date_time(&self) -> DateTime {
        dos_datetime(self.0)
    }
}

/// Seconds since the epoch (UTC) → DOS date-time, clamped to the representable 1980–2107 range.
fn dos_datetime(secs: i64) -> DateTime {
    // 1980-01-01 and 2107-12-31 23:59:58 UTC.
    let secs = secs.clamp(315_532_800, 4_354_819_198);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = crate::calendar::civil_from_days(days);
    DateTime {
        date: Date {
            year: year as u16,
            month: month as u16,
            day: day as u16,
        },
        time: Time {
            hour: (rem / 3600) as u16,
            min: (rem % 3600 / 60) as u16,
            sec: (rem % 60) as u16,
            millis: 0,
        },
    }
}

#[cfg(test)]
mod tests;
