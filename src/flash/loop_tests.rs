//! Real block devices: loop devices (root) attached with `losetup -f` and always detached by a guard.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use super::{plan, write_one, DeviceReport, FlashError, Image, Options};
use crate::progress::{Event, Phase, Progress, TaskKind};
use crate::testutil::Loop;
use crate::CancellationToken;

/// Every device at once, each in its own thread as jobs run them, device `i` reporting as job `i`.
fn write_all(
    image: &Image,
    devices: &[PathBuf],
    opts: &Options,
    sink: impl Fn(&Event) + Send + Sync + 'static,
) -> Vec<Result<DeviceReport, FlashError>> {
    let progress = Progress::new(sink);
    let cancel = CancellationToken::new();
    std::thread::scope(|s| {
        let handles: Vec<_> = devices
            .iter()
            .enumerate()
            .map(|(i, dev)| {
                let (p, cancel) = (progress.for_job(i as u64), &cancel);
                s.spawn(move || write_one(image, dev, opts, &p, cancel))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Collects the events of a run.
fn recorder() -> (
    Arc<Mutex<Vec<Event>>>,
    impl Fn(&Event) + Send + Sync + 'static,
) {
    let events = Arc::new(Mutex::new(vec![]));
    let sink = events.clone();
    (events, move |e: &Event| {
        sink.lock().unwrap().push(e.clone())
    })
}

const OLD: u8 = 0xAA;

/// A small tmpfs, unmounted on drop: a loop device backed by a sparse file there fails mid-write (ENOSPC).
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(st.success());
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

fn backing(dir: &Path, name: &str, size: usize) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, vec![OLD; size]).unwrap();
    p
}

fn image(dir: &Path, size: usize) -> (PathBuf, Vec<u8>) {
    let bytes: Vec<u8> = (0..size).map(|i| ((i * 13 + 5) % 253) as u8 + 1).collect();
    let p = dir.join("image.raw");
    std::fs::write(&p, &bytes).unwrap();
    (p, bytes)
}

/// The device (its backing file) holds the image in the rounded mapped ranges, zeros past the image end
/// inside them, and `gap` elsewhere (`None`: gaps inside the image are zero, past it `OLD`).
fn assert_holds(
    dev: &[u8],
    img: &[u8],
    ranges: &[(u64, u64)],
    block: u64,
    discarded: bool,
    ctx: &str,
) {
    let rounded = plan::rounded_ranges(ranges, block);
    let image_end = (img.len() as u64).div_ceil(block) * block;
    for (i, &b) in dev.iter().enumerate() {
        let at = i as u64;
        let inside = rounded.iter().any(|&(o, l)| at >= o && at < o + l);
        let want = if inside {
            img.get(i).copied().unwrap_or(0)
        } else if discarded && at < image_end {
            0
        } else {
            OLD
        };
        assert_eq!(b, want, "{ctx}: byte {i}");
    }
}

fn sparse_ranges(size: u64) -> Vec<(u64, u64)> {
    vec![
        (0, 4096),
        (10_000, 1),
        (70_000, 300_001),
        (1 << 20, 200_000),
        (size - 77, 77),
    ]
}

fn opts(verify: bool, discard: bool) -> Options {
    Options {
        chunk: 1 << 20,
        verify,
        discard,
    }
}

#[test]
fn three_loop_devices_and_a_file_get_the_mapped_ranges_in_parallel() {
    let dir = tempfile::tempdir().unwrap();
    let size = 3 * (1 << 20) + 123;
    let (img, bytes) = image(dir.path(), size);
    let ranges = sparse_ranges(size as u64);
    let source = Image::new(&img, ranges.clone(), size as u64).unwrap();
    let files: Vec<_> = (0..3)
        .map(|i| backing(dir.path(), &format!("card{i}"), 8 << 20))
        .collect();
    let loops: Vec<_> = files.iter().map(|f| Loop::attach(f)).collect();
    let plain = backing(dir.path(), "plain.img", 4 << 20);
    let mut devices: Vec<_> = loops.iter().map(|l| l.path().to_path_buf()).collect();
    devices.push(plain.clone());

    let (events, sink) = recorder();
    let results = write_all(&source, &devices, &opts(true, false), sink);
    let total: u64 = plan::rounded_ranges(&ranges, 512).iter().map(|r| r.1).sum();
    for (i, r) in results.iter().enumerate() {
        let report = r.as_ref().unwrap_or_else(|e| panic!("device {i}: {e:?}"));
        assert_eq!(
            (report.written, report.verified),
            (total, total),
            "device {i}"
        );
    }
    drop(loops);
    for (i, f) in files.iter().chain([&plain]).enumerate() {
        assert_holds(
            &std::fs::read(f).unwrap(),
            &bytes,
            &ranges,
            512,
            false,
            &format!("device {i}"),
        );
    }
    let events = events.lock().unwrap();
    for dev in 0..4u64 {
        let phases: Vec<Phase> = events
            .iter()
            .filter_map(|e| match e {
                Event::JobPhase { job, phase } if *job == dev => Some(*phase),
                _ => None,
            })
            .collect();
        let want = [
            Phase::Opening,
            Phase::Writing,
            Phase::Syncing,
            Phase::Verifying,
        ];
        assert_eq!(phases, want, "device {dev}");
        // The job's write task ends complete and successful.
        let (id, task_total) = events
            .iter()
            .find_map(|e| match e {
                Event::TaskStarted {
                    id,
                    kind: TaskKind::Write,
                    total,
                    job: Some(j),
                    ..
                } if *j == dev => Some((*id, *total)),
                _ => None,
            })
            .unwrap();
        assert_eq!(task_total, Some(total));
        let last = events.iter().rev().find_map(|e| match e {
            Event::TaskProgress { id: i, done } if *i == id => Some(*done),
            _ => None,
        });
        assert_eq!(last, Some(total));
        assert!(events.contains(&Event::TaskFinished { id, ok: true }));
    }
}

#[test]
fn discard_zeroes_the_image_gaps_and_leaves_the_rest_of_the_device() {
    let dir = tempfile::tempdir().unwrap();
    let size = 2 * (1 << 20) + 5;
    let (img, bytes) = image(dir.path(), size);
    let ranges = vec![(8192, 100), (1 << 20, 4096)];
    let source = Image::new(&img, ranges.clone(), size as u64).unwrap();
    let card = backing(dir.path(), "card", 4 << 20);
    let lo = Loop::attach(&card);
    let results = write_all(
        &source,
        std::slice::from_ref(&lo.path().to_path_buf()),
        &opts(true, true),
        |_| {},
    );
    assert!(results[0].is_ok(), "{:?}", results[0]);
    drop(lo);
    assert_holds(
        &std::fs::read(&card).unwrap(),
        &bytes,
        &ranges,
        512,
        true,
        "discard",
    );
}

#[test]
fn verification_catches_a_byte_changed_on_one_device_after_writing() {
    let dir = tempfile::tempdir().unwrap();
    let size = 2 * (1 << 20) + 321;
    let (img, _) = image(dir.path(), size);
    let source = Image::new(&img, vec![(0, size as u64)], size as u64).unwrap();
    let loops: Vec<_> = (0..3)
        .map(|i| Loop::attach(&backing(dir.path(), &format!("c{i}"), 4 << 20)))
        .collect();
    let devices: Vec<_> = loops.iter().map(|l| l.path().to_path_buf()).collect();
    let victim = devices[1].clone();
    const AT: u64 = 1_234_567;
    // Runs in device 1's thread between its sync and its read-back: a real write through another fd.
    let corrupt = move |e: &Event| {
        if *e
            == (Event::JobPhase {
                job: 1,
                phase: Phase::Verifying,
            })
        {
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&victim)
                .unwrap();
            let mut b = [0u8; 1];
            f.read_exact_at(&mut b, AT).unwrap();
            f.write_all_at(&[b[0] ^ 0x40], AT).unwrap();
            f.sync_all().unwrap();
        }
    };
    let results = write_all(&source, &devices, &opts(true, false), corrupt);
    assert!(results[0].is_ok(), "{:?}", results[0]);
    assert!(
        matches!(results[1], Err(FlashError::Mismatch { offset: AT, .. })),
        "{:?}",
        results[1]
    );
    assert!(results[2].is_ok(), "{:?}", results[2]);
}

#[test]
fn a_failing_device_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let size = 6 << 20;
    let (img, bytes) = image(dir.path(), size);
    let ranges = vec![(0, size as u64)];
    let source = Image::new(&img, ranges.clone(), size as u64).unwrap();
    // An 8 MiB sparse backing file on a 2 MiB tmpfs: the device looks big enough, writes fail past ~2 MiB.
    let small = Tmpfs::mount("2M");
    let leaky = small.0.path().join("leaky");
    File::create(&leaky).unwrap().set_len(8 << 20).unwrap();
    let good: Vec<_> = (0..2)
        .map(|i| backing(dir.path(), &format!("good{i}"), 8 << 20))
        .collect();
    let tiny = backing(dir.path(), "tiny", 1 << 20);
    let loops = [
        Loop::attach(&good[0]),
        Loop::attach(&leaky),
        Loop::attach(&tiny),
        Loop::attach(&good[1]),
    ];
    let devices: Vec<_> = loops.iter().map(|l| l.path().to_path_buf()).collect();
    let results = write_all(&source, &devices, &opts(true, false), |_| {});
    // ENOSPC from the backing tmpfs, seen by the O_DIRECT write itself.
    match &results[1] {
        Err(FlashError::Write { offset, .. }) => {
            assert!(offset >= &(1 << 20), "failed too early: {offset}")
        }
        other => panic!("expected a write error, got {other:?}"),
    }
    assert!(
        matches!(results[2], Err(FlashError::TooSmall { size: 1048576, .. })),
        "{:?}",
        results[2]
    );
    drop(loops);
    for (i, f) in good.iter().enumerate() {
        assert!(results[i * 3].is_ok(), "{:?}", results[i * 3]);
        assert_holds(
            &std::fs::read(f).unwrap(),
            &bytes,
            &ranges,
            512,
            false,
            &format!("good {i}"),
        );
    }
    assert!(
        std::fs::read(&tiny).unwrap().iter().all(|&b| b == OLD),
        "a refused device is not written"
    );
}

#[test]
fn a_4096_byte_sector_device_gets_aligned_writes() {
    let dir = tempfile::tempdir().unwrap();
    let size = (2 << 20) + 123;
    let (img, bytes) = image(dir.path(), size);
    let ranges = sparse_ranges(size as u64);
    let source = Image::new(&img, ranges.clone(), size as u64).unwrap();
    let cards = [
        backing(dir.path(), "c4k", 4 << 20),
        backing(dir.path(), "c512", 4 << 20),
    ];
    let loops = [
        Loop::attach_with(&cards[0], &["--sector-size", "4096"]),
        Loop::attach(&cards[1]),
    ];
    let devices: Vec<_> = loops.iter().map(|l| l.path().to_path_buf()).collect();
    let results = write_all(&source, &devices, &opts(true, false), |_| {});
    let r4k = results[0].as_ref().unwrap();
    assert_eq!(
        r4k.written,
        plan::rounded_ranges(&ranges, 4096)
            .iter()
            .map(|r| r.1)
            .sum::<u64>()
    );
    assert!(results[1].is_ok(), "{:?}", results[1]);
    drop(loops);
    assert_holds(
        &std::fs::read(&cards[0]).unwrap(),
        &bytes,
        &ranges,
        4096,
        false,
        "4k",
    );
    assert_holds(
        &std::fs::read(&cards[1]).unwrap(),
        &bytes,
        &ranges,
        512,
        false,
        "512",
    );
}
