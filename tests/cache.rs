//! The download cache through the real binary, against a logging HTTP server on loopback.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::fixtures::*;
use support::http_server::{Fault, TestServer};

struct Setup {
    dir: tempfile::TempDir,
    server: TestServer,
    big: Vec<u8>,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start();
    server.add_file("/base.img.xz", demo_base_xz());
    let big: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2246822519) >> 11) as u8)
        .collect();
    server.add("/big.bin", big.clone());
    server.add("/small.txt", b"small file\n".to_vec());
    Setup { dir, server, big }
}

impl Setup {
    fn config(&self) -> PathBuf {
        let cfg = self.dir.path().join("c.yaml");
        std::fs::write(
            &cfg,
            format!(
                "base: {}\nfiles:\n  - url: {}\n    to: /data/big.bin\n  - url: {}\n    to: /data/small.txt\n",
                self.server.url("/base.img.xz"),
                self.server.url("/big.bin"),
                self.server.url("/small.txt")
            ),
        )
        .unwrap();
        cfg
    }

    fn content_gets(&self) -> usize {
        self.server
            .requests()
            .iter()
            .filter(|r| r.method == "GET")
            .count()
    }

    fn build(&self, cache: &Path, name: &str, extra: &[&str]) -> (std::process::Output, PathBuf) {
        let img = self.dir.path().join(name);
        let cfg = self.config();
        let mut args = vec!["--cache-dir", cache.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.extend([cfg.to_str().unwrap(), img.to_str().unwrap()]);
        (run(&args), img)
    }

    fn assert_content(&self, img: &Path) {
        let off = p3_offset(img);
        assert!(
            debugfs_cat(img, off, "/big.bin") == self.big,
            "big.bin differs"
        );
        assert_eq!(debugfs_cat(img, off, "/small.txt"), b"small file\n");
        e2fsck(img, off);
    }
}

/// Every file below `dir` with its size and mtime: a change detector.
fn snapshot(dir: &Path) -> Vec<(PathBuf, u64, std::time::SystemTime)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            if m.is_dir() {
                stack.push(e.path());
            }
            out.push((e.path(), m.len(), m.modified().unwrap()));
        }
    }
    out.sort();
    out
}

