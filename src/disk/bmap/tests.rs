use super::*;
// sha2 directly, as an independent judge of crate::digest.
use crate::progress::Event;
use sha2::{Digest, Sha256};
use std::process::Command;
use std::sync::{Arc, Mutex};

const MIB: u64 = 1 << 20;

/// A sparse file of `size` bytes with `data` written at the given offsets (the rest are holes).
fn sparse(dir: &Path, name: &str, size: u64, data: &[(u64, &[u8])]) -> PathBuf {
    let path = dir.join(name);
    let f = File::create(&path).unwrap();
    f.set_len(size).unwrap();
    for (off, bytes) in data {
        f.write_all_at(bytes, *off).unwrap();
    }
    f.sync_all().unwrap();
    path
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) | 1)
        .collect()
}

fn sha_of(path: &Path, off: u64, len: u64) -> String {
    let mut buf = vec![0u8; len as usize];
    File::open(path)
        .unwrap()
        .read_exact_at(&mut buf, off)
        .unwrap();
    hex::encode(Sha256::digest(&buf))
}

fn map(path: &Path) -> Bmap {
    Bmap::from_file(path, &Progress::silent(), &CancellationToken::new()).unwrap()
}

fn blocks(b: &Bmap) -> Vec<(u64, u64)> {
    b.ranges.iter().map(|r| (r.first, r.last)).collect()
}

fn bmaptool(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new("bmaptool")
        .args(args)
        .output()
        .expect("bmaptool (Debian package bmap-tools) runs")
}

/// A 10 MiB image with data in blocks 1, 1000–1003 (the 1003 part partial) and 2559 (the last).
fn sample(dir: &Path) -> PathBuf {
    sparse(
        dir,
        "img",
        10 * MIB,
        &[
            (5000, b"hello"),
            (1000 * 4096, &pattern(3 * 4096 + 10, 7)),
            (10 * MIB - 3, b"end"),
        ],
    )
}

#[test]
fn from_file_finds_the_data_ranges_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let img = sample(dir.path());
    let b = map(&img);
    assert_eq!(b.image_size, 10 * MIB);
    assert_eq!(b.block_size, 4096);
    assert_eq!(blocks(&b), vec![(1, 1), (1000, 1003), (2559, 2559)]);
    assert_eq!(
        b.byte_ranges(),
        vec![(4096, 4096), (1000 * 4096, 4 * 4096), (2559 * 4096, 4096)]
    );
    assert_eq!(b.mapped_bytes(), 6 * 4096);
    for (r, (off, len)) in b.ranges.iter().zip(b.byte_ranges()) {
        assert_eq!(r.sha256.as_deref(), Some(sha_of(&img, off, len).as_str()));
    }
}

