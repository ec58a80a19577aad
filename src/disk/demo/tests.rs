use super::*;
// sha2 directly, as an independent judge of crate::digest.
use sha2::{Digest, Sha256};
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
    let manifest: serde_json::Value = serde_json::from_slice(&members["manifest.json"]).unwrap();
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
