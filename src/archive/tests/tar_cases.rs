//! Well-formed tars in every compression: content, modes, nested and empty dirs, links, long
//! names, junk removal, bomb guard, `expanded_size`.

use super::*;
use ::tar::{Builder, EntryType, Header};
use std::io::Write;

pub(super) const EXEC: &[u8] = b"#!/bin/sh\necho hi\n";
pub(super) const DEEP: &[u8] = b"hello deep\n";
pub(super) const LONG: &[u8] = b"a file with a name longer than 100 bytes\n";

pub(super) fn long_name() -> String {
    format!("top/{}.txt", "l".repeat(150))
}

/// Members expected after expanding the good fixtures (junk excluded).
pub(super) fn expected_tree(with_hardlink: bool) -> Vec<String> {
    let long = long_name();
    let mut v = vec![
        "top",
        "top/empty",
        "top/exec.sh",
        "top/link",
        long.as_str(),
        "top/sub",
        "top/sub/deep",
        "top/sub/deep/file.txt",
        "top/sub/up",
    ];
    if with_hardlink {
        v.push("top/hard");
    }
    paths(&v)
}

/// Checks the tree the good fixtures expand to.
pub(super) fn check_good_tree(dest: &Path, with_hardlink: bool) {
    assert_eq!(tree(dest), expected_tree(with_hardlink));
    let top = dest.join("top");
    assert_eq!(fs::read(top.join("sub/deep/file.txt")).unwrap(), DEEP);
    assert_eq!(fs::read(top.join("exec.sh")).unwrap(), EXEC);
    assert_eq!(fs::read(dest.join(long_name())).unwrap(), LONG);
    assert_eq!(mode(&top.join("sub/deep/file.txt")), 0o640);
    // setuid dropped, permission bits kept.
    assert_eq!(mode(&top.join("exec.sh")), 0o755);
    assert_eq!(mode(&top.join("sub")), 0o750);
    assert_eq!(mode(&top.join("empty")), 0o700);
    assert_eq!(fs::read_dir(top.join("empty")).unwrap().count(), 0);
    assert_eq!(
        fs::read_link(top.join("link")).unwrap(),
        PathBuf::from("sub/deep/file.txt")
    );
    assert_eq!(fs::read(top.join("link")).unwrap(), DEEP);
    assert_eq!(
        fs::read_link(top.join("sub/up")).unwrap(),
        PathBuf::from("../exec.sh")
    );
    assert_eq!(fs::read(top.join("sub/up")).unwrap(), EXEC);
    if with_hardlink {
        use std::os::unix::fs::MetadataExt;
        let a = fs::metadata(top.join("exec.sh")).unwrap();
        let b = fs::metadata(top.join("hard")).unwrap();
        assert_eq!((a.dev(), a.ino()), (b.dev(), b.ino()));
    }
}

pub(super) fn good_bytes() -> u64 {
    (EXEC.len() + DEEP.len() + LONG.len()) as u64
}

fn dir(b: &mut Builder<Vec<u8>>, name: &str, mode: u32) {
    let mut h = Header::new_gnu();
    h.set_entry_type(EntryType::Directory);
    h.set_mode(mode);
    h.set_size(0);
    b.append_data(&mut h, name, std::io::empty()).unwrap();
}

fn file(b: &mut Builder<Vec<u8>>, name: &str, mode: u32, data: &[u8]) {
    let mut h = Header::new_gnu();
    h.set_mode(mode);
    h.set_size(data.len() as u64);
    h.set_mtime(1_600_000_000);
    b.append_data(&mut h, name, data).unwrap();
}

fn link(b: &mut Builder<Vec<u8>>, kind: EntryType, name: &str, target: &str) {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(0o777);
    h.set_size(0);
    b.append_link(&mut h, name, target).unwrap();
}

pub(super) fn compress(c: Compression, raw: &[u8], out: &Path) {
    let f = fs::File::create(out).unwrap();
    match c {
        Compression::None => {
            let mut f = f;
            f.write_all(raw).unwrap();
        }
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(f, flate2::Compression::default());
            e.write_all(raw).unwrap();
            e.finish().unwrap();
        }
        Compression::Bzip2 => {
            let mut e = bzip2::write::BzEncoder::new(f, bzip2::Compression::default());
            e.write_all(raw).unwrap();
            e.finish().unwrap();
        }
        Compression::Xz => {
            let mut e = liblzma::write::XzEncoder::new(f, 6);
            e.write_all(raw).unwrap();
            e.finish().unwrap();
        }
        Compression::Zstd => {
            let mut e = zstd::stream::write::Encoder::new(f, 3).unwrap();
            e.write_all(raw).unwrap();
            e.finish().unwrap();
        }
    }
}

