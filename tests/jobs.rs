//! The library driven the way the station drives it: jobs started from inside a tokio runtime, each with
//! its own cancellation token, their progress read through the one `Snapshot`. A flash job on a slow card
//! (a loop device capped by the cgroup-v1 blkio throttle) and a build job onto a card (its download
//! stalled by the test server) are cancelled mid-way: each stops within a second, is reported
//! interrupted, and nothing but its own card is touched.

mod support;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use image_creator::build::BuildOptions;
use image_creator::device::{self, Bus, Eligibility};
use image_creator::flash::{self, Image};
use image_creator::job::{self, Job, JobReport, Work};
use image_creator::progress::{Outcome, Phase, Progress, Snapshot, TaskKind, Tracker};
use image_creator::CancellationToken;
use support::fixtures::*;
use support::http_server::{Fault, TestServer};

const OLD: u8 = 0xAA;

/// A card full of old data (a card is never blank).
fn dirty_card(dir: &Path, name: &str, mib: usize) -> (PathBuf, Loop) {
    let file = dir.join(name);
    std::fs::write(&file, vec![OLD; mib << 20]).unwrap();
    let lo = Loop::attach(&file);
    (file, lo)
}

/// A blkio cgroup capping writes to one device; threads join it by id (cgroup v1 `tasks`), so only the
/// job's own thread is slowed. Removed on drop.
struct Throttle(PathBuf);

impl Throttle {
    fn new(dev: &Path, bytes_per_sec: u64) -> Throttle {
        // One cgroup per throttle: tests run in parallel in this process.
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let cg = PathBuf::from(format!(
            "/sys/fs/cgroup/blkio/ic-jobs-{}-{n}",
            std::process::id()
        ));
        std::fs::create_dir_all(&cg).expect("blkio cgroup (v1) writable: run as root");
        let rdev = std::os::unix::fs::MetadataExt::rdev(&std::fs::metadata(dev).unwrap());
        let (maj, min) = (libc::major(rdev), libc::minor(rdev));
        for file in ["write_bps_device", "read_bps_device"] {
            std::fs::write(
                cg.join(format!("blkio.throttle.{file}")),
                format!("{maj}:{min} {bytes_per_sec}"),
            )
            .unwrap();
        }
        Throttle(cg)
    }

    /// Moves the calling thread into the cgroup.
    fn enter(&self) {
        let tid = nix::unistd::gettid();
        std::fs::write(self.0.join("tasks"), tid.to_string()).unwrap();
    }

    /// The cgroup's process list: a child joins it with `echo $$ > … ; exec …`.
    fn procs(&self) -> PathBuf {
        self.0.join("cgroup.procs")
    }

    fn leave() {
        let tid = nix::unistd::gettid();
        std::fs::write("/sys/fs/cgroup/blkio/tasks", tid.to_string()).unwrap();
    }
}

