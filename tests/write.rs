//! `image-creator write` with loop devices standing in for cards (a USB card reader cannot exist here:
//! loop devices are "fixed", so the tests pass --force, and the removable rule is unit-tested in `device`).

mod support;

use std::path::{Path, PathBuf};

use image_creator::disk::bmap::Bmap;
use support::fixtures::*;

/// A card: a backing file full of 0xAA, attached as a loop device (detached on drop).
struct Card {
    file: PathBuf,
    dev: Loop,
}

fn card(dir: &Path, name: &str, mib: u64) -> Card {
    let file = dir.join(name);
    sh(&format!(
        "head -c {}M /dev/zero | tr '\\000' '\\252' > {}",
        mib,
        file.display()
    ));
    let dev = Loop::attach(&file);
    Card { file, dev }
}

/// The demo image built by the real binary, with its .bmap.
fn image(dir: &Path) -> PathBuf {
    let cfg = demo_config(dir, "files:\n  - to: /data/hello.txt\n    content: hello\n");
    let img = dir.join("image.img");
    let out = run(&[cfg.to_str().unwrap(), img.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    img
}

fn ranges(img: &Path) -> Vec<(u64, u64)> {
    let bmap = std::fs::read_to_string(format!("{}.bmap", img.display())).unwrap();
    Bmap::parse(&bmap, "test").unwrap().byte_ranges()
}

fn assert_holds(card: &Card, img: &Path, ranges: &[(u64, u64)]) {
    for &(off, len) in ranges {
        assert!(
            read_range(&card.file, off, len) == read_range(img, off, len),
            "range {off}+{len} differs"
        );
    }
}

#[test]
fn three_cards_in_parallel_hold_the_mapped_ranges_and_gaps_are_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path());
    let cards: Vec<Card> = (0..3)
        .map(|i| card(dir.path(), &format!("c{i}"), 96))
        .collect();
    let mut args = vec!["write", "--yes", "--force", img.to_str().unwrap()];
    args.extend(cards.iter().map(|c| c.dev.0.as_str()));
    let out = run(&args);
    assert!(out.status.success(), "{}", text(&out));
    let r = ranges(&img);
    let size = std::fs::metadata(&img).unwrap().len();
    // A gap: the first unmapped byte after the first range.
    let gap = r
        .windows(2)
        .find(|w| w[0].0 + w[0].1 < w[1].0)
        .map(|w| w[0].0 + w[0].1)
        .unwrap();
    for c in &cards {
        assert_holds(c, &img, &r);
        assert_eq!(read_range(&c.file, gap, 1), vec![0xAA], "a gap was written");
        assert_eq!(
            read_range(&c.file, size, 1),
            vec![0xAA],
            "beyond the image was written"
        );
        e2fsck(&c.file, p3_offset(&img));
    }
}

#[test]
fn discard_makes_gaps_read_as_zeros_and_xz_images_are_decompressed_once() {
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path());
    let xz = dir.path().join("image.img.xz");
    sh(&format!(
        "xz -T2 -k -c {} > {}",
        img.display(),
        xz.display()
    ));
    let c = card(dir.path(), "c", 96);
    // --probe writes and reads back sentinels over the whole card first: an honest card passes.
    let out = run(&[
        "write",
        "--yes",
        "--force",
        "--probe",
        "--discard",
        xz.to_str().unwrap(),
        &c.dev.0,
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let size = std::fs::metadata(&img).unwrap().len();
    assert!(
        read_range(&c.file, 0, size) == std::fs::read(&img).unwrap(),
        "card != image"
    );
}

/// Regression: a compressed image used to be decompressed with every zero block turned into a hole, so
/// FAT tables and inode tables of p1/p2 were never written and a used card's old bytes showed through.
#[test]
fn compressed_images_onto_a_dirty_card_give_clean_filesystems() {
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path());
    // No .bmap beside the compressed files: the writer must find the ranges itself.
    let plain = dir.path().join("plain");
    std::fs::create_dir(&plain).unwrap();
    let p3 = p3_offset(&img);
    let (_, parts) = partitions(&img);
    for (tool, ext) in [("xz -T2", "xz"), ("zstd -q", "zst"), ("gzip", "gz")] {
        let packed = plain.join(format!("image.img.{ext}"));
        sh(&format!(
            "{tool} -c {} > {}",
            img.display(),
            packed.display()
        ));
        let c = card(dir.path(), &format!("c-{ext}"), 96);
        let out = run(&[
            "write",
            "--yes",
            "--force",
            packed.to_str().unwrap(),
            &c.dev.0,
        ]);
        assert!(out.status.success(), "{ext}: {}", text(&out));
        assert!(
            read_range(&c.file, 0, p3) == read_range(&img, 0, p3),
            "{ext}: the card differs from the image before p3"
        );
        fsck_fat(&c.file, dir.path());
        e2fsck(&c.file, parts[1].0 * 512);
        e2fsck(&c.file, p3);
    }
}

