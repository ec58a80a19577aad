//! The safety gate before a device is written: every reason to refuse, as data, so the CLI can list them
//! all at once and the station can show them per slot.

use super::{human_size, Bus, Facts};
use std::fmt;
use std::path::PathBuf;

/// What the caller allows. Injectable so tests and the station can accept loop devices as cards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// `--force`: write fixed disks too (SATA, NVMe, virtio), never the system disk or a busy one.
    pub allow_non_removable: bool,
    /// The image size: smaller devices are refused.
    pub min_size: u64,
    /// The image being written, canonical (compared to loop devices' backing files).
    pub image: PathBuf,
    /// Buses accepted as cards besides removable, USB and MMC devices (`Bus::Loop` in tests).
    pub extra_allowed_buses: Vec<Bus>,
}

impl Policy {
    /// The default policy for writing `image` of `min_size` bytes: removable/USB/MMC devices only.
    pub fn new(image: impl Into<PathBuf>, min_size: u64) -> Self {
        let image = image.into();
        Policy {
            image: std::fs::canonicalize(&image).unwrap_or(image),
            min_size,
            allow_non_removable: false,
            extra_allowed_buses: Vec::new(),
        }
    }
}

/// One reason a device must not be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    NotBlockDevice,
    Partition { parent: String },
    SystemDisk,
    HoldsImage,
    Mounted { what: Vec<(String, String)> },
    Held { by: Vec<String> },
    ReadOnly,
    TooSmall { size: u64, needed: u64 },
    NotRemovable { bus: Bus },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NotBlockDevice => write!(f, "It is not a block device."),
            Refusal::Partition { parent } => {
                write!(f, "It is a partition of /dev/{parent}; give the whole disk (/dev/{parent}) instead.")
            }
            Refusal::SystemDisk => write!(f, "It is the disk this system runs from."),
            Refusal::HoldsImage => write!(f, "It holds the image being written."),
            Refusal::Mounted { what } => {
                let list: Vec<String> = what.iter().map(|(dev, mp)| format!("{dev} on {mp}")).collect();
                write!(f, "It is in use: {}; unmount it first.", list.join(", "))
            }
            Refusal::Held { by } => {
                write!(f, "It is held by {} (device-mapper, RAID or similar); release it first.", by.join(", "))
            }
            Refusal::ReadOnly => write!(f, "It is read-only (check the card's lock switch)."),
            Refusal::TooSmall { size, needed } => write!(
                f,
                "It is too small: {size} bytes ({}) for an image of {needed} bytes ({}).",
                human_size(*size),
                human_size(*needed)
            ),
            Refusal::NotRemovable { bus } => write!(
                f,
                "It is a fixed {bus} disk, not a removable, USB or SD card; use --force to write it anyway."
            ),
        }
    }
}

/// Every reason `facts` must not be written under `policy`; empty when it is safe. `system` is
/// [`super::system_disks`], `image_disk` is [`super::disk_of_file`] of the image. Pure: no I/O.
pub fn check(
    facts: &Facts,
    policy: &Policy,
    system: &[String],
    image_disk: Option<&str>,
) -> Vec<Refusal> {
    let mut out = Vec::new();
    if !facts.is_block {
        out.push(Refusal::NotBlockDevice);
        return out; // Nothing else is meaningful for a regular file or a character device.
    }
    // A partition is judged by its disk for the system/image tests: writing sda1 still kills sda.
    let disk = if facts.is_partition {
        facts.parent.as_deref().unwrap_or(&facts.name)
    } else {
        &facts.name
    };
    if facts.is_partition {
        out.push(Refusal::Partition {
            parent: disk.to_string(),
        });
    }
    if system.iter().any(|s| s == disk || *s == facts.name) {
        out.push(Refusal::SystemDisk);
    }
    let backs_image = facts
        .backing_file
        .as_ref()
        .is_some_and(|b| *b == policy.image);
    if image_disk.is_some_and(|d| d == disk || d == facts.name) || backs_image {
        out.push(Refusal::HoldsImage);
    }
    if !facts.mounted.is_empty() {
        out.push(Refusal::Mounted {
            what: facts.mounted.clone(),
        });
    }
    if !facts.holders.is_empty() {
        out.push(Refusal::Held {
            by: facts.holders.clone(),
        });
    }
    if facts.read_only {
        out.push(Refusal::ReadOnly);
    }
    if facts.size < policy.min_size {
        out.push(Refusal::TooSmall {
            size: facts.size,
            needed: policy.min_size,
        });
    }
    let card_like = facts.removable || matches!(facts.bus, Bus::Usb | Bus::Mmc);
    if !card_like && !policy.allow_non_removable && !policy.extra_allowed_buses.contains(&facts.bus)
    {
        out.push(Refusal::NotRemovable {
            bus: facts.bus.clone(),
        });
    }
    out
}
