//! The capacity probe against in-memory cards (honest, wrapping, dropping, failing) and its offset choice.

use super::super::probe::positions;
use super::super::*;
use crate::{Classify, ErrorClass};
use std::collections::HashMap;
use std::io;
use std::path::Path;

const GB: u64 = 1_000_000_000;
const GIB: u64 = 1 << 30;

#[test]
fn probe_positions_are_spread_aligned_and_alias_on_power_of_two_wraps() {
    for (size, block) in [
        (256 * GB, 512u64),
        (31_914_983_424, 4096),
        (64 << 20, 512),
        (4096 * 3, 4096),
    ] {
        let p = positions(size, block);
        assert_eq!(p[0], 0);
        assert_eq!(
            *p.last().unwrap(),
            (size / block - 1) * block,
            "the last block is probed"
        );
        assert!(p.windows(2).all(|w| w[0] < w[1]));
        assert!(p.iter().all(|o| o % block == 0 && o + block <= size));
        assert!(p.len() <= 200, "{} positions", p.len());
        if size >= 64 << 20 {
            assert!(p.len() >= 64, "{} positions for {size}", p.len());
            let max_gap = p.windows(2).map(|w| w[1] - w[0]).max().unwrap();
            assert!(max_gap <= size / 64, "gap {max_gap} for {size}");
        }
    }
    // Every power-of-two wrap below the advertised size puts two probed offsets on one physical block.
    let p = positions(256 * GB, 512);
    for k in 20..38 {
        let n = 1u64 << k;
        let mut seen = std::collections::HashSet::new();
        assert!(
            p.iter().any(|o| !seen.insert(o % n)),
            "no alias for a wrap at 2^{k}"
        );
    }
}

/// An in-memory card: sparse blocks (memory stays tiny for "256 GB"), with a configurable lie.
/// Why in memory: the kernel here has no device-mapper, so a lying block device cannot be built for real.
struct FakeCard {
    blocks: HashMap<u64, Vec<u8>>,
    lie: Lie,
    syncs: usize,
}

enum Lie {
    Honest,
    /// Addresses are taken modulo the real size (how fake controllers alias).
    WrapsAt(u64),
    /// Writes past the real size vanish; reads there return zeros.
    DropsPast(u64),
    /// I/O errors past the real size.
    FailsPast(u64),
}

impl FakeCard {
    fn new(lie: Lie) -> Self {
        FakeCard {
            blocks: HashMap::new(),
            lie,
            syncs: 0,
        }
    }
    fn physical(&self, offset: u64) -> io::Result<Option<u64>> {
        match self.lie {
            Lie::Honest => Ok(Some(offset)),
            Lie::WrapsAt(n) => Ok(Some(offset % n)),
            Lie::DropsPast(n) => Ok((offset < n).then_some(offset)),
            Lie::FailsPast(n) if offset >= n => Err(io::Error::other("medium error")),
            Lie::FailsPast(_) => Ok(Some(offset)),
        }
    }
}

impl BlockIo for FakeCard {
    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        if let Some(p) = self.physical(offset)? {
            self.blocks.insert(p, buf.to_vec());
        }
        Ok(())
    }
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        match self.physical(offset)?.and_then(|p| self.blocks.get(&p)) {
            Some(b) => buf.copy_from_slice(b),
            None => buf.fill(0),
        }
        Ok(())
    }
    fn sync(&mut self) -> io::Result<()> {
        self.syncs += 1;
        Ok(())
    }
}

#[test]
fn probe_accepts_an_honest_card() {
    let mut c = FakeCard::new(Lie::Honest);
    probe_with(&mut c, Path::new("/dev/sdx"), 256 * GB, 512).unwrap();
    assert_eq!(c.syncs, 1, "sentinels are synced before reading back");
    assert!(c.blocks.len() >= 64);
}

#[test]
fn probe_catches_a_256_gb_card_that_holds_32_gib() {
    let mut c = FakeCard::new(Lie::WrapsAt(32 * GIB));
    let err = probe_with(&mut c, Path::new("/dev/sdx"), 256 * GB, 512).unwrap_err();
    match &err {
        DeviceError::Wrapped {
            wrap,
            size,
            written,
            read,
            ..
        } => {
            assert_eq!(*wrap, 32 * GIB);
            assert_eq!(*size, 256 * GB);
            assert_eq!(written - read, 32 * GIB);
        }
        other => panic!("expected Wrapped, got {other:?}"),
    }
    assert_eq!(err.class(), ErrorClass::Failure);
    let msg = err.to_string();
    assert!(
        msg.contains("/dev/sdx reports 256000000000 bytes") && msg.contains("34.4 GB"),
        "{msg}"
    );
}

#[test]
fn probe_catches_small_wraps_and_4k_cards() {
    let mut c = FakeCard::new(Lie::WrapsAt(4 << 20));
    let err = probe_with(&mut c, Path::new("/dev/sdx"), 64 << 20, 4096).unwrap_err();
    assert!(
        matches!(err, DeviceError::Wrapped { wrap, .. } if wrap == 4 << 20),
        "{err:?}"
    );
}

#[test]
fn probe_catches_cards_that_drop_or_fail_writes() {
    let mut c = FakeCard::new(Lie::DropsPast(10 * GB));
    let err = probe_with(&mut c, Path::new("/dev/sdx"), 64 * GB, 512).unwrap_err();
    assert!(
        matches!(err, DeviceError::Lost { offset, .. } if offset >= 10 * GB),
        "{err:?}"
    );

    let mut c = FakeCard::new(Lie::FailsPast(10 * GB));
    let err = probe_with(&mut c, Path::new("/dev/sdx"), 64 * GB, 512).unwrap_err();
    assert!(
        matches!(err, DeviceError::ProbeIo { offset, .. } if offset >= 10 * GB),
        "{err:?}"
    );
    assert!(err.to_string().starts_with("/dev/sdx: I/O error at offset"));
}

#[test]
fn probe_rejects_nonsense_geometry() {
    let mut c = FakeCard::new(Lie::Honest);
    assert!(matches!(
        probe_with(&mut c, Path::new("/dev/x"), 100, 512),
        Err(DeviceError::BadGeometry { .. })
    ));
    assert!(matches!(
        probe_with(&mut c, Path::new("/dev/x"), 1 << 20, 1000),
        Err(DeviceError::BadGeometry { .. })
    ));
}
