//! Bad inputs: each gives a clear message and its documented exit code, never a panic, and an existing
//! OUTPUT (given with -X) survives every one of them untouched, as it survives every --check.

mod support;

use std::path::Path;

use support::fixtures::*;
use support::http_server::TestServer;

struct Case {
    name: &'static str,
    config: String,
    extra_args: Vec<String>,
    code: i32,
    needle: String,
}

fn case(
    name: &'static str,
    config: impl Into<String>,
    code: i32,
    needle: impl Into<String>,
) -> Case {
    Case {
        name,
        config: config.into(),
        extra_args: vec![],
        code,
        needle: needle.into(),
    }
}

const OK_OFFSPOT: &str = "offspot:\n  containers:\n    services:\n      web:\n        image: ghcr.io/offspot/base-httpd:1.0\n        ports: [\"80:80\"]\n";

fn hostile_archives(dir: &Path) {
    python(&format!(
        r#"
import io, tarfile, gzip, os
d = {d:?}
def tar(name, members):
    with tarfile.open(os.path.join(d, name), "w") as t:
        for info, data in members:
            t.addfile(info, io.BytesIO(data) if data is not None else None)
def reg(n, data=b"x"):
    i = tarfile.TarInfo(n); i.size = len(data); return (i, data)
def link(n, target, kind=tarfile.SYMTYPE):
    i = tarfile.TarInfo(n); i.type = kind; i.linkname = target; return (i, None)
tar("dotdot.tar", [reg("ok.txt"), reg("../../evil.txt")])
tar("absolute.tar", [reg("/etc/evil.txt")])
tar("symlink.tar", [link("esc", "../../../../etc"), reg("esc/passwd")])
tar("symlink-only.tar", [link("esc", "../../../../etc/passwd")])
dev = tarfile.TarInfo("null"); dev.type = tarfile.CHRTYPE; dev.devmajor = 1; dev.devminor = 3
tar("device.tar", [(dev, None)])
with tarfile.open(os.path.join(d, "bomb.tar.gz"), "w:gz") as t:
    data = b"\0" * 8_000_000
    i = tarfile.TarInfo("zeros"); i.size = len(data); t.addfile(i, io.BytesIO(data))
"#,
        d = dir.display().to_string()
    ));
}

