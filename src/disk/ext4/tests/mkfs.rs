//! mke2fs at an offset: what it touches, prompts, block devices, progress, errors.

use super::*;
use crate::progress::{Event, TaskKind};
use std::sync::{Arc, Mutex};

fn dumpe2fs_header(image: &Path, offset: u64) -> String {
    sh(&format!(
        "dumpe2fs -h '{}?offset={offset}' 2>/dev/null",
        image.display()
    ))
}

fn header_value(header: &str, key: &str) -> String {
    header
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("{key} missing in\n{header}"))
}

#[test]
fn bytes_outside_the_region_stay_untouched() {
    let t = tools();
    let dir = tmp();
    let img = dir.path().join("p.img");
    let head = pattern(MIB as usize, 1);
    let tail = pattern(MIB as usize, 3);
    let mut content = head.clone();
    // Old bytes where the filesystem goes: mke2fs must produce a clean fs over garbage.
    content.extend(pattern(64 * MIB as usize, 2));
    content.extend(&tail);
    std::fs::write(&img, &content).unwrap();
    drop(content);

    t.mkfs(
        &mkfs_plain(&img, MIB, 64 * MIB, None),
        &Progress::silent(),
        &CancellationToken::new(),
    )
    .unwrap();

    let after = std::fs::read(&img).unwrap();
    assert_eq!(after.len() as u64, 66 * MIB, "file length changed");
    assert!(
        after[..MIB as usize] == head[..],
        "bytes before the offset changed"
    );
    assert!(
        after[65 * MIB as usize..] == tail[..],
        "bytes after the fs changed"
    );
    t.fsck(&img, MIB).unwrap();
    let h = dumpe2fs_header(&img, MIB);
    assert_eq!(header_value(&h, "Filesystem volume name:"), "data");
    assert_eq!(header_value(&h, "Block size:"), "4096");
    assert_eq!(header_value(&h, "Inode size:"), "256");
    assert_eq!(header_value(&h, "Block count:"), "16384");
    assert_eq!(header_value(&h, "Inode count:"), "1024"); // 64 MiB / 65536
    assert_eq!(header_value(&h, "Reserved block count:"), "163"); // 1 %
    let features = header_value(&h, "Filesystem features:");
    for f in ["has_journal", "extent", "64bit", "metadata_csum", "flex_bg"] {
        assert!(features.contains(f), "{features}");
    }
    assert_eq!(t.owner(&img, MIB, "/").unwrap(), (0, 0));
}

#[test]
fn short_file_is_extended_to_exactly_offset_plus_size() {
    let t = tools();
    let dir = tmp();
    let img = dir.path().join("short.img");
    let head = pattern(MIB as usize, 5);
    std::fs::write(&img, &head).unwrap();
    t.mkfs(
        &mkfs_plain(&img, MIB, 16 * MIB, None),
        &Progress::silent(),
        &CancellationToken::new(),
    )
    .unwrap();
    assert_eq!(std::fs::metadata(&img).unwrap().len(), 17 * MIB);
    let after = std::fs::read(&img).unwrap();
    assert!(after[..MIB as usize] == head[..]);
    t.fsck(&img, MIB).unwrap();
}

#[test]
fn existing_partition_table_and_filesystem_do_not_prompt() {
    let t = tools();
    let dir = tmp();
    let img = dir.path().join("disk.img");
    sh(&format!(
        "truncate -s 80M '{0}' && printf 'label: dos\\nstart=2048,size=20480,type=c\\nstart=22528,type=83\\n' | sfdisk -q '{0}'",
        img.display()
    ));
    let table = sh(&format!("sfdisk -d '{}'", img.display()));
    let mbr = std::fs::read(&img).unwrap()[..512].to_vec();
    let offset = 22528 * 512;
    let size = (80 * MIB - offset) / 4096 * 4096;
    // Second run: the region already holds an ext4; mke2fs would ask "Proceed anyway?" on a terminal.
    for _ in 0..2 {
        t.mkfs(
            &mkfs_plain(&img, offset, size, None),
            &Progress::silent(),
            &CancellationToken::new(),
        )
        .unwrap();
    }
    assert_eq!(sh(&format!("sfdisk -d '{}'", img.display())), table);
    assert_eq!(std::fs::read(&img).unwrap()[..512], mbr[..]);
    assert_eq!(std::fs::metadata(&img).unwrap().len(), 80 * MIB);
    t.fsck(&img, offset).unwrap();
}

#[test]
fn block_device_target() {
    let t = tools();
    let dir = tmp();
    let img = dir.path().join("dev.img");
    let head = pattern(MIB as usize, 7);
    let mut content = head.clone();
    content.resize(70 * MIB as usize, 0);
    std::fs::write(&img, &content).unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("hello.txt"), b"hello block device\n").unwrap();
    {
        let dev = Loop::attach(&img);
        let m = Mkfs {
            source_bytes: 19,
            ..mkfs_plain(dev.path(), MIB, 64 * MIB, Some(&src))
        };
        t.mkfs(&m, &Progress::silent(), &CancellationToken::new())
            .unwrap();
        t.fsck(dev.path(), MIB).unwrap();
        assert_eq!(
            t.cat(dev.path(), MIB, "/hello.txt").unwrap(),
            b"hello block device\n"
        );

        // Larger than the device: refused before anything is written.
        let too_big = mkfs_plain(dev.path(), MIB, 70 * MIB, None);
        let err = t
            .mkfs(&too_big, &Progress::silent(), &CancellationToken::new())
            .unwrap_err();
        assert!(matches!(err, Ext4Error::DoesNotFit { .. }), "{err}");
        assert_eq!(err.class(), ErrorClass::BadInput);
    }
    // Through the backing file, after detaching: same filesystem, prefix intact, same length.
    t.fsck(&img, MIB).unwrap();
    assert_eq!(
        t.cat(&img, MIB, "/hello.txt").unwrap(),
        b"hello block device\n"
    );
    let after = std::fs::read(&img).unwrap();
    assert_eq!(after.len() as u64, 70 * MIB);
    assert!(after[..MIB as usize] == head[..]);
}

