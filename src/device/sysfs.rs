//! Facts about a block device read from sysfs and the mount tables; the device itself is never opened, so
//! this is safe on a device that is busy, being written, or about to be yanked.

use super::{Bus, DeviceError, Facts};
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Where the kernel tables live; tests point it at fake trees.
#[derive(Debug, Clone)]
pub(crate) struct Host {
    pub sys: PathBuf,
    pub mountinfo: PathBuf,
    pub swaps: PathBuf,
}

impl Host {
    pub fn real() -> Self {
        Host {
            sys: PathBuf::from("/sys"),
            mountinfo: PathBuf::from("/proc/self/mountinfo"),
            swaps: PathBuf::from("/proc/swaps"),
        }
    }

    /// The canonical sysfs directory of a block device number (`/sys/devices/…/block/sdb/sdb1`).
    pub fn block_dir(&self, major: u32, minor: u32) -> Result<PathBuf, DeviceError> {
        let link = self.sys.join(format!("dev/block/{major}:{minor}"));
        fs::canonicalize(&link).map_err(|e| DeviceError::io(link, e))
    }
}

/// One line of /proc/self/mountinfo, the parts we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    pub devnum: (u32, u32),
    pub mountpoint: String,
    pub source: String,
}

/// Parses mountinfo (`36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw`); lines that do not
/// have that shape are skipped rather than failing the whole safety check on one odd entry.
pub(crate) fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mut l = left.split(' ');
            let devnum = l.nth(2)?;
            let mountpoint = unescape(l.nth(1)?);
            let (maj, min) = devnum.split_once(':')?;
            let source = unescape(right.split(' ').nth(1)?);
            Some(Mount {
                devnum: (maj.parse().ok()?, min.parse().ok()?),
                mountpoint,
                source,
            })
        })
        .collect()
}

/// Undoes the kernel's octal escapes (`\040` for a space) in mount table fields.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = bytes[i + 1..i + 4]
                .iter()
                .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
            out.push(v as u8);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn read_mounts(host: &Host) -> Result<Vec<Mount>, DeviceError> {
    let text =
        fs::read_to_string(&host.mountinfo).map_err(|e| DeviceError::io(&host.mountinfo, e))?;
    Ok(parse_mountinfo(&text))
}

/// Kernel name of a `/dev/...` path (following /dev/disk/by-*, /dev/mapper links), if it resolves.
pub(crate) fn dev_name(source: &str) -> Option<String> {
    if !source.starts_with("/dev/") {
        return None;
    }
    let canon = fs::canonicalize(source).ok()?;
    Some(canon.file_name()?.to_string_lossy().into_owned())
}

