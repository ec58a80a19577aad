//! Pure tests: refusals from hand-built facts, descriptions, mount table parsing, bus detection on fake
//! sysfs trees and error classes; the probe is in `probe.rs`, real loop devices in `loops.rs`.

mod loops;
mod probe;

use super::sysfs::{identify, parse_mountinfo, Identity};
use super::*;
use crate::{Classify, ErrorClass};
use std::io;
use std::path::{Path, PathBuf};

const GB: u64 = 1_000_000_000;

fn card() -> Facts {
    Facts {
        path: PathBuf::from("/dev/sdb"),
        name: "sdb".into(),
        is_block: true,
        size: 31_914_983_424,
        logical_block: 512,
        removable: true,
        bus: Bus::Usb,
        model: Some("Ultra".into()),
        vendor: Some("SanDisk".into()),
        serial: Some("4C530001".into()),
        port: Some("1-1.2".into()),
        is_partition: false,
        parent: None,
        partitions: vec!["sdb1".into(), "sdb2".into()],
        mounted: Vec::new(),
        holders: Vec::new(),
        lvm: Vec::new(),
        read_only: false,
        backing_file: None,
    }
}

fn policy() -> Eligibility {
    Eligibility {
        allow_non_removable: false,
        min_size: 8 * GB,
        image: Some(PathBuf::from("/srv/images/hotspot.img")),
        extra_allowed_buses: Vec::new(),
    }
}

fn refusals(f: &Facts) -> Vec<Refusal> {
    check(f, &policy(), &["vda".to_string()], Some("sdc"))
}

#[test]
fn a_plain_usb_card_is_accepted() {
    assert_eq!(refusals(&card()), vec![]);
}

#[test]
fn each_refusal_on_its_own() {
    let mut f = card();
    f.is_block = false;
    assert_eq!(refusals(&f), vec![Refusal::NotBlockDevice]);

    let mut f = card();
    f.name = "sdb1".into();
    f.is_partition = true;
    f.parent = Some("sdb".into());
    f.partitions.clear();
    assert_eq!(
        refusals(&f),
        vec![Refusal::Partition {
            parent: "sdb".into()
        }]
    );

    let mut f = card();
    f.name = "vda".into();
    assert_eq!(refusals(&f), vec![Refusal::SystemDisk]);

    let mut f = card();
    f.name = "sdc".into();
    assert_eq!(refusals(&f), vec![Refusal::HoldsImage]);

    let mut f = card();
    f.bus = Bus::Loop;
    f.removable = false;
    f.backing_file = Some(PathBuf::from("/srv/images/hotspot.img"));
    let p = Eligibility {
        extra_allowed_buses: vec![Bus::Loop],
        ..policy()
    };
    assert_eq!(check(&f, &p, &[], None), vec![Refusal::HoldsImage]);

    let mut f = card();
    f.mounted = vec![("/dev/sdb2".into(), "/media/data".into())];
    assert_eq!(
        refusals(&f),
        vec![Refusal::Mounted {
            what: f.mounted.clone()
        }]
    );

    let mut f = card();
    f.holders = vec!["dm-0".into()];
    assert_eq!(
        refusals(&f),
        vec![Refusal::Held {
            by: vec!["dm-0".into()]
        }]
    );

    let mut f = card();
    f.read_only = true;
    assert_eq!(refusals(&f), vec![Refusal::ReadOnly]);

    let mut f = card();
    f.size = 4 * GB;
    assert_eq!(
        refusals(&f),
        vec![Refusal::TooSmall {
            size: 4 * GB,
            needed: 8 * GB
        }]
    );

    let mut f = card();
    f.removable = false;
    f.bus = Bus::Nvme;
    assert_eq!(refusals(&f), vec![Refusal::NotRemovable { bus: Bus::Nvme }]);
}

#[test]
fn partition_of_the_system_disk_is_refused_as_both() {
    let mut f = card();
    f.name = "vda1".into();
    f.is_partition = true;
    f.parent = Some("vda".into());
    f.mounted = vec![("/dev/vda1".into(), "/".into())];
    let r = refusals(&f);
    assert!(
        r.contains(&Refusal::Partition {
            parent: "vda".into()
        }),
        "{r:?}"
    );
    assert!(r.contains(&Refusal::SystemDisk), "{r:?}");
    assert!(
        r.contains(&Refusal::Mounted {
            what: f.mounted.clone()
        }),
        "{r:?}"
    );
}

