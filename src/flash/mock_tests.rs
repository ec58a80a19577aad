//! The job over a mock target that asserts every I/O is aligned and records the bytes.

use std::io::{self, Write};
use std::sync::Mutex;

use super::medium::Medium;
use super::{mapped_ranges, writer, FlashError, Image, Options};
use crate::progress::{Event, Phase, Progress};
use crate::CancellationToken;

const OLD: u8 = 0xAA;

struct Mock {
    block: u64,
    data: Vec<u8>,
    size: Option<u64>,
    writes: usize,
    fail_write_at: Option<u64>,
    corrupt_after_sync: Option<u64>,
    discards: Vec<(u64, u64)>,
}

impl Mock {
    fn new(block: u64, capacity: usize) -> Mock {
        Mock {
            block,
            data: vec![OLD; capacity],
            size: None,
            writes: 0,
            fail_write_at: None,
            corrupt_after_sync: None,
            discards: vec![],
        }
    }

    fn check(&self, ptr: *const u8, len: usize, offset: u64) {
        assert!(len > 0, "empty I/O at {offset}");
        assert_eq!(
            offset % self.block,
            0,
            "offset {offset} not aligned to {}",
            self.block
        );
        assert_eq!(
            len as u64 % self.block,
            0,
            "length {len} not aligned to {}",
            self.block
        );
        assert_eq!(
            ptr as usize % self.buffer_align(),
            0,
            "buffer address not aligned"
        );
    }
}

impl Medium for Mock {
    fn logical_block(&self) -> u64 {
        self.block
    }
    fn size(&self) -> Option<u64> {
        self.size
    }
    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.check(buf.as_ptr(), buf.len(), offset);
        if self
            .fail_write_at
            .is_some_and(|f| f >= offset && f < offset + buf.len() as u64)
        {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        self.writes += 1;
        let o = offset as usize;
        self.data[o..o + buf.len()].copy_from_slice(buf);
        Ok(())
    }
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.check(buf.as_ptr(), buf.len(), offset);
        let o = offset as usize;
        buf.copy_from_slice(&self.data[o..o + buf.len()]);
        Ok(())
    }
    fn sync(&mut self) -> io::Result<()> {
        if let Some(at) = self.corrupt_after_sync {
            self.data[at as usize] ^= 0x01;
        }
        Ok(())
    }
    fn discard(&mut self, offset: u64, len: u64) -> io::Result<bool> {
        assert_eq!(offset % self.block, 0);
        assert_eq!(len % self.block, 0);
        self.discards.push((offset, len));
        self.data[offset as usize..(offset + len) as usize].fill(0);
        Ok(true)
    }
}

fn pattern(size: usize) -> Vec<u8> {
    (0..size).map(|i| ((i * 31 + 7) % 251) as u8 + 1).collect()
}

fn image(size: usize) -> (tempfile::NamedTempFile, Vec<u8>) {
    let bytes = pattern(size);
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(&bytes).unwrap();
    f.flush().unwrap();
    (f, bytes)
}

fn run(
    mock: &mut Mock,
    source: &Image,
    opts: &Options,
    cancel: &CancellationToken,
) -> Result<super::DeviceReport, FlashError> {
    writer::flash(
        mock,
        std::path::Path::new("/dev/mock"),
        source,
        opts,
        &Progress::silent(),
        cancel,
    )
}

fn opts(chunk: usize, verify: bool, discard: bool) -> Options {
    Options {
        chunk,
        verify,
        discard,
    }
}

fn range_sets(size: u64) -> Vec<Vec<(u64, u64)>> {
    let mut sets = vec![vec![(0, size)], vec![(size / 2, 1)]];
    // Sparse, odd offsets and lengths.
    let mut sparse = vec![(1, 3)];
    if size > 1000 {
        sparse.push((700, 100));
    }
    if size > 5000 {
        sparse.push((4097, 10));
        sparse.push((size - 5, 5));
    }
    sparse.retain(|&(o, _)| o < size);
    sets.push(sparse);
    // Adjacent ranges (as a bmap lists consecutive blocks with different hashes).
    let third = (size / 3).max(1);
    let adj: Vec<_> = [
        (0, third),
        (third, third),
        (2 * third, size.saturating_sub(2 * third)),
    ]
    .into_iter()
    .filter(|&(o, l)| l > 0 && o < size)
    .collect();
    sets.push(adj);
    sets
}

