//! The rootless path for real: this test binary re-runs one of its own tests as user `nobody`.

use super::*;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

const INNER: &str = "disk::ext4::tests::unprivileged::inner_mkfs_chown_extract";
const DIR_ENV: &str = "EXT4_TEST_UNPRIVILEGED_DIR";
const NOBODY: u32 = 65534;
const OFFSET: u64 = MIB;

/// mkfs + chown_root + extract as whoever runs it, in `$EXT4_TEST_UNPRIVILEGED_DIR` when set (the
/// outer test below sets it and runs this as `nobody`), else in a fresh temporary directory.
#[test]
fn inner_mkfs_chown_extract() {
    let own = tmp();
    let dir = std::env::var_os(DIR_ENV).map_or_else(|| own.path().to_path_buf(), PathBuf::from);
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("contents/zims")).unwrap();
    std::fs::write(src.join("master_fs"), b"").unwrap();
    std::fs::write(src.join("contents/zims/a b.zim"), pattern(300_000, 9)).unwrap();
    std::fs::write(src.join("new\nline"), b"nl").unwrap();
    std::os::unix::fs::symlink("contents/zims", src.join("link")).unwrap();
    let img = dir.join("img");
    std::fs::write(&img, pattern(OFFSET as usize, 4)).unwrap();

    let t = tools();
    let m = Mkfs {
        source_bytes: 300_002,
        ..mkfs_plain(&img, OFFSET, 32 * MIB, Some(&src))
    };
    t.mkfs(&m, &Progress::silent(), &CancellationToken::new())
        .unwrap();
    t.chown_root(&img, OFFSET, &src).unwrap();
    for p in [
        "/",
        "/master_fs",
        "/contents",
        "/contents/zims",
        "/contents/zims/a b.zim",
        "/new\nline",
        "/link",
    ] {
        assert_eq!(t.owner(&img, OFFSET, p).unwrap(), (0, 0), "owner of {p:?}");
    }
    t.fsck(&img, OFFSET).unwrap();

    let out = dir.join("out");
    t.extract(&img, OFFSET, &out).unwrap();
    assert_eq!(
        std::fs::read(out.join("contents/zims/a b.zim")).unwrap(),
        pattern(300_000, 9)
    );
    assert_eq!(std::fs::read(out.join("new\nline")).unwrap(), b"nl");
    assert!(out.join("master_fs").is_file());
    assert!(!out.join("lost+found").exists());
}

#[test]
fn mkfs_chown_extract_as_nobody() {
    assert!(is_root(), "this test needs root to switch to user nobody");
    let dir = tmp();
    std::os::unix::fs::chown(dir.path(), Some(NOBODY), Some(NOBODY)).unwrap();
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("setpriv")
        .args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
        ])
        .arg(&exe)
        .args([INNER, "--exact", "--nocapture", "--test-threads=1"])
        .env(DIR_ENV, dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "inner test failed as nobody:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // It really ran as nobody: the files it created are nobody's, and mke2fs would have copied that.
    let src = dir.path().join("src");
    for p in ["master_fs", "contents/zims/a b.zim", "link"] {
        let meta = std::fs::symlink_metadata(src.join(p)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (NOBODY, NOBODY), "{p}");
    }
    assert_eq!(
        std::fs::metadata(dir.path().join("img")).unwrap().uid(),
        NOBODY
    );
    // Checked again from outside, as root.
    let t = tools();
    let img = dir.path().join("img");
    assert_eq!(
        t.owner(&img, OFFSET, "/contents/zims/a b.zim").unwrap(),
        (0, 0)
    );
    assert_eq!(t.owner(&img, OFFSET, "/link").unwrap(), (0, 0));
    t.fsck(&img, OFFSET).unwrap();
}
