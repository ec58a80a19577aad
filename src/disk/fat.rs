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
    // Civil-from-days (Howard Hinnant's algorithm), valid for the clamped range.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
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
mod tests {
    use super::*;
    use std::path::Path;
    use std::process::Command;

    const OFF: u64 = 1 << 20;
    const LEN: u64 = 40 << 20;

    /// An image with a FAT32 made by mkfs.fat at OFF, and 0xA5 bytes around it.
    fn mkfs_image(dir: &Path) -> (PathBuf, File) {
        let img = dir.join("img");
        let f = File::create(&img).unwrap();
        f.write_all_at(&vec![0xa5; OFF as usize], 0).unwrap();
        f.write_all_at(&vec![0xa5; OFF as usize], OFF + LEN)
            .unwrap();
        drop(f);
        let st = Command::new("mkfs.fat")
            .args(["-F", "32", "-s", "1", "-n", "bootfs", "--offset", "2048"])
            .arg(&img)
            .arg((LEN / 1024).to_string())
            .output()
            .unwrap();
        assert!(st.status.success(), "{st:?}");
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&img)
            .unwrap();
        (img, f)
    }

    fn mtools(cmd: &str, img: &Path, args: &[&str]) -> String {
        let out = Command::new(cmd)
            .env("MTOOLS_SKIP_CHECK", "1")
            .arg("-i")
            .arg(format!("{}@@{OFF}", img.display()))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{cmd}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// fsck.fat has no offset option: check a copy of the partition.
    fn fsck_clean(img: &Path) -> String {
        let data = std::fs::read(img).unwrap();
        let part = img.with_extension("part");
        std::fs::write(&part, &data[OFF as usize..(OFF + LEN) as usize]).unwrap();
        let out = Command::new("fsck.fat")
            .arg("-n")
            .arg(&part)
            .output()
            .unwrap();
        assert!(out.status.success(), "fsck.fat: {out:?}");
        // Bytes around the partition are untouched.
        assert!(data[..OFF as usize].iter().all(|&b| b == 0xa5));
        assert!(data[(OFF + LEN) as usize..].iter().all(|&b| b == 0xa5));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn writes_long_name_file_readable_by_mtools() {
        let dir = tempfile::tempdir().unwrap();
        let (img, f) = mkfs_image(dir.path());
        let yaml = b"hostname: demo\nap:\n  ssid: Kiwix Hotspot\n";
        write_root_file(&f, OFF, LEN, "offspot.yaml", yaml).unwrap();
        assert_eq!(mtools("mtype", &img, &["::/offspot.yaml"]).as_bytes(), yaml);
        let listing = mtools("mdir", &img, &["::/"]);
        assert!(listing.contains("offspot.yaml"), "{listing}");
        assert!(listing.contains("bootfs"), "{listing}");
        fsck_clean(&img);
        assert_eq!(
            read_root_file(&f, OFF, LEN, "offspot.yaml")
                .unwrap()
                .unwrap(),
            yaml
        );
        assert_eq!(read_root_file(&f, OFF, LEN, "absent.txt").unwrap(), None);
    }

    #[test]
    fn replacing_a_longer_file_leaves_no_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let (img, f) = mkfs_image(dir.path());
        // An existing upper-case short-name file, as a FAT tool on another OS might leave it.
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; 300_000]).unwrap();
        mtools("mcopy", &img, &[big.to_str().unwrap(), "::/OFFSPOT.YAML"]);
        let free_before = fatfs_free(&f);
        write_root_file(&f, OFF, LEN, "offspot.yaml", b"a: 1\n").unwrap();
        assert_eq!(mtools("mtype", &img, &["::/offspot.yaml"]), "a: 1\n");
        let listing = mtools("mdir", &img, &["::/"]);
        assert!(listing.contains("offspot.yaml"), "{listing}");
        assert!(listing.contains("        1 file "), "{listing}"); // the old entry is gone
        assert!(fatfs_free(&f) > free_before + 500, "old clusters freed");
        // Same again with a file written by us: still one entry, content replaced.
        write_root_file(&f, OFF, LEN, "offspot.yaml", b"b: 2\n").unwrap();
        assert_eq!(mtools("mtype", &img, &["::/offspot.yaml"]), "b: 2\n");
        fsck_clean(&img);
    }

    fn fatfs_free(f: &File) -> u32 {
        let fs = open_fs(f, OFF, LEN, &SYSTEM_CLOCK).unwrap();
        let n = fs.stats().unwrap().free_clusters();
        fs.unmount().unwrap();
        n
    }

    #[test]
    fn refuses_directories_and_paths() {
        let dir = tempfile::tempdir().unwrap();
        let (img, f) = mkfs_image(dir.path());
        mtools("mmd", &img, &["::/overlays"]);
        assert!(write_root_file(&f, OFF, LEN, "overlays", b"x").is_err());
        assert!(write_root_file(&f, OFF, LEN, "a/b", b"x").is_err());
        // Not a FAT at all (offset 0 holds 0xA5 bytes).
        let e = write_root_file(&f, 0, LEN, "x", b"x").unwrap_err();
        assert!(e.to_string().contains(img.to_str().unwrap()), "{e}");
    }

    #[test]
    fn formats_fat32_like_mkfs() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("img");
        let f = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&img)
            .unwrap();
        f.write_all_at(&vec![0xa5; OFF as usize], 0).unwrap();
        f.write_all_at(&vec![0xa5; OFF as usize], OFF + LEN)
            .unwrap();
        format_fat32(&f, OFF, LEN, "bootfs", 0x1234abcd).unwrap();
        write_root_file_with(
            &f,
            OFF,
            LEN,
            "cmdline.txt",
            b"console=tty1\n",
            &FixedClock(0),
        )
        .unwrap();
        let listing = mtools("mdir", &img, &["::/"]);
        assert!(listing.contains("Volume in drive : is bootfs"), "{listing}");
        assert!(listing.contains("1234-ABCD"), "{listing}");
        assert!(listing.contains("cmdline.txt"), "{listing}");
        let mut hidden = [0u8; 4];
        f.read_exact_at(&mut hidden, OFF + 28).unwrap();
        assert_eq!(u32::from_le_bytes(hidden), 2048);
        let report = fsck_clean(&img);
        assert!(!report.contains("should be"), "{report}");
    }

    #[test]
    fn dos_dates() {
        let d = dos_datetime(951_825_845); // 2000-02-29 12:04:05 UTC
        assert_eq!((d.date.year, d.date.month, d.date.day), (2000, 2, 29));
        assert_eq!((d.time.hour, d.time.min, d.time.sec), (12, 4, 5));
        let d = dos_datetime(0);
        assert_eq!((d.date.year, d.date.month, d.date.day), (1980, 1, 1));
        let d = dos_datetime(1_735_689_599); // 2024-12-31 23:59:59
        assert_eq!((d.date.year, d.date.month, d.date.day), (2024, 12, 31));
        assert_eq!((d.time.hour, d.time.min, d.time.sec), (23, 59, 59));
    }

    #[test]
    fn slice_stays_in_range() {
        let dir = tempfile::tempdir().unwrap();
        let f = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("s"))
            .unwrap();
        f.write_all_at(b"0123456789", 0).unwrap();
        let mut s = Slice::new(&f, 2, 5);
        let mut buf = String::new();
        s.read_to_string(&mut buf).unwrap();
        assert_eq!(buf, "23456");
        assert_eq!(s.seek(SeekFrom::End(-2)).unwrap(), 3);
        assert_eq!(s.write(b"abcdef").unwrap(), 2);
        assert!(s.write(b"x").is_err());
        assert!(s.seek(SeekFrom::Current(-10)).is_err());
        let mut all = [0u8; 10];
        f.read_exact_at(&mut all, 0).unwrap();
        assert_eq!(&all, b"01234ab789");
    }
}
