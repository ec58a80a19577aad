//! Run-level behaviour: warnings about what the card will lack, and a clean stop on SIGINT.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::fixtures::*;
use support::http_server::{Fault, TestServer};

#[test]
fn compose_gaps_are_warned_about_but_build() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        format!(
            "base: {}\noffspot:\n  containers:\n    services:\n      web:\n        image: example.org/not/embedded:1\n\
             \x20       ports: [\"80:80\"]\n        volumes: [\"/data/nowhere:/srv:ro\"]\n      base:\n\
             \x20       image: ghcr.io/offspot/base-httpd:1.0\n",
            demo_base().display()
        ),
    )
    .unwrap();
    let img = dir.path().join("out.img");
    let out = run(&[cfg.to_str().unwrap(), img.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let warnings = warnings(&out);
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[0].contains("example.org/not/embedded:1"),
        "{warnings:?}"
    );
    assert!(warnings[1].contains("/data/nowhere"), "{warnings:?}");
}

#[test]
fn sigint_during_download_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start();
    server.add_file("/base.img.xz", demo_base_xz());
    server.add("/slow.bin", vec![7u8; 2_000_000]);
    server.fault(
        "/slow.bin",
        Fault::Stall {
            after: 100_000,
            times: 100,
        },
    );
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        format!(
            "base: {}\nfiles:\n  - url: {}\n    to: /data/slow.bin\n",
            server.url("/base.img.xz"),
            server.url("/slow.bin")
        ),
    )
    .unwrap();
    let build_dir = dir.path().join("bd");
    std::fs::create_dir(&build_dir).unwrap();
    let img = dir.path().join("out.img");
    let mut child = Command::new(bin())
        .args([
            "--build-dir",
            build_dir.to_str().unwrap(),
            cfg.to_str().unwrap(),
            img.to_str().unwrap(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the slow download has really started, then interrupt.
    let start = Instant::now();
    while !server
        .requests()
        .iter()
        .any(|r| r.path == "/slow.bin" && r.method == "GET")
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "download never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let waited = Instant::now();
    let status = child.wait().unwrap();
    assert!(
        waited.elapsed() < Duration::from_secs(10),
        "took {:?} to stop",
        waited.elapsed()
    );
    assert_eq!(status.code(), Some(1));
    assert!(!img.exists());
    assert_eq!(
        std::fs::read_dir(&build_dir).unwrap().count(),
        0,
        "build dir left dirty"
    );
}
