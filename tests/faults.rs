//! Network faults injected by a real HTTP server on loopback, seen through the real binary.

mod support;

use support::fixtures::*;
use support::http_server::{Fault, TestServer};

struct Setup {
    dir: tempfile::TempDir,
    server: TestServer,
    payload: Vec<u8>,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start();
    server.add_file("/base.img.xz", demo_base_xz());
    let payload: Vec<u8> = (0..4_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    server.add("/big.bin", payload.clone());
    Setup {
        dir,
        server,
        payload,
    }
}

fn config(s: &Setup, extra_file: &str) -> std::path::PathBuf {
    let text = format!(
        "base: {}\nfiles:\n  - url: {}\n    to: /data/big.bin\n{extra_file}",
        s.server.url("/base.img.xz"),
        s.server.url("/big.bin")
    );
    let path = s.dir.path().join("config.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn build(s: &Setup, cfg: &std::path::Path) -> (std::process::Output, std::path::PathBuf) {
    let img = s.dir.path().join("out.img");
    (run(&[cfg.to_str().unwrap(), img.to_str().unwrap()]), img)
}

#[test]
fn dropped_connection_is_resumed_with_range() {
    let s = setup();
    s.server.fault(
        "/big.bin",
        Fault::DropAfter {
            bytes: 1_000_000,
            times: 1,
        },
    );
    let cfg = config(&s, "");
    let (out, img) = build(&s, &cfg);
    assert!(out.status.success(), "{}", text(&out));
    let ranged = s
        .server
        .requests()
        .iter()
        .filter(|r| r.path == "/big.bin" && r.range.is_some())
        .count();
    assert!(
        ranged >= 1,
        "no Range request after the drop: {:?}",
        s.server.requests()
    );
    assert!(debugfs_cat(&img, p3_offset(&img), "/big.bin") == s.payload);
}

#[test]
fn server_errors_are_retried() {
    let s = setup();
    s.server.fault(
        "/big.bin",
        Fault::Status {
            code: 500,
            times: 2,
        },
    );
    let cfg = config(&s, "");
    let (out, img) = build(&s, &cfg);
    assert!(out.status.success(), "{}", text(&out));
    let gets = s
        .server
        .requests()
        .iter()
        .filter(|r| r.path == "/big.bin" && r.method == "GET")
        .count();
    assert!(gets >= 3, "expected 2 failed GETs then a good one");
    assert!(debugfs_cat(&img, p3_offset(&img), "/big.bin") == s.payload);
}

#[test]
fn missing_file_is_unreachable_and_named() {
    let s = setup();
    let cfg = s.dir.path().join("config.yaml");
    let missing = s.server.url("/nope.zim");
    std::fs::write(
        &cfg,
        format!(
            "base: {}\nfiles:\n  - url: {missing}\n    to: /data/x\n",
            s.server.url("/base.img.xz")
        ),
    )
    .unwrap();
    let (out, img) = build(&s, &cfg);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains(&missing), "{}", text(&out));
    assert!(!img.exists());
}

#[test]
fn wrong_checksum_fails_and_names_the_file() {
    let s = setup();
    let cfg = config(
        &s,
        &format!(
            "    checksum: {{algo: sha-256, value: {}}}\n",
            "ab".repeat(32)
        ),
    );
    let (out, img) = build(&s, &cfg);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("big.bin"), "{}", text(&out));
    assert!(!img.exists());
    assert!(std::fs::read_dir(s.dir.path()).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .contains(".partial")));
}