/// With the image's bmap beside the compressed file (`x.img.bmap` next to `x.img.xz`, as bmaptool looks
/// for it), only the mapped ranges are written, and the filesystems are still clean.
#[test]
fn a_compressed_image_uses_the_bmap_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path());
    let packed = dir.path().join("image.img.zst");
    sh(&format!(
        "zstd -q -c {} > {}",
        img.display(),
        packed.display()
    ));
    let r = ranges(&img);
    let gap = r
        .windows(2)
        .find(|w| w[0].0 + w[0].1 < w[1].0)
        .map(|w| w[0].0 + w[0].1)
        .unwrap();
    let c = card(dir.path(), "c", 96);
    let out = run(&[
        "write",
        "--yes",
        "--force",
        packed.to_str().unwrap(),
        &c.dev.0,
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert_holds(&c, &img, &r);
    assert_eq!(read_range(&c.file, gap, 1), vec![0xAA], "a gap was written");
    let (_, parts) = partitions(&img);
    fsck_fat(&c.file, dir.path());
    e2fsck(&c.file, parts[1].0 * 512);
    e2fsck(&c.file, p3_offset(&img));
}

#[test]
fn a_bmap_made_by_bmaptool_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path());
    let theirs = dir.path().join("theirs.img");
    sh(&format!(
        "cp --sparse=always {} {} && bmaptool create -o {}.bmap {}",
        img.display(),
        theirs.display(),
        theirs.display(),
        theirs.display()
    ));
    let c = card(dir.path(), "c", 96);
    let out = run(&[
        "write",
        "--yes",
        "--force",
        theirs.to_str().unwrap(),
        &c.dev.0,
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert_holds(&c, &theirs, &ranges(&theirs));
}

#[test]
fn unsafe_devices_are_refused_before_any_byte_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path());
    let good = card(dir.path(), "good", 96);
    let small = card(dir.path(), "small", 32);
    // A partition node and a mounted card.
    let parted = card(dir.path(), "parted", 96);
    sh(&format!(
        "echo 'start=2048, size=100000, type=83' | sfdisk -q {} 2>/dev/null; partx -u {}",
        parted.dev.0, parted.dev.0
    ));
    struct Parts(String);
    impl Drop for Parts {
        fn drop(&mut self) {
            let _ = std::process::Command::new("partx")
                .args(["-d", &self.0])
                .status();
        }
    }
    let _parts = Parts(parted.dev.0.clone());
    let mounted = card(dir.path(), "mounted", 96);
    sh(&format!("mkfs.ext4 -q -F {}", mounted.dev.0));
    let mnt = tempfile::tempdir().unwrap();
    sh(&format!("mount {} {}", mounted.dev.0, mnt.path().display()));
    let _umount = Unmount(mnt.path().to_path_buf());
    let before: Vec<Vec<u8>> = [&good, &small]
        .iter()
        .map(|c| read_range(&c.file, 0, 1 << 20))
        .collect();
    for (bad, needle) in [
        (small.dev.0.clone(), "small"),
        (format!("{}p1", parted.dev.0), "partition"),
        (mounted.dev.0.clone(), "unmount it first"),
    ] {
        let out = run(&[
            "write",
            "--yes",
            "--force",
            img.to_str().unwrap(),
            &good.dev.0,
            &bad,
        ]);
        assert_eq!(out.status.code(), Some(3), "{bad}: {}", text(&out));
        assert!(
            text(&out).to_lowercase().contains(needle),
            "{bad}: {}",
            text(&out)
        );
    }
    assert_eq!(
        read_range(&good.file, 0, 1 << 20),
        before[0],
        "the good card was written"
    );
    assert_eq!(read_range(&small.file, 0, 1 << 20), before[1]);
    // Without --force a fixed disk is refused; without --yes and no terminal, nothing happens either.
    let out = run(&["write", "--yes", img.to_str().unwrap(), &good.dev.0]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let out = run(&["write", "--force", img.to_str().unwrap(), &good.dev.0]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert_eq!(read_range(&good.file, 0, 1 << 20), before[0]);
}

#[test]
fn a_card_failing_mid_write_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path());
    let good = card(dir.path(), "good", 96);
    // A "card" whose medium runs out: a 96 MiB sparse backing file on a 8 MiB tmpfs (ENOSPC mid-write).
    let tmpfs = tempfile::tempdir().unwrap();
    sh(&format!(
        "mount -t tmpfs -o size=8M tmpfs {}",
        tmpfs.path().display()
    ));
    let _umount = Unmount(tmpfs.path().to_path_buf());
    let backing = tmpfs.path().join("dying");
    sh(&format!("truncate -s 96M {}", backing.display()));
    let dying = Loop::attach(&backing);
    let out = run(&[
        "write",
        "--yes",
        "--force",
        img.to_str().unwrap(),
        &good.dev.0,
        &dying.0,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("1 of 2 devices failed"),
        "{}",
        text(&out)
    );
    drop(dying);
    assert_holds(&good, &img, &ranges(&img));
}
