//! What `mke2fs -d` keeps of a source tree, giving it to root, and extracting it back.

use super::super::mkfs::ChownPlan;
use super::*;
use std::os::unix::fs::MetadataExt;

const NEWLINE_NAME: &str = "new\nline";
const SPARSE_SIZE: u64 = 2 << 30;

/// A tree with every awkward kind of entry; returns `(fs path, content)` of the regular files.
fn awkward_tree(src: &Path) -> Vec<(String, Vec<u8>)> {
    let files: Vec<(String, Vec<u8>)> = [
        "/a dir/sp ace.txt",
        "/quo\"te",
        "/back\\slash",
        "/single'q",
        "/semi;colon",
        "/#hash",
        "/ünï cødé/ファイル.txt",
        "/tab\tx",
        "/-dash",
        "/cr\rname",
        "/new\nline",
        "/hard1",
    ]
    .iter()
    .enumerate()
    .map(|(i, p)| (p.to_string(), pattern(100 + i * 37, i as u8)))
    .collect();
    for (p, data) in &files {
        let real = src.join(&p[1..]);
        std::fs::create_dir_all(real.parent().unwrap()).unwrap();
        std::fs::write(&real, data).unwrap();
    }
    std::fs::hard_link(src.join("hard1"), src.join("a dir/hard2")).unwrap();
    std::os::unix::fs::symlink("a dir/sp ace.txt", src.join("sym")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/absolute", src.join("dangling")).unwrap();
    std::fs::create_dir_all(src.join("empty/nested-empty")).unwrap();
    // 2 GiB apparent, 8 KiB of data at both ends.
    let f = std::fs::File::create(src.join("sparse.bin")).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(b"head", 0).unwrap();
    f.write_all_at(b"tail", SPARSE_SIZE - 4).unwrap();
    files
}

fn inode_of(t: &Tools, img: &Path, path: &str) -> (u64, u32) {
    let s = t.stat(img, 0, path).unwrap();
    (
        debugfs::stat_field(&s, "Inode:").unwrap(),
        debugfs::stat_field(&s, "Links:").unwrap(),
    )
}

#[test]
fn awkward_tree_is_preserved_and_extracted() {
    let t = tools();
    let dir = tmp();
    let src = dir.path().join("src");
    let files = awkward_tree(&src);
    let img = dir.path().join("t.img");
    t.mkfs(
        &mkfs_plain(&img, 0, 64 * MIB, Some(&src)),
        &Progress::silent(),
        &CancellationToken::new(),
    )
    .unwrap();
    t.fsck(&img, 0).unwrap();

    for (p, data) in &files {
        assert_eq!(&t.cat(&img, 0, p).unwrap(), data, "content of {p:?}");
    }
    let (ino1, links1) = inode_of(&t, &img, "/hard1");
    let (ino2, _) = inode_of(&t, &img, "/a dir/hard2");
    assert_eq!((ino1, links1), (ino2, 2), "hard link kept");
    let sym = t.stat(&img, 0, "/sym").unwrap();
    assert!(
        sym.contains("Type: symlink") && sym.contains("\"a dir/sp ace.txt\""),
        "{sym}"
    );
    let dangling = t.stat(&img, 0, "/dangling").unwrap();
    assert!(dangling.contains("\"/nonexistent/absolute\""), "{dangling}");
    assert!(t
        .stat(&img, 0, "/empty/nested-empty")
        .unwrap()
        .contains("Type: directory"));
    let sparse = t.stat(&img, 0, "/sparse.bin").unwrap();
    assert_eq!(
        debugfs::stat_field::<u64>(&sparse, "Size:"),
        Some(SPARSE_SIZE)
    );
    // Blockcount is in 512-byte sectors: two 4 KiB data blocks (no extent block needed).
    assert_eq!(
        debugfs::stat_field::<u64>(&sparse, "Blockcount:"),
        Some(16),
        "{sparse}"
    );
    assert!(matches!(
        t.cat(&img, 0, "/nope"),
        Err(Ext4Error::DebugfsErrors { .. })
    ));

    let out = dir.path().join("out");
    t.extract(&img, 0, &out).unwrap();
    assert!(!out.join("lost+found").exists());
    for (p, data) in &files {
        assert_eq!(
            &std::fs::read(out.join(&p[1..])).unwrap(),
            data,
            "extracted {p:?}"
        );
    }
    assert_eq!(
        std::fs::read_link(out.join("sym")).unwrap(),
        Path::new("a dir/sp ace.txt")
    );
    assert!(out.join("empty/nested-empty").is_dir());
    let mut names: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    let mut expected: Vec<_> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    expected.sort();
    assert_eq!(names, expected);
    let extracted_sparse = std::fs::metadata(out.join("sparse.bin")).unwrap();
    assert_eq!(extracted_sparse.len(), SPARSE_SIZE);

    // A second extraction into a non-empty directory is refused.
    let err = t.extract(&img, 0, &out).unwrap_err();
    assert!(matches!(err, Ext4Error::DestNotEmpty { .. }), "{err}");
}

#[test]
fn chown_root_resets_every_owner_including_high_ids() {
    assert!(is_root(), "this test needs root (chown to arbitrary ids)");
    let t = tools();
    let dir = tmp();
    let src = dir.path().join("src");
    awkward_tree(&src);
    let lchown = |p: &str, uid: u32, gid: u32| {
        std::os::unix::fs::lchown(src.join(p), Some(uid), Some(gid)).unwrap();
    };
    lchown("a dir/sp ace.txt", 100_000, 100_001);
    lchown("quo\"te", 1000, 0); // only the uid needs changing
    lchown("back\\slash", 0, 1000); // only the gid
    lchown("a dir", 5, 6);
    lchown("sym", 7, 8);
    lchown(NEWLINE_NAME, 9, 9);
    lchown("cr\rname", 10, 10);
    lchown("hard1", 11, 12);
    lchown("ünï cødé/ファイル.txt", 65534, 65534);
    lchown("empty/nested-empty", 13, 13);

    let plan = ChownPlan::scan(&src).unwrap();
    // Two ids for most entries, one for the half-owned ones, the hard link pair counted once;
    // the CR and LF names go through -R one by one.
    assert_eq!(plan.commands, 2 + 1 + 1 + 2 + 2 + 2 + 2 + 2);
    assert_eq!(plan.one_off.len(), 4);

    let img = dir.path().join("o.img");
    let offset = 3 * MIB;
    t.mkfs(
        &mkfs_plain(&img, offset, 64 * MIB, Some(&src)),
        &Progress::silent(),
        &CancellationToken::new(),
    )
    .unwrap();
    // mke2fs -d copied the source owners (this is what chown_root exists for).
    assert_eq!(
        t.owner(&img, offset, "/a dir/sp ace.txt").unwrap(),
        (100_000, 100_001)
    );
    assert_eq!(t.owner(&img, offset, "/sym").unwrap(), (7, 8));

    t.chown_root(&img, offset, &src).unwrap();
    for p in [
        "/a dir/sp ace.txt",
        "/quo\"te",
        "/back\\slash",
        "/a dir",
        "/sym",
        "/new\nline",
        "/cr\rname",
        "/hard1",
        "/a dir/hard2",
        "/ünï cødé/ファイル.txt",
        "/empty/nested-empty",
        "/",
    ] {
        assert_eq!(t.owner(&img, offset, p).unwrap(), (0, 0), "owner of {p:?}");
    }
    // The symlink itself changed, and still points where it did.
    let sym = t.stat(&img, offset, "/sym").unwrap();
    assert!(sym.contains("\"a dir/sp ace.txt\""), "{sym}");
    t.fsck(&img, offset).unwrap();
}

#[test]
fn chown_plan_is_empty_for_a_root_owned_tree() {
    let dir = tmp();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("d/e")).unwrap();
    std::fs::write(src.join("d/f"), b"x").unwrap();
    let me = std::fs::metadata(&src).unwrap();
    let plan = ChownPlan::scan(&src).unwrap();
    if me.uid() == 0 && me.gid() == 0 {
        assert!(plan.is_empty(), "{} commands", plan.commands);
    } else {
        // Unprivileged runs: 3 entries, uid and gid each.
        assert_eq!(plan.commands, 6);
    }
}

#[test]
fn chown_root_without_changes_never_opens_the_image() {
    assert!(is_root(), "needs a root-owned source tree");
    let t = tools();
    let dir = tmp();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("d")).unwrap();
    // The image does not exist: any debugfs run would fail.
    let missing = dir.path().join("missing.img");
    t.chown_root(&missing, 0, &src).unwrap();
    std::os::unix::fs::chown(src.join("d"), Some(1), None).unwrap();
    let err = t.chown_root(&missing, 0, &src).unwrap_err();
    assert!(matches!(err, Ext4Error::DebugfsErrors { .. }), "{err}");
}