fn read_trim(path: &Path) -> Option<String> {
    let s = fs::read_to_string(path).ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

fn read_u64(path: &Path) -> Result<u64, DeviceError> {
    let text = fs::read_to_string(path).map_err(|e| DeviceError::io(path, e))?;
    text.trim().parse().map_err(|_| DeviceError::Parse {
        path: path.to_path_buf(),
        what: format!("{:?} (expected a number)", text.trim()),
    })
}

fn parse_devnum(dir: &Path) -> Option<(u32, u32)> {
    let text = read_trim(&dir.join("dev"))?;
    let (a, b) = text.split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Entries of a sysfs directory listing (holders/, slaves/), sorted; a missing directory is empty.
pub(crate) fn list_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Facts about `path` from sysfs, /proc/self/mountinfo and /proc/swaps, without opening the device.
pub fn facts(path: &Path) -> Result<Facts, DeviceError> {
    facts_in(&Host::real(), path)
}

pub(crate) fn facts_in(host: &Host, path: &Path) -> Result<Facts, DeviceError> {
    let canon = fs::canonicalize(path).map_err(|e| DeviceError::io(path, e))?;
    let meta = fs::metadata(&canon).map_err(|e| DeviceError::io(&canon, e))?;
    if !meta.file_type().is_block_device() {
        // Reported as facts rather than an error so `check` lists it with every other reason.
        return Ok(Facts {
            name: file_name(&canon),
            path: canon,
            is_block: false,
            size: meta.len(),
            logical_block: 512,
            removable: false,
            bus: Bus::Other("none".into()),
            model: None,
            vendor: None,
            serial: None,
            port: None,
            is_partition: false,
            parent: None,
            partitions: Vec::new(),
            mounted: Vec::new(),
            holders: Vec::new(),
            lvm: Vec::new(),
            read_only: false,
            backing_file: None,
        });
    }
    let rdev = meta.rdev();
    let dir = host.block_dir(libc::major(rdev), libc::minor(rdev))?;
    let name = file_name(&dir);
    let is_partition = dir.join("partition").exists();
    let disk_dir = match (is_partition, dir.parent()) {
        (true, Some(p)) => p.to_path_buf(),
        _ => dir.clone(),
    };
    let disk_name = file_name(&disk_dir);
    let partitions: Vec<String> = if is_partition {
        Vec::new()
    } else {
        list_names(&dir)
            .into_iter()
            .filter(|n| dir.join(n).join("partition").exists())
            .collect()
    };
    // The device and its partitions: any of them mounted, swapped on or held makes the disk busy.
    let members: Vec<(String, PathBuf)> = std::iter::once((name.clone(), dir.clone()))
        .chain(partitions.iter().map(|p| (p.clone(), dir.join(p))))
        .collect();
    let Identity {
        bus,
        model,
        vendor,
        serial,
        port,
    } = identify(&host.sys, &disk_dir, &disk_name);
    Ok(Facts {
        path: canon,
        size: read_u64(&dir.join("size"))?.saturating_mul(512),
        logical_block: u32::try_from(read_u64(&disk_dir.join("queue/logical_block_size"))?)
            .unwrap_or(512),
        removable: read_u64(&disk_dir.join("removable"))? == 1,
        read_only: read_u64(&dir.join("ro"))? == 1,
        bus,
        model,
        vendor,
        serial,
        port,
        is_partition,
        parent: is_partition.then_some(disk_name),
        mounted: busy_members(host, &members)?,
        holders: members
            .iter()
            .flat_map(|(_, d)| list_names(&d.join("holders")))
            .collect(),
        lvm: members
            .iter()
            .map(|(n, _)| n)
            .filter(|n| is_lvm_pv(&Path::new("/dev").join(n)))
            .cloned()
            .collect(),
        backing_file: read_trim(&disk_dir.join("loop/backing_file")).map(PathBuf::from),
        partitions,
        name,
        is_block: true,
    })
}

/// Whether `dev` starts with an LVM physical-volume label (`LABELONE` … `LVM2 001` in one of its first
/// four sectors). An inactive volume group has no holders in sysfs, yet the disk is someone's data; with
/// no device-mapper at all (containers) this label is the only sign. Read-only, 2 KiB; a device that
/// cannot be read here (no permission, no medium) is not judged by it.
pub(crate) fn is_lvm_pv(dev: &Path) -> bool {
    let mut head = [0u8; 2048];
    let Ok(file) = fs::File::open(dev) else {
        return false;
    };
    if std::os::unix::fs::FileExt::read_exact_at(&file, &mut head, 0).is_err() {
        return false;
    }
    head.chunks(512)
        .any(|s| &s[..8] == b"LABELONE" && &s[24..32] == b"LVM2 001")
}

/// (`/dev/x`, mountpoint) for each member that is mounted or used as swap.
fn busy_members(
    host: &Host,
    members: &[(String, PathBuf)],
) -> Result<Vec<(String, String)>, DeviceError> {
    let mounts = read_mounts(host)?;
    let mut out = Vec::new();
    for (name, dir) in members {
        let devnum = parse_devnum(dir);
        for m in &mounts {
            // Anonymous device numbers (btrfs, major 0) do not name the disk; the source path does.
            let hit = if m.devnum.0 != 0 {
                Some(m.devnum) == devnum
            } else {
                dev_name(&m.source).as_deref() == Some(name.as_str())
            };
            if hit {
                out.push((format!("/dev/{name}"), m.mountpoint.clone()));
            }
        }
    }
    // /proc/swaps may be absent in containers; no swap table means nothing is swapped on.
    if let Ok(text) = fs::read_to_string(&host.swaps) {
        for line in text.lines().skip(1) {
            let Some(file) = line.split_whitespace().next().map(unescape) else {
                continue;
            };
            if let Some(n) = dev_name(&file) {
                if members.iter().any(|(m, _)| *m == n) {
                    out.push((format!("/dev/{n}"), "[swap]".into()));
                }
            }
        }
    }
    Ok(out)
}

/// Who a whole disk is and where it is plugged in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub bus: Bus,
    pub model: Option<String>,
    pub vendor: Option<String>,
    pub serial: Option<String>,
    /// See [`Facts::port`].
    pub port: Option<String>,
}

impl Identity {
    fn bare(bus: Bus) -> Self {
        Identity {
            bus,
            model: None,
            vendor: None,
            serial: None,
            port: None,
        }
    }
}

/// Bus, model, vendor, serial and physical port of a whole disk, from its `device` link and the chain of
/// parents above it.
pub(crate) fn identify(sys: &Path, disk_dir: &Path, disk_name: &str) -> Identity {
    if disk_dir.join("loop").is_dir() || disk_name.starts_with("loop") {
        return Identity::bare(Bus::Loop);
    }
    let Ok(dev) = fs::canonicalize(disk_dir.join("device")) else {
        return Identity::bare(Bus::Other("virtual".into()));
    };
    // Nearest first: a USB card reader is a SCSI disk under a USB interface, so "usb" anywhere wins.
    let devices_root = sys.join("devices");
    let mut chain: Vec<(PathBuf, String)> = Vec::new();
    let mut cur: Option<&Path> = Some(dev.as_path());
    while let Some(d) = cur {
        if !d.starts_with(&devices_root) || d == devices_root {
            break;
        }
        let subsystem = fs::canonicalize(d.join("subsystem"))
            .map(|s| file_name(&s))
            .unwrap_or_default();
        chain.push((d.to_path_buf(), subsystem));
        cur = d.parent();
    }
    let has = |s: &str| chain.iter().any(|(_, sub)| sub == s);
    let ata = chain.iter().any(|(d, _)| {
        let n = file_name(d);
        n.strip_prefix("ata")
            .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))
    });
    let bus = if has("usb") {
        Bus::Usb
    } else if has("mmc") {
        Bus::Mmc
    } else if has("nvme") {
        Bus::Nvme
    } else if has("virtio") {
        Bus::Virtio
    } else if ata {
        Bus::Ata
    } else if has("scsi") {
        Bus::Scsi
    } else {
        Bus::Other(
            chain
                .first()
                .map(|(_, s)| s.clone())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "unknown".into()),
        )
    };
    // The USB device itself (the one with idVendor) carries the reader's product strings and serial.
    let usb_dev = chain
        .iter()
        .find(|(d, sub)| sub == "usb" && d.join("idVendor").exists())
        .map(|(d, _)| d.clone());
    let model = read_trim(&dev.join("model"))
        .or_else(|| {
            (bus == Bus::Mmc)
                .then(|| read_trim(&dev.join("name")))
                .flatten()
        })
        .or_else(|| usb_dev.as_ref().and_then(|u| read_trim(&u.join("product"))));
    // virtio and PCI expose numeric ids as `vendor`; only a text vendor helps a person pick a card.
    let vendor = read_trim(&dev.join("vendor"))
        .filter(|v| !v.starts_with("0x"))
        .or_else(|| {
            usb_dev
                .as_ref()
                .and_then(|u| read_trim(&u.join("manufacturer")))
        });
    let serial = usb_dev
        .as_ref()
        .and_then(|u| read_trim(&u.join("serial")))
        .or_else(|| read_trim(&dev.join("serial")))
        .or_else(|| read_trim(&disk_dir.join("serial")));
    Identity {
        port: port(&chain, usb_dev.as_deref()),
        bus,
        model,
        vendor,
        serial,
    }
}

/// The physical place a card sits in, stable while the hub stays wired the same way: the USB device's
/// topology name (`1-1.2`: bus 1, hub port 1, port 2), with the SCSI LUN when it is not 0 (each slot of a
/// multi-slot reader is a LUN of one USB device: `1-1.2:1`); the MMC host (`mmc0`) for a built-in slot.
/// Serial numbers would follow the reader, not the slot, and device names are handed out in arrival order.
fn port(chain: &[(PathBuf, String)], usb_dev: Option<&Path>) -> Option<String> {
    if let Some(usb) = usb_dev {
        let lun = chain
            .iter()
            .filter(|(_, sub)| sub == "scsi")
            .find_map(|(d, _)| {
                let name = file_name(d);
                let parts: Vec<&str> = name.split(':').collect();
                (parts.len() == 4 && parts.iter().all(|p| p.parse::<u32>().is_ok()))
                    .then(|| parts[3].to_string())
            });
        let name = file_name(usb);
        return Some(match lun.as_deref() {
            None | Some("0") => name,
            Some(lun) => format!("{name}:{lun}"),
        });
    }
    chain.iter().map(|(d, _)| file_name(d)).find(|n| {
        n.strip_prefix("mmc")
            .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))
    })
}
