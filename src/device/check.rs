//! The safety gate before a device is written: every reason to refuse, as data, so the CLI can list them
//! all at once and the station can show them per slot.

use super::{Bus, DeviceError, Facts};
use crate::units::format_decimal;
use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

/// What the caller allows. Injectable so tests and the station can accept loop devices as cards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eligibility {
    /// `--force`: write fixed disks too (SATA, NVMe, virtio), never the system disk or a busy one.
    pub allow_non_removable: bool,
    /// The image size: smaller devices are refused.
    pub min_size: u64,
    /// The file being written (an image, or the config of a build), canonical: the device holding it, or a
    /// loop device backed by it, is refused.
    pub image: Option<PathBuf>,
    /// Buses accepted as cards besides removable, USB and MMC devices (`Bus::Loop` in tests).
    pub extra_allowed_buses: Vec<Bus>,
}

impl Eligibility {
    /// The default policy for writing `image` of `min_size` bytes: removable/USB/MMC devices only.
    pub fn new(image: &Path, min_size: u64) -> Self {
        Eligibility {
            image: Some(std::fs::canonicalize(image).unwrap_or_else(|_| image.to_path_buf())),
            min_size,
            allow_non_removable: false,
            extra_allowed_buses: Vec::new(),
        }
    }
}

/// One reason a device must not be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Its facts could not be read (no such device, …).
    Unknown {
        reason: String,
    },
    /// The same disk appears twice in one request.
    GivenTwice,
    NotBlockDevice,
    Partition {
        parent: String,
    },
    SystemDisk,
    HoldsImage,
    Mounted {
        what: Vec<(String, String)>,
    },
    Held {
        by: Vec<String>,
    },
    /// An LVM physical volume (its label, even with the volume group inactive).
    Lvm {
        members: Vec<String>,
    },
    ReadOnly,
    TooSmall {
        size: u64,
        needed: u64,
    },
    NotRemovable {
        bus: Bus,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Unknown { reason } => f.write_str(reason),
            Refusal::GivenTwice => write!(f, "It is given twice."),
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
            Refusal::Lvm { members } => write!(
                f,
                "It is an LVM physical volume ({}); remove it from its volume group (pvremove) first.",
                members.join(", ")
            ),
            Refusal::ReadOnly => write!(f, "It is read-only (check the card's lock switch)."),
            Refusal::TooSmall { size, needed } => write!(
                f,
                "It is too small: {size} bytes ({}) for an image of {needed} bytes ({}).",
                format_decimal(*size),
                format_decimal(*needed)
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
    policy: &Eligibility,
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
        .is_some_and(|b| policy.image.as_ref() == Some(b));
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
    if !facts.lvm.is_empty() {
        out.push(Refusal::Lvm {
            members: facts.lvm.clone(),
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

/// Every device in a request that must not be written, with all its reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub devices: Vec<(PathBuf, Vec<Refusal>)>,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "refusing to write, nothing was written:")?;
        for (dev, why) in &self.devices {
            for r in why {
                write!(f, "\n  {}: {r}", dev.display())?;
            }
        }
        Ok(())
    }
}

/// The one gate before any device is written (by `write`, by a build onto a card, by the station): reads
/// every device's facts and checks them all under `policy`. Either every device passes, or nothing may be
/// written and [`DeviceError::Refused`] lists every reason for every device at once.
pub fn gate(paths: &[PathBuf], policy: &Eligibility) -> Result<Vec<Facts>, DeviceError> {
    let system = super::system_disks()?;
    let image_disk = match &policy.image {
        Some(image) => super::disk_of_file(image)?,
        None => None,
    };
    let mut facts = Vec::new();
    let mut refused = Vec::new();
    let mut seen = HashSet::new();
    for dev in paths {
        let f = match super::facts(dev) {
            Ok(f) => f,
            Err(e) => {
                let reason = crate::Chain(&e).to_string();
                refused.push((dev.clone(), vec![Refusal::Unknown { reason }]));
                continue;
            }
        };
        let mut why = check(&f, policy, &system, image_disk.as_deref());
        if !seen.insert(f.name.clone()) {
            why.insert(0, Refusal::GivenTwice);
        }
        if why.is_empty() {
            facts.push(f);
        } else {
            refused.push((dev.clone(), why));
        }
    }
    if refused.is_empty() {
        Ok(facts)
    } else {
        Err(DeviceError::Refused(Refused { devices: refused }))
    }
}
