//! A tiny Offspot-like base image (~80 MiB sparse, tens of KB compressed) for the README demo and as
//! the test fixture everywhere: same partition layout and content conventions as a real 1.4.x base,
//! built rootless and byte-reproducibly (fixed UUIDs, hash seeds, clock and FAT volume id).

use super::fat::{self, FixedClock};
use super::mbr::{build_mbr, BaseLayout, Partition};
use super::{DiskError, SECTOR};
use sha2::{Digest, Sha256};
use std::fs::{File, FileTimes};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, UNIX_EPOCH};

/// Every timestamp in the demo image: 2024-01-01 00:00:00 UTC.
const EPOCH: i64 = 1_704_067_200;
static CLOCK: FixedClock = FixedClock(EPOCH);
const MIB: u64 = 1 << 20;
/// p1 must hold ≥ 65525 clusters of 512 bytes to be FAT32 (≈ 33 MiB); 40 MiB leaves margin.
const P1_SIZE: u64 = 40 * MIB;
const P2_SIZE: u64 = 16 * MIB;
const P3_SIZE: u64 = 16 * MIB;

/// Tag of the container image the demo base ships, as in the real base.
pub const DEMO_IMAGE_TAG: &str = "ghcr.io/offspot/base-httpd:1.0";
/// Where the demo's docker-archive lives on p3.
pub const DEMO_IMAGE_PATH: &str = "images/base-httpd-1.0.tar";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoOptions {
    /// p1 start in sectors: 16384 (1.4.x, 8 MiB alignment, default) or 8192 (older, 4 MiB).
    pub p1_start: u64,
    /// p3 type byte: 0x83 (default) or 0x07 like releases 1.0–1.2.1.
    pub p3_type: u8,
    /// Disk signature, the PARTUUID prefix (default 0x0ff5e7ed).
    pub disk_id: u32,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            p1_start: 16384,
            p3_type: 0x83,
            disk_id: 0x0ff5_e7ed,
        }
    }
}

/// Writes the demo base image at `path` (replacing a regular file there) and returns its layout.
pub fn make_demo_base(path: &Path, opts: &DemoOptions) -> Result<BaseLayout, DiskError> {
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) {
        return Err(DiskError::Exists {
            path: path.to_path_buf(),
        });
    }
    let align = opts.p1_start.max(1);
    let round = |bytes: u64| (bytes / SECTOR).div_ceil(align) * align;
    let p1 = Partition {
        start: opts.p1_start,
        sectors: round(P1_SIZE),
        kind: 0x0c,
    };
    let p2 = Partition {
        start: p1.end(),
        sectors: round(P2_SIZE),
        kind: 0x83,
    };
    let p3 = Partition {
        start: p2.end(),
        sectors: round(P3_SIZE),
        kind: opts.p3_type,
    };
    let id = opts.disk_id;

    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| DiskError::io("create", path, e))?;
    file.set_len(p3.end() * SECTOR)
        .map_err(|e| DiskError::io("resize", path, e))?;
    let mbr = build_mbr(id, &[p1, p2, p3])?;
    file.write_all_at(&mbr, 0)
        .map_err(|e| DiskError::io("write the MBR of", path, e))?;

    let (off, len) = (p1.offset_bytes(), p1.len_bytes());
    fat::format_fat32(&file, off, len, "bootfs", id)?;
    let cmdline = format!(
        "console=serial0,115200 console=tty1 root=PARTUUID={id:08x}-02 rootfstype=ext4 \
         fsck.repair=yes rootwait init=/usr/sbin/offspot_bi_init_resize.sh\n"
    );
    fat::write_root_file_with(&file, off, len, "cmdline.txt", cmdline.as_bytes(), &CLOCK)?;
    let config = "# Offspot demo base made by image-creator: right layout, not bootable\n\
                  arm_64bit=1\nauto_initramfs=1\ndisable_overscan=1\n";
    fat::write_root_file_with(&file, off, len, "config.txt", config.as_bytes(), &CLOCK)?;

    let staging = tempfile::tempdir().map_err(|e| DiskError::io("create", "temp dir", e))?;
    let root = staging.path().join("rootfs");
    let fstab = format!(
        "proc            /proc           proc    defaults          0       0\n\
         PARTUUID={id:08x}-01  /boot/firmware  vfat    defaults          0       2\n\
         PARTUUID={id:08x}-02  /               ext4    defaults,noatime  0       1\n\
         PARTUUID={id:08x}-03  /data           ext4    defaults,noatime  0       2\n"
    );
    stage(&root, "etc/fstab", fstab.as_bytes())?;
    stage(&root, "etc/hostname", b"offspot\n")?;
    let uuid = format!("{id:08x}-0000-4000-8000-000000000002");
    mke2fs_populate(path, &p2, &root, "rootfs", &uuid, &[])?;

    let data = staging.path().join("data");
    stage(&data, "master_fs", b"")?;
    stage(&data, DEMO_IMAGE_PATH, &docker_archive()?)?;
    let uuid = format!("{id:08x}-0000-4000-8000-000000000003");
    mke2fs_populate(
        path,
        &p3,
        &data,
        "data",
        &uuid,
        &["-T", "largefile", "-m", "1"],
    )?;

    file.sync_all()
        .map_err(|e| DiskError::io("sync", path, e))?;
    Ok(BaseLayout {
        disk_id: id,
        parts: [p1, p2, p3],
    })
}

