//! End-to-end builds with the real binary: every config feature, judged by e2fsck, fsck.fat, sfdisk,
//! debugfs, mtools and PyYAML; as an unprivileged user; onto a loop device.

mod support;

use std::path::{Path, PathBuf};

use support::fixtures::*;
use support::http_server::TestServer;

const APP_TAG: &str = "ghcr.io/offspot/kiwix-serve:3.8.1";

struct World {
    dir: tempfile::TempDir,
    tree: PathBuf,
}

/// Content used by the feature test: a tree, its archives in every format, a big random file, a
/// docker-archive, a local file.
fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("sub/deep")).unwrap();
    std::fs::write(tree.join("a.txt"), "alpha\n").unwrap();
    std::fs::write(tree.join("sub/deep/c.txt"), "gamma\n").unwrap();
    sh(&format!(
        "head -c 100000 /dev/urandom > {}",
        tree.join("sub/b.bin").display()
    ));
    make_archives(&tree, dir.path());
    sh(&format!(
        "head -c 3000000 /dev/urandom > {}",
        dir.path().join("big.bin").display()
    ));
    docker_archive(&dir.path().join("app.tar"), APP_TAG);
    std::fs::write(dir.path().join("local.txt"), "from a file:// URL\n").unwrap();
    World { dir, tree }
}

