//! `metadata_overhead` against real mke2fs: size − 4096 × free blocks right after mkfs.

use super::*;

fn real_overhead(t: &Tools, size: u64, ratio: u64) -> u64 {
    let dir = tmp();
    let img = dir.path().join("o.img");
    let offset = 8 * MIB;
    let m = Mkfs {
        inode_ratio: ratio,
        ..mkfs_plain(&img, offset, size, None)
    };
    t.mkfs(&m, &Progress::silent(), &CancellationToken::new())
        .unwrap();
    let header = sh(&format!(
        "dumpe2fs -h '{}?offset={offset}' 2>/dev/null",
        img.display()
    ));
    let free: u64 = header
        .lines()
        .find_map(|l| l.strip_prefix("Free blocks:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no free blocks in\n{header}"));
    size - free * 4096
}

fn check(sizes: &[u64]) {
    let t = tools();
    for &size in sizes {
        for ratio in [16384, 65536, MIB] {
            assert_eq!(
                metadata_overhead(size, ratio),
                real_overhead(&t, size, ratio),
                "size {size} ratio {ratio}"
            );
        }
    }
}

#[test]
fn overhead_matches_mke2fs_64m() {
    check(&[64 * MIB]);
}

#[test]
fn overhead_matches_mke2fs_1g() {
    check(&[1 << 30]);
}

#[test]
fn overhead_matches_mke2fs_16g() {
    check(&[16 << 30]);
}

/// A last group too small for its own metadata is dropped by mke2fs: those blocks are overhead too.
#[test]
fn overhead_matches_mke2fs_when_last_group_is_dropped() {
    // 100 blocks over one group: dropped (16 KiB ratio) or kept (1 MiB ratio, small inode tables).
    // 60 / 59 blocks over 64 groups at 1 MiB per inode: kept exactly at the limit, then dropped.
    check(&[
        128 * MIB + 100 * 4096,
        (2 << 30) + 60 * 4096,
        (2 << 30) + 59 * 4096,
    ]);
}

#[test]
fn overhead_shape() {
    // Dropped tail blocks count as overhead: one block more of requested size adds one block.
    let base = metadata_overhead(2 << 30, MIB);
    assert_eq!(metadata_overhead((2 << 30) + 4096, MIB), base + 4096);
    // Denser inodes cost more; nothing usable in a size too small for an ext4.
    assert!(metadata_overhead(1 << 30, 16384) > metadata_overhead(1 << 30, 65536));
    assert_eq!(metadata_overhead(4096, 65536), 4096);
    assert!(metadata_overhead(64 * MIB, 65536) < 64 * MIB);
}