#[test]
fn warm_build_downloads_nothing_and_offline_builds_the_same_content() {
    let s = setup();
    let cache = s.dir.path().join("cache");
    let (out, img1) = s.build(&cache, "1.img", &[]);
    assert!(out.status.success(), "{}", text(&out));
    s.assert_content(&img1);
    let cold_gets = s.content_gets();

    let (out, img2) = s.build(&cache, "2.img", &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        s.content_gets(),
        cold_gets,
        "a warm build made content GETs: {:?}",
        s.server.requests()
    );
    s.assert_content(&img2);

    // --check never changes the cache, even with --show-cache.
    let before = snapshot(&cache);
    let (out, _) = s.build(&cache, "3.img", &["--check", "--show-cache"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(snapshot(&cache), before, "--check changed the cache");
    assert!(text(&out).contains("big.bin"), "{}", text(&out));

    // Server gone: --offline still builds the same content, without a single request.
    let requests = s.server.requests().len();
    let (out, img3) = s.build(&cache, "4.img", &["--offline"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        s.server.requests().len(),
        requests,
        "--offline made a request"
    );
    s.assert_content(&img3);
}

#[test]
fn prefetched_cache_moved_elsewhere_builds_offline() {
    let s = setup();
    let first = s.dir.path().join("stick");
    let cfg = s.config();
    let out = run(&[
        "cache",
        "prefetch",
        "--cache-dir",
        first.to_str().unwrap(),
        cfg.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("3 downloaded"), "{}", text(&out));
    let moved = s.dir.path().join("elsewhere/stick");
    std::fs::create_dir_all(moved.parent().unwrap()).unwrap();
    std::fs::rename(&first, &moved).unwrap();
    s.server.fault(
        "/big.bin",
        Fault::Status {
            code: 503,
            times: 1000,
        },
    );
    s.server.fault(
        "/base.img.xz",
        Fault::Status {
            code: 503,
            times: 1000,
        },
    );
    let requests = s.server.requests().len();
    let (out, img) = s.build(&moved, "out.img", &["--offline"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(s.server.requests().len(), requests);
    s.assert_content(&img);
    // verify finds nothing wrong; show lists the three entries.
    let out = run(&["cache", "verify", "--cache-dir", moved.to_str().unwrap()]);
    assert!(
        text(&out).contains("3 entries verified, 0 corrupt"),
        "{}",
        text(&out)
    );
}

#[test]
fn offline_lists_every_missing_input_at_once() {
    let s = setup();
    let cache = s.dir.path().join("empty-cache");
    let (out, img) = s.build(&cache, "out.img", &["--offline"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let msg = text(&out);
    for key in ["base: ", "files[0]: ", "files[1]: "] {
        assert!(msg.contains(key), "{key} not listed: {msg}");
    }
    assert!(!img.exists());
    assert!(s.server.requests().is_empty());
}

/// Container images are listed in the same message as files (they used to appear only once the files
/// were cached).
#[test]
fn offline_lists_missing_files_and_images_together() {
    let s = setup();
    let cache = s.dir.path().join("empty-cache");
    let cfg = s.dir.path().join("img.yaml");
    std::fs::write(
        &cfg,
        format!(
            "base: {}\nfiles:\n  - url: {}\n    to: /data/big.bin\noci_images:\n  - ghcr.io/offspot/kiwix-serve:3.8.1\n",
            s.server.url("/base.img.xz"),
            s.server.url("/big.bin"),
        ),
    )
    .unwrap();
    let out = run(&[
        "--offline",
        "--cache-dir",
        cache.to_str().unwrap(),
        cfg.to_str().unwrap(),
        s.dir.path().join("o.img").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let msg = text(&out);
    for key in ["base: ", "files[0]: ", "oci_images[0]"] {
        assert!(msg.contains(key), "{key} not listed: {msg}");
    }
    assert!(msg.contains("3 input(s)"), "{msg}");
}

#[test]
fn verify_counts_a_truncated_entry_as_removed_and_a_missing_cache_is_an_error() {
    let s = setup();
    let cache = s.dir.path().join("cache");
    let (out, _) = s.build(&cache, "1.img", &[]);
    assert!(out.status.success(), "{}", text(&out));
    // A copy of the stick interrupted: one data file shorter than the index says.
    let big = std::fs::read_dir(cache.join("data"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("big.bin"))
        .unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&big)
        .unwrap()
        .set_len(1000)
        .unwrap();
    let out = run(&["cache", "verify", "--cache-dir", cache.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("2 entries verified, 1 corrupt entries removed"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("removed: http"), "{}", text(&out));
    for sub in ["show", "verify", "apply"] {
        let typo = s.dir.path().join("cahce");
        let out = run(&["cache", sub, "--cache-dir", typo.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(3), "{sub}: {}", text(&out));
        assert!(
            text(&out).contains("no cache here"),
            "{sub}: {}",
            text(&out)
        );
        assert!(!typo.exists(), "{sub} created {}", typo.display());
    }
}

#[test]
fn a_flipped_byte_in_the_cache_never_reaches_an_image() {
    let s = setup();
    let cache = s.dir.path().join("cache");
    let (out, _) = s.build(&cache, "1.img", &[]);
    assert!(out.status.success(), "{}", text(&out));
    let data = cache.join("data");
    let big = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("big.bin"))
        .unwrap();
    let mut bytes = std::fs::read(&big).unwrap();
    bytes[1234] ^= 0x40;
    std::fs::write(&big, &bytes).unwrap();

    // Offline: refused, exit 4, nothing written.
    let (out, img) = s.build(&cache, "2.img", &["--offline"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains("corrupt"), "{}", text(&out));
    assert!(!img.exists());
    // The warning reaches the operator through the progress stream (a JSON message), not as a raw
    // (coloured) log line on stderr.
    assert!(
        warnings(&out).iter().any(|w| w.contains("damaged")),
        "{}",
        text(&out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("WARN") && !stderr.contains('\u{1b}'),
        "raw log lines: {stderr}"
    );
    // Online: downloaded again, the image holds the right bytes.
    let gets = s.content_gets();
    let (out, img) = s.build(&cache, "3.img", &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        s.content_gets() > gets,
        "the corrupt entry was not re-downloaded"
    );
    s.assert_content(&img);
}

#[test]
fn two_builds_share_one_cache_at_the_same_time() {
    let s = setup();
    let cache = s.dir.path().join("cache");
    let cfg = s.config();
    let spawn = |name: &str| {
        Command::new(bin())
            .args([
                "--cache-dir",
                cache.to_str().unwrap(),
                cfg.to_str().unwrap(),
                s.dir.path().join(name).to_str().unwrap(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn("a.img"), spawn("b.img"));
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success(), "{}", text(&a));
    assert!(b.status.success(), "{}", text(&b));
    s.assert_content(&s.dir.path().join("a.img"));
    s.assert_content(&s.dir.path().join("b.img"));
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cache.join("index.json")).unwrap()).unwrap();
    let entries = index["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3, "{index}");
    for e in entries {
        assert!(cache.join("data").join(e["id"].as_str().unwrap()).is_file());
    }
    let out = run(&["cache", "verify", "--cache-dir", cache.to_str().unwrap()]);
    assert!(
        text(&out).contains("3 entries verified, 0 corrupt"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_build_killed_mid_download_leaves_nothing_servable() {
    let s = setup();
    let cache = s.dir.path().join("cache");
    s.server.fault(
        "/big.bin",
        Fault::Stall {
            after: 500_000,
            times: 1,
        },
    );
    let cfg = s.config();
    let mut child = Command::new(bin())
        .args([
            "--cache-dir",
            cache.to_str().unwrap(),
            cfg.to_str().unwrap(),
            s.dir.path().join("k.img").to_str().unwrap(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !s
        .server
        .requests()
        .iter()
        .any(|r| r.path == "/big.bin" && r.method == "GET")
    {
        assert!(start.elapsed() < Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let index = std::fs::read_to_string(cache.join("index.json")).unwrap_or_default();
    assert!(
        !index.contains("big.bin"),
        "a killed download was indexed: {index}"
    );
    let (out, img) = s.build(&cache, "after.img", &[]);
    assert!(out.status.success(), "{}", text(&out));
    s.assert_content(&img);
}

#[test]
fn show_marks_what_the_policy_would_evict_and_apply_evicts_it() {
    let s = setup();
    let cache = s.dir.path().join("cache");
    let (out, _) = s.build(&cache, "1.img", &[]);
    assert!(out.status.success(), "{}", text(&out));
    // A policy written by the user: at most 2 files, evicting the largest first.
    std::fs::write(
        cache.join("policy.yaml"),
        "max_size: 1GiB\nfiles:\n  max_num: 2\n  eviction: largest\n",
    )
    .unwrap();
    let out = run(&["cache", "show", "--cache-dir", cache.to_str().unwrap()]);
    let last = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    let json: serde_json::Value = serde_json::from_str(&last).unwrap();
    let table = json["summary"].as_str().unwrap().to_string();
    assert!(table.contains("3 entries"), "{table}");
    let marked: Vec<&str> = table.lines().filter(|l| l.starts_with('*')).collect();
    assert_eq!(marked.len(), 1, "{table}");
    assert!(
        marked[0].contains("big.bin") && marked[0].contains("max_num 2"),
        "{table}"
    );
    let out = run(&["cache", "apply", "--cache-dir", cache.to_str().unwrap()]);
    assert!(text(&out).contains("1 entries evicted"), "{}", text(&out));
    let index = std::fs::read_to_string(cache.join("index.json")).unwrap();
    assert!(
        !index.contains("big.bin") && index.contains("small.txt"),
        "{index}"
    );
}

/// Progress names what the user wrote (the `to` path, the URL), never a cache file: an archive expanded
/// from the cache is labelled by where it lands.
#[test]
fn progress_never_shows_cache_file_names() {
    let s = setup();
    let archive =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo-content.tar.gz");
    s.server.add_file("/site.tar.gz", &archive);
    let cfg = s.dir.path().join("site.yaml");
    std::fs::write(
        &cfg,
        format!(
            "base: {}\nfiles:\n  - url: {}\n    to: /data/contents/www\n    via: gztar\n    size: 64KiB\n",
            s.server.url("/base.img.xz"),
            s.server.url("/site.tar.gz")
        ),
    )
    .unwrap();
    let cache = s.dir.path().join("cache");
    for name in ["1.img", "2.img"] {
        let out = run(&[
            "--cache-dir",
            cache.to_str().unwrap(),
            cfg.to_str().unwrap(),
            s.dir.path().join(name).to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", text(&out));
        let ids: Vec<String> = std::fs::read_dir(cache.join("data"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let labels: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["label"].as_str().map(str::to_string))
            .collect();
        for label in &labels {
            assert!(
                !ids.iter().any(|id| label.contains(id.as_str())),
                "a cache file name in {label:?}"
            );
        }
        assert!(
            labels.iter().any(|l| l == "/data/contents/www"),
            "{labels:?}"
        );
    }
}

/// A folder that is not a cache is refused (exit 3) and nothing in it is touched: the tidying would
/// otherwise delete every file it does not list. A cache made by an earlier version (an index, no tag) is
/// adopted.
#[test]
fn a_folder_that_is_not_a_cache_is_refused_and_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("d");
    std::fs::create_dir_all(folder.join("data")).unwrap();
    std::fs::create_dir_all(folder.join("tmp")).unwrap();
    std::fs::write(folder.join("data/thesis.odt"), b"four years of work").unwrap();
    let old = folder.join("tmp/draft.txt");
    std::fs::write(&old, b"draft").unwrap();
    sh(&format!("touch -d '1 hour ago' {}", old.display()));
    for sub in ["apply", "verify", "show"] {
        let out = run(&["cache", sub, "--cache-dir", folder.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(3), "{sub}: {}", text(&out));
        assert!(
            text(&out).contains("not an image-creator cache"),
            "{}",
            text(&out)
        );
    }
    assert_eq!(
        std::fs::read(folder.join("data/thesis.odt")).unwrap(),
        b"four years of work"
    );
    assert!(old.exists());
    assert!(!folder.join("CACHEDIR.TAG").exists());

    let cache = dir.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    let out = run(&["cache", "apply", "--cache-dir", cache.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(cache.join("CACHEDIR.TAG").is_file());
    std::fs::remove_file(cache.join("CACHEDIR.TAG")).unwrap();
    let out = run(&["cache", "show", "--cache-dir", cache.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "an untagged cache of an earlier version: {}",
        text(&out)
    );
}