/// Writes `rel` under `root` with parents, every timestamp set to [`EPOCH`] (mke2fs -d copies them).
fn stage(root: &Path, rel: &str, data: &[u8]) -> Result<(), DiskError> {
    let path = root.join(rel);
    let t = UNIX_EPOCH + Duration::from_secs(EPOCH as u64);
    let times = FileTimes::new().set_accessed(t).set_modified(t);
    let io = |e| DiskError::io("stage", &path, e);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    std::fs::write(&path, data).map_err(io)?;
    File::options()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_times(times))
        .map_err(io)?;
    // Directories too, up to and including the staging root.
    for dir in path.ancestors().skip(1) {
        File::open(dir)
            .and_then(|f| f.set_times(times))
            .map_err(io)?;
        if dir == root {
            break;
        }
    }
    Ok(())
}

/// Creates an ext4 at `part` of `img` filled from `dir`, reproducibly, then makes every inode owned by
/// root and stamped with [`EPOCH`] (mke2fs -d copies the staging files' owners and change times,
/// which an unprivileged run cannot set on the host).
pub(crate) fn mke2fs_populate(
    img: &Path,
    part: &Partition,
    dir: &Path,
    label: &str,
    uuid: &str,
    extra: &[&str],
) -> Result<(), DiskError> {
    let offset = part.offset_bytes();
    let mut mke2fs = Command::new("mke2fs");
    mke2fs
        .args(["-q", "-F", "-t", "ext4", "-L", label, "-U", uuid])
        .args(extra)
        .arg("-E")
        .arg(format!(
            "offset={offset},nodiscard,root_owner=0:0,hash_seed={uuid}"
        ))
        .arg("-d")
        .arg(dir)
        .arg(img)
        .arg(format!("{}k", part.len_bytes() / 1024));
    run(mke2fs, "mke2fs")?;

    let mut script = String::new();
    let mut paths = vec!["/".to_string()];
    collect(dir, dir, &mut paths)?;
    for p in &paths {
        for field in ["uid 0", "gid 0"] {
            script.push_str(&format!("sif \"{p}\" {field}\n"));
        }
        for field in ["atime", "ctime", "mtime", "crtime"] {
            script.push_str(&format!("sif \"{p}\" {field} @{EPOCH}\n"));
            script.push_str(&format!("sif \"{p}\" {field}_extra 0\n"));
        }
    }
    let cmds =
        tempfile::NamedTempFile::new().map_err(|e| DiskError::io("create", "temp file", e))?;
    std::fs::write(cmds.path(), script).map_err(|e| DiskError::io("write", cmds.path(), e))?;
    let mut debugfs = Command::new("debugfs");
    debugfs
        .arg("-w")
        .arg("-f")
        .arg(cmds.path())
        .arg(format!("{}?offset={offset}", img.display()));
    run(debugfs, "debugfs")
}

/// Paths of everything under `dir`, relative, with a leading '/', sorted (reproducible order).
fn collect(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<(), DiskError> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .and_then(|rd| rd.collect::<Result<Vec<_>, _>>())
        .map_err(|e| DiskError::io("list", dir, e))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        if let Ok(rel) = p.strip_prefix(root) {
            out.push(format!("/{}", rel.display()));
        }
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            collect(root, &p, out)?;
        }
    }
    Ok(())
}

