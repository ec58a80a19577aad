//! Tests against the real e2fsprogs (Debian package e2fsprogs), as root where a loop device or a
//! second user is needed.

mod mkfs;
mod overhead;
mod tree;
mod unprivileged;

use super::run::{self, Opts};
use super::*;
use crate::progress::Progress;
use crate::CancellationToken;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;

fn tools() -> Tools {
    Tools::find().expect("e2fsprogs must be installed for these tests")
}

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ext4-test")
        .tempdir()
        .expect("tempdir")
}

/// Deterministic non-zero bytes, different for each `seed`.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i % 251) as u8).wrapping_add(seed) | 1)
        .collect()
}

fn mkfs_plain<'a>(target: &'a Path, offset: u64, size: u64, src: Option<&'a Path>) -> Mkfs<'a> {
    Mkfs {
        target,
        offset,
        size,
        label: "data",
        inode_ratio: 65536,
        reserved_pct: 1,
        source_dir: src,
        source_bytes: 0,
    }
}

fn sh(script: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "`{script}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

use crate::testutil::Loop;

#[test]
fn version_banner_parsing() {
    let v =
        Version::parse_banner("mke2fs 1.47.0 (5-Feb-2023)\n\tUsing EXT2FS Library version 1.47.0")
            .unwrap();
    assert_eq!((v.major, v.minor, v.patch), (1, 47, 0));
    let v = Version::parse_banner("mke2fs 1.46.6-rc1 (1-Feb-2023)").unwrap();
    assert_eq!(v.to_string(), "1.46.6");
    assert!(Version::parse_banner("mke2fs 1.42.9 (28-Dec-2013)").unwrap() < MIN_VERSION);
    assert!(Version::parse_banner("mkfs.ext4: whatever").is_none());
}

#[test]
fn find_reports_missing_tool_as_missing_requirement() {
    let dir = tmp();
    let err = Tools::find_in(&[dir.path().to_path_buf()]).unwrap_err();
    assert!(
        matches!(err, Ext4Error::MissingTool { tool: "mke2fs", .. }),
        "{err}"
    );
    assert_eq!(err.class(), ErrorClass::MissingRequirement);
    assert_eq!(err.class().exit_code(), 2);
    assert!(err.to_string().contains("e2fsprogs"), "{err}");
}

#[test]
fn find_rejects_old_mke2fs() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tmp();
    for (tool, body) in [
        ("mke2fs", "echo 'mke2fs 1.42.9 (28-Dec-2013)' >&2"),
        ("debugfs", "true"),
        ("e2fsck", "true"),
    ] {
        let p = dir.path().join(tool);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let err = Tools::find_in(&[dir.path().to_path_buf()]).unwrap_err();
    assert!(
        matches!(&err, Ext4Error::ToolTooOld { found, .. } if found == "1.42.9"),
        "{err}"
    );
    assert_eq!(err.class(), ErrorClass::MissingRequirement);
}

#[test]
fn find_locates_real_tools() {
    let t = tools();
    assert!(t.version() >= MIN_VERSION);
    assert!(t.mke2fs_path().ends_with("mke2fs"));
    assert!(t.debugfs_path().ends_with("debugfs"));
    assert!(t.e2fsck_path().ends_with("e2fsck"));
}

#[test]
fn debugfs_quoting() {
    assert_eq!(debugfs::quote(b"/a b"), b"\"/a b\"");
    assert_eq!(debugfs::quote(b"/q\"t"), b"\"/q\"\"t\"");
    assert_eq!(debugfs::quote(b"/b\\s"), b"\"/b\\s\"");
}

#[test]
fn unprivileged_rdump_complaints_are_dropped() {
    let mut f = debugfs::chown_complaint_filter();
    let lines = [
        ("debugfs 1.47.0 (5-Feb-2023)", true),
        (
            "rdump: Operation not permitted while changing ownership of /o//a",
            true,
        ),
        (
            "dump_file: Operation not permitted while changing ownership of /o//new",
            true,
        ),
        ("line", true), // the rest of a name containing LF
        ("rdump: Is a directory while writing /o/x", false),
        ("more", false), // continuation of a real error
        (
            "dump_file: Operation not permitted while changing ownership of /o//b",
            true,
        ),
    ];
    for (line, dropped) in lines {
        assert_eq!(f(line), dropped, "{line}");
    }
}

#[test]
fn stat_fields() {
    let text = "Inode: 12   Type: regular    Mode:  0644   Flags: 0x80000\n\
                User: 100000   Group:     7   Project:     0   Size: 3\n";
    assert_eq!(debugfs::stat_field::<u32>(text, "User:"), Some(100000));
    assert_eq!(debugfs::stat_field::<u32>(text, "Group:"), Some(7));
    assert_eq!(debugfs::stat_field::<u64>(text, "Inode:"), Some(12));
    assert_eq!(debugfs::stat_field::<u32>(text, "Links:"), None);
}

#[test]
fn command_line_is_shell_quoted() {
    let mut cmd = Command::new("/usr/sbin/mke2fs");
    cmd.env("MKE2FS_CONFIG", "/tmp/x.conf").args([
        "-L",
        "my data",
        "-E",
        "offset=1,nodiscard",
        "it's",
    ]);
    assert_eq!(
        run::command_line(&cmd),
        "MKE2FS_CONFIG=/tmp/x.conf /usr/sbin/mke2fs -L 'my data' -E offset=1,nodiscard 'it'\\''s'"
    );
}

#[test]
fn mkfs_command_line() {
    let t = tools();
    let m = Mkfs {
        source_dir: Some(Path::new("/stage")),
        ..mkfs_plain(Path::new("-out.img"), 4 * MIB, 64 * MIB, None)
    };
    let line = run::command_line(&t.mkfs_command(&m, Path::new("/c")));
    let expected = format!(
        "MKE2FS_CONFIG=/c {} -t ext4 -F -q -b 4096 -I 256 -L data -m 1 -i 65536 \
         -E offset=4194304,nodiscard,root_owner=0:0 -d /stage ./-out.img 65536k",
        t.mke2fs_path().display()
    );
    assert_eq!(line, expected);
}

#[test]
fn rchar_of_a_live_process() {
    let before = run::read_rchar(std::process::id()).expect("/proc/self/io");
    let _ = std::fs::read("/proc/self/status").unwrap();
    let after = run::read_rchar(std::process::id()).unwrap();
    assert!(after > before);
}

#[test]
fn cancel_kills_a_running_child() {
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        c2.cancel();
    });
    let mut cmd = Command::new("sleep");
    cmd.arg("30");
    let mut opts = Opts::new("sleep");
    opts.cancel = Some(&cancel);
    let mut ticks = 0;
    let start = Instant::now();
    let res = run::run(cmd, opts, |_| ticks += 1);
    canceller.join().unwrap();
    assert!(matches!(res, Err(Ext4Error::Cancelled { tool: "sleep" })));
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(ticks >= 2, "ticks {ticks}");
}

#[test]
fn cancelled_mkfs_returns_cancelled() {
    let t = tools();
    let dir = tmp();
    let img = dir.path().join("c.img");
    let cancel = CancellationToken::new();
    cancel.cancel();
    let err = t
        .mkfs(
            &mkfs_plain(&img, 0, 16 * MIB, None),
            &Progress::silent(),
            &cancel,
        )
        .unwrap_err();
    assert!(
        matches!(err, Ext4Error::Cancelled { tool: "mke2fs" }),
        "{err}"
    );
}

#[test]
fn bounded_capture_keeps_reading() {
    // 10 MiB on stdout with a small limit: the child must not block and only the limit is kept.
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("head -c 10485760 /dev/zero; echo kept >&2; echo banner >&2");
    let mut opts = Opts::new("sh");
    opts.stdout_limit = 1000;
    opts.drop_line = Box::new(|l| l == "banner");
    let out = run::run(cmd, opts, |_| {}).unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout.len(), 1000);
    assert_eq!(out.stderr, "kept\n");
}
