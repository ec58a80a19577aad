//! Helpers shared by the fetch integration tests.

use image_creator::config::{Algo, Checksum, ChecksumKind};
use image_creator::fetch::{Downloaded, Expect, FetchError, Fetcher, Source};
use image_creator::net::NetSettings;
use image_creator::progress::{Event, Progress, TaskKind};
use image_creator::CancellationToken;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub fn settings() -> NetSettings {
    NetSettings {
        retries: 3,
        backoff: Duration::from_millis(10),
        max_delay: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(2),
    }
}

pub fn fetcher() -> Fetcher {
    Fetcher::new(settings()).unwrap()
}

/// Deterministic, non-repeating-looking bytes (a simple LCG).
pub fn data(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (x >> 16) as u8
        })
        .collect()
}

/// Reference digest computed by python3 (hashlib / zlib), independent of the code under test.
pub fn py_digest(algo: Algo, file: &Path) -> String {
    let expr = match algo {
        Algo::Adler32 => "'%08x' % zlib.adler32(d)".to_string(),
        a => format!(
            "hashlib.new('{}', d).hexdigest()",
            a.name().replace('-', "")
        ),
    };
    let script =
        format!("import hashlib, sys, zlib\nd = open(sys.argv[1], 'rb').read()\nprint({expr})");
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(file)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

pub fn py_digest_bytes(algo: Algo, bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("blob");
    std::fs::write(&f, bytes).unwrap();
    py_digest(algo, &f)
}

pub fn digest(algo: Algo, value: &str) -> Option<Checksum> {
    Some(Checksum {
        algo,
        value: value.to_string(),
        kind: ChecksumKind::Digest,
    })
}

pub fn part(dest: &Path) -> PathBuf {
    PathBuf::from(format!("{}.part", dest.display()))
}

pub async fn get(
    f: &Fetcher,
    url: &str,
    dest: &Path,
    expect: Expect,
) -> Result<Downloaded, FetchError> {
    let src = Source::parse(url, None).unwrap();
    let mut task = Progress::silent().task(TaskKind::Download, url, None);
    f.download(&src, dest, &expect, &mut task, &CancellationToken::new())
        .await
}

pub fn assert_gone(dest: &Path) {
    assert!(!dest.exists(), "{} left behind", dest.display());
    assert!(!part(dest).exists(), "{} left behind", part(dest).display());
}

pub fn recorder() -> (Progress, Arc<Mutex<Vec<Event>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let e2 = events.clone();
    let p = Progress::new(move |e| e2.lock().unwrap().push(e.clone()));
    (p, events)
}