/// The good fixture as a tar with compression `c`, in `dir`.
pub(super) fn good_tar(dir_: &Path, c: Compression) -> PathBuf {
    let mut b = Builder::new(Vec::new());
    dir(&mut b, "./", 0o755);
    dir(&mut b, "top/", 0o755);
    dir(&mut b, "top/sub/", 0o750);
    dir(&mut b, "top/sub/deep/", 0o755);
    file(&mut b, "top/sub/deep/file.txt", 0o640, DEEP);
    file(&mut b, "top/exec.sh", 0o4755, EXEC);
    dir(&mut b, "top/empty/", 0o700);
    link(&mut b, EntryType::Symlink, "top/link", "sub/deep/file.txt");
    link(&mut b, EntryType::Symlink, "top/sub/up", "../exec.sh");
    link(&mut b, EntryType::Link, "top/hard", "top/exec.sh");
    file(&mut b, &long_name(), 0o644, LONG);
    // OS junk, skipped at expansion and not counted by expanded_size.
    file(&mut b, "top/.DS_Store", 0o644, b"junk");
    dir(&mut b, "__MACOSX/", 0o755);
    file(&mut b, "__MACOSX/top/._exec.sh", 0o644, b"resource fork");
    file(&mut b, "top/Thumbs.db", 0o644, b"junk");
    file(&mut b, "top/foo~", 0o644, b"backup");
    file(&mut b, "top/sub/.Trashes/x", 0o644, b"trash");
    let raw = b.into_inner().unwrap();
    let ext = match c {
        Compression::None => "tar",
        Compression::Gzip => "tar.gz",
        Compression::Bzip2 => "tar.bz2",
        Compression::Xz => "tar.xz",
        Compression::Zstd => "tar.zst",
    };
    let path = dir_.join(format!("good.{ext}"));
    compress(c, &raw, &path);
    path
}

#[test]
fn each_tar_format_expands_correctly() {
    for (c, via) in [
        (Compression::None, Via::Tar),
        (Compression::Gzip, Via::Gztar),
        (Compression::Bzip2, Via::Bztar),
        (Compression::Xz, Via::Xztar),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let archive = good_tar(tmp.path(), c);
        let dest = tmp.path().join("out");
        let got = expand_quiet(&archive, via, &dest, Some(good_bytes())).unwrap();
        check_good_tree(&dest, true);
        assert_eq!(
            got,
            Expanded {
                files: 4,
                bytes: good_bytes()
            },
            "{via:?}"
        );
        // The archived mtime is kept on files.
        let mtime = fs::metadata(dest.join("top/exec.sh"))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(
            mtime,
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000)
        );
        assert_eq!(
            expanded_size(&archive, via, &CancellationToken::new()).unwrap(),
            good_bytes(),
            "{via:?}"
        );
    }
}

#[test]
fn limit_one_byte_short_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = good_tar(tmp.path(), Compression::Gzip);
    let e = expand_quiet(
        &archive,
        Via::Gztar,
        &tmp.path().join("o"),
        Some(good_bytes() - 1),
    )
    .unwrap_err();
    assert!(matches!(e, ArchiveError::TooLarge { .. }), "{e}");
    assert_eq!(e.class(), ErrorClass::BadInput);
}

#[test]
fn gzip_bomb_stops_at_the_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let zeros = vec![0u8; 10 << 20];
    let mut b = Builder::new(Vec::new());
    file(&mut b, "zeros.bin", 0o644, &zeros);
    let archive = tmp.path().join("bomb.tar.gz");
    compress(Compression::Gzip, &b.into_inner().unwrap(), &archive);
    assert!(fs::metadata(&archive).unwrap().len() < 100_000);
    let dest = tmp.path().join("out");
    let limit = 1 << 20;
    let e = expand_quiet(&archive, Via::Gztar, &dest, Some(limit)).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, ArchiveError::TooLarge { .. }), "{msg}");
    assert!(
        msg.contains("bomb.tar.gz") && msg.contains("zeros.bin"),
        "{msg}"
    );
    // Never more than the limit on disk: the tar header's size already exceeds it, so the
    // member is refused before it is created; the per-chunk count is the second line of defence.
    let written = fs::metadata(dest.join("zeros.bin")).map_or(0, |m| m.len());
    assert!(written <= limit, "wrote {written} bytes");
    // Without a limit the same archive expands fully, and its size is known beforehand.
    assert_eq!(
        expanded_size(&archive, Via::Gztar, &CancellationToken::new()).unwrap(),
        10 << 20
    );
}
