//! The base image's MBR: read its three-partition layout, and rewrite only the size of entry 3.
//!
//! Parsing is done by hand on the 512-byte sector rather than through `mbrman`: the checks we need
//! (exactly three primary entries, no extended, no GPT protective entry, ordering) are a few lines on
//! the raw entries, and `mbrman` would also chase extended partitions through a reader we do not have
//! (the base may be a stream being decompressed).

use super::{DiskError, SECTOR};

const SIGNATURE_OFFSET: usize = 510;
const TABLE_OFFSET: usize = 446;
const ENTRY_LEN: usize = 16;
/// Entry 3 lives at bytes 478..494 of the sector.
const P3_OFFSET: usize = TABLE_OFFSET + 2 * ENTRY_LEN;
const GPT_PROTECTIVE: u8 = 0xee;
const EXTENDED_TYPES: [u8; 3] = [0x05, 0x0f, 0x85];
/// Geometry every partitioning tool uses for disks larger than a few hundred MiB.
const DEFAULT_GEOMETRY: Geometry = Geometry {
    heads: 255,
    sectors: 63,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    /// First sector (512 bytes).
    pub start: u64,
    /// Length in sectors.
    pub sectors: u64,
    /// MBR partition type byte (p3 may be 0x07 in old bases although it holds ext4).
    pub kind: u8,
}

