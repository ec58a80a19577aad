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
