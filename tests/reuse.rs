//! `--reuse`: a build kept in the cache is handed out again while the config and every input are unchanged,
//! and never when one changed; a corrupt kept build is caught, dropped and rebuilt.

mod support;

use std::path::{Path, PathBuf};

use support::fixtures::*;
use support::http_server::TestServer;

struct World {
    dir: tempfile::TempDir,
    server: TestServer,
    cache: PathBuf,
    note: PathBuf,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start();
    server.add_file("/base.img.xz", demo_base_xz());
    server.add(
        "/big.bin",
        (0..2_000_000u32).map(|i| (i >> 5) as u8).collect(),
    );
    let note = dir.path().join("note.txt");
    std::fs::write(&note, b"first note\n").unwrap();
    let cache = dir.path().join("cache");
    World {
        dir,
        server,
        cache,
        note,
    }
}

impl World {
    fn config(&self) -> PathBuf {
        let cfg = self.dir.path().join("order.yaml");
        std::fs::write(
            &cfg,
            format!(
                "base: {}\nfiles:\n  - url: {}\n    to: /data/big.bin\n  - url: file://{}\n    to: /data/note.txt\n",
                self.server.url("/base.img.xz"),
                self.server.url("/big.bin"),
                self.note.display()
            ),
        )
        .unwrap();
        cfg
    }

    fn build(&self, name: &str, extra: &[&str]) -> (String, PathBuf) {
        let img = self.dir.path().join(name);
        let cfg = self.config();
        let mut args = vec!["--cache-dir", self.cache.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.extend([cfg.to_str().unwrap(), img.to_str().unwrap()]);
        let out = run(&args);
        assert!(out.status.success(), "{name}: {}", text(&out));
        (text(&out), img)
    }

    fn gets(&self) -> usize {
        self.server
            .requests()
            .iter()
            .filter(|r| r.method == "GET")
            .count()
    }

    /// The data file of the one kept build in the cache.
    fn kept_build(&self) -> PathBuf {
        let index: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(self.cache.join("index.json")).unwrap())
                .unwrap();
        let built: Vec<_> = index["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "built_image")
            .collect();
        assert_eq!(
            built.len(),
            1,
            "one kept build (older versions replaced): {index}"
        );
        assert!(built[0]["key"]
            .as_str()
            .unwrap()
            .starts_with("built:order|"));
        self.cache
            .join("data")
            .join(built[0]["id"].as_str().unwrap())
    }
}

/// Every filesystem of an image or card clean: fsck.fat on p1, e2fsck on p2 and p3.
fn judge(img: &Path, scratch: &Path) {
    fsck_fat(img, scratch);
    let (_, parts) = partitions(img);
    e2fsck(img, parts[1].0 * 512);
    e2fsck(img, parts[2].0 * 512);
}

fn note_in(img: &Path) -> Vec<u8> {
    debugfs_cat(img, p3_offset(img), "/note.txt")
}

#[test]
fn reuse_needs_a_cache() {
    let w = world();
    let cfg = w.config();
    let out = run(&[
        "--reuse",
        cfg.to_str().unwrap(),
        w.dir.path().join("x.img").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("--reuse"), "{}", text(&out));
    assert!(!w.dir.path().join("x.img").exists());
}

#[test]
fn an_unchanged_order_is_copied_a_changed_one_is_built() {
    let w = world();
    let (out, first) = w.build("1.img", &["--reuse"]);
    assert!(out.contains("kept the build"), "{out}");
    let kept = w.kept_build();
    let gets = w.gets();

    // Same config, same inputs: a copy of the kept build, no download, a valid image and bmap.
    let (out, second) = w.build("2.img", &["--reuse"]);
    assert!(out.contains("reused the cached build"), "{out}");
    assert_eq!(w.gets(), gets, "downloads for a reused build");
    assert!(
        std::fs::read(&first).unwrap() == std::fs::read(&second).unwrap(),
        "the reused image differs from the build"
    );
    judge(&second, w.dir.path());
    assert!(PathBuf::from(format!("{}.bmap", second.display())).is_file());
    // Its bmap is right: flashed with it onto a used card, every filesystem is clean.
    let card = w.dir.path().join("card");
    std::fs::write(&card, vec![0xAAu8; 96 << 20]).unwrap();
    let lo = Loop::attach(&card);
    let out = run(&["write", "--yes", "--force", second.to_str().unwrap(), &lo.0]);
    assert!(out.status.success(), "{}", text(&out));
    drop(lo);
    judge(&card, w.dir.path());
    assert_eq!(note_in(&card), b"first note\n");

    // Without --reuse, a build is a build.
    let (out, _) = w.build("3.img", &[]);
    assert!(!out.contains("reused"), "{out}");

    // One input changed: built again, with the new content, and kept instead of the old one.
    std::fs::write(&w.note, b"second note, longer\n").unwrap();
    let (out, fourth) = w.build("4.img", &["--reuse"]);
    assert!(!out.contains("reused"), "{out}");
    assert_eq!(note_in(&fourth), b"second note, longer\n");
    let kept_now = w.kept_build();
    assert_ne!(kept, kept_now);
    assert!(!kept.exists(), "the older build was replaced");
}

#[test]
fn a_corrupt_kept_build_is_dropped_and_rebuilt() {
    let w = world();
    w.build("1.img", &["--reuse"]);
    let kept = w.kept_build();
    // A flipped byte in the kept build's data partition (bit rot on the cache stick).
    let f = std::fs::OpenOptions::new().write(true).open(&kept).unwrap();
    let at = p3_offset(&kept) + 4096;
    std::os::unix::fs::FileExt::write_all_at(&f, b"\xde\xad", at).unwrap();
    drop(f);
    let (out, second) = w.build("2.img", &["--reuse"]);
    assert!(out.contains("corrupt"), "{out}");
    assert!(!out.contains("reused the cached build"), "{out}");
    assert_eq!(note_in(&second), b"first note\n");
    judge(&second, w.dir.path());
}