/// Runs an e2fsprogs tool with a fixed clock. debugfs reports command errors only on stderr (its
/// exit status stays 0), so any stderr line other than its version banner is a failure.
fn run(mut cmd: Command, tool: &'static str) -> Result<(), DiskError> {
    cmd.env("E2FSPROGS_FAKE_TIME", EPOCH.to_string());
    let out = cmd.output().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => DiskError::ToolMissing { tool, source: e },
        _ => DiskError::io("run", tool, e),
    })?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("debugfs "))
        .collect();
    if !out.status.success() || !complaints.is_empty() {
        return Err(DiskError::ToolFailed {
            command: format!("{cmd:?}"),
            status: out.status.to_string(),
            stderr: complaints.join("\n"),
        });
    }
    Ok(())
}

/// A small, valid docker-archive ("docker save" layout) holding one uncompressed layer with
/// `var/www/index.html`, tagged [`DEMO_IMAGE_TAG`]. Built in memory: it is a few KB.
pub fn docker_archive() -> Result<Vec<u8>, DiskError> {
    let io = |e| DiskError::io("build", "demo docker-archive", e);
    let html = b"<!doctype html><title>Offspot demo</title><h1>It works</h1>\n";
    let mut layer = tar::Builder::new(Vec::new());
    append(&mut layer, "var/", None).map_err(io)?;
    append(&mut layer, "var/www/", None).map_err(io)?;
    append(&mut layer, "var/www/index.html", Some(html)).map_err(io)?;
    let layer = layer.into_inner().map_err(io)?;

    let diff_id = format!("sha256:{}", hex::encode(Sha256::digest(&layer)));
    // Legacy layer id: sha256(parent id + "\n" + layer digest + "\n"), no parent for the first layer.
    let layer_id = hex::encode(Sha256::digest(format!("\n{diff_id}\n")));
    let config = serde_json::json!({
        "architecture": "arm64",
        "variant": "v8",
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {
            "Cmd": ["httpd", "-f", "-p", "80", "-h", "/var/www"],
            "ExposedPorts": {"80/tcp": {}},
            "WorkingDir": "/var/www"
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "image-creator demo"}]
    })
    .to_string();
    let config_name = format!("{}.json", hex::encode(Sha256::digest(config.as_bytes())));
    let (repo, tag) = DEMO_IMAGE_TAG
        .rsplit_once(':')
        .unwrap_or((DEMO_IMAGE_TAG, "latest"));
    let manifest = serde_json::json!([{
        "Config": config_name,
        "RepoTags": [DEMO_IMAGE_TAG],
        "Layers": [format!("{layer_id}/layer.tar")]
    }])
    .to_string();
    let repositories = serde_json::json!({ repo: { tag: layer_id } }).to_string();
    let v1_json = serde_json::json!({
        "id": layer_id, "created": "2024-01-01T00:00:00Z", "os": "linux", "architecture": "arm64"
    })
    .to_string();

    let mut tar = tar::Builder::new(Vec::new());
    append(&mut tar, &format!("{layer_id}/"), None).map_err(io)?;
    append(&mut tar, &format!("{layer_id}/VERSION"), Some(b"1.0")).map_err(io)?;
    append(
        &mut tar,
        &format!("{layer_id}/json"),
        Some(v1_json.as_bytes()),
    )
    .map_err(io)?;
    append(&mut tar, &format!("{layer_id}/layer.tar"), Some(&layer)).map_err(io)?;
    append(&mut tar, &config_name, Some(config.as_bytes())).map_err(io)?;
    append(&mut tar, "manifest.json", Some(manifest.as_bytes())).map_err(io)?;
    append(&mut tar, "repositories", Some(repositories.as_bytes())).map_err(io)?;
    tar.into_inner().map_err(io)
}

/// Appends a root-owned entry with a fixed mtime: a directory when `data` is None.
fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    data: Option<&[u8]>,
) -> std::io::Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(EPOCH as u64);
    match data {
        None => {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            tar.append_data(&mut h, name, std::io::empty())
        }
        Some(d) => {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o644);
            h.set_size(d.len() as u64);
            tar.append_data(&mut h, name, d)
        }
    }
}