impl Drop for Throttle {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Events into a tracker, as the station's state does.
fn tracked() -> (Progress, Arc<Mutex<Tracker>>) {
    let tracker = Arc::new(Mutex::new(Tracker::new()));
    let sink = tracker.clone();
    let progress = Progress::new(move |e| sink.lock().unwrap().apply(Instant::now(), e));
    (progress, tracker)
}

fn snapshot(t: &Mutex<Tracker>) -> Snapshot {
    t.lock().unwrap().snapshot().clone()
}

/// Waits (async, with a deadline) until `ready` holds for the snapshot.
async fn until(t: &Mutex<Tracker>, what: &str, ready: impl Fn(&Snapshot) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready(&snapshot(t)) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Gated as `write` and the station gate (loop devices accepted as cards).
fn gated(dev: &Path, image: &Path, size: u64) -> device::Facts {
    let policy = Eligibility {
        extra_allowed_buses: vec![Bus::Loop],
        ..Eligibility::new(image, size)
    };
    device::gate(&[dev.to_path_buf()], &policy)
        .unwrap()
        .remove(0)
}

/// Cancels `token` and returns how long the job took to come back after it.
async fn cancel_and_join(
    token: &CancellationToken,
    handle: tokio::task::JoinHandle<JobReport>,
) -> (JobReport, Duration) {
    let at = Instant::now();
    token.cancel();
    let report = tokio::time::timeout(Duration::from_secs(30), handle)
        .await
        .expect("the job came back")
        .expect("the job did not panic");
    (report, at.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flash_job_cancelled_mid_write_stops_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let image_path = dir.path().join("image.img");
    let image_bytes: Vec<u8> = (0..24u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&image_path, &image_bytes).unwrap();
    let (card_file, card) = dirty_card(dir.path(), "card", 32);
    let (bystander_file, _bystander) = dirty_card(dir.path(), "bystander", 32);
    // 4 MiB/s with 1 MiB writes: a chunk takes 0.25 s, the whole image 6 s.
    let throttle = Arc::new(Throttle::new(card.path(), 4 << 20));

    let (progress, tracker) = tracked();
    let image = Arc::new(Image::open(&image_path, &progress, &CancellationToken::new()).unwrap());
    let job = Job {
        id: 1,
        device: gated(card.path(), &image_path, image.image_size()),
        work: Work::Clone(image),
        flash: flash::Options {
            chunk: 1 << 20,
            ..flash::Options::default()
        },
        probe: false,
    };
    let shutdown = CancellationToken::new();
    let token = shutdown.child_token();
    let rt = tokio::runtime::Handle::current();
    let (t, p, c) = (throttle.clone(), progress.clone(), token.clone());
    let handle = tokio::task::spawn_blocking(move || {
        t.enter();
        let report = job::run(&job, &p, &c, &rt);
        Throttle::leave();
        report
    });
    until(&tracker, "2 MiB written", |s| {
        s.job(1).is_some_and(|j| j.phase == Some(Phase::Writing))
            && s.job_task(1)
                .is_some_and(|t| t.kind == TaskKind::Write && t.done >= 2 << 20)
    })
    .await;
    let (report, took) = cancel_and_join(&token, handle).await;
    assert!(took < Duration::from_secs(1), "stopped after {took:?}");
    assert!(!shutdown.is_cancelled(), "a job's token is its own");
    assert_eq!(report.outcome(), Outcome::Interrupted);

    let snap = snapshot(&tracker);
    let state = snap.job(1).unwrap();
    assert_eq!(state.outcome, Some(Outcome::Interrupted));
    assert_eq!(state.phase, Some(Phase::Writing), "stopped while writing");
    assert_eq!(state.device.path, card.path());
    let task = snap.job_task(1).unwrap();
    assert!(task.done < 24 << 20, "not all written: {}", task.done);
    assert_eq!(
        task.finished,
        Some(false),
        "the write task ended unfinished"
    );

    drop(card);
    let card_bytes = std::fs::read(&card_file).unwrap();
    let written = task.done as usize;
    assert_eq!(&card_bytes[..written], &image_bytes[..written]);
    assert!(
        card_bytes[24 << 20..].iter().all(|&b| b == OLD),
        "nothing written past the image"
    );
    assert!(
        std::fs::read(&bystander_file)
            .unwrap()
            .iter()
            .all(|&b| b == OLD),
        "another card was touched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_job_cancelled_mid_download_stops_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start();
    let big: Vec<u8> = (0..4_000_000u32).map(|i| (i >> 7) as u8).collect();
    server.add("/big.bin", big);
    server.fault(
        "/big.bin",
        Fault::Stall {
            after: 100_000,
            times: 10,
        },
    );
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "base: {}\nfiles:\n  - url: {}\n    to: /data/big.bin\n",
            demo_base().display(),
            server.url("/big.bin")
        ),
    )
    .unwrap();
    let (card_file, card) = dirty_card(dir.path(), "card", 160);
    let (progress, tracker) = tracked();
    let job = Job {
        id: 2,
        device: gated(card.path(), &config, 0),
        work: Work::Build(Box::new(BuildOptions {
            config_src: config.display().to_string(),
            output: PathBuf::new(),
            build_dir: Some(dir.path().join("build")),
            check: false,
            keep: false,
            overwrite: false,
            force: true,
            concurrency: 0,
            max_size: None,
            cache_dir: None,
            show_cache: false,
            offline: false,
            platform: Default::default(),
            insecure_registries: vec![],
            reuse: false,
        })),
        flash: flash::Options::default(),
        probe: false,
    };
    let token = CancellationToken::new();
    let rt = tokio::runtime::Handle::current();
    let (p, c) = (progress.clone(), token.clone());
    let handle = tokio::task::spawn_blocking(move || job::run(&job, &p, &c, &rt));
    until(&tracker, "the download under way", |s| {
        s.tasks
            .iter()
            .any(|t| t.job == Some(2) && t.kind == TaskKind::Download && t.done > 0)
    })
    .await;
    let (report, took) = cancel_and_join(&token, handle).await;
    assert!(took < Duration::from_secs(1), "stopped after {took:?}");
    assert_eq!(
        report.outcome(),
        Outcome::Interrupted,
        "{:?}",
        report.result
    );
    let snap = snapshot(&tracker);
    let state = snap.job(2).unwrap();
    assert_eq!(state.outcome, Some(Outcome::Interrupted));
    assert_eq!(state.phase, Some(Phase::Building));
    assert!(state.step.is_some(), "the build's steps are the job's");
    drop(card);
    assert!(
        std::fs::read(&card_file).unwrap().iter().all(|&b| b == OLD),
        "the card was written before the download finished"
    );
    assert!(
        !dir.path().join("build").exists()
            || std::fs::read_dir(dir.path().join("build"))
                .unwrap()
                .next()
                .is_none(),
        "the build left its work behind"
    );
}

/// The same through the binary, as an operator sees it: Ctrl-C while a (slow) card is being written stops
/// it at its next chunk, exit 1, the card reported interrupted, nothing written past what was reached.
#[test]
fn ctrl_c_during_write_stops_the_card_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("image.img");
    let bytes: Vec<u8> = (0..16u32 << 20)
        .map(|i| (i.wrapping_mul(40503) >> 9) as u8)
        .collect();
    std::fs::write(&image, &bytes).unwrap();
    let (card_file, card) = dirty_card(dir.path(), "card", 24);
    let throttle = Throttle::new(card.path(), 4 << 20);
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        &format!(
            "echo $$ > {} && exec {} write --yes --force --chunk 1MiB {} {}",
            throttle.procs().display(),
            bin(),
            image.display(),
            card.0
        ),
    ]);
    // Interrupted once the card's write task reports its first MiB.
    let (code, seen, took) = interrupt_when(&mut cmd, |v| {
        v["event"] == "task_progress" && v["done"].as_u64().unwrap_or(0) >= 1 << 20
    });
    assert!(took < Duration::from_secs(2), "stopped after {took:?}");
    assert_eq!(code, Some(1));
    let finished = seen.iter().find(|v| v["event"] == "job_finished").unwrap();
    assert_eq!(finished["outcome"]["result"], "interrupted", "{finished}");
    let last = seen.last().unwrap();
    assert_eq!(last["event"], "finished");
    assert!(
        last["error"].as_str().unwrap().contains("interrupted"),
        "{last}"
    );
    drop(card);
    drop(throttle);
    let card_bytes = std::fs::read(&card_file).unwrap();
    assert!(
        card_bytes[..1 << 20] == bytes[..1 << 20],
        "the first chunk was written"
    );
    assert!(
        card_bytes[12 << 20..].iter().all(|&b| b == OLD),
        "written past where it was stopped"
    );
}

