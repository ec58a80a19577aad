//! A tiny Offspot-like base image (~80 MiB sparse, tens of KB compressed) for the README demo and as
//! the test fixture everywhere: same partition layout and content conventions as a real 1.4.x base,
//! built rootless and byte-reproducibly (fixed UUIDs, hash seeds, clock and FAT volume id).

use super::fat::{self, FixedClock};
use super::mbr::{build_mbr, BaseLayout, Partition};
use super::{DiskError, SECTOR};
use crate::digest::sha256_hex;
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

    let diff_id = format!("sha256:{}", sha256_hex(&layer));
    // Legacy layer id: sha256(parent id + "\n" + layer digest + "\n"), no parent for the first layer.
    let layer_id = sha256_hex(format!("\n{diff_id}\n").as_bytes());
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
    let config_name = format!("{}.json", sha256_hex(config.as_bytes()));
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

/// The demo base at `output`, xz-compressed (multi-block, like the official `.img.xz`) when its name ends
/// in `.xz`.
pub fn write_demo_base(output: &Path, opts: &DemoOptions) -> Result<(), DiskError> {
    if opts.p1_start != 8192 && opts.p1_start != 16384 {
        return Err(DiskError::BadOption {
            option: "--p1-start".into(),
            reason: format!("{}: expected 8192 or 16384", opts.p1_start),
        });
    }
    // Never over a file the run did not create (the help says OUTPUT must not exist).
    if std::fs::symlink_metadata(output).is_ok() {
        return Err(DiskError::Exists {
            path: output.to_path_buf(),
        });
    }
    let is_xz = output.extension().is_some_and(|e| e == "xz");
    if !is_xz {
        return make_demo_base(output, opts).map(drop);
    }
    let raw = tempfile::NamedTempFile::new_in(
        output
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new(".")),
    )
    .map_err(|e| DiskError::io("create a temporary file beside", output, e))?;
    make_demo_base(raw.path(), opts)?;
    let stream = liblzma::stream::MtStreamBuilder::new()
        .threads(2)
        .block_size(8 << 20)
        .preset(9)
        .check(liblzma::stream::Check::Crc64)
        .encoder()
        .map_err(|e| DiskError::io("start the xz encoder for", output, io::Error::other(e)))?;
    let out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(output)
        .map_err(|e| DiskError::io("create", output, e))?;
    let mut enc = liblzma::write::XzEncoder::new_stream(out, stream);
    let mut src =
        std::fs::File::open(raw.path()).map_err(|e| DiskError::io("open", raw.path(), e))?;
    io::copy(&mut src, &mut enc).map_err(|e| DiskError::io("compress into", output, e))?;
    enc.finish()
        .map_err(|e| DiskError::io("finish", output, e))?;
    Ok(())
}

#[cfg(test)]
mod tests;