#[test]
fn bad_inputs_give_clear_errors_and_leave_output_alone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let base = d.join("base.img");
    std::fs::copy(demo_base(), &base).unwrap();
    hostile_archives(d);
    let b = base.display().to_string();
    // A truncated base and a base that is not a disk image.
    let half = std::fs::metadata(&base).unwrap().len() / 2;
    sh(&format!(
        "head -c {half} {b} > {d}/truncated.img",
        d = d.display()
    ));
    sh(&format!(
        "head -c 1048576 /dev/urandom > {}/noise.img",
        d.display()
    ));
    let server = TestServer::start();
    let archive = |name: &str, size: &str| {
        format!("base: {b}\nfiles:\n  - url: {}/{name}\n    to: /data/x\n    via: {}\n    size: {size}\n", d.display(), if name.ends_with(".gz") { "gztar" } else { "tar" })
    };

    let mut cases = vec![
        case("broken yaml", format!("base: {b}\nfiles: [\n"), 3, "config.yaml:"),
        case("unknown key did-you-mean", format!("base: {b}\nwite_config: true\n"), 3, "did you mean `write_config`"),
        case("missing base", "files: []\n", 3, "base"),
        case("bad output size", format!("base: {b}\noutput:\n  size: banana\n"), 3, "output.size"),
        case("to outside /data", format!("base: {b}\nfiles:\n  - to: /etc/passwd\n    content: x\n"), 3, "files[0].to"),
        case("to escapes with ..", format!("base: {b}\nfiles:\n  - to: /data/../etc/x\n    content: x\n"), 3, "files[0].to"),
        case("duplicate to", format!("base: {b}\nfiles:\n  - to: /data/a\n    content: x\n  - to: /data/./a\n    content: y\n"), 3, "files[1].to"),
        case("unknown via", format!("base: {b}\nfiles:\n  - to: /data/a\n    url: http://x/y\n    via: rar\n"), 3, "files[0].via"),
        case("invalid base64", format!("base: {b}\nfiles:\n  - to: /data/a\n    content: '!!!not base64'\n    via: base64\n"), 3, "files[0]"),
        case("bad checksum algo", format!("base: {b}\nfiles:\n  - to: /data/a\n    url: http://x/y\n    checksum: {{algo: crc32, value: abcd}}\n"), 3, "checksum"),
        case("root_size and rootfs_size", format!("base:\n  source: {b}\n  root_size: 1G\n  rootfs_size: 1G\n"), 3, "root"),
        case("archive with ..", archive("dotdot.tar", "1MiB"), 3, "evil.txt"),
        case("archive with absolute member", archive("absolute.tar", "1MiB"), 3, "/etc/evil.txt"),
        case("archive symlink escape", archive("symlink.tar", "1MiB"), 3, "esc"),
        case("archive symlink pointing outside", archive("symlink-only.tar", "1MiB"), 3, "esc"),
        case("archive device node", archive("device.tar", "1MiB"), 3, "null"),
        case("archive bomb over declared size", archive("bomb.tar.gz", "1MiB"), 3, "1048576"),
        case("truncated base", format!("base: {}/truncated.img\n", d.display()), 3, "truncated"),
        case("base is not an MBR image", format!("base: {}/noise.img\n", d.display()), 3, "noise.img"),
        case("base file missing", format!("base: {}/nope.img\n", d.display()), 4, "nope.img"),
        case("output too small", format!("base: {b}\noutput:\n  size: 1MiB\n"), 3, "output.size"),
        case("bad timezone", format!("base: {b}\noffspot:\n  timezone: 'Africa/Bamako!'\n"), 3, "offspot.timezone"),
        case("ssid too long", format!("base: {b}\noffspot:\n  ap:\n    ssid: {}\n", "x".repeat(40)), 3, "offspot.ap.ssid"),
        case("passphrase too short", format!("base: {b}\noffspot:\n  ap:\n    ssid: ok\n    passphrase: short\n"), 3, "offspot.ap.passphrase"),
        case("compose without port 80", format!("base: {b}\noffspot:\n  containers:\n    services:\n      web:\n        image: x/y:1\n        ports: [\"8080:8080\"]\n"), 3, "80"),
        case("unquoted 80:30 is 4830 in YAML 1.1", format!("base: {b}\noffspot:\n  containers:\n    services:\n      web:\n        image: x/y:1\n        ports: [80:30]\n"), 3, "4830"),
        case("unsupported scheme", format!("base: {b}\nfiles:\n  - to: /data/a\n    url: ftp://example.org/a\n"), 3, "ftp://"),
        case("file URL 404", format!("base: {b}\nfiles:\n  - to: /data/a\n    url: {}\n", server.url("/missing.bin")), 4, "missing.bin"),
        case("valid offspot, file too big for output.size", format!("base: {b}\noutput:\n  size: 70MiB\n{OK_OFFSPOT}files:\n  - to: /data/a\n    content: x\n"), 3, "output.size"),
    ];
    let mut c = case("max-size exceeded", format!("base: {b}\n"), 3, "--max-size");
    c.extra_args = vec!["--max-size".into(), "10MB".into()];
    cases.push(c);
    let mut c = case(
        "bad concurrency option",
        format!("base: {b}\n"),
        3,
        "concurrency",
    );
    c.extra_args = vec!["-T".into(), "many".into()];
    cases.push(c);
    let mut c = case("config URL 404", String::new(), 4, "nothere.yaml");
    c.extra_args = vec!["@config".into(), server.url("/nothere.yaml")];
    cases.push(c);

    let output = d.join("existing.img");
    let sentinel = b"precious pre-existing output".to_vec();
    let mut failures = Vec::new();
    for c in &cases {
        std::fs::write(&output, &sentinel).unwrap();
        let cfg = d.join("config.yaml");
        std::fs::write(&cfg, &c.config).unwrap();
        let mut args: Vec<String> = vec!["-X".into()];
        let mut config_arg = cfg.display().to_string();
        let mut rest = c.extra_args.clone();
        if rest.first().map(String::as_str) == Some("@config") {
            config_arg = rest[1].clone();
            rest.clear();
        }
        args.extend(rest);
        args.push(config_arg);
        args.push(output.display().to_string());
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run(&argv);
        let msg = text(&out);
        let mut problems = vec![];
        if out.status.code() != Some(c.code) {
            problems.push(format!("exit {:?}, expected {}", out.status.code(), c.code));
        }
        if !msg.contains(&c.needle) {
            problems.push(format!("message lacks `{}`", c.needle));
        }
        if msg.contains("panicked") {
            problems.push("panicked".into());
        }
        if std::fs::read(&output).unwrap() != sentinel {
            problems.push("existing OUTPUT was altered".into());
        }
        if let Some(stray) = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .find(|n| n.to_string_lossy().contains(".partial"))
        {
            problems.push(format!("left {stray:?} behind"));
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{}: {}\n    output: {}",
                c.name,
                problems.join("; "),
                msg.trim()
            ));
        }
    }
    assert!(cases.len() >= 25);
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn existing_output_without_overwrite_is_refused_and_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(&cfg, format!("base: {}\n", demo_base().display())).unwrap();
    let output = dir.path().join("out.img");
    std::fs::write(&output, "keep me").unwrap();
    for extra in [vec![], vec!["--check"]] {
        let mut args = extra.clone();
        args.extend([cfg.to_str().unwrap(), output.to_str().unwrap()]);
        let out = run(&args);
        assert_eq!(out.status.code(), Some(3), "{}", text(&out));
        assert!(text(&out).contains("--overwrite"), "{}", text(&out));
        assert_eq!(std::fs::read(&output).unwrap(), b"keep me");
    }
}