#[test]
fn progress_reports_source_bytes() {
    let t = tools();
    let dir = tmp();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let mut total = 0;
    for i in 0..3u8 {
        let data = pattern(8 * MIB as usize + usize::from(i), i);
        total += data.len() as u64;
        std::fs::write(src.join(format!("f{i}")), data).unwrap();
    }
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let progress = Progress::new(move |e| sink.lock().unwrap().push(e.clone()));
    let img = dir.path().join("p.img");
    let m = Mkfs {
        source_bytes: total,
        ..mkfs_plain(&img, 0, 64 * MIB, Some(&src))
    };
    t.mkfs(&m, &progress, &CancellationToken::new()).unwrap();
    let events = events.lock().unwrap();
    assert!(matches!(
        events.first(),
        Some(Event::TaskStarted { kind: TaskKind::Mke2fs, total: Some(n), .. }) if *n == total
    ));
    let dones: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            Event::TaskProgress { done, .. } => Some(*done),
            _ => None,
        })
        .collect();
    assert!(dones.windows(2).all(|w| w[0] <= w[1]), "{dones:?}");
    assert_eq!(dones.last(), Some(&total));
    assert!(matches!(
        events.last(),
        Some(Event::TaskFinished { ok: true, .. })
    ));
    assert_eq!(
        t.cat(&img, 0, "/f2").unwrap(),
        pattern(8 * MIB as usize + 2, 2)
    );
}

#[test]
fn failure_keeps_command_line_and_stderr() {
    let t = tools();
    let dir = tmp();
    let img = dir.path().join("missing-dir").join("x.img");
    let err = t
        .mkfs(
            &mkfs_plain(&img, MIB, 16 * MIB, None),
            &Progress::silent(),
            &CancellationToken::new(),
        )
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Ext4Error::Failed { .. }), "{msg}");
    assert_eq!(err.class(), ErrorClass::Failure);
    assert!(msg.contains("mke2fs -t ext4 -F"), "{msg}");
    assert!(msg.contains("offset=1048576,nodiscard"), "{msg}");
    assert!(msg.contains("No such file or directory"), "{msg}");
}

#[test]
fn invalid_parameters_are_bad_input() {
    let t = tools();
    let dir = tmp();
    let img = dir.path().join("x.img");
    let base = mkfs_plain(&img, MIB, 16 * MIB, None);
    let cases = [
        Mkfs {
            size: 16 * MIB + 512,
            ..base.clone()
        },
        Mkfs {
            size: 0,
            ..base.clone()
        },
        Mkfs {
            offset: 100,
            ..base.clone()
        },
        Mkfs {
            label: "a-label-of-17-byt",
            ..base.clone()
        },
        Mkfs {
            inode_ratio: 1024,
            ..base.clone()
        },
        Mkfs {
            reserved_pct: 51,
            ..base.clone()
        },
    ];
    for m in &cases {
        let err = t
            .mkfs(m, &Progress::silent(), &CancellationToken::new())
            .unwrap_err();
        assert_eq!(err.class(), ErrorClass::BadInput, "{err}");
    }
    assert!(
        !img.exists(),
        "nothing may be written for invalid parameters"
    );
}

#[test]
fn image_path_with_question_mark() {
    let t = tools();
    let dir = tmp();
    let sub = dir.path().join("what?now");
    std::fs::create_dir(&sub).unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), b"q").unwrap();
    let img = sub.join("a?b.img");
    t.mkfs(
        &mkfs_plain(&img, 4096, 16 * MIB, Some(&src)),
        &Progress::silent(),
        &CancellationToken::new(),
    )
    .unwrap();
    t.fsck(&img, 4096).unwrap();
    assert_eq!(t.cat(&img, 4096, "/f").unwrap(), b"q");
    assert_eq!(t.owner(&img, 4096, "/f").unwrap(), (0, 0));
}

#[test]
fn fsck_reports_a_damaged_filesystem() {
    let t = tools();
    let dir = tmp();
    let img = dir.path().join("bad.img");
    t.mkfs(
        &mkfs_plain(&img, MIB, 16 * MIB, None),
        &Progress::silent(),
        &CancellationToken::new(),
    )
    .unwrap();
    // Zero the block bitmaps and inode tables region of group 0 (after the superblock and GDT).
    sh(&format!(
        "dd if=/dev/zero of='{}' bs=4096 seek=$((256 + 2)) count=300 conv=notrunc status=none",
        img.display()
    ));
    let err = t.fsck(&img, MIB).unwrap_err();
    assert!(
        matches!(err, Ext4Error::FsckFailed { offset, .. } if offset == MIB),
        "{err}"
    );
}
