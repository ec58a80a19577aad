//! Stream decoders against the real command-line compressors.

use super::*;
use std::io::Read;

/// 1 MiB of compressible but non-trivial data.
fn sample() -> Vec<u8> {
    let mut x: u32 = 12345;
    (0..1 << 20)
        .map(|i| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            if i % 3 == 0 {
                (x >> 24) as u8
            } else {
                b"offspot"[i % 7]
            }
        })
        .collect()
}

fn decode(c: Compression, path: &Path, threads: u32) -> Vec<u8> {
    let mut out = Vec::new();
    decoder(c, fs::File::open(path).unwrap(), threads)
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// Compresses `input` with a CLI tool into `output` (`tool ARGS -c input > output`).
fn cli(tool: &str, args: &[&str], input: &Path, output: &Path) {
    let out = Command::new(tool)
        .args(args)
        .arg("-c")
        .arg(input)
        .output()
        .expect("compressor runs");
    assert!(
        out.status.success(),
        "{tool}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    fs::write(output, out.stdout).unwrap();
}

const TOOLS: [(Compression, &str, &str); 4] = [
    (Compression::Gzip, "gzip", "gz"),
    (Compression::Bzip2, "bzip2", "bz2"),
    (Compression::Xz, "xz", "xz"),
    (Compression::Zstd, "zstd", "zst"),
];

#[test]
fn sniff_and_names() {
    assert_eq!(Compression::sniff(&[0x1f, 0x8b, 8, 0]), Compression::Gzip);
    assert_eq!(Compression::sniff(b"BZh91AY"), Compression::Bzip2);
    assert_eq!(
        Compression::sniff(&[0xfd, b'7', b'z', b'X', b'Z', 0]),
        Compression::Xz
    );
    assert_eq!(
        Compression::sniff(&[0x28, 0xb5, 0x2f, 0xfd, 0]),
        Compression::Zstd
    );
    assert_eq!(Compression::sniff(b"ustar"), Compression::None);
    assert_eq!(Compression::sniff(&[0xfd, b'7']), Compression::None);
    assert_eq!(Compression::from_name("a.tar.GZ"), Compression::Gzip);
    assert_eq!(Compression::from_name("a.tgz"), Compression::Gzip);
    assert_eq!(Compression::from_name("a.tar.bz2"), Compression::Bzip2);
    assert_eq!(Compression::from_name("image.img.xz"), Compression::Xz);
    assert_eq!(Compression::from_name("layer.zst"), Compression::Zstd);
    assert_eq!(Compression::from_name("image.img"), Compression::None);
    assert_eq!(Compression::from_name("xz"), Compression::None);
}

#[test]
fn every_compression_round_trips_with_the_real_tools() {
    let tmp = tempfile::tempdir().unwrap();
    let data = sample();
    let plain = tmp.path().join("plain");
    fs::write(&plain, &data).unwrap();
    assert_eq!(decode(Compression::None, &plain, 1), data);
    for (c, tool, ext) in TOOLS {
        let packed = tmp.path().join(format!("plain.{ext}"));
        cli(tool, &[], &plain, &packed);
        let head = fs::read(&packed).unwrap();
        assert_eq!(Compression::sniff(&head[..6]), c, "{tool}");
        assert_eq!(decode(c, &packed, 1), data, "{tool}");
    }
}

#[test]
fn concatenated_streams_decode_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let data = sample();
    let plain = tmp.path().join("plain");
    fs::write(&plain, &data).unwrap();
    let twice = [data.clone(), data.clone()].concat();
    for (c, tool, ext) in TOOLS {
        let one = tmp.path().join(format!("one.{ext}"));
        cli(tool, &[], &plain, &one);
        let mut both = fs::read(&one).unwrap();
        if c == Compression::Xz {
            // The xz format allows zero padding (multiple of 4) between streams.
            both.extend_from_slice(&[0; 8]);
        }
        both.extend(fs::read(&one).unwrap());
        let cat = tmp.path().join(format!("cat.{ext}"));
        fs::write(&cat, both).unwrap();
        let got = decode(c, &cat, 2);
        assert_eq!(got.len(), twice.len(), "{tool}");
        assert!(got == twice, "{tool}: content differs");
    }
}

#[test]
fn multi_block_xz_decodes_in_parallel() {
    let tmp = tempfile::tempdir().unwrap();
    let data = sample();
    let plain = tmp.path().join("plain");
    fs::write(&plain, &data).unwrap();
    let packed = tmp.path().join("plain.xz");
    cli("xz", &["-T2", "--block-size=64KiB"], &plain, &packed);
    // Make sure the fixture really is multi-block (16 blocks of 64 KiB).
    let list = Command::new("xz")
        .args(["--robot", "--list"])
        .arg(&packed)
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&list.stdout).to_string();
    let blocks: u64 = list
        .lines()
        .find_map(|l| l.strip_prefix("totals\t"))
        .and_then(|l| l.split('\t').nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("cannot read xz --list: {list}"));
    assert!(blocks > 1, "{list}");
    assert_eq!(decode(Compression::Xz, &packed, 2), data);
    // 0 = all CPUs.
    assert_eq!(decode(Compression::Xz, &packed, 0), data);
}

#[test]
fn corrupt_xz_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let plain = tmp.path().join("plain");
    fs::write(&plain, sample()).unwrap();
    let packed = tmp.path().join("plain.xz");
    cli("xz", &[], &plain, &packed);
    let mut bytes = fs::read(&packed).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    let mut out = Vec::new();
    let r = decoder(Compression::Xz, &bytes[..], 1)
        .unwrap()
        .read_to_end(&mut out);
    assert!(r.is_err());
}