#[test]
fn check_writes_nothing_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = demo_config(dir.path(), "files:\n  - to: /data/a\n    content: hi\n");
    let output = dir.path().join("out.img");
    std::fs::write(&output, "keep me").unwrap();
    let build_dir = dir.path().join("never-created");
    let out = run(&[
        "-C",
        "-X",
        "--build-dir",
        build_dir.to_str().unwrap(),
        cfg.to_str().unwrap(),
        output.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read(&output).unwrap(), b"keep me");
    assert!(!build_dir.exists());
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    // And a fresh OUTPUT is not created by --check.
    let fresh = dir.path().join("fresh.img");
    let out = run(&["--check", cfg.to_str().unwrap(), fresh.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!fresh.exists());
}

#[test]
fn user_build_dir_is_kept_and_cleaned_of_our_files_only() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = demo_config(dir.path(), "files:\n  - to: /data/a\n    content: hi\n");
    let build_dir = dir.path().join("bd");
    std::fs::create_dir(&build_dir).unwrap();
    std::fs::write(build_dir.join("mine.txt"), "user file").unwrap();
    let output = dir.path().join("out.img");
    let out = run(&[
        "--build-dir",
        build_dir.to_str().unwrap(),
        cfg.to_str().unwrap(),
        output.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let names: Vec<_> = std::fs::read_dir(&build_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("mine.txt")]);
}

#[test]
fn keep_leaves_the_partial_output_on_failure() {
    let dir = tempfile::tempdir().unwrap();
    hostile_archives(dir.path());
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        format!(
            "base: {}\nfiles:\n  - url: {}/bomb.tar.gz\n    to: /data/x\n    via: gztar\n    size: 1MiB\n",
            demo_base().display(),
            dir.path().display()
        ),
    )
    .unwrap();
    let output = dir.path().join("out.img");
    let out = run(&[cfg.to_str().unwrap(), output.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(!output.exists());
    let out = run(&["-K", cfg.to_str().unwrap(), output.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(output.exists(), "-K keeps the partial image");
}
