//! Real block devices: loop devices attached to temporary files (always detached by a guard), their
//! partitions via `partx -a`, an ext4 mount, the disk this machine runs from, and the probe on real I/O.

use super::super::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A loop device on a file in a temp dir (the shared guard detaches it, even on panic).
struct Loop {
    dev: PathBuf,
    file: PathBuf,
    lo: crate::testutil::Loop,
    _dir: tempfile::TempDir,
}

impl Loop {
    fn new(size: u64, prepare: impl FnOnce(&Path), losetup_args: &[&str]) -> Loop {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("card.img");
        std::fs::File::create(&file).unwrap().set_len(size).unwrap();
        prepare(&file);
        let lo = crate::testutil::Loop::attach_with(&file, losetup_args);
        Loop {
            dev: lo.path().to_path_buf(),
            file,
            lo,
            _dir: dir,
        }
    }
    fn name(&self) -> String {
        self.lo.name()
    }
}

/// A mount that is undone on drop (before the loop guard declared earlier detaches the device).
struct Mounted(tempfile::TempDir);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).output();
    }
}

fn loops_ok() -> Eligibility {
    Eligibility {
        extra_allowed_buses: vec![Bus::Loop],
        ..Eligibility::new(Path::new("/nonexistent/image.img"), 0)
    }
}

#[test]
fn facts_of_a_loop_device() {
    let l = Loop::new(16 << 20, |_| {}, &[]);
    let f = facts(&l.dev).unwrap();
    assert_eq!(f.path, l.dev);
    assert_eq!(f.name, l.name());
    assert!(f.is_block && !f.is_partition && !f.removable && !f.read_only);
    assert_eq!(f.size, 16 << 20);
    assert_eq!(f.logical_block, 512);
    assert_eq!(f.bus, Bus::Loop);
    assert_eq!(f.backing_file.as_deref(), Some(l.file.as_path()));
    assert!(f.partitions.is_empty() && f.mounted.is_empty() && f.holders.is_empty());
    assert_eq!(describe(&f), format!("{}  16.8 MB  loop", l.dev.display()));

    let l4k = Loop::new(16 << 20, |_| {}, &["--sector-size", "4096"]);
    assert_eq!(facts(&l4k.dev).unwrap().logical_block, 4096);

    let ro = Loop::new(1 << 20, |_| {}, &["--read-only"]);
    let f = facts(&ro.dev).unwrap();
    assert!(f.read_only);
    assert_eq!(check(&f, &loops_ok(), &[], None), vec![Refusal::ReadOnly]);
}