#[test]
fn eligibility_is_injectable() {
    let mut f = card();
    f.removable = false;
    f.bus = Bus::Loop;
    assert_eq!(refusals(&f), vec![Refusal::NotRemovable { bus: Bus::Loop }]);
    let loops = Eligibility {
        extra_allowed_buses: vec![Bus::Loop],
        ..policy()
    };
    assert_eq!(check(&f, &loops, &[], None), vec![]);
    let forced = Eligibility {
        allow_non_removable: true,
        ..policy()
    };
    assert_eq!(check(&f, &forced, &[], None), vec![]);
    // A fixed disk that says removable (some SD slots on laptops) is a card; MMC without the flag too.
    f.bus = Bus::Mmc;
    assert_eq!(refusals(&f), vec![]);
    f.bus = Bus::Ata;
    f.removable = true;
    assert_eq!(refusals(&f), vec![]);
}

#[test]
fn refusals_read_as_sentences_with_the_details() {
    let t = Refusal::TooSmall {
        size: 4 * GB,
        needed: 8 * GB,
    }
    .to_string();
    assert!(
        t.contains("4000000000") && t.contains("4.0 GB") && t.contains("8.0 GB"),
        "{t}"
    );
    let t = Refusal::Mounted {
        what: vec![("/dev/sdb1".into(), "/media/boot".into())],
    }
    .to_string();
    assert!(t.contains("/dev/sdb1 on /media/boot"), "{t}");
    let t = Refusal::Partition {
        parent: "mmcblk0".into(),
    }
    .to_string();
    assert!(t.contains("/dev/mmcblk0"), "{t}");
    assert!(Refusal::NotRemovable { bus: Bus::Nvme }
        .to_string()
        .contains("nvme"));
    for r in [
        Refusal::NotBlockDevice,
        Refusal::SystemDisk,
        Refusal::HoldsImage,
        Refusal::ReadOnly,
    ] {
        let s = r.to_string();
        assert!(s.ends_with('.') && s.starts_with("It "), "{s}");
    }
}

#[test]
fn describe_is_one_line_for_prompts() {
    assert_eq!(describe(&card()), "/dev/sdb  SanDisk Ultra  31.9 GB  usb");
    let mut f = card();
    f.vendor = None;
    f.model = None;
    f.size = 512 * 1_000_000;
    f.bus = Bus::Other("virtual".into());
    assert_eq!(describe(&f), "/dev/sdb  512.0 MB  virtual");
}

#[test]
fn mountinfo_lines_parse_with_escapes() {
    let text = "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n\
                40 27 7:3 / /mnt/my\\040card rw shared:5 - ext4 /dev/loop3 rw\n\
                41 27 0:45 /sub /data rw - btrfs /dev/sdc2 rw\n\
                garbage line\n";
    let m = parse_mountinfo(text);
    assert_eq!(m.len(), 3);
    assert_eq!(
        (m[0].devnum, m[0].mountpoint.as_str(), m[0].source.as_str()),
        ((254, 0), "/", "/dev/vda")
    );
    assert_eq!(m[1].mountpoint, "/mnt/my card");
    assert_eq!(m[1].devnum, (7, 3));
    assert_eq!((m[2].devnum, m[2].source.as_str()), ((0, 45), "/dev/sdc2"));
}

/// Builds `root/devices/<chain>` with a `subsystem` link per level and files, then `block/<disk>` whose
/// `device` link points at the last level: the shape the kernel gives.
/// (directory name, subsystem or "", files with contents) for one level of a fake device chain.
type Level<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

fn fake_disk(root: &Path, levels: &[Level], disk: &str) -> PathBuf {
    let mut dir = root.join("devices");
    for (name, subsystem, files) in levels {
        dir = dir.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        if !subsystem.is_empty() {
            let target = root.join("bus").join(subsystem);
            std::fs::create_dir_all(&target).unwrap();
            std::os::unix::fs::symlink(&target, dir.join("subsystem")).unwrap();
        }
        for (f, content) in *files {
            std::fs::write(dir.join(f), content).unwrap();
        }
    }
    let disk_dir = dir.join("block").join(disk);
    std::fs::create_dir_all(&disk_dir).unwrap();
    std::os::unix::fs::symlink(&dir, disk_dir.join("device")).unwrap();
    disk_dir
}