/// `image-creator make-demo-base OUTPUT`: the demo base, xz-compressed (multi-block, like the official
/// `.img.xz`) when OUTPUT ends in `.xz`. Returns a one-line summary.
pub fn run_cli(output: &Path, p1_start: u64, p3_type: &str) -> Result<String, DiskError> {
    let bad = |option: &str, reason: String| DiskError::BadOption {
        option: option.to_string(),
        reason,
    };
    let p3_type = match p3_type.strip_prefix("0x") {
        Some(hex) => u8::from_str_radix(hex, 16),
        None => p3_type.parse(),
    }
    .map_err(|_| {
        bad(
            "--p3-type",
            format!("`{p3_type}`: expected a byte such as 0x83 or 0x07"),
        )
    })?;
    if p1_start != 8192 && p1_start != 16384 {
        return Err(bad(
            "--p1-start",
            format!("{p1_start}: expected 8192 or 16384"),
        ));
    }
    let opts = DemoOptions {
        p1_start,
        p3_type,
        ..DemoOptions::default()
    };
    let is_xz = output.extension().is_some_and(|e| e == "xz");
    if !is_xz {
        make_demo_base(output, &opts)?;
        return Ok(format!("demo base written to {}", output.display()));
    }
    let raw = tempfile::NamedTempFile::new_in(
        output
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new(".")),
    )
    .map_err(|e| DiskError::io("create a temporary file beside", output, e))?;
    make_demo_base(raw.path(), &opts)?;
    let stream = liblzma::stream::MtStreamBuilder::new()
        .threads(2)
        .block_size(8 << 20)
        .preset(9)
        .check(liblzma::stream::Check::Crc64)
        .encoder()
        .map_err(|e| DiskError::io("start the xz encoder for", output, io::Error::other(e)))?;
    let out = std::fs::File::create(output).map_err(|e| DiskError::io("create", output, e))?;
    let mut enc = liblzma::write::XzEncoder::new_stream(out, stream);
    let mut src =
        std::fs::File::open(raw.path()).map_err(|e| DiskError::io("open", raw.path(), e))?;
    io::copy(&mut src, &mut enc).map_err(|e| DiskError::io("compress into", output, e))?;
    enc.finish()
        .map_err(|e| DiskError::io("finish", output, e))?;
    Ok(format!("demo base written to {} (xz)", output.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn tool(cmd: &str, args: &[&str]) -> String {
        let out = Command::new(cmd).args(args).output().unwrap();
        assert!(out.status.success(), "{cmd} {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn at(img: &Path, part: &Partition) -> String {
        format!("{}?offset={}", img.display(), part.offset_bytes())
    }

    fn debugfs(img: &Path, part: &Partition, req: &str) -> Vec<u8> {
        let out = Command::new("debugfs")
            .args(["-R", req, &at(img, part)])
            .output()
            .unwrap();
        assert!(out.status.success());
        out.stdout
    }

    #[test]
    fn default_demo_looks_like_a_1_4_base() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("base.img");
        let layout = make_demo_base(&img, &DemoOptions::default()).unwrap();
        let [p1, p2, p3] = layout.parts;

        let json: serde_json::Value =
            serde_json::from_str(&tool("sfdisk", &["-J", img.to_str().unwrap()])).unwrap();
        let table = &json["partitiontable"];
        assert_eq!(table["label"], "dos");
        assert_eq!(table["id"], "0x0ff5e7ed");
        let parts: Vec<(u64, u64, String)> = table["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let n = |k: &str| p[k].as_u64().unwrap();
                (
                    n("start"),
                    n("size"),
                    p["type"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            parts,
            [
                (16384, 81920, "c".to_string()),
                (98304, 32768, "83".to_string()),
                (131072, 32768, "83".to_string())
            ]
        );
        assert!(table["partitions"][0].get("bootable").is_none());
        let len = std::fs::metadata(&img).unwrap().len();
        assert_eq!(len, p3.end() * SECTOR, "p3 ends on the last sector");
        let mut s0 = [0u8; 512];
        File::open(&img).unwrap().read_exact(&mut s0).unwrap();
        assert_eq!(BaseLayout::parse(&s0, Some(len)).unwrap(), layout);
        assert_eq!(layout.alignment(), 8 * MIB);

        // p1: clean FAT32 labelled bootfs with the boot files.
        let data = std::fs::read(&img).unwrap();
        let p1_copy = dir.path().join("p1");
        std::fs::write(
            &p1_copy,
            &data[p1.offset_bytes() as usize..p1.end() as usize * 512],
        )
        .unwrap();
        let report = tool("fsck.fat", &["-n", p1_copy.to_str().unwrap()]);
        assert!(!report.contains("should be"), "{report}");
        let f = File::open(&img).unwrap();
        let cmdline = fat::read_root_file(&f, p1.offset_bytes(), p1.len_bytes(), "cmdline.txt")
            .unwrap()
            .unwrap();
        let cmdline = String::from_utf8(cmdline).unwrap();
        assert!(cmdline.contains("root=PARTUUID=0ff5e7ed-02 "), "{cmdline}");
        assert!(
            cmdline.contains(" init=/usr/sbin/offspot_bi_init_resize.sh"),
            "{cmdline}"
        );
        assert!(
            fat::read_root_file(&f, p1.offset_bytes(), p1.len_bytes(), "config.txt")
                .unwrap()
                .is_some()
        );
        let fat_label =
            String::from_utf8_lossy(&data[p1.offset_bytes() as usize + 71..][..11]).into_owned();
        assert_eq!(fat_label, "bootfs     ");

        // p2 and p3: clean ext4 with the expected labels and content, owned by root.
        for part in [&p2, &p3] {
            tool("e2fsck", &["-fn", &at(&img, part)]);
        }
        let fstab = String::from_utf8(debugfs(&img, &p2, "cat /etc/fstab")).unwrap();
        for line in [
            "PARTUUID=0ff5e7ed-01  /boot/firmware  vfat",
            "PARTUUID=0ff5e7ed-02  /  ",
            "PARTUUID=0ff5e7ed-03  /data           ext4",
        ] {
            assert!(fstab.contains(line), "{fstab}");
        }
        assert_eq!(debugfs(&img, &p2, "cat /etc/hostname"), b"offspot\n");
        let sb = tool("dumpe2fs", &["-h", &at(&img, &p3)]);
        for line in [
            "Filesystem volume name:   data",
            "Block size:               4096",
            "Inode count:              16",
            "Reserved block count:     40",
        ] {
            assert!(sb.contains(line), "{sb}");
        }
        let ls = String::from_utf8(debugfs(&img, &p3, "ls -l /")).unwrap();
        assert!(
            ls.contains("master_fs") && ls.contains("images") && ls.contains("lost+found"),
            "{ls}"
        );
        let stat = String::from_utf8(debugfs(&img, &p3, "stat /master_fs")).unwrap();
        assert!(
            stat.contains("User:     0   Group:     0") && stat.contains("Size: 0"),
            "{stat}"
        );

        let tar = debugfs(&img, &p3, &format!("cat /{DEMO_IMAGE_PATH}"));
        assert_eq!(tar, docker_archive().unwrap());
        check_docker_archive(&tar);
    }

    /// What the device's loader and `docker load` need from the archive.
    fn check_docker_archive(tar: &[u8]) {
        let mut members = std::collections::BTreeMap::new();
        for e in tar::Archive::new(tar).entries().unwrap() {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let mut buf = Vec::new();
            e.read_to_end(&mut buf).unwrap();
            members.insert(name, buf);
        }
        let manifest: serde_json::Value =
            serde_json::from_slice(&members["manifest.json"]).unwrap();
        assert_eq!(manifest[0]["RepoTags"][0], DEMO_IMAGE_TAG);
        let config_name = manifest[0]["Config"].as_str().unwrap();
        let config = &members[config_name];
        assert_eq!(
            format!("{}.json", hex::encode(Sha256::digest(config))),
            config_name
        );
        let config: serde_json::Value = serde_json::from_slice(config).unwrap();
        assert_eq!(config["architecture"], "arm64");
        let layer_name = manifest[0]["Layers"][0].as_str().unwrap();
        let layer = &members[layer_name];
        let diff_id = format!("sha256:{}", hex::encode(Sha256::digest(layer)));
        assert_eq!(config["rootfs"]["diff_ids"][0], diff_id.as_str());
        let id = hex::encode(Sha256::digest(format!("\n{diff_id}\n")));
        assert_eq!(layer_name, format!("{id}/layer.tar"));
        let repos: serde_json::Value = serde_json::from_slice(&members["repositories"]).unwrap();
        assert_eq!(repos["ghcr.io/offspot/base-httpd"]["1.0"], id.as_str());
        let names: Vec<String> = tar::Archive::new(layer.as_slice())
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.contains(&"var/www/index.html".to_string()),
            "{names:?}"
        );
    }

    #[test]
    fn old_layout_variant() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("old.img");
        let opts = DemoOptions {
            p1_start: 8192,
            p3_type: 0x07,
            disk_id: 0x1234_5678,
        };
        let layout = make_demo_base(&img, &opts).unwrap();
        let mut s0 = [0u8; 512];
        File::open(&img).unwrap().read_exact(&mut s0).unwrap();
        let parsed = BaseLayout::parse(&s0, Some(std::fs::metadata(&img).unwrap().len())).unwrap();
        assert_eq!(parsed, layout);
        assert_eq!(parsed.alignment(), 4 * MIB);
        assert_eq!(parsed.parts[0].start, 8192);
        assert_eq!(parsed.parts[2].kind, 0x07);
        assert_eq!(parsed.disk_id, 0x1234_5678);
        for p in parsed.parts {
            assert_eq!((p.start % 8192, p.sectors % 8192), (0, 0));
        }
        tool("e2fsck", &["-fn", &at(&img, &parsed.parts[2])]);
        let fstab = String::from_utf8(debugfs(&img, &parsed.parts[1], "cat /etc/fstab")).unwrap();
        assert!(fstab.contains("PARTUUID=12345678-03  /data"), "{fstab}");
    }

    #[test]
    fn two_runs_give_identical_bytes_and_compress_well() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.img"), dir.path().join("b.img"));
        make_demo_base(&a, &DemoOptions::default()).unwrap();
        // Past a second boundary, so any wall-clock time that leaked in would show.
        std::thread::sleep(Duration::from_millis(1100));
        make_demo_base(&b, &DemoOptions::default()).unwrap();
        let (da, db) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        assert!(da == db, "demo images differ");
        let xz = Command::new("xz")
            .args(["-9", "-T1", "-c"])
            .arg(&a)
            .output()
            .unwrap();
        assert!(xz.status.success());
        assert!(
            xz.stdout.len() < 100_000,
            "xz -9: {} bytes",
            xz.stdout.len()
        );
        // Regenerating over an existing file replaces it; a directory is refused.
        make_demo_base(&a, &DemoOptions::default()).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), db);
        assert!(make_demo_base(dir.path(), &DemoOptions::default()).is_err());
    }

    /// Files staged by an unprivileged user still end up owned by root in the image.
    #[test]
    fn staged_files_become_root_owned() {
        let dir = tempfile::tempdir().unwrap();
        let stage_dir = dir.path().join("s");
        stage(&stage_dir, "sub/file", b"x").unwrap();
        for p in ["sub/file", "sub", ""] {
            nix::unistd::chown(
                &stage_dir.join(p),
                Some(nix::unistd::Uid::from_raw(1000)),
                Some(nix::unistd::Gid::from_raw(1000)),
            )
            .unwrap();
        }
        let img = dir.path().join("fs.img");
        File::create(&img).unwrap().set_len(9 * MIB).unwrap();
        let part = Partition {
            start: 2048,
            sectors: 16384,
            kind: 0x83,
        };
        mke2fs_populate(
            &img,
            &part,
            &stage_dir,
            "t",
            "00000000-0000-4000-8000-000000000001",
            &[],
        )
        .unwrap();
        for p in ["/", "/sub", "/sub/file"] {
            let stat = String::from_utf8(debugfs(&img, &part, &format!("stat {p}"))).unwrap();
            assert!(stat.contains("User:     0   Group:     0"), "{p}: {stat}");
        }
        tool("e2fsck", &["-fn", &at(&img, &part)]);
        // debugfs exits 0 when a command fails: the failure must still be reported.
        let cmds = dir.path().join("cmds");
        std::fs::write(&cmds, "sif /nope uid 0\n").unwrap();
        let mut cmd = Command::new("debugfs");
        cmd.arg("-w").arg("-f").arg(&cmds).arg(at(&img, &part));
        let e = run(cmd, "debugfs").unwrap_err();
        assert!(e.to_string().contains("File not found"), "{e}");
    }
}