#[test]
fn partitions_are_listed_and_refused() {
    let l = Loop::new(
        8 << 20,
        |f| {
            let script = "label: dos\nstart=2048, size=4096, type=83\nstart=6144, type=83\n";
            let mut child = Command::new("sfdisk")
                .args(["-q", f.to_str().unwrap()])
                .stdin(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(script.as_bytes())
                .unwrap();
            assert!(child.wait().unwrap().success());
        },
        &[],
    );
    run("partx", &["-a", l.dev.to_str().unwrap()]);
    let n = l.name();
    let disk = facts(&l.dev).unwrap();
    assert_eq!(disk.partitions, vec![format!("{n}p1"), format!("{n}p2")]);
    assert!(!disk.is_partition);

    let p1 = facts(Path::new(&format!("/dev/{n}p1"))).unwrap();
    assert!(p1.is_partition);
    assert_eq!(p1.parent.as_deref(), Some(n.as_str()));
    assert_eq!(p1.size, 4096 * 512);
    assert_eq!(p1.bus, Bus::Loop, "a partition reports its disk's bus");
    assert_eq!(
        check(&p1, &loops_ok(), &[], None),
        vec![Refusal::Partition { parent: n.clone() }]
    );
    assert_eq!(check(&disk, &loops_ok(), &[], None), vec![]);
}

#[test]
fn a_mounted_loop_is_refused_naming_the_mountpoint() {
    let l = Loop::new(
        32 << 20,
        |f| {
            run("mkfs.ext4", &["-q", "-F", f.to_str().unwrap()]);
        },
        &[],
    );
    let mp = tempfile::tempdir().unwrap();
    run(
        "mount",
        &[l.dev.to_str().unwrap(), mp.path().to_str().unwrap()],
    );
    let m = Mounted(mp);
    let mpath = m.0.path().to_string_lossy().into_owned();

    let f = facts(&l.dev).unwrap();
    let dev = l.dev.to_string_lossy().into_owned();
    assert_eq!(f.mounted, vec![(dev.clone(), mpath.clone())]);
    let r = check(&f, &loops_ok(), &[], None);
    assert_eq!(
        r,
        vec![Refusal::Mounted {
            what: vec![(dev.clone(), mpath.clone())]
        }]
    );
    assert!(
        r[0].to_string().contains(&format!("{dev} on {mpath}")),
        "{}",
        r[0]
    );

    // An image stored on that filesystem: its disk is the loop device.
    let image = m.0.path().join("hotspot.img");
    std::fs::write(&image, b"image").unwrap();
    assert_eq!(
        disk_of_file(&image).unwrap().as_deref(),
        Some(l.name().as_str())
    );
    let r = check(
        &f,
        &loops_ok(),
        &[],
        disk_of_file(&image).unwrap().as_deref(),
    );
    assert!(r.contains(&Refusal::HoldsImage), "{r:?}");

    // O_EXCL: the kernel itself refuses to hand a mounted device to the probe.
    let err = probe_capacity(&l.dev, f.size, f.logical_block).unwrap_err();
    assert!(err.to_string().contains(&dev), "{err}");
    drop(m);
    assert!(facts(&l.dev).unwrap().mounted.is_empty());
}

#[test]
fn the_disk_running_this_system_is_refused() {
    let source = run("findmnt", &["-no", "SOURCE", "/"]);
    let parent = run("lsblk", &["-no", "PKNAME", &source]);
    let disk = if parent.is_empty() {
        source.trim_start_matches("/dev/").to_string()
    } else {
        parent
    };
    let system = system_disks().unwrap();
    assert!(system.contains(&disk), "{disk} not in {system:?}");

    let f = facts(Path::new(&format!("/dev/{disk}"))).unwrap();
    assert_eq!(f.name, disk);
    let forced = Eligibility {
        allow_non_removable: true,
        ..Eligibility::new(Path::new("/nonexistent"), 0)
    };
    let r = check(&f, &forced, &system, None);
    assert!(r.contains(&Refusal::SystemDisk), "{r:?}");
    assert!(
        r.iter()
            .any(|x| matches!(x, Refusal::Mounted { what } if what.iter().any(|(_, m)| m == "/"))),
        "{r:?}"
    );
    let loop_disk = Loop::new(1 << 20, |_| {}, &[]);
    assert!(!system.contains(&loop_disk.name()));
}

#[test]
fn small_and_non_removable_loops_follow_the_policy() {
    let l = Loop::new(1 << 20, |_| {}, &[]);
    let f = facts(&l.dev).unwrap();
    let strict = Eligibility::new(Path::new("/nonexistent/image.img"), 2 << 20);
    assert_eq!(
        check(&f, &strict, &[], None),
        vec![
            Refusal::TooSmall {
                size: 1 << 20,
                needed: 2 << 20
            },
            Refusal::NotRemovable { bus: Bus::Loop }
        ]
    );
    let fits = Eligibility::new(Path::new("/nonexistent/image.img"), 1 << 20);
    assert_eq!(
        check(&f, &fits, &[], None),
        vec![Refusal::NotRemovable { bus: Bus::Loop }]
    );
    let forced = Eligibility {
        allow_non_removable: true,
        ..fits.clone()
    };
    assert_eq!(check(&f, &forced, &[], None), vec![]);
    let loops = Eligibility {
        extra_allowed_buses: vec![Bus::Loop],
        ..fits
    };
    assert_eq!(check(&f, &loops, &[], None), vec![]);
}

#[test]
fn a_loop_on_the_image_itself_is_refused() {
    let l = Loop::new(1 << 20, |_| {}, &[]);
    let f = facts(&l.dev).unwrap();
    let p = Eligibility {
        extra_allowed_buses: vec![Bus::Loop],
        ..Eligibility::new(&l.file, 0)
    };
    assert_eq!(check(&f, &p, &[], None), vec![Refusal::HoldsImage]);
}

#[test]
fn non_devices_and_missing_paths() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain");
    std::fs::write(&file, b"x").unwrap();
    let f = facts(&file).unwrap();
    assert!(!f.is_block);
    assert_eq!(
        check(&f, &loops_ok(), &[], None),
        vec![Refusal::NotBlockDevice]
    );
    let f = facts(Path::new("/dev/null")).unwrap();
    assert_eq!(
        check(&f, &loops_ok(), &[], None),
        vec![Refusal::NotBlockDevice]
    );

    let err = facts(&dir.path().join("sdz")).unwrap_err();
    assert_eq!(crate::Classify::class(&err), crate::ErrorClass::BadInput);
    assert!(err.to_string().contains("sdz"), "{err}");
}

#[test]
fn probe_passes_on_honest_loop_devices() {
    for sector in ["512", "4096"] {
        let l = Loop::new(64 << 20, |_| {}, &["--sector-size", sector]);
        let f = facts(&l.dev).unwrap();
        probe_capacity(&l.dev, f.size, f.logical_block).unwrap();
        // The sentinels really reached the backing file: the last block carries the probe's magic.
        let data = std::fs::read(&l.file).unwrap();
        let last = data.len() - f.logical_block as usize;
        assert_eq!(&data[last..last + 8], b"ICPROBE\x01");
        assert_eq!(&data[..8], b"ICPROBE\x01");
    }
}

#[test]
fn probe_on_a_loop_advertised_larger_than_it_is_fails() {
    // Claiming more than the device holds: the kernel refuses I/O past the end, and the error names it.
    let l = Loop::new(8 << 20, |_| {}, &[]);
    let err = probe_capacity(&l.dev, 64 << 20, 512).unwrap_err();
    assert!(
        matches!(err, DeviceError::ProbeIo { offset, .. } if offset >= 8 << 20),
        "{err:?}"
    );
}