#[test]
fn bus_model_and_serial_from_the_device_chain() {
    let t = tempfile::tempdir().unwrap();
    let sys = t.path().join("usb");
    let disk = fake_disk(
        &sys,
        &[
            ("pci0000:00", "", &[]),
            ("0000:00:14.0", "pci", &[("vendor", "0x8086")]),
            (
                "usb1",
                "usb",
                &[("idVendor", "1d6b"), ("product", "xHCI Host Controller")],
            ),
            (
                "1-2",
                "usb",
                &[
                    ("idVendor", "0bda"),
                    ("product", "Card Reader"),
                    ("manufacturer", "Generic"),
                    ("serial", "20120501030900000\n"),
                ],
            ),
            ("1-2:1.0", "usb", &[]),
            ("host0", "scsi", &[]),
            ("target0:0:0", "scsi", &[]),
            (
                "0:0:0:0",
                "scsi",
                &[("model", "SD/MMC          \n"), ("vendor", "Generic-\n")],
            ),
        ],
        "sdb",
    );
    let id = identify(&sys, &disk, "sdb");
    assert_eq!(id.bus, Bus::Usb);
    assert_eq!(id.model.as_deref(), Some("SD/MMC"));
    assert_eq!(id.vendor.as_deref(), Some("Generic-"));
    assert_eq!(id.port.as_deref(), Some("1-2"), "the USB port, LUN 0");
    assert_eq!(
        id.serial.as_deref(),
        Some("20120501030900000"),
        "the reader's USB serial"
    );

    // The second slot of a multi-slot reader: LUN 1 of the same USB device, a different port key.
    let sys = t.path().join("lun1");
    let disk = fake_disk(
        &sys,
        &[
            ("pci0000:00", "", &[]),
            ("usb1", "usb", &[("idVendor", "1d6b")]),
            ("1-1.4", "usb", &[("idVendor", "058f")]),
            ("1-1.4:1.0", "usb", &[]),
            ("host3", "scsi", &[]),
            ("target3:0:0", "scsi", &[]),
            ("3:0:0:1", "scsi", &[("model", "SD Reader")]),
        ],
        "sdc",
    );
    assert_eq!(
        identify(&sys, &disk, "sdc").port.as_deref(),
        Some("1-1.4:1")
    );

    let sys = t.path().join("mmc");
    let disk = fake_disk(
        &sys,
        &[
            ("platform", "", &[]),
            ("fe340000.mmc", "platform", &[]),
            ("mmc_host", "", &[]),
            ("mmc0", "", &[]),
            (
                "mmc0:aaaa",
                "mmc",
                &[("name", "SC64G"), ("serial", "0x1c2f3a4b")],
            ),
        ],
        "mmcblk0",
    );
    assert_eq!(
        identify(&sys, &disk, "mmcblk0"),
        Identity {
            bus: Bus::Mmc,
            model: Some("SC64G".into()),
            vendor: None,
            serial: Some("0x1c2f3a4b".into()),
            port: Some("mmc0".into()),
        }
    );

    let sys = t.path().join("sata");
    let disk = fake_disk(
        &sys,
        &[
            ("pci0000:00", "", &[]),
            ("0000:00:1f.2", "pci", &[]),
            ("ata1", "", &[]),
            ("host0", "scsi", &[]),
            ("target0:0:0", "scsi", &[]),
            (
                "0:0:0:0",
                "scsi",
                &[("model", "Samsung SSD 860"), ("vendor", "ATA")],
            ),
        ],
        "sda",
    );
    assert_eq!(identify(&sys, &disk, "sda").bus, Bus::Ata);

    let sys = t.path().join("virt");
    let disk = sys.join("devices/virtual/block/zram0");
    std::fs::create_dir_all(&disk).unwrap();
    assert_eq!(
        identify(&sys, &disk, "zram0").bus,
        Bus::Other("virtual".into())
    );
    std::fs::create_dir_all(disk.join("loop")).unwrap();
    assert_eq!(identify(&sys, &disk, "zram0").bus, Bus::Loop);
}

#[test]
fn io_errors_are_classified() {
    let denied = DeviceError::io("/dev/sdb", io::Error::from(io::ErrorKind::PermissionDenied));
    assert_eq!(denied.class(), ErrorClass::MissingRequirement);
    assert!(
        denied
            .to_string()
            .starts_with("/dev/sdb: permission denied"),
        "{denied}"
    );
    let missing = DeviceError::io("/dev/sdz", io::Error::from(io::ErrorKind::NotFound));
    assert_eq!(missing.class(), ErrorClass::BadInput);
    let other = DeviceError::io("/dev/sdb", io::Error::other("medium error"));
    assert_eq!(other.class(), ErrorClass::Failure);
    assert!(other.to_string().contains("/dev/sdb"));
}