/// Ctrl-C while a compressed image is being decompressed (before any card is touched): exit 1 (it used to
/// be 3, "bad input"), "interrupted: nothing was written", the card untouched.
#[test]
fn ctrl_c_during_decompression_exits_1_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("zeros.img.gz");
    // 1 GiB of zeros: small to store, a few seconds to decompress.
    sh(&format!(
        "head -c 1G /dev/zero | gzip -1 > {}",
        image.display()
    ));
    let (card_file, card) = dirty_card(dir.path(), "card", 8);
    let mut cmd = Command::new(bin());
    cmd.args(["write", "--yes", "--force"])
        .arg(&image)
        .arg(&card.0);
    let (code, seen, _) = interrupt_when(&mut cmd, |v| {
        v["event"] == "task_progress" && v["done"].as_u64().unwrap_or(0) > 0
    });
    assert!(
        seen.iter().any(|v| v["kind"] == "decode"),
        "not decompressing: {seen:?}"
    );
    assert_eq!(code, Some(1), "{seen:?}");
    let last = seen.last().unwrap();
    assert!(
        last["error"]
            .as_str()
            .unwrap()
            .contains("interrupted: nothing was written"),
        "{last}"
    );
    assert!(
        !seen.iter().any(|v| v["event"] == "job_started"),
        "a card was started"
    );
    drop(card);
    assert!(std::fs::read(&card_file).unwrap().iter().all(|&b| b == OLD));
}

/// Runs `cmd` with JSON-lines progress, sends SIGINT at the first event for which `when` holds, and
/// returns its exit code, every event, and how long it took to exit after the signal.
fn interrupt_when(
    cmd: &mut Command,
    when: impl Fn(&serde_json::Value) -> bool,
) -> (Option<i32>, Vec<serde_json::Value>, Duration) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let v: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
        seen.push(v.clone());
        if when(&v) {
            break;
        }
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let at = Instant::now();
    seen.extend(lines.map(|l| serde_json::from_str::<serde_json::Value>(&l.unwrap()).unwrap()));
    let code = child.wait().unwrap().code();
    (code, seen, at.elapsed())
}