#[test]
fn size_not_a_multiple_of_the_block_clips_the_last_range() {
    let dir = tempfile::tempdir().unwrap();
    let size = 10_000_001;
    let img = sparse(dir.path(), "odd.img", size, &[(size - 2, b"zz")]);
    let b = map(&img);
    assert_eq!(blocks(&b), vec![(2441, 2441)]);
    let tail = size - 2441 * 4096;
    assert_eq!(b.byte_ranges(), vec![(2441 * 4096, tail)]);
    assert_eq!(b.mapped_bytes(), tail);
    assert_eq!(
        b.ranges[0].sha256.as_deref(),
        Some(sha_of(&img, 2441 * 4096, tail).as_str())
    );
    let xml = b.to_xml();
    assert!(xml.contains("<BlocksCount> 2442 </BlocksCount>"), "{xml}");
    assert_eq!(Bmap::parse(&xml, "odd").unwrap(), b);
    // bmaptool hashes the partial last block the same way.
    let bm = write_for(&img, &img, &Progress::silent(), &CancellationToken::new()).unwrap();
    let out = dir.path().join("out");
    let o = bmaptool(&[
        "copy".as_ref(),
        "--bmap".as_ref(),
        bm.as_os_str(),
        img.as_os_str(),
        out.as_os_str(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&img).unwrap());
}

#[test]
fn all_hole_and_empty_images() {
    let dir = tempfile::tempdir().unwrap();
    let img = sparse(dir.path(), "holes.img", 3 * MIB + 100, &[]);
    let b = map(&img);
    assert!(b.ranges.is_empty());
    assert_eq!(b.mapped_bytes(), 0);
    let xml = b.to_xml();
    assert!(
        xml.contains("<MappedBlocksCount> 0 </MappedBlocksCount>"),
        "{xml}"
    );
    assert_eq!(Bmap::parse(&xml, "holes").unwrap(), b);
    let bm = write_for(&img, &img, &Progress::silent(), &CancellationToken::new()).unwrap();
    let out = dir.path().join("out");
    let o = bmaptool(&[
        "copy".as_ref(),
        "--bmap".as_ref(),
        bm.as_os_str(),
        img.as_os_str(),
        out.as_os_str(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::metadata(&out).unwrap().len(), 3 * MIB + 100);

    let empty = sparse(dir.path(), "empty.img", 0, &[]);
    let b = map(&empty);
    assert_eq!((b.image_size, b.ranges.len()), (0, 0));
    assert_eq!(Bmap::parse(&b.to_xml(), "empty").unwrap(), b);
}

#[test]
fn bmaptool_copy_accepts_ours_and_rejects_a_corrupted_image() {
    let dir = tempfile::tempdir().unwrap();
    let img = sample(dir.path());
    let bm = write_for(&img, &img, &Progress::silent(), &CancellationToken::new()).unwrap();
    assert_eq!(bm, dir.path().join("img.bmap"));
    let out = dir.path().join("out.img");
    let o = bmaptool(&[
        "copy".as_ref(),
        "--bmap".as_ref(),
        bm.as_os_str(),
        img.as_os_str(),
        out.as_os_str(),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("mapped 6 blocks"), "{stderr}");
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&img).unwrap());

    // One byte changed inside mapped block 1001 of a copy: bmaptool's range check must fail with our map.
    let bad = dir.path().join("bad.img");
    std::fs::copy(&img, &bad).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&bad).unwrap();
    f.write_all_at(b"\0", 1001 * 4096 + 17).unwrap();
    let out2 = dir.path().join("out2.img");
    let o = bmaptool(&[
        "copy".as_ref(),
        "--bmap".as_ref(),
        bm.as_os_str(),
        bad.as_os_str(),
        out2.as_os_str(),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{stderr}");
    assert!(
        stderr.contains("checksum mismatch for blocks range 1000-1003"),
        "{stderr}"
    );
}

#[test]
fn parses_bmaptool_create_output_equal_to_ours() {
    let dir = tempfile::tempdir().unwrap();
    let img = sample(dir.path());
    let theirs = dir.path().join("theirs.bmap");
    let o = bmaptool(&[
        "create".as_ref(),
        "-o".as_ref(),
        theirs.as_os_str(),
        img.as_os_str(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&theirs).unwrap();
    let parsed = Bmap::parse(&text, "theirs.bmap").unwrap();
    assert_eq!(parsed, map(&img));
    assert!(parsed.ranges.iter().all(|r| r.sha256.is_some()));

    // Tampering with their file (a range checksum) is caught by the file checksum.
    let i = text.find("chksum=\"").unwrap() + 8;
    let mut t = text.clone().into_bytes();
    t[i] = if t[i] == b'a' { b'b' } else { b'a' };
    let err = Bmap::parse(std::str::from_utf8(&t).unwrap(), "theirs.bmap").unwrap_err();
    assert!(matches!(err, BmapError::ChecksumMismatch { .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::BadInput);
}

#[test]
fn our_file_checksum_matches_bmaptools_rule_and_tampering_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let b = map(&sample(dir.path()));
    let xml = b.to_xml();
    // bmaptool's rule: sha256 of the file with the stored value replaced by 64 ASCII zeroes.
    let start = xml.find("<BmapFileChecksum> ").unwrap() + 19;
    let stored = &xml[start..start + 64];
    let zeroed = format!("{}{}{}", &xml[..start], "0".repeat(64), &xml[start + 64..]);
    assert_eq!(stored, hex::encode(Sha256::digest(zeroed.as_bytes())));
    assert_eq!(Bmap::parse(&xml, "ours").unwrap(), b);

    for (from, to) in [
        ("1000-1003", "1000-1002"),
        ("<ImageSize> 10485760", "<ImageSize> 10485761"),
    ] {
        assert!(xml.contains(from));
        let err = Bmap::parse(&xml.replacen(from, to, 1), "ours.bmap").unwrap_err();
        assert!(
            matches!(err, BmapError::ChecksumMismatch { .. }),
            "{from}: {err}"
        );
        assert!(
            err.to_string()
                .starts_with("ours.bmap: bmap file checksum mismatch"),
            "{err}"
        );
    }
}

/// A bmap of a given version with a file checksum of `hash` computed the bmaptool way.
fn with_file_checksum(
    body: &str,
    tag: &str,
    hex_len: usize,
    digest: impl Fn(&[u8]) -> String,
) -> String {
    let doc = body.replace(
        "@SUM@",
        &format!("<{tag}> {} </{tag}>", "0".repeat(hex_len)),
    );
    let sum = digest(doc.as_bytes());
    doc.replacen(&"0".repeat(hex_len), &sum, 1)
}

#[test]
fn older_formats_and_other_checksum_types() {
    let sha1_hex = "0123456789abcdef0123456789abcdef01234567";
    let v13 = with_file_checksum(
        &format!(
            "<?xml version=\"1.0\"?>\n<bmap version=\"1.3\"><ImageSize>8192</ImageSize><BlockSize>4096</BlockSize>\
             <BlocksCount>2</BlocksCount><MappedBlocksCount>1</MappedBlocksCount>@SUM@\
             <BlockMap><Range sha1=\"{sha1_hex}\">1</Range></BlockMap></bmap>\n"
        ),
        "BmapFileSHA1",
        40,
        |d| hex::encode(sha1::Sha1::digest(d)),
    );
    let b = Bmap::parse(&v13, "v13").unwrap();
    assert_eq!(
        b.ranges,
        vec![Range {
            first: 1,
            last: 1,
            sha256: None
        }]
    );
    assert_eq!(b.byte_ranges(), vec![(4096, 4096)]);
    let err = Bmap::parse(&v13.replace(">1</Range>", ">0</Range>"), "v13").unwrap_err();
    assert!(matches!(err, BmapError::ChecksumMismatch { .. }), "{err}");

    let v20_sha512 = with_file_checksum(
        "<bmap version=\"2.0\"><ImageSize>4096</ImageSize><BlockSize>4096</BlockSize><BlocksCount>1</BlocksCount>\
         <MappedBlocksCount>1</MappedBlocksCount><ChecksumType>sha512</ChecksumType>@SUM@\
         <BlockMap><Range>0</Range></BlockMap></bmap>",
        "BmapFileChecksum",
        128,
        |d| hex::encode(sha2::Sha512::digest(d)),
    );
    assert_eq!(
        Bmap::parse(&v20_sha512, "v20").unwrap().ranges[0].sha256,
        None
    );

    // 1.2 had no checksums at all.
    let v12 = "<bmap version='1.2'><ImageSize>10</ImageSize><BlockSize>4096</BlockSize><BlocksCount>1</BlocksCount>\
               <MappedBlocksCount>1</MappedBlocksCount><BlockMap><Range> 0-0 </Range></BlockMap></bmap>";
    let b = Bmap::parse(v12, "v12").unwrap();
    assert_eq!(b.byte_ranges(), vec![(0, 10)]);
}

fn parse_err(doc: &str) -> String {
    let err = Bmap::parse(doc, "x.bmap").unwrap_err();
    assert!(matches!(err, BmapError::Parse { .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::BadInput);
    err.to_string()
}

#[test]
fn strict_reader_names_the_file_and_what_was_expected() {
    let ok = "<bmap version='1.2'>\n<ImageSize>8192</ImageSize><BlockSize>4096</BlockSize><BlocksCount>2</BlocksCount>\
              <MappedBlocksCount>2</MappedBlocksCount><BlockMap><Range>0</Range><Range>1</Range></BlockMap></bmap>";
    assert!(Bmap::parse(ok, "x").is_ok());
    let cases = [
        (
            ok.replace("'1.2'", "'3.0'"),
            "x.bmap:1: expected a bmap format version 1.x or 2.x",
        ),
        (
            ok.replace("<BlocksCount>2", "<BlocksCount>3"),
            "x.bmap:2: expected <BlocksCount> 2",
        ),
        (
            ok.replace("<MappedBlocksCount>2", "<MappedBlocksCount>1"),
            "expected <MappedBlocksCount> equal",
        ),
        (
            ok.replace("<Range>1</Range>", "<Range>0</Range>"),
            "ranges in increasing order",
        ),
        (
            ok.replace("<Range>1</Range>", "<Range>1-2</Range>"),
            "first <= last < BlocksCount",
        ),
        (
            ok.replace("<Range>1</Range>", "<Range>x</Range>"),
            "a block range",
        ),
        (ok.replace("</bmap>", ""), "expected </bmap>"),
        (
            ok.replace("<ImageSize>8192", "<ImageSize>-1"),
            "a non-negative integer in <ImageSize>",
        ),
        (
            ok.replace("<BlockSize>4096</BlockSize>", ""),
            "a <BlockSize> element in <bmap>",
        ),
        (format!("<!DOCTYPE bmap [<!ENTITY a 'b'>]>{ok}"), "DOCTYPE"),
        (ok.replace("<Range>0", "<Range>&a;0"), "one of the entities"),
        (
            ok.replace("bmap version", "bmapx version")
                .replace("</bmap>", "</bmapx>"),
            "a <bmap> root",
        ),
        (format!("{ok}<more/>"), "the end of the document"),
    ];
    for (doc, want) in cases {
        let msg = parse_err(&doc);
        assert!(msg.contains(want), "{msg:?} should contain {want:?}");
        assert!(msg.starts_with("x.bmap:"), "{msg}");
    }
    // 2.0 without its checksum type or file checksum is not a bmap bmaptool would accept either.
    let v20 = ok.replace("'1.2'", "'2.0'");
    assert!(parse_err(&v20).contains("<ChecksumType>"));
    let v20 = v20.replace(
        "<BlockMap>",
        "<ChecksumType>sha256</ChecksumType><BlockMap>",
    );
    assert!(parse_err(&v20).contains("<BmapFileChecksum>"));
    let unknown = v20.replace(">sha256<", ">crc32<");
    assert!(parse_err(&unknown).contains("crc32"));
}

#[test]
fn progress_is_one_check_task_over_the_hashed_bytes_and_cancel_stops() {
    let dir = tempfile::tempdir().unwrap();
    let img = sample(dir.path());
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let progress = Progress::new(move |e: &Event| sink.lock().unwrap().push(e.clone()));
    map_with(&img, &progress);
    let events = events.lock().unwrap();
    let started: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::TaskStarted { kind, total, .. } => Some((*kind, *total)),
            _ => None,
        })
        .collect();
    assert_eq!(started, vec![(TaskKind::Check, Some(6 * 4096))]);
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::TaskFinished { ok: true, .. })));

    let cancel = CancellationToken::new();
    cancel.cancel();
    let err = Bmap::from_file(&img, &Progress::silent(), &cancel).unwrap_err();
    assert!(matches!(err, BmapError::Cancelled { .. }), "{err}");
    assert!(!bmap_path(&img).exists());
    let err = write_for(
        &dir.path().join("missing"),
        Path::new("missing"),
        &Progress::silent(),
        &CancellationToken::new(),
    )
    .unwrap_err();
    assert!(matches!(err, BmapError::Io { what: "open", .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::Failure);
}

fn map_with(path: &Path, progress: &Progress) -> Bmap {
    Bmap::from_file(path, progress, &CancellationToken::new()).unwrap()
}
