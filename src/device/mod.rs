//! Block devices as write targets: what a device is (from sysfs and the mount tables, without opening it),
//! which disks hold the running system or the image, every reason a device must not be written, and a
//! fake-capacity probe run just before writing.
//!
//! The eligibility rules are data ([`Eligibility`]) so that tests and the station can accept loop devices as
//! cards (loop devices are never "removable").

mod check;
mod probe;
mod sysfs;
mod system;
#[cfg(test)]
mod tests;

pub use check::{check, gate, Eligibility, Refusal, Refused};
pub use probe::{probe_capacity, probe_with, BlockIo};
pub use sysfs::facts;
pub use system::{disk_of_file, system_disks};

use crate::{Classify, ErrorClass};
use std::fmt;
use std::path::PathBuf;

/// The bus a whole disk hangs from, found by walking its sysfs device chain.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Bus {
    Usb,
    Mmc,
    Loop,
    Nvme,
    Scsi,
    Ata,
    Virtio,
    /// Anything else: the subsystem name, or "virtual" for devices without a `device` link (zram, ram).
    Other(String),
}

impl fmt::Display for Bus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Bus::Usb => "usb",
            Bus::Mmc => "mmc",
            Bus::Loop => "loop",
            Bus::Nvme => "nvme",
            Bus::Scsi => "scsi",
            Bus::Ata => "ata",
            Bus::Virtio => "virtio",
            Bus::Other(s) => s,
        })
    }
}

/// What is known about a device path before anything touches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// Canonical path (`/dev/sdb`), or the canonical path of whatever non-device was given.
    pub path: PathBuf,
    /// Kernel name: `sdb`, `loop3`, `mmcblk0p1`.
    pub name: String,
    /// False for regular files, character devices, directories: [`check`] refuses them.
    pub is_block: bool,
    /// Size in bytes.
    pub size: u64,
    pub logical_block: u32,
    pub removable: bool,
    pub bus: Bus,
    pub model: Option<String>,
    pub vendor: Option<String>,
    pub serial: Option<String>,
    /// The physical port it is plugged into (`1-1.2` for USB, `1-1.2:1` for a reader's second slot,
    /// `mmc0` for a built-in slot): what the station keys its slots on.
    pub port: Option<String>,
    pub is_partition: bool,
    /// The whole disk a partition belongs to (`sdb` for `sdb1`).
    pub parent: Option<String>,
    /// Partition names of a whole disk (`sdb1`, `loop3p1`).
    pub partitions: Vec<String>,
    /// (`/dev/x`, mountpoint) for the device and each of its partitions; swap shows as `[swap]`.
    pub mounted: Vec<(String, String)>,
    /// Devices stacked on it or its partitions (dm, md, bcache).
    pub holders: Vec<String>,
    /// The device or partitions of it that are LVM physical volumes (`sdb`, `sdb2`).
    pub lvm: Vec<String>,
    pub read_only: bool,
    /// For a loop device, the file behind it (so writing an image onto its own loop device is refused).
    pub backing_file: Option<PathBuf>,
}

/// Vendor and model as a person reads them (`SanDisk Ultra`), when the device says.
pub fn label(f: &Facts) -> Option<String> {
    let label = [f.vendor.as_deref(), f.model.as_deref()]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    (!label.is_empty()).then_some(label)
}

/// "/dev/sdb  SanDisk Ultra  31.9 GB  usb": for confirmation prompts and device tables.
pub fn describe(f: &Facts) -> String {
    let mut parts = vec![f.path.display().to_string()];
    parts.extend(label(f));
    parts.push(crate::units::format_decimal(f.size));
    parts.push(f.bus.to_string());
    parts.join("  ")
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("{0}")]
    Refused(Refused),

    #[error("{path}: no such device or file")]
    NotFound {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "{path}: permission denied (writing cards needs root or membership of the `disk` group)"
    )]
    PermissionDenied {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path}: I/O error")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path}: unexpected content {what}")]
    Parse { path: PathBuf, what: String },

    #[error(
        "{device} reports {size} bytes but is a fake: the block written at offset {written} came back at \
         offset {read}, so it wrapped at offset {wrap} (real capacity about {})",
        crate::units::format_decimal(*wrap)
    )]
    Wrapped {
        device: PathBuf,
        size: u64,
        written: u64,
        read: u64,
        wrap: u64,
    },

    #[error(
        "{device} reports {size} bytes but does not keep them: the block written at offset {offset} read back \
         different"
    )]
    Lost {
        device: PathBuf,
        size: u64,
        offset: u64,
    },

    #[error("{device}: I/O error at offset {offset} while probing its capacity (fake cards fail past their real size)")]
    ProbeIo {
        device: PathBuf,
        offset: u64,
        #[source]
        source: std::io::Error,
    },

    #[error("{device}: cannot probe a {size}-byte device with {logical_block}-byte blocks")]
    BadGeometry {
        device: PathBuf,
        size: u64,
        logical_block: u32,
    },
}

impl DeviceError {
    /// Wraps an I/O error on `path`, sorting out the kinds the user can act on.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        match source.kind() {
            std::io::ErrorKind::NotFound => DeviceError::NotFound { path, source },
            std::io::ErrorKind::PermissionDenied => DeviceError::PermissionDenied { path, source },
            _ => DeviceError::Io { path, source },
        }
    }
}

impl Classify for DeviceError {
    fn class(&self) -> ErrorClass {
        match self {
            DeviceError::NotFound { .. } | DeviceError::Refused(_) => ErrorClass::BadInput,
            DeviceError::PermissionDenied { .. } => ErrorClass::MissingRequirement,
            DeviceError::Io { .. }
            | DeviceError::Parse { .. }
            | DeviceError::Wrapped { .. }
            | DeviceError::Lost { .. }
            | DeviceError::ProbeIo { .. }
            | DeviceError::BadGeometry { .. } => ErrorClass::Failure,
        }
    }
}
