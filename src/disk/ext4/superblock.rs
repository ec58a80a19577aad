//! The few ext4 superblock fields the planner needs: how much of the base's data partition is in use, so a
//! nearly empty partition is not counted as content (the plan would overestimate the image by its size).

/// The superblock's offset inside the filesystem, and its size.
pub const OFFSET: u64 = 1024;
pub const LEN: usize = 1024;

/// Bytes in use (allocated blocks, metadata included) of the ext2/3/4 filesystem whose superblock is `sb`;
/// `None` when it is not one.
pub fn used_bytes(sb: &[u8]) -> Option<u64> {
    if sb.len() < LEN || u16::from_le_bytes([sb[0x38], sb[0x39]]) != 0xEF53 {
        return None;
    }
    let u32_at = |o: usize| u64::from(u32::from_le_bytes([sb[o], sb[o + 1], sb[o + 2], sb[o + 3]]));
    let log = u32_at(0x18);
    if log > 6 {
        return None;
    }
    let block = 1024u64 << log;
    // The high halves exist only with the 64bit feature (INCOMPAT_64BIT, 0x80).
    let wide = u32_at(0x60) & 0x80 != 0;
    let hi = |o: usize| if wide { u32_at(o) << 32 } else { 0 };
    let blocks = u32_at(0x04) | hi(0x150);
    let free = u32_at(0x0C) | hi(0x158);
    blocks.checked_sub(free).map(|used| used * block)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against a real mke2fs and dumpe2fs: the used size is blocks minus free blocks.
    #[test]
    fn used_bytes_agree_with_dumpe2fs() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("fs.img");
        std::fs::File::create(&img)
            .unwrap()
            .set_len(32 << 20)
            .unwrap();
        let ok = std::process::Command::new("mke2fs")
            .args(["-q", "-F", "-t", "ext4"])
            .arg(&img)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mke2fs");
        let out = std::process::Command::new("dumpe2fs")
            .arg("-h")
            .arg(&img)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let field = |name: &str| -> u64 {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        };
        let expected = (field("Block count:") - field("Free blocks:")) * field("Block size:");
        let mut sb = vec![0u8; LEN];
        std::os::unix::fs::FileExt::read_exact_at(
            &std::fs::File::open(&img).unwrap(),
            &mut sb,
            OFFSET,
        )
        .unwrap();
        assert_eq!(used_bytes(&sb), Some(expected));
        assert_eq!(used_bytes(&[0u8; LEN]), None, "not ext4");
    }
}
