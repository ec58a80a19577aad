//! The documented exit codes, pinned per subcommand: 0 ok, 1 failure, 2 missing requirement (here: no
//! permission on a device), 3 bad input, 4 unreachable source. Each case is a real run of the binary.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};

use support::fixtures::*;

/// A loop device whose medium runs out after 512 KiB (sparse backing file on a small tmpfs): writes fail.
struct Dying {
    _lo: Loop,
    dev: String,
    _mnt: Unmount,
}

fn dying(dir: &Path) -> Dying {
    let mnt = dir.join("tiny");
    std::fs::create_dir(&mnt).unwrap();
    sh(&format!(
        "mount -t tmpfs -o size=512K tmpfs {}",
        mnt.display()
    ));
    let mnt = Unmount(mnt);
    let backing = mnt.0.join("dying");
    sh(&format!("truncate -s 160M {}", backing.display()));
    let lo = Loop::attach(&backing);
    Dying {
        dev: lo.0.clone(),
        _lo: lo,
        _mnt: mnt,
    }
}

/// Runs the binary as `nobody` (no permission on devices).
fn run_as_nobody(args: &[&str]) -> std::process::Output {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", bin()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn expect(what: &str, out: &std::process::Output, code: i32) {
    assert_eq!(out.status.code(), Some(code), "{what}: {}", text(out));
}

#[test]
fn build_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    sh(&format!("chmod 755 {}", dir.path().display()));
    let cfg = demo_config(dir.path(), "");
    let cfg = cfg.to_str().unwrap();
    let out_img = dir.path().join("o.img");
    let out = out_img.to_str().unwrap();
    expect("a good config, --check", &run(&["-C", cfg, out]), 0);
    // A round nominal card size is warned about (many "8 GB" cards hold less).
    let sub = dir.path().join("nominal");
    std::fs::create_dir(&sub).unwrap();
    let nominal = demo_config(&sub, "output:\n  size: 8GB\n");
    let o = run(&["-C", nominal.to_str().unwrap(), out]);
    expect("output.size 8GB, --check", &o, 0);
    assert!(
        warnings(&o).iter().any(|w| w.contains("nominal size")),
        "{}",
        text(&o)
    );

    let d = dying(dir.path());
    expect(
        "a card that fails mid-write",
        &run(&["--yes", "--force", cfg, &d.dev]),
        1,
    );
    drop(d);

    let card = dir.path().join("card");
    sh(&format!("truncate -s 160M {}", card.display()));
    let lo = Loop::attach(&card);
    sh(&format!("chmod 644 {cfg}"));
    expect(
        "no permission on the card",
        &run_as_nobody(&["--yes", "--force", cfg, &lo.0]),
        2,
    );
    drop(lo);

    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "base: [unclosed\n").unwrap();
    expect("invalid YAML", &run(&[bad.to_str().unwrap(), out]), 3);
    let missing = dir.path().join("nothere.yaml");
    expect(
        "a config file that is not there",
        &run(&[missing.to_str().unwrap(), out]),
        3,
    );
    let corrupt = dir.path().join("corrupt.img.xz");
    let mut xz = std::fs::read(demo_base_xz()).unwrap();
    let mid = xz.len() / 2;
    xz[mid] ^= 0xff;
    std::fs::write(&corrupt, xz).unwrap();
    let cfg2 = dir.path().join("corrupt.yaml");
    std::fs::write(&cfg2, format!("base: {}\n", corrupt.display())).unwrap();
    let o = run(&[cfg2.to_str().unwrap(), out]);
    expect("a corrupt base", &o, 3);
    assert!(text(&o).contains("corrupt.img.xz"), "{}", text(&o));
    expect(
        "a config URL that does not answer",
        &run(&["http://127.0.0.1:1/config.yaml", out]),
        4,
    );
    assert!(!out_img.exists());
}

#[test]
fn write_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    sh(&format!("chmod 755 {}", dir.path().display()));
    let img = dir.path().join("demo.img");
    expect(
        "make-demo-base",
        &run(&["make-demo-base", img.to_str().unwrap()]),
        0,
    );
    expect(
        "make-demo-base onto an existing file",
        &run(&["make-demo-base", img.to_str().unwrap()]),
        3,
    );
    let img = img.to_str().unwrap();
    let card = dir.path().join("card");
    std::fs::write(&card, vec![0xAAu8; 96 << 20]).unwrap();
    let lo = Loop::attach(&card);
    let ok = run(&["write", "--yes", "--force", img, &lo.0]);
    expect("a good card", &ok, 0);
    // The summary table: a header over every column, one unit system (binary).
    let summary = text(&ok);
    for h in [
        "device",
        "result",
        "written",
        "write",
        "verify",
        "card (model, capacity, bus)",
    ] {
        assert!(summary.contains(h), "no {h:?} header: {summary}");
    }
    assert!(
        summary.contains("MiB/s") && !summary.contains("MB/s"),
        "{summary}"
    );
    let d = dying(dir.path());
    expect(
        "a card that fails mid-write",
        &run(&["write", "--yes", "--force", img, &d.dev]),
        1,
    );
    drop(d);
    sh(&format!("chmod 644 {img}"));
    expect(
        "no permission on the card",
        &run_as_nobody(&["write", "--yes", "--force", img, &lo.0]),
        2,
    );
    let missing = dir.path().join("nothere.img");
    expect(
        "an image that is not there",
        &run(&[
            "write",
            "--yes",
            "--force",
            missing.to_str().unwrap(),
            &lo.0,
        ]),
        3,
    );
    expect(
        "a fixed disk without --force",
        &run(&["write", "--yes", img, &lo.0]),
        3,
    );
}

#[test]
fn cache_and_oci_sizes_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let c = cache.to_str().unwrap();
    expect(
        "apply where there is no cache",
        &run(&["cache", "apply", "--cache-dir", c]),
        3,
    );
    std::fs::create_dir(&cache).unwrap();
    expect(
        "show on a new cache",
        &run(&["cache", "show", "--cache-dir", c]),
        0,
    );
    expect(
        "verify on a new cache",
        &run(&["cache", "verify", "--cache-dir", c]),
        0,
    );
    std::fs::write(cache.join("index.json"), "garbage").unwrap();
    expect(
        "a corrupt index",
        &run(&["cache", "show", "--cache-dir", c]),
        1,
    );
    let missing = dir.path().join("nothere");
    expect(
        "no cache there",
        &run(&["cache", "show", "--cache-dir", missing.to_str().unwrap()]),
        3,
    );

    let tar = dir.path().join("app.tar");
    docker_archive(&tar, "example.org/app:1.0");
    expect(
        "a docker-archive",
        &run(&["oci-sizes", tar.to_str().unwrap()]),
        0,
    );
    expect(
        "a bad reference",
        &run(&["oci-sizes", "Not A Reference"]),
        3,
    );
    expect(
        "a registry that does not answer",
        &run(&["oci-sizes", "127.0.0.1:1/app/web:1"]),
        4,
    );
}
