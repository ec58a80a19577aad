//! Which whole disks must never be written: the ones the running system boots and runs from, and the one
//! holding the image being written.

use super::sysfs::{dev_name, list_names, read_mounts, Host, Mount};
use super::DeviceError;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Mountpoints whose disks are "the system": losing any of them bricks the machine doing the writing.
const SYSTEM_MOUNTS: [&str; 3] = ["/", "/boot", "/boot/firmware"];

/// Stacking depth past which we stop following slaves/backing files (a loop on a dm on an md …).
const MAX_DEPTH: usize = 8;

/// The whole disks holding `/`, `/boot` and `/boot/firmware` (through dm/md slaves and loop backing files,
/// best effort), sorted and deduplicated.
pub fn system_disks() -> Result<Vec<String>, DeviceError> {
    system_disks_in(&Host::real())
}

pub(crate) fn system_disks_in(host: &Host) -> Result<Vec<String>, DeviceError> {
    let mounts = read_mounts(host)?;
    let mut disks = Vec::new();
    for m in mounts
        .iter()
        .filter(|m| SYSTEM_MOUNTS.contains(&m.mountpoint.as_str()))
    {
        disks.extend(disks_of_mount(host, m, 0));
    }
    disks.sort();
    disks.dedup();
    Ok(disks)
}

/// The whole disk holding `path` (the image), or None when it lives on no block device (tmpfs, overlay
/// without a resolvable source). With md RAID the file is on several disks; the first is returned.
pub fn disk_of_file(path: &Path) -> Result<Option<String>, DeviceError> {
    let host = Host::real();
    let mounts = read_mounts(&host)?;
    Ok(disks_of_file(&host, &mounts, path, 0)?.into_iter().next())
}

fn disks_of_file(
    host: &Host,
    mounts: &[Mount],
    path: &Path,
    depth: usize,
) -> Result<Vec<String>, DeviceError> {
    let meta = fs::metadata(path).map_err(|e| DeviceError::io(path, e))?;
    let (major, minor) = (libc::major(meta.dev()), libc::minor(meta.dev()));
    if major != 0 {
        return Ok(whole_disks(host, major, minor, depth));
    }
    // Anonymous st_dev (btrfs, overlay): the mount entry with that number may name a real source device.
    Ok(mounts
        .iter()
        .filter(|m| m.devnum == (major, minor))
        .flat_map(|m| disks_of_mount(host, m, depth))
        .collect())
}

fn disks_of_mount(host: &Host, m: &Mount, depth: usize) -> Vec<String> {
    if m.devnum.0 != 0 {
        return whole_disks(host, m.devnum.0, m.devnum.1, depth);
    }
    let Some(name) = dev_name(&m.source) else {
        return Vec::new();
    };
    match fs::metadata(format!("/dev/{name}")) {
        Ok(meta) => whole_disks(
            host,
            libc::major(meta.rdev()),
            libc::minor(meta.rdev()),
            depth,
        ),
        Err(_) => Vec::new(),
    }
}

/// Whole disks under device `major:minor`: its parent disk for a partition, the disks of its slaves for
/// dm/md, and for a loop device both itself and the disks holding its backing file.
fn whole_disks(host: &Host, major: u32, minor: u32, depth: usize) -> Vec<String> {
    let Ok(dir) = host.block_dir(major, minor) else {
        return Vec::new();
    };
    disks_of_dir(host, &dir, depth)
}

fn disks_of_dir(host: &Host, dir: &Path, depth: usize) -> Vec<String> {
    let disk: PathBuf = if dir.join("partition").exists() {
        dir.parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| dir.to_path_buf())
    } else {
        dir.to_path_buf()
    };
    let name = disk
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if depth >= MAX_DEPTH {
        return vec![name];
    }
    let slaves = list_names(&disk.join("slaves"));
    if !slaves.is_empty() {
        // dm/md: the virtual device is on the system too, but what matters is the physical disks below.
        let mut out = vec![name];
        for s in slaves {
            if let Ok(sdir) = fs::canonicalize(host.sys.join("class/block").join(&s)) {
                out.extend(disks_of_dir(host, &sdir, depth + 1));
            }
        }
        return out;
    }
    let mut out = vec![name];
    if let Ok(backing) = fs::read_to_string(disk.join("loop/backing_file")) {
        let backing = PathBuf::from(backing.trim());
        if let Ok(mounts) = read_mounts(host) {
            out.extend(disks_of_file(host, &mounts, &backing, depth + 1).unwrap_or_default());
        }
    }
    out
}