fn sha256(path: &Path) -> String {
    sh(&format!("sha256sum {}", path.display()))
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

fn md5(path: &Path) -> String {
    sh(&format!("md5sum {}", path.display()))
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

const OFFSPOT: &str = r#"offspot:
  timezone: Africa/Bamako
  hostname: kiwix-test
  ap:
    ssid: "Kiwix 'Test' ☃"
    passphrase: supersecret
    as-gateway: yes
    hide: off
    domain: kiwix
    tld: offspot
    country: FR
  containers:
    services:
      kiwix:
        image: ghcr.io/offspot/kiwix-serve:3.8.1
        command: /bin/sh -c "kiwix-serve /data/*.zim"
        volumes:
          - "/data/contents:/data:ro"
        ports:
          - "80:80"
        environment:
          MODE: 0755
          SINCE: 2024-01-01
"#;

fn full_config(w: &World, url: &dyn Fn(&str) -> String, base: &str) -> String {
    let d = w.dir.path();
    let app_size = std::fs::metadata(d.join("app.tar")).unwrap().len();
    format!(
        r#"---
base:
  source: {base}
output:
  size: auto
oci_images:
  - ident: {APP_TAG}
    url: {app}
    filesize: {app_size}
    fullsize: {app_size}
files:
  - url: {big}
    to: /data/contents/big.bin
    checksum:
      algo: sha-256
      value: {big_sha}
  - url: file://{local}
    to: /data/contents/local.txt
  - url: {zip}
    to: /data/x/zip
    via: zip
    size: 1MiB
  - url: {tar}
    to: /data/x/tar
    via: tar
    size: 1MiB
  - url: {tgz}
    to: /data/x/gztar
    via: gztar
    size: 1MiB
    checksum: {{algo: md5, value: {tgz_md5}}}
  - url: {tbz}
    to: /data/x/bztar
    via: bztar
    size: 1MiB
  - url: {txz}
    to: /data/x/xztar
    via: xztar
    size: 1MiB
  - to: /data/conf/message.txt
    content: |
      hello
      world
  - to: /data/bin/blob
    via: base64
    content: AAECA/8=
write_config: true
{OFFSPOT}"#,
        app = url("app.tar"),
        big = url("big.bin"),
        big_sha = sha256(&d.join("big.bin")),
        local = d.join("local.txt").display(),
        zip = url("a.zip"),
        tar = url("a.tar"),
        tgz = url("a.tar.gz"),
        tgz_md5 = md5(&d.join("a.tar.gz")),
        tbz = url("a.tar.bz2"),
        txz = url("a.tar.xz"),
    )
}

fn serve(w: &World) -> TestServer {
    let server = TestServer::start();
    server.add_file("/base.img.xz", demo_base_xz());
    server.add_file("/base.img", demo_base());
    for name in [
        "big.bin",
        "a.zip",
        "a.tar",
        "a.tar.gz",
        "a.tar.bz2",
        "a.tar.xz",
        "app.tar",
    ] {
        server.add_file(&format!("/{name}"), &w.dir.path().join(name));
    }
    server
}

/// Every check the acceptance lists, on a finished image.
fn judge(w: &World, img: &Path, config_text: &str) {
    let base = demo_base();
    let (base_id, base_parts) = partitions(base);
    let (id, parts) = partitions(img);
    assert_eq!(id, base_id, "disk id kept");
    assert_eq!(parts[0], base_parts[0], "p1 entry unchanged");
    assert_eq!(parts[1], base_parts[1], "p2 entry unchanged");
    assert_eq!(parts[2].0, base_parts[2].0, "p3 start unchanged");
    let len = std::fs::metadata(img).map(|m| m.len()).unwrap();
    assert_eq!(
        (parts[2].0 + parts[2].1) * 512,
        len,
        "p3 ends on the image's last sector"
    );
    // Only MBR entry 3 may differ.
    let (mbr, base_mbr) = (read_range(img, 0, 512), read_range(base, 0, 512));
    assert_eq!(mbr[..478], base_mbr[..478]);
    assert_eq!(mbr[494..], base_mbr[494..]);
    // p2 byte-identical.
    let (p2_start, p2_len) = (parts[1].0 * 512, parts[1].1 * 512);
    assert!(
        read_range(img, p2_start, p2_len) == read_range(base, p2_start, p2_len),
        "p2 differs from the base"
    );

    let off = parts[2].0 * 512;
    e2fsck(img, off);
    fsck_fat(img, w.dir.path());

    let d = w.dir.path();
    let expect = [
        (
            "/contents/big.bin",
            std::fs::read(d.join("big.bin")).unwrap(),
        ),
        ("/contents/local.txt", b"from a file:// URL\n".to_vec()),
        ("/conf/message.txt", b"hello\nworld\n".to_vec()),
        ("/bin/blob", vec![0, 1, 2, 3, 255]),
        ("/conf/image.yaml", config_text.as_bytes().to_vec()),
        (
            "/images/ghcr.io_offspot_kiwix-serve_3.8.1_linuxarm64v8.tar",
            std::fs::read(d.join("app.tar")).unwrap(),
        ),
    ];
    for (path, bytes) in &expect {
        assert!(
            debugfs_cat(img, off, path) == *bytes,
            "{path}: wrong content"
        );
        assert_eq!(owner(img, off, path), (0, 0), "{path} owned by root");
    }
    for fmt in ["zip", "tar", "gztar", "bztar", "xztar"] {
        for (rel, src) in [
            ("a.txt", "a.txt"),
            ("sub/b.bin", "sub/b.bin"),
            ("sub/deep/c.txt", "sub/deep/c.txt"),
        ] {
            let path = format!("/x/{fmt}/{rel}");
            assert!(
                debugfs_cat(img, off, &path) == std::fs::read(w.tree.join(src)).unwrap(),
                "{path}"
            );
            assert_eq!(owner(img, off, &path), (0, 0), "{path} owned by root");
        }
    }
    // The base's own data partition content is kept.
    assert!(debugfs_stat(img, off, "/master_fs").contains("Type: regular"));
    assert!(!debugfs_cat(img, off, "/images/base-httpd-1.0.tar").is_empty());
    assert_eq!(owner(img, off, "/master_fs"), (0, 0));

    // offspot.yaml as the device reads it (PyYAML) equals the config's offspot: as PyYAML reads it.
    let written = mtype(img, "offspot.yaml");
    let cfg = d.join("cfg-for-python.yaml");
    let got = d.join("offspot-got.yaml");
    std::fs::write(&cfg, config_text).unwrap();
    std::fs::write(&got, &written).unwrap();
    let verdict = python(&format!(
        "import yaml\nwant = yaml.safe_load(open({:?}))['offspot']\ngot = yaml.safe_load(open({:?}))\n\
         print('same' if want == got else f'DIFF {{want!r}} != {{got!r}}')",
        cfg.display().to_string(),
        got.display().to_string()
    ));
    assert_eq!(verdict.trim(), "same", "{written}");
    assert!(sh(&format!(
        "MTOOLS_SKIP_CHECK=1 mdir -i '{}@@{}' ::/",
        img.display(),
        parts[0].0 * 512
    ))
    .contains("offspot.yaml"));
}

/// The feature config over HTTP with the xz base, written next to the content; the server lives as long as
/// the returned handle.
fn served_config() -> (World, TestServer, PathBuf, String) {
    let w = world();
    let server = serve(&w);
    let url = |p: &str| server.url(&format!("/{p}"));
    let cfg_text = full_config(&w, &url, &url("base.img.xz"));
    let cfg = w.dir.path().join("config.yaml");
    std::fs::write(&cfg, &cfg_text).unwrap();
    (w, server, cfg, cfg_text)
}

#[test]
fn every_feature_over_http_from_xz_base() {
    let (w, _server, cfg, cfg_text) = served_config();
    let img = w.dir.path().join("out.img");
    let out = run(&["-T", "3", cfg.to_str().unwrap(), img.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    judge(&w, &img, &cfg_text);
    // Progress is JSON lines when stdout is not a terminal, ending with the result.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines
        .iter()
        .any(|l| l["event"] == "task_started" && l["kind"] == "download"));
    assert!(lines
        .iter()
        .any(|l| l["event"] == "task_started" && l["kind"] == "mke2fs"));
    assert_eq!(lines.last().unwrap()["event"], "finished");
    assert_eq!(lines.last().unwrap()["ok"], true);
    // The sparse output holds far fewer blocks than its length.
    let meta = std::fs::metadata(&img).unwrap();
    assert!(std::os::unix::fs::MetadataExt::blocks(&meta) * 512 < meta.len());
}

#[test]
fn raw_base_over_http_and_config_over_http() {
    let w = world();
    let server = serve(&w);
    let url = |p: &str| server.url(&format!("/{p}"));
    // A config fetched by URL cannot use file:// paths of this machine's test dir portably: keep it.
    let cfg_text = full_config(&w, &url, &url("base.img"));
    server.add("/config.yaml", cfg_text.clone().into_bytes());
    let img = w.dir.path().join("out.img");
    let out = run(&[&url("config.yaml"), img.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    judge(&w, &img, &cfg_text);
}

#[test]
fn unprivileged_user_builds_the_same_image() {
    let w = world();
    // nobody must reach everything: a world-readable dir it owns, with a copy of the binary and inputs.
    let home = tempfile::Builder::new()
        .prefix("ic-nobody-")
        .tempdir()
        .unwrap();
    let h = home.path();
    sh(&format!("chmod 755 {}", h.display()));
    std::fs::copy(bin(), h.join("image-creator")).unwrap();
    std::fs::copy(demo_base_xz(), h.join("base.img.xz")).unwrap();
    let sub = tempfile::tempdir_in(h).unwrap();
    sh(&format!(
        "cp -r {}/. {}/",
        w.dir.path().display(),
        sub.path().display()
    ));
    let wh = World {
        tree: sub.path().join("tree"),
        dir: sub,
    };
    let url = |p: &str| format!("file://{}", wh.dir.path().join(p).display());
    let cfg_text = full_config(&wh, &url, &url("../base.img.xz"));
    std::fs::write(h.join("config.yaml"), &cfg_text).unwrap();
    sh(&format!("chown -R 65534:65534 {}", h.display()));
    let img = h.join("out.img");
    let (ok, out) = sh_status(&format!(
        "cd {h} && env -i PATH=/usr/bin:/bin HOME={h} TMPDIR={h} setpriv --reuid=65534 --regid=65534 --clear-groups \
         ./image-creator config.yaml out.img",
        h = h.display()
    ));
    assert!(ok, "{out}");
    let meta = std::fs::metadata(&img).unwrap();
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&meta),
        65534,
        "output created by the unprivileged user"
    );
    judge(&wh, &img, &cfg_text);
}

#[test]
fn loop_device_as_output_fills_the_device() {
    let (w, _server, cfg, cfg_text) = served_config();
    let card = w.dir.path().join("card.img");
    sh(&format!("truncate -s 160M {}", card.display()));
    let dev = Loop::attach(&card);
    let out = run(&["--yes", "--force", cfg.to_str().unwrap(), &dev.0]);
    assert!(out.status.success(), "{}", text(&out));
    drop(dev);
    let (_, parts) = partitions(&card);
    assert_eq!(
        (parts[2].0 + parts[2].1) * 512,
        160 << 20,
        "p3 fills the device"
    );
    judge(&w, &card, &cfg_text);
}

/// A card as OUTPUT passes `write`'s gate and question: a fixed disk (a loop device) needs --force, no
/// terminal needs --yes, an LVM physical volume and the system disk are refused whatever the flags, and
/// a refused card is not touched.
#[test]
fn a_card_as_output_is_gated_and_confirmed_like_write() {
    let (w, _server, cfg, _) = served_config();
    let cfg = cfg.to_str().unwrap();
    let card = w.dir.path().join("card.img");
    sh(&format!(
        "head -c 160M /dev/zero | tr '\\000' '\\252' > {}",
        card.display()
    ));
    let dev = Loop::attach(&card);
    let untouched = || {
        assert!(
            read_range(&card, 0, 4 << 20).iter().all(|&b| b == 0xAA),
            "the card was written"
        )
    };
    for (args, needle) in [
        (vec!["--yes"], "--force"),
        (vec!["--force"], "not confirmed"),
    ] {
        let mut a = args.clone();
        a.extend([cfg, dev.0.as_str()]);
        let out = run(&a);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", text(&out));
        assert!(text(&out).contains(needle), "{args:?}: {}", text(&out));
        untouched();
    }
    // An LVM physical volume (a label is enough: its volume group may be inactive).
    sh(&format!("pvcreate -qq -ff -y {}", dev.0));
    let out = run(&["--yes", "--force", cfg, &dev.0]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("LVM physical volume"), "{}", text(&out));
    sh(&format!("pvremove -qq -ff -y {}", dev.0));
    // The disk holding / (only checked: -C writes nothing even if the gate were wrong).
    let root = sh("findmnt -nvo SOURCE /");
    let root_disk = sh(&format!("lsblk -ndo PKNAME {} || true", root.trim()));
    let root_disk = match root_disk.trim() {
        "" => root.trim().to_string(),
        parent => format!("/dev/{parent}"),
    };
    let out = run(&["-C", "--yes", "--force", cfg, &root_disk]);
    assert_eq!(out.status.code(), Some(3), "{root_disk}: {}", text(&out));
    assert!(
        text(&out).contains("the disk this system runs from"),
        "{root_disk}: {}",
        text(&out)
    );
}

/// The build writes OUTPUT.bmap; `bmaptool copy` (which checks every range's SHA-256) flashes it onto a
/// used card — a loop device full of 0xAA — and every filesystem on the card is clean: nothing the image
/// needs was left unmapped.
#[test]
fn bmap_flash_onto_a_dirty_card_gives_clean_filesystems() {
    let (w, _server, cfg, cfg_text) = served_config();
    let img = w.dir.path().join("out.img");
    let out = run(&[cfg.to_str().unwrap(), img.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let bmap = w.dir.path().join("out.img.bmap");
    assert!(bmap.is_file(), "no OUTPUT.bmap");
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&bmap), mode(&img), "the bmap has the image's mode");
    let card = w.dir.path().join("card.img");
    sh(&format!(
        "head -c 104857600 /dev/zero | tr '\\000' '\\252' > {}",
        card.display()
    ));
    let dev = Loop::attach(&card);
    sh(&format!(
        "bmaptool copy --bmap {} {} {}",
        bmap.display(),
        img.display(),
        dev.0
    ));
    drop(dev);
    let (_, parts) = partitions(&img);
    e2fsck(&card, parts[1].0 * 512);
    e2fsck(&card, parts[2].0 * 512);
    fsck_fat(&card, w.dir.path());
    let off = parts[2].0 * 512;
    assert!(debugfs_cat(&card, off, "/conf/image.yaml") == cfg_text.as_bytes());
}
