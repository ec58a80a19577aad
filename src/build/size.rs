//! Image size arithmetic (reference/upstream.md "Image size"), kept pure for unit tests.
//!
//! ```text
//! raw    = Σ oci filesize + Σ oci fullsize + Σ files expanded size
//! margin = 10 % of raw
//! min    = round_up_512( max(base image size, root_size + raw + margin) )
//! ```
//! The formula is the original's contract, but p3 is re-created by mke2fs, so on top of it we make sure the
//! data filesystem really holds the staged content (metadata, journal, 1 % reserve, 4 KiB block rounding).

pub const SECTOR: u64 = 512;
pub const BLOCK: u64 = 4096;
/// One inode per 64 KiB: Docker unpacks images into many small files under /data/docker.
pub const INODE_RATIO: u64 = 65536;

pub fn round_up(n: u64, to: u64) -> u64 {
    n.div_ceil(to) * to
}

/// The seed formula. `raw` is the sum of declared/learned content sizes.
pub fn formula_min(base_size: u64, root_size: u64, raw: u64) -> u64 {
    let margin = raw / 10;
    round_up(
        base_size.max(root_size.saturating_add(raw).saturating_add(margin)),
        SECTOR,
    )
}

/// `Some(n)` when `bytes` is exactly the nominal size of an "n GB" card (n·10⁹, or n GiB as people also
/// write it): many such cards hold less, so an image of that size may not fit them.
pub fn nominal_card_size(bytes: u64) -> Option<u64> {
    [2u64, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
        .into_iter()
        .find(|n| bytes == n * 1_000_000_000 || bytes == n << 30)
}

/// What the staged tree occupies in ext4 blocks and inodes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub bytes: u64,
    pub inodes: u64,
}

/// Smallest ext4 size (multiple of 4 KiB) holding `usage`, given a metadata estimator
/// (`disk::ext4::metadata_overhead`). Iterates because the overhead grows with the size.
pub fn ext4_min(usage: Usage, overhead: impl Fn(u64) -> u64) -> u64 {
    // Start from the content and grow until content + metadata + 1 % reserve fit, and inodes too.
    let mut size = round_up(usage.bytes.max(8 << 20), BLOCK);
    for _ in 0..64 {
        let need = usage.bytes + overhead(size) + size / 100;
        let inodes_ok = size / INODE_RATIO >= usage.inodes + 16;
        if need <= size && inodes_ok {
            return size;
        }
        let by_inodes = (usage.inodes + 16) * INODE_RATIO;
        size = round_up(need.max(by_inodes).max(size + BLOCK), BLOCK);
    }
    size
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nominal_card_sizes() {
        assert_eq!(nominal_card_size(64_000_000_000), Some(64));
        assert_eq!(nominal_card_size(32 << 30), Some(32));
        assert_eq!(nominal_card_size(60 << 30), None);
        assert_eq!(nominal_card_size(62_000_000_000), None);
    }

    #[test]
    fn formula_examples() {
        // Empty content: the base's own size wins.
        assert_eq!(formula_min(4320 << 20, 8323072 * 512, 0), 4320 << 20);
        // 1 GB of content on a 1.4.2 root: root + raw + 10 %, rounded to a sector.
        let root = 8323072 * 512;
        assert_eq!(
            formula_min(4320 << 20, root, 1_000_000_000),
            round_up(root + 1_100_000_000, 512)
        );
        assert_eq!(formula_min(0, 1, 1) % 512, 0);
    }

    #[test]
    fn ext4_min_fits_content_and_inodes() {
        let overhead = |size: u64| size / 50 + (4 << 20);
        let s = ext4_min(
            Usage {
                bytes: 100 << 20,
                inodes: 10,
            },
            overhead,
        );
        assert!(s >= (100 << 20) + overhead(s) + s / 100);
        assert_eq!(s % BLOCK, 0);
        // Many tiny files: inodes drive the size.
        let s = ext4_min(
            Usage {
                bytes: 1 << 20,
                inodes: 100_000,
            },
            overhead,
        );
        assert!(s / INODE_RATIO >= 100_000);
    }
}