impl Partition {
    /// First sector after the partition.
    pub fn end(&self) -> u64 {
        self.start + self.sectors
    }
    pub fn offset_bytes(&self) -> u64 {
        self.start * SECTOR
    }
    pub fn len_bytes(&self) -> u64 {
        self.sectors * SECTOR
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseLayout {
    /// Disk signature (MBR bytes 440..444): the `PARTUUID=<id>-0N` prefix used by fstab and cmdline.txt.
    pub disk_id: u32,
    pub parts: [Partition; 3],
}

impl BaseLayout {
    /// From the first 512 bytes of the (decoded) base image. Requires the 0x55AA signature, exactly
    /// three primary partitions (4th empty), no extended, in order, p3 last. `image_len` (if known)
    /// must cover p3's end.
    pub fn parse(sector0: &[u8], image_len: Option<u64>) -> Result<BaseLayout, DiskError> {
        let bad = |reason: String| DiskError::BadBase { reason };
        if sector0.len() < SECTOR as usize {
            return Err(bad(format!(
                "truncated: {} bytes, an MBR needs 512",
                sector0.len()
            )));
        }
        if sector0[SIGNATURE_OFFSET..SIGNATURE_OFFSET + 2] != [0x55, 0xaa] {
            return Err(bad(
                "no MBR partition table (missing 0x55AA signature)".into()
            ));
        }
        let entries: Vec<RawEntry> = (0..4).map(|i| RawEntry::read(sector0, i)).collect();
        if entries.iter().any(|e| e.kind == GPT_PROTECTIVE) {
            return Err(bad(
                "GPT partition table (protective MBR); Offspot bases use an MBR (dos) label".into(),
            ));
        }
        if let Some((i, _)) = entries
            .iter()
            .enumerate()
            .find(|(_, e)| EXTENDED_TYPES.contains(&e.kind))
        {
            return Err(bad(format!(
                "partition {} is an extended partition; expected three primary partitions",
                i + 1
            )));
        }
        let used: Vec<bool> = entries.iter().map(RawEntry::is_used).collect();
        if used != [true, true, true, false] {
            let count = used.iter().filter(|u| **u).count();
            return Err(bad(format!(
                "expected exactly three primary partitions in entries 1-3, found {count} used entr{} ({})",
                if count == 1 { "y" } else { "ies" },
                used.iter()
                    .enumerate()
                    .filter(|(_, u)| **u)
                    .map(|(i, _)| (i + 1).to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let parts = [entries[0].part(), entries[1].part(), entries[2].part()];
        if parts[0].start == 0 {
            return Err(bad("partition 1 starts at sector 0".into()));
        }
        for i in 0..2 {
            if parts[i].end() > parts[i + 1].start {
                return Err(bad(format!(
                    "partitions out of order or overlapping: partition {} ends at sector {}, partition {} starts at {}",
                    i + 1,
                    parts[i].end(),
                    i + 2,
                    parts[i + 1].start
                )));
            }
        }
        if let Some(len) = image_len {
            let needed = parts[2].end() * SECTOR;
            if len < needed {
                return Err(bad(format!(
                    "truncated: partition 3 ends at byte {needed} but the image has {len} bytes"
                )));
            }
        }
        let disk_id = u32::from_le_bytes([sector0[440], sector0[441], sector0[442], sector0[443]]);
        Ok(BaseLayout { disk_id, parts })
    }

    /// p3 start in bytes.
    pub fn data_offset(&self) -> u64 {
        self.parts[2].offset_bytes()
    }

    /// Bytes before the data partition (MBR, gap, p1, p2): what is copied verbatim from the base.
    pub fn root_size(&self) -> u64 {
        self.data_offset()
    }

    /// Partition alignment in bytes, derived from p1's start (the tools that made the bases put p1 at
    /// one alignment unit): 8 MiB for 1.4.x (sector 16384), 4 MiB before (sector 8192). Uses the
    /// largest power of two dividing p1's offset so an odd start never yields an odd alignment.
    pub fn alignment(&self) -> u64 {
        let bytes = self.parts[0].offset_bytes();
        1u64 << bytes.trailing_zeros()
    }
}

/// Patch a 512-byte MBR: set entry 3's size (sectors) and its CHS end; every other byte stays identical.
///
/// The patch is written by hand instead of through `mbrman`: mbrman re-serialises the whole sector
/// (bootstrap code, every entry's CHS recomputed from its own geometry guess), which could change
/// bytes of entries 1-2 that the device's first-boot script and the PARTUUIDs rely on. Only bytes
/// 483..486 (CHS end) and 490..494 (sector count) of entry 3 may change.
pub fn with_p3_size(sector0: &[u8; 512], p3_sectors: u64) -> Result<[u8; 512], DiskError> {
    // Validate the whole table first: patching something that is not an Offspot base would be wrong.
    let layout = BaseLayout::parse(sector0, None)?;
    let start = layout.parts[2].start;
    let end_lba = start + p3_sectors;
    if p3_sectors == 0 || end_lba > u64::from(u32::MAX) + 1 {
        return Err(DiskError::TooLarge {
            start,
            sectors: p3_sectors,
        });
    }
    let sectors = u32::try_from(p3_sectors).map_err(|_| DiskError::TooLarge {
        start,
        sectors: p3_sectors,
    })?;
    let mut out = *sector0;
    let entries: Vec<RawEntry> = (0..3).map(|i| RawEntry::read(sector0, i)).collect();
    let chs_end = match chs_style(&entries) {
        ChsStyle::Zero => [0, 0, 0],
        ChsStyle::Geometry(g) => g.encode(end_lba - 1),
    };
    out[P3_OFFSET + 5..P3_OFFSET + 8].copy_from_slice(&chs_end);
    out[P3_OFFSET + 12..P3_OFFSET + 16].copy_from_slice(&sectors.to_le_bytes());
    Ok(out)
}

#[derive(Debug, Clone, Copy)]
struct RawEntry {
    chs_start: [u8; 3],
    kind: u8,
    chs_end: [u8; 3],
    lba: u32,
    sectors: u32,
}

impl RawEntry {
    fn read(sector0: &[u8], index: usize) -> RawEntry {
        let e = &sector0[TABLE_OFFSET + index * ENTRY_LEN..TABLE_OFFSET + (index + 1) * ENTRY_LEN];
        RawEntry {
            chs_start: [e[1], e[2], e[3]],
            kind: e[4],
            chs_end: [e[5], e[6], e[7]],
            lba: u32::from_le_bytes([e[8], e[9], e[10], e[11]]),
            sectors: u32::from_le_bytes([e[12], e[13], e[14], e[15]]),
        }
    }
    fn is_used(&self) -> bool {
        self.kind != 0 && self.sectors != 0
    }
    fn part(&self) -> Partition {
        Partition {
            start: u64::from(self.lba),
            sectors: u64::from(self.sectors),
            kind: self.kind,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Geometry {
    heads: u32,
    sectors: u32,
}

impl Geometry {
    /// CHS bytes (head, sector | cylinder high bits, cylinder low) of `lba`; beyond cylinder 1023 the
    /// maximum value, as sfdisk writes it (0xFE 0xFF 0xFF with 255 heads / 63 sectors).
    fn encode(self, lba: u64) -> [u8; 3] {
        let per_cyl = u64::from(self.heads * self.sectors);
        let cyl = lba / per_cyl;
        let (cyl, head, sector) = if cyl > 1023 {
            (1023, self.heads - 1, self.sectors)
        } else {
            let rem = lba % per_cyl;
            (
                cyl as u32,
                (rem / u64::from(self.sectors)) as u32,
                (rem % u64::from(self.sectors)) as u32 + 1,
            )
        };
        [
            head as u8,
            (sector as u8 & 0x3f) | (((cyl >> 8) as u8 & 0x03) << 6),
            cyl as u8,
        ]
    }
}

enum ChsStyle {
    /// The tool that made the base left CHS fields zero: keep doing so.
    Zero,
    Geometry(Geometry),
}

/// Which CHS convention the base's entries follow, so the new end value looks like the tool wrote it.
/// Tries 255/63 first, then any geometry that reproduces every existing CHS value; falls back to 255/63.
fn chs_style(entries: &[RawEntry]) -> ChsStyle {
    if entries
        .iter()
        .all(|e| e.chs_start == [0; 3] && e.chs_end == [0; 3])
    {
        return ChsStyle::Zero;
    }
    let fits = |g: Geometry| {
        entries.iter().all(|e| {
            let end = u64::from(e.lba) + u64::from(e.sectors).saturating_sub(1);
            g.encode(u64::from(e.lba)) == e.chs_start && g.encode(end) == e.chs_end
        })
    };
    if fits(DEFAULT_GEOMETRY) {
        return ChsStyle::Geometry(DEFAULT_GEOMETRY);
    }
    for heads in 1..=255 {
        for sectors in 1..=63 {
            let g = Geometry { heads, sectors };
            if fits(g) {
                return ChsStyle::Geometry(g);
            }
        }
    }
    ChsStyle::Geometry(DEFAULT_GEOMETRY)
}

/// Builds a fresh MBR sector (no boot code) for `parts`; used by the demo generator. CHS values use
/// 255 heads / 63 sectors like sfdisk.
pub(crate) fn build_mbr(disk_id: u32, parts: &[Partition]) -> Result<[u8; 512], DiskError> {
    let mut out = [0u8; 512];
    out[440..444].copy_from_slice(&disk_id.to_le_bytes());
    for (i, p) in parts.iter().enumerate().take(4) {
        let (lba, sectors) = match (u32::try_from(p.start), u32::try_from(p.sectors)) {
            (Ok(l), Ok(s)) if p.end() <= u64::from(u32::MAX) + 1 => (l, s),
            _ => {
                return Err(DiskError::TooLarge {
                    start: p.start,
                    sectors: p.sectors,
                })
            }
        };
        let e = &mut out[TABLE_OFFSET + i * ENTRY_LEN..TABLE_OFFSET + (i + 1) * ENTRY_LEN];
        e[1..4].copy_from_slice(&DEFAULT_GEOMETRY.encode(p.start));
        e[4] = p.kind;
        e[5..8].copy_from_slice(&DEFAULT_GEOMETRY.encode(p.end().saturating_sub(1)));
        e[8..12].copy_from_slice(&lba.to_le_bytes());
        e[12..16].copy_from_slice(&sectors.to_le_bytes());
    }
    out[SIGNATURE_OFFSET] = 0x55;
    out[SIGNATURE_OFFSET + 1] = 0xaa;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::process::{Command, Stdio};

    /// Runs sfdisk with `script` on a sparse file of `size` and returns (file, sector 0).
    fn sfdisk_image(size: u64, script: &str) -> (tempfile::NamedTempFile, [u8; 512]) {
        let img = tempfile::NamedTempFile::new().unwrap();
        img.as_file().set_len(size).unwrap();
        sfdisk(img.path(), &[], script);
        let s0 = read_sector0(img.path());
        (img, s0)
    }

    fn sfdisk(path: &std::path::Path, args: &[&str], script: &str) {
        let mut child = Command::new("sfdisk")
            .arg("-q")
            .args(args)
            .arg(path)
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success());
    }

    const MIB: u64 = 1 << 20;
    const LAYOUT_142: &str =
        "label: dos\nlabel-id: 0x0ff5e7ed\nstart=16384, size=1048576, type=c\n\
        start=1064960, size=7258112, type=83\nstart=8323072, size=524288, type=83\n";

    fn read_sector0(path: &std::path::Path) -> [u8; 512] {
        use std::io::Read;
        let mut out = [0u8; 512];
        std::fs::File::open(path)
            .unwrap()
            .read_exact(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn parses_sfdisk_layout_of_1_4_2() {
        let (_img, s0) = sfdisk_image(4320 * MIB, LAYOUT_142);
        let l = BaseLayout::parse(&s0, Some(4320 * MIB)).unwrap();
        assert_eq!(l.disk_id, 0x0ff5e7ed);
        assert_eq!(
            l.parts,
            [
                Partition {
                    start: 16384,
                    sectors: 1048576,
                    kind: 0x0c
                },
                Partition {
                    start: 1064960,
                    sectors: 7258112,
                    kind: 0x83
                },
                Partition {
                    start: 8323072,
                    sectors: 524288,
                    kind: 0x83
                },
            ]
        );
        assert_eq!(l.data_offset(), 8323072 * 512);
        assert_eq!(l.root_size(), l.data_offset());
        assert_eq!(l.alignment(), 8 * MIB);
        // The image must cover p3's end.
        let err = BaseLayout::parse(&s0, Some(4320 * MIB - 512)).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
    }

    #[test]
    fn old_layout_has_4_mib_alignment_and_type_07() {
        let script = "label: dos\nlabel-id: 0x12345678\nstart=8192, size=1048576, type=c\n\
            start=1056768, size=5201920, type=83\nstart=6258688, size=524288, type=7\n";
        let (_img, s0) = sfdisk_image(3312 * MIB, script);
        let l = BaseLayout::parse(&s0, None).unwrap();
        assert_eq!(l.alignment(), 4 * MIB);
        assert_eq!(l.parts[2].kind, 0x07);
        assert_eq!(l.disk_id, 0x12345678);
    }

    /// Growing p3 must give exactly the sector sfdisk writes for the same change, and differ from
    /// the original only in entry 3 — both inside the CHS range and beyond it (max CHS).
    #[test]
    fn p3_patch_matches_sfdisk_and_touches_only_entry_3() {
        for new_size in [5000 * MIB, 40 * 1024 * MIB] {
            let (img, s0) = sfdisk_image(4320 * MIB, LAYOUT_142);
            img.as_file().set_len(new_size).unwrap();
            sfdisk(img.path(), &["-N", "3"], ", +\n");
            let expected = read_sector0(img.path());
            let p3_sectors = new_size / 512 - 8323072;
            let patched = with_p3_size(&s0, p3_sectors).unwrap();
            assert_eq!(patched, expected, "size {new_size}");
            let changed: Vec<usize> = (0..512).filter(|&i| patched[i] != s0[i]).collect();
            assert!(!changed.is_empty());
            assert!(
                changed.iter().all(|i| (478..494).contains(i)),
                "{changed:?}"
            );
            assert_eq!(
                BaseLayout::parse(&patched, Some(new_size)).unwrap().parts[2].sectors,
                p3_sectors
            );
        }
    }

    #[test]
    fn p3_patch_keeps_zero_chs_and_refuses_2_tib() {
        let (_img, mut s0) = sfdisk_image(4320 * MIB, LAYOUT_142);
        for i in 0..3 {
            let e = TABLE_OFFSET + i * ENTRY_LEN;
            s0[e + 1..e + 4].fill(0);
            s0[e + 5..e + 8].fill(0);
        }
        let patched = with_p3_size(&s0, 1_000_000).unwrap();
        assert_eq!(patched[P3_OFFSET + 5..P3_OFFSET + 8], [0, 0, 0]);
        let too_big = (1u64 << 32) - 8323072 + 1;
        assert!(matches!(
            with_p3_size(&s0, too_big),
            Err(DiskError::TooLarge { .. })
        ));
        assert!(with_p3_size(&s0, too_big - 1).is_ok());
    }

    #[test]
    fn build_mbr_matches_sfdisk() {
        let script = "label: dos\nlabel-id: 0x0ff5e7ed\nstart=16384, size=81920, type=c\n\
            start=98304, size=32768, type=83\nstart=131072, size=32768, type=83\n";
        let (_img, expected) = sfdisk_image(80 * MIB, script);
        let parts = [
            Partition {
                start: 16384,
                sectors: 81920,
                kind: 0x0c,
            },
            Partition {
                start: 98304,
                sectors: 32768,
                kind: 0x83,
            },
            Partition {
                start: 131072,
                sectors: 32768,
                kind: 0x83,
            },
        ];
        assert_eq!(build_mbr(0x0ff5e7ed, &parts).unwrap(), expected);
    }

    #[test]
    fn rejects_what_is_not_a_three_partition_mbr() {
        let (_img, good) = sfdisk_image(4320 * MIB, LAYOUT_142);
        let reason = |r: Result<BaseLayout, DiskError>| match r {
            Err(e @ DiskError::BadBase { .. }) => {
                assert_eq!(crate::Classify::class(&e), crate::ErrorClass::BadInput);
                e.to_string()
            }
            other => panic!("expected BadBase, got {other:?}"),
        };
        assert!(reason(BaseLayout::parse(&good[..300], None)).contains("truncated"));
        let mut nosig = good;
        nosig[511] = 0;
        assert!(reason(BaseLayout::parse(&nosig, None)).contains("0x55AA"));

        let (_g, gpt) = sfdisk_image(64 * MIB, "label: gpt\nstart=2048, size=4096\n");
        assert!(reason(BaseLayout::parse(&gpt, None)).contains("GPT"));

        let four = "label: dos\nstart=2048, size=2048, type=c\nstart=4096, size=2048\n\
            start=6144, size=2048\nstart=8192, size=2048\n";
        let (_f, four) = sfdisk_image(64 * MIB, four);
        assert!(reason(BaseLayout::parse(&four, None)).contains("found 4"));

        let two = "label: dos\nstart=2048, size=2048, type=c\nstart=4096, size=2048\n";
        let (_t, two) = sfdisk_image(64 * MIB, two);
        assert!(reason(BaseLayout::parse(&two, None)).contains("found 2"));

        let ext = "label: dos\nstart=2048, size=2048, type=c\nstart=4096, size=2048\n\
            start=6144, size=8192, type=5\n";
        let (_e, ext) = sfdisk_image(64 * MIB, ext);
        assert!(reason(BaseLayout::parse(&ext, None)).contains("extended"));

        let unordered = "label: dos\nstart=6144, size=2048, type=c\nstart=4096, size=2048\n\
            start=8192, size=2048\n";
        let (_u, unordered) = sfdisk_image(64 * MIB, unordered);
        assert!(reason(BaseLayout::parse(&unordered, None)).contains("out of order"));
    }
}
