//! Fixtures and judges for the integration tests: the real binary, the repo's own demo-base generator,
//! and e2fsprogs / dosfstools / mtools / sfdisk / PyYAML as judges of what we write.

#[allow(unused_imports)] // Not every test crate mounts or attaches.
pub use super::testutil::{Loop, Unmount};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_image-creator")
}

/// Runs the binary with stdout piped (so progress is JSON lines) and no stdin.
pub fn run(args: &[&str]) -> Output {
    run_in(args, None)
}

pub fn run_in(args: &[&str], cwd: Option<&Path>) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(args).stdin(Stdio::null());
    if let Some(d) = cwd {
        cmd.current_dir(d);
    }
    cmd.output().expect("run image-creator")
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The `warn` messages of a run's JSON-lines progress.
pub fn warnings(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "message" && v["level"] == "warn")
        .map(|v| v["text"].as_str().unwrap_or_default().to_string())
        .collect()
}

pub fn sh(cmd: &str) -> String {
    let out = Command::new("bash")
        .args(["-c", cmd])
        .stdin(Stdio::null())
        .output()
        .expect("bash");
    assert!(out.status.success(), "`{cmd}` failed: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).to_string()
}

pub fn sh_status(cmd: &str) -> (bool, String) {
    let out = Command::new("bash")
        .args(["-c", cmd])
        .stdin(Stdio::null())
        .output()
        .expect("bash");
    (out.status.success(), text(&out))
}

/// A directory shared by the whole test process (never removed while tests run).
fn shared_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        tempfile::Builder::new()
            .prefix("ic-fixtures-")
            .tempdir()
            .unwrap()
            .keep()
    })
}

/// The demo base image (raw), made once per test process by the repo's own generator.
pub fn demo_base() -> &'static Path {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        let path = shared_dir().join("base.img");
        let out = run(&["make-demo-base", path.to_str().unwrap()]);
        assert!(out.status.success(), "make-demo-base: {}", text(&out));
        path
    })
}

/// The demo base, xz-compressed with several blocks (like the official .img.xz).
pub fn demo_base_xz() -> &'static Path {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        let path = shared_dir().join("base.img.xz");
        sh(&format!(
            "xz -T2 --block-size=8MiB -c {} > {}",
            demo_base().display(),
            path.display()
        ));
        path
    })
}

/// `DIR/c.yaml`: the demo base plus `rest` (YAML text after the `base:` line).
pub fn demo_config(dir: &Path, rest: &str) -> PathBuf {
    let cfg = dir.join("c.yaml");
    std::fs::write(&cfg, format!("base: {}\n{rest}", demo_base().display())).unwrap();
    cfg
}

