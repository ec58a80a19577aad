//! How much of a new ext4 its own metadata takes, so the planner can check that content fits.
//!
//! Mirrors what libext2fs (`ext2fs_initialize`, `calc_reserved_gdt_blocks`,
//! `ext2fs_default_journal_size`) does for the filesystems [`super::Tools::mkfs`] creates: 4 KiB
//! blocks, 256-byte inodes, 32768 blocks per group, 64-byte group descriptors (64bit), sparse_super,
//! resize_inode, flex_bg and a journal. With N = size / 4096 blocks:
//!
//! 1. inodes = N·4096 / ratio (fixed once, from the requested size);
//! 2. G = ⌈N / 32768⌉ groups; inodes per group ⌈inodes / G⌉, rounded up to fill whole inode-table
//!    blocks (16 inodes per block) → `itb` inode-table blocks per group;
//! 3. `desc` = ⌈G·64 / 4096⌉ descriptor blocks; `rsv` reserved GDT blocks = enough descriptors for
//!    min(1024·N, 2³²−1) blocks, minus `desc`, at most 1024;
//! 4. a last group of `rem` blocks smaller than 50 + its own metadata (2 + itb, plus 1 + desc + rsv if
//!    it holds a superblock backup) is dropped from the fs; then recompute from 2;
//! 5. used = B·(1 + desc + rsv) + G·(2 + itb) + journal + 1 (resize inode) + 1 (root dir) + 4
//!    (lost+found), where B is the number of groups holding a superblock backup (0, 1 and powers of
//!    3, 5, 7) and journal = 1024 blocks below 32768 blocks, 4096 below 256 Ki, 8192 below 512 Ki,
//!    16384 below 4 Mi, 32768 below 8 Mi, 65536 below 16 Mi, 131072 below 32 Mi, else 262144 — plus
//!    one extent-tree block when the journal needs more than 4 extents of 32768 blocks.
//!
//! overhead = size − 4096·(N_after_step_4 − used) = bytes of `size` not free right after mkfs,
//! i.e. size − 4096 × "Free blocks" of dumpe2fs. Free blocks include the `-m` reserve (which only
//! root may use) and each file then costs whole 4 KiB blocks plus its directory entry and, for large
//! or fragmented files, extent blocks. Checked against real mke2fs from 8 MiB to 4 TiB at ratios
//! 16 KiB, 64 KiB and 1 MiB (tests: 64 MiB, 1 GiB, 16 GiB and two last-group edge cases).

const BLOCK: u64 = super::BLOCK_SIZE;
const BLOCKS_PER_GROUP: u64 = 8 * BLOCK;
const INODES_PER_BLOCK: u64 = BLOCK / super::INODE_SIZE;
const DESC_PER_BLOCK: u64 = BLOCK / 64;

/// Bytes of a new ext4 of `fs_size` bytes with one inode per `inode_ratio` bytes that are not
/// free after mkfs (see the module documentation for the formula). Returns `fs_size` for a size
/// too small to hold an ext4 at all.
pub fn metadata_overhead(fs_size: u64, inode_ratio: u64) -> u64 {
    let requested = fs_size / BLOCK;
    let inodes = requested * BLOCK / inode_ratio.max(1);
    let mut n = requested;
    loop {
        if n == 0 {
            return fs_size;
        }
        let groups = n.div_ceil(BLOCKS_PER_GROUP);
        let per_group = inodes.div_ceil(groups).max(INODES_PER_BLOCK);
        let itb = per_group.div_ceil(INODES_PER_BLOCK);
        let desc = groups.div_ceil(DESC_PER_BLOCK);
        let max_blocks = if n < u64::from(u32::MAX) / 1024 {
            n * 1024
        } else {
            u64::from(u32::MAX)
        };
        let rsv = (max_blocks
            .div_ceil(BLOCKS_PER_GROUP)
            .div_ceil(DESC_PER_BLOCK))
        .saturating_sub(desc)
        .min(BLOCK / 4);
        let backup_meta = 1 + desc + rsv;
        let rem = n % BLOCKS_PER_GROUP;
        let mut last_meta = 2 + itb;
        if has_backup(groups - 1) {
            last_meta += backup_meta;
        }
        if rem != 0 && rem < last_meta + 50 {
            if groups == 1 {
                return fs_size;
            }
            n -= rem;
            continue;
        }
        let backups = (0..groups).filter(|&g| has_backup(g)).count() as u64;
        let journal = journal_blocks(n);
        let journal_tree = u64::from(journal > 4 * 32768);
        let used = backups * backup_meta + groups * (2 + itb) + journal + journal_tree + 1 + 1 + 4;
        let free = n.saturating_sub(used);
        return fs_size - free * BLOCK;
    }
}

/// Groups 0, 1 and powers of 3, 5 and 7 hold a superblock backup (sparse_super).
fn has_backup(group: u64) -> bool {
    if group <= 1 {
        return true;
    }
    [3u64, 5, 7].iter().any(|&base| {
        let mut p = base;
        while p < group {
            p *= base;
        }
        p == group
    })
}

fn journal_blocks(blocks: u64) -> u64 {
    const TABLE: [(u64, u64); 7] = [
        (32 * 1024, 1024),
        (256 * 1024, 4096),
        (512 * 1024, 8192),
        (4096 * 1024, 16384),
        (8192 * 1024, 32768),
        (16384 * 1024, 65536),
        (32768 * 1024, 131072),
    ];
    if blocks < 2048 {
        return 0;
    }
    TABLE
        .iter()
        .find(|(limit, _)| blocks < *limit)
        .map_or(262144, |(_, j)| *j)
}
