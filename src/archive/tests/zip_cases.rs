//! Zip: a good fixture (zip crate), modes, junk, sizes; lying and encrypted headers (python).

use super::tar_cases::{check_good_tree, long_name, DEEP, EXEC, LONG};
use super::*;
use ::zip::write::SimpleFileOptions;
use ::zip::{CompressionMethod, ZipWriter};
use std::io::Write;

/// The good fixture as a zip (no hard links: zip has none).
pub(super) fn good_zip(dir: &Path) -> PathBuf {
    let path = dir.join("good.zip");
    let mut z = ZipWriter::new(fs::File::create(&path).unwrap());
    let opts = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    let add = |z: &mut ZipWriter<fs::File>, name: &str, mode: u32, data: &[u8]| {
        z.start_file(name, opts.unix_permissions(mode)).unwrap();
        z.write_all(data).unwrap();
    };
    z.add_directory("top/", opts.unix_permissions(0o755))
        .unwrap();
    z.add_directory("top/sub/", opts.unix_permissions(0o750))
        .unwrap();
    z.add_directory("top/sub/deep/", opts.unix_permissions(0o755))
        .unwrap();
    add(&mut z, "top/sub/deep/file.txt", 0o640, DEEP);
    add(&mut z, "top/exec.sh", 0o755, EXEC);
    z.add_directory("top/empty/", opts.unix_permissions(0o700))
        .unwrap();
    z.add_symlink("top/link", "sub/deep/file.txt", opts)
        .unwrap();
    z.add_symlink("top/sub/up", "../exec.sh", opts).unwrap();
    add(&mut z, &long_name(), 0o644, LONG);
    add(&mut z, "top/.DS_Store", 0o644, b"junk");
    add(&mut z, "__MACOSX/top/._exec.sh", 0o644, b"resource fork");
    add(&mut z, "top/Thumbs.db", 0o644, b"junk");
    add(&mut z, "top/foo~", 0o644, b"backup");
    add(&mut z, "top/sub/.Trashes/x", 0o644, b"trash");
    z.finish().unwrap();
    path
}

#[test]
fn zip_expands_correctly() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = good_zip(tmp.path());
    let dest = tmp.path().join("out");
    let bytes = (EXEC.len() + DEEP.len() + LONG.len()) as u64;
    let got = expand_quiet(&archive, Via::Zip, &dest, Some(bytes)).unwrap();
    check_good_tree(&dest, false);
    assert_eq!(got, Expanded { files: 3, bytes });
    assert_eq!(
        expanded_size(&archive, Via::Zip, &CancellationToken::new()).unwrap(),
        bytes
    );
}

/// Writes a zip with python: members are (name, st_mode, data); the sizes of member `lie`
/// (if any) are then patched to `declared` in both headers.
pub(super) const PY_ZIP: &str = r#"
import json, struct, sys, zipfile
path, members, lie = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED) as z:
    for m in members:
        zi = zipfile.ZipInfo(m['name'])
        zi.create_system = 3
        zi.external_attr = m['mode'] << 16
        zi.compress_type = zipfile.ZIP_DEFLATED
        data = b'\0' * m['zeros'] if 'zeros' in m else m.get('data', '').encode()
        z.writestr(zi, data)
if lie:
    data = bytearray(open(path, 'rb').read())
    struct.pack_into('<I', data, 22, lie['declared'])
    cd = data.index(b'PK\x01\x02')
    struct.pack_into('<I', data, cd + 24, lie['declared'])
    if lie.get('encrypt'):
        data[6] |= 1
        data[cd + 8] |= 1
    open(path, 'wb').write(data)
"#;

pub(super) fn py_zip(path: &Path, members: &str, lie: &str) {
    python(PY_ZIP, &[path.to_str().unwrap(), members, lie]);
}

#[test]
fn zip_modes_strip_setuid_and_keep_permissions() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("modes.zip");
    py_zip(
        &archive,
        r#"[{"name":"suid","mode":35309,"data":"x"},{"name":"ro","mode":33060,"data":"y"},
            {"name":"d/","mode":17896}]"#,
        "null",
    );
    // 35309 = 0o104755, 33060 = 0o100444, 17896 = 0o042750 (setgid dir)
    let dest = tmp.path().join("out");
    expand_quiet(&archive, Via::Zip, &dest, None).unwrap();
    assert_eq!(mode(&dest.join("suid")), 0o755);
    assert_eq!(mode(&dest.join("ro")), 0o444);
    assert_eq!(mode(&dest.join("d")), 0o750);
}

#[test]
fn zip_lying_declared_size_cannot_beat_the_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("liar.zip");
    // 10 MB of zeros declared as 100 bytes.
    py_zip(
        &archive,
        r#"[{"name":"zeros.bin","mode":33188,"zeros":10485760}]"#,
        r#"{"declared":100}"#,
    );
    let limit = 1 << 20;
    for lim in [Some(limit), None] {
        let dest = tmp.path().join(format!("out{}", lim.is_some()));
        let e = expand_quiet(&archive, Via::Zip, &dest, lim).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("liar.zip") && msg.contains("zeros.bin"),
            "{msg}"
        );
        let written = fs::metadata(dest.join("zeros.bin")).map_or(0, |m| m.len());
        assert!(
            written <= 100,
            "wrote {written} bytes past a 100-byte declaration"
        );
    }
}

#[test]
fn zip_declared_size_over_the_limit_is_refused_before_writing() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("big.zip");
    py_zip(
        &archive,
        r#"[{"name":"small.bin","mode":33188,"zeros":1000}]"#,
        r#"{"declared":2097152}"#,
    );
    let dest = tmp.path().join("out");
    let e = expand_quiet(&archive, Via::Zip, &dest, Some(1 << 20)).unwrap_err();
    assert!(matches!(e, ArchiveError::TooLarge { .. }), "{e}");
    assert!(!dest.join("small.bin").exists());
    assert_eq!(
        expanded_size(&archive, Via::Zip, &CancellationToken::new()).unwrap(),
        2_097_152
    );
}

#[test]
fn zip_encrypted_member_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("secret.zip");
    py_zip(
        &archive,
        r#"[{"name":"secret.txt","mode":33188,"data":"pssst"}]"#,
        r#"{"declared":5,"encrypt":true}"#,
    );
    let e = expand_quiet(&archive, Via::Zip, &tmp.path().join("o"), None).unwrap_err();
    assert!(matches!(e, ArchiveError::Encrypted { .. }), "{e}");
    assert_eq!(e.class(), ErrorClass::BadInput);
    assert!(e.to_string().contains("secret.txt"));
}