/// Partition table as sfdisk reads it: (label-id, [(start, size, type)]).
pub fn partitions(img: &Path) -> (String, Vec<(u64, u64, String)>) {
    let json: serde_json::Value =
        serde_json::from_str(&sh(&format!("sfdisk -J {}", img.display()))).unwrap();
    let table = &json["partitiontable"];
    let parts = table["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["start"].as_u64().unwrap(),
                p["size"].as_u64().unwrap(),
                p["type"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (table["id"].as_str().unwrap().to_string(), parts)
}

pub fn p3_offset(img: &Path) -> u64 {
    partitions(img).1[2].0 * 512
}

pub fn debugfs_cat(img: &Path, offset: u64, path: &str) -> Vec<u8> {
    let out = Command::new("debugfs")
        .args([
            "-R",
            &format!("cat \"{path}\""),
            &format!("{}?offset={offset}", img.display()),
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    out.stdout
}

/// `debugfs stat` of a path: (uid, gid, type line).
pub fn debugfs_stat(img: &Path, offset: u64, path: &str) -> String {
    sh(&format!(
        "debugfs -R 'stat \"{path}\"' '{}?offset={offset}' 2>/dev/null",
        img.display()
    ))
}

pub fn owner(img: &Path, offset: u64, path: &str) -> (u32, u32) {
    let stat = debugfs_stat(img, offset, path);
    let grab = |key: &str| -> u32 {
        let i = stat
            .find(key)
            .unwrap_or_else(|| panic!("no {key} in stat of {path}: {stat}"));
        stat[i + key.len()..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    (grab("User:"), grab("Group:"))
}

pub fn e2fsck(img: &Path, offset: u64) {
    let (ok, out) = sh_status(&format!("e2fsck -fn '{}?offset={offset}'", img.display()));
    assert!(ok, "e2fsck -fn failed: {out}");
}

/// fsck.fat has no offset option: check a copy of p1.
pub fn fsck_fat(img: &Path, dir: &Path) {
    let (_, parts) = partitions(img);
    let copy = dir.join("p1.copy");
    sh(&format!(
        "dd if={} of={} bs=512 skip={} count={} status=none",
        img.display(),
        copy.display(),
        parts[0].0,
        parts[0].1
    ));
    let (ok, out) = sh_status(&format!("fsck.fat -n {}", copy.display()));
    assert!(ok, "fsck.fat -n failed: {out}");
    std::fs::remove_file(copy).unwrap();
}

pub fn mtype(img: &Path, name: &str) -> String {
    let off = partitions(img).1[0].0 * 512;
    sh(&format!(
        "MTOOLS_SKIP_CHECK=1 mtype -i '{}@@{off}' ::/{name}",
        img.display()
    ))
}

/// Bytes [start, start+len) of a file.
pub fn read_range(path: &Path, start: u64, len: u64) -> Vec<u8> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).unwrap();
    f.seek(SeekFrom::Start(start)).unwrap();
    let mut buf = vec![0u8; len as usize];
    f.read_exact(&mut buf).unwrap();
    buf
}

/// Writes archives of `tree` in every format the config supports, with python3 (tarfile/zipfile).
pub fn make_archives(tree: &Path, out_dir: &Path) {
    let script = format!(
        r#"
import os, tarfile, zipfile
tree, out = {tree:?}, {out:?}
for mode, name in [("w", "a.tar"), ("w:gz", "a.tar.gz"), ("w:bz2", "a.tar.bz2"), ("w:xz", "a.tar.xz")]:
    with tarfile.open(os.path.join(out, name), mode) as t:
        t.add(tree, arcname=".")
with zipfile.ZipFile(os.path.join(out, "a.zip"), "w", zipfile.ZIP_DEFLATED) as z:
    for root, dirs, files in os.walk(tree):
        for f in files:
            p = os.path.join(root, f)
            z.write(p, os.path.relpath(p, tree))
"#,
        tree = tree.display().to_string(),
        out = out_dir.display().to_string()
    );
    python(&script);
}

pub fn python(script: &str) -> String {
    let out = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "python3 failed: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// A small docker-archive (the layout the device loader reads) tagged `tag`.
pub fn docker_archive(path: &Path, tag: &str) {
    let script = format!(
        r#"
import hashlib, io, json, tarfile
layer = io.BytesIO()
with tarfile.open(fileobj=layer, mode="w") as t:
    data = b"hello from the layer\n"
    info = tarfile.TarInfo("hello.txt"); info.size = len(data)
    t.addfile(info, io.BytesIO(data))
layer = layer.getvalue()
diff = "sha256:" + hashlib.sha256(layer).hexdigest()
config = json.dumps({{"architecture": "arm64", "os": "linux", "rootfs": {{"type": "layers", "diff_ids": [diff]}}}}).encode()
cfg_name = hashlib.sha256(config).hexdigest() + ".json"
layer_id = hashlib.sha256(("\n" + diff + "\n").encode()).hexdigest()
manifest = json.dumps([{{"Config": cfg_name, "RepoTags": [{tag:?}], "Layers": [layer_id + "/layer.tar"]}}]).encode()
with tarfile.open({path:?}, "w") as t:
    for name, data in [(cfg_name, config), (layer_id + "/layer.tar", layer), (layer_id + "/VERSION", b"1.0"), ("manifest.json", manifest)]:
        info = tarfile.TarInfo(name); info.size = len(data)
        t.addfile(info, io.BytesIO(data))
"#,
        tag = tag,
        path = path.display().to_string()
    );
    python(&script);
}