#[test]
fn every_io_is_aligned_and_the_device_holds_the_image() {
    for size in [1u64, 511, 513, 4097, (1 << 20) + 123] {
        let (file, bytes) = image(size as usize);
        for block in [512u64, 4096] {
            for ranges in range_sets(size) {
                let source = Image::new(file.path(), ranges.clone(), size).unwrap();
                for chunk in [4096usize, 3 * 4096, 1 << 20] {
                    let ctx = format!("size {size} block {block} chunk {chunk} ranges {ranges:?}");
                    let capacity = (size.div_ceil(block) * block + 8192) as usize;
                    let mut mock = Mock::new(block, capacity);
                    let report = run(
                        &mut mock,
                        &source,
                        &opts(chunk, true, false),
                        &CancellationToken::new(),
                    )
                    .expect(&ctx);
                    let rounded = super::plan::rounded_ranges(&ranges, block);
                    let total: u64 = rounded.iter().map(|r| r.1).sum();
                    assert_eq!(report.written, total, "{ctx}");
                    assert_eq!(report.verified, total, "{ctx}");
                    for (i, &b) in mock.data.iter().enumerate() {
                        let i64 = i as u64;
                        let inside = rounded.iter().any(|&(o, l)| i64 >= o && i64 < o + l);
                        let want = match (inside, bytes.get(i)) {
                            (true, Some(&x)) => x,
                            (true, None) => 0,
                            (false, _) => OLD,
                        };
                        assert_eq!(b, want, "{ctx}: byte {i}");
                    }
                    // Every mapped byte is covered by a rounded range.
                    for &(o, l) in &ranges {
                        assert!(
                            rounded.iter().any(|&(ro, rl)| ro <= o && o + l <= ro + rl),
                            "{ctx}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn discard_releases_exactly_the_unmapped_aligned_gaps() {
    let size = (1u64 << 20) + 123;
    let (file, bytes) = image(size as usize);
    let ranges = vec![(5000, 100), (300_000, 70_000)];
    let source = Image::new(file.path(), ranges, size).unwrap();
    let mut mock = Mock::new(4096, (size as usize).div_ceil(4096) * 4096 + 4096);
    run(
        &mut mock,
        &source,
        &opts(1 << 20, true, true),
        &CancellationToken::new(),
    )
    .unwrap();
    let image_end = size.div_ceil(4096) * 4096;
    assert_eq!(
        mock.discards,
        vec![
            (0, 4096),
            (8192, 299_008 - 8192),
            (372_736, image_end - 372_736)
        ]
    );
    assert!(mock.data[..4096].iter().all(|&b| b == 0));
    assert_eq!(&mock.data[4096..8192], &bytes[4096..8192]);
    assert!(
        mock.data[image_end as usize..].iter().all(|&b| b == OLD),
        "past the image is untouched"
    );
}

#[test]
fn verification_reports_the_first_differing_offset() {
    let (file, _) = image(100_000);
    let source = Image::new(file.path(), vec![(0, 100_000)], 100_000).unwrap();
    let mut mock = Mock::new(512, 100_352);
    mock.corrupt_after_sync = Some(77_777);
    let err = run(
        &mut mock,
        &source,
        &opts(8192, true, false),
        &CancellationToken::new(),
    )
    .unwrap_err();
    assert!(
        matches!(err, FlashError::Mismatch { offset: 77_777, .. }),
        "{err:?}"
    );
    // Without verification the same corruption goes unnoticed: the check is what catches it.
    let mut mock = Mock::new(512, 100_352);
    mock.corrupt_after_sync = Some(77_777);
    assert!(run(
        &mut mock,
        &source,
        &opts(8192, false, false),
        &CancellationToken::new()
    )
    .is_ok());
}

#[test]
fn a_write_error_carries_the_offset_and_stops_the_device() {
    let (file, _) = image(100_000);
    let source = Image::new(file.path(), vec![(0, 100_000)], 100_000).unwrap();
    let mut mock = Mock::new(512, 100_352);
    mock.fail_write_at = Some(50_000);
    let err = run(
        &mut mock,
        &source,
        &opts(16384, true, false),
        &CancellationToken::new(),
    )
    .unwrap_err();
    assert!(
        matches!(err, FlashError::Write { offset: 49_152, .. }),
        "{err:?}"
    );
    assert_eq!(mock.writes, 3);
}

#[test]
fn a_device_too_small_is_refused_before_any_write() {
    let (file, _) = image(10_000);
    let source = Image::new(file.path(), vec![(0, 10_000)], 10_000).unwrap();
    let mut mock = Mock::new(512, 10_240);
    mock.size = Some(9_728);
    let err = run(
        &mut mock,
        &source,
        &opts(4096, true, false),
        &CancellationToken::new(),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            FlashError::TooSmall {
                size: 9_728,
                needed: 10_240,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(mock.writes, 0);
}

#[test]
fn cancellation_stops_at_the_next_chunk() {
    let (file, _) = image(100_000);
    let source = Image::new(file.path(), vec![(0, 100_000)], 100_000).unwrap();
    let mut mock = Mock::new(512, 100_352);
    let cancel = CancellationToken::new();
    let seen = std::sync::Arc::new(Mutex::new(vec![]));
    let (sink_seen, sink_cancel) = (seen.clone(), cancel.clone());
    // Cancels at the first bytes reported written, as a station's stop button would mid-card.
    let progress = Progress::new(move |e: &Event| {
        if let Event::TaskProgress { done, .. } = e {
            if *done > 0 {
                sink_cancel.cancel();
            }
        }
        sink_seen.lock().unwrap().push(e.clone());
    })
    .for_job(5);
    let err = writer::flash(
        &mut mock,
        "/dev/mock".as_ref(),
        &source,
        &opts(4096, true, false),
        &progress,
        &cancel,
    )
    .unwrap_err();
    assert!(matches!(err, FlashError::Cancelled { .. }), "{err:?}");
    assert_eq!(mock.writes, 1, "stopped at the next chunk");
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen[0],
        Event::JobPhase {
            job: 5,
            phase: Phase::Writing
        }
    );
}

#[test]
fn images_reject_bad_ranges_and_short_images() {
    let (file, _) = image(1000);
    assert!(matches!(
        Image::new(file.path(), vec![(0, 10)], 2000),
        Err(FlashError::BadRanges { .. })
    ));
    assert!(matches!(
        Image::new(file.path(), vec![(10, 10), (5, 10)], 1000),
        Err(FlashError::BadRanges { .. })
    ));
    assert!(matches!(
        Image::new(file.path(), vec![(1000, 1)], 1000),
        Err(FlashError::BadRanges { .. })
    ));
    let s = Image::new(file.path(), vec![(0, 0), (900, 4096)], 1000).unwrap();
    assert_eq!(s.ranges(), &[(900, 100)]);
    let err = Image::new("/nonexistent/image".as_ref(), vec![], 0).unwrap_err();
    assert_eq!(crate::Classify::class(&err), crate::ErrorClass::BadInput);
}

#[test]
fn mapped_ranges_find_the_data_of_a_sparse_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sparse.img");
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(4 << 20).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(&[1u8; 4096], 0).unwrap();
    f.write_all_at(&[2u8; 8192], 1 << 20).unwrap();
    f.sync_all().unwrap();
    assert_eq!(
        mapped_ranges(&path).unwrap(),
        vec![(0, 4096), (1 << 20, 8192)]
    );
    let empty = dir.path().join("empty.img");
    std::fs::File::create(&empty)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    assert_eq!(mapped_ranges(&empty).unwrap(), vec![]);
}

#[test]
fn bad_chunks_are_refused() {
    for chunk in [0, 4096, (1 << 20) + 512, 16 << 20] {
        assert!(opts(chunk, true, false).validate().is_err(), "{chunk}");
    }
    assert!(Options::default().validate().is_ok());
}
