//! Bad configs: every error names the file, the line, the key path and what was expected.
//! And no input at all makes the loader panic.

use super::super::*;
use crate::{Classify, ErrorClass};

/// (config text, key path (None for YAML syntax errors), line, text the message must contain)
const CASES: &[(&str, Option<&str>, usize, &str)] = &[
    // YAML syntax
    (
        "base: 1.4.2\nfiles: [a, b\nwrite_config: true\n",
        None,
        3,
        "invalid YAML",
    ),
    ("base: 1.4.2\n  bad: indent\n", None, 2, "invalid YAML"),
    ("base: 1.4.2\nbase: 1.0.0\n", None, 2, "duplicate"),
    (
        "base: 1.4.2\n---\nbase: 1.0.0\n",
        None,
        1,
        "more than one document",
    ),
    // the document itself
    ("", Some("(top level)"), 1, "empty"),
    ("# only a comment\n", Some("(top level)"), 1, "empty"),
    ("- base: 1.4.2\n", Some("(top level)"), 1, "found a list"),
    ("hello\n", Some("(top level)"), 1, "found a single value"),
    // unknown keys, with did-you-mean at every level
    (
        "base: 1.4.2\nwite_config: true\n",
        Some("wite_config"),
        2,
        "did you mean `write_config`?",
    ),
    (
        "base: 1.4.2\nzzz: 1\n",
        Some("zzz"),
        2,
        "expected one of base, output",
    ),
    (
        "base: 1.4.2\noutput:\n  sise: 8G\n",
        Some("output.sise"),
        3,
        "did you mean `size`?",
    ),
    (
        "base:\n  source: x.img\n  root_sise: 1\n",
        Some("base.root_sise"),
        3,
        "did you mean `root_size`?",
    ),
    (
        "base: 1.4.2\nfiles:\n- to: /data/a\n  contnet: hi\n",
        Some("files[0].contnet"),
        4,
        "did you mean `content`?",
    ),
    (
        "base: 1.4.2\noci_images:\n- a:1\n- id: b:2\n  filesize: 3\n",
        Some("oci_images[1].id"),
        4,
        "did you mean `ident`?",
    ),
    (
        "base: 1.4.2\nfiles:\n- to: /data/a\n  url: u\n  checksum:\n    algorithm: md5\n",
        Some("files[0].checksum.algorithm"),
        6,
        "did you mean `algo`?",
    ),
    // missing / conflicting keys
    (
        "output:\n  size: 8G\n",
        Some("base"),
        1,
        "required key is missing",
    ),
    (
        "base:\n  root_size: 1G\n",
        Some("base.source"),
        2,
        "required key is missing",
    ),
    (
        "base: 1.4.2\nfiles:\n- url: http://x/y\n",
        Some("files[0].to"),
        3,
        "required key is missing",
    ),
    (
        "base: 1.4.2\nfiles:\n- to: /data/y\n",
        Some("files[0]"),
        3,
        "needs `url`",
    ),
    (
        "base:\n  source: x.img\n  root_size: 1G\n  rootfs_size: 1G\n",
        Some("base.rootfs_size"),
        4,
        "same setting",
    ),
    // types and values
    ("base: 42\n", Some("base"), 1, "expected a version"),
    (
        "base:\n",
        Some("base"),
        1,
        "empty value, expected a version",
    ),
    ("base: \"\"\n", Some("base"), 1, "must not be empty"),
    (
        "base: 1.4.2\noutput:\n  size: banana\n",
        Some("output.size"),
        3,
        "`banana`",
    ),
    (
        "base: 1.4.2\noutput:\n  size: 0\n",
        Some("output.size"),
        3,
        "more than 0",
    ),
    (
        "base: 1.4.2\noutput: 5\n",
        Some("output"),
        2,
        "expected a mapping with `size`",
    ),
    (
        "base: 1.4.2\n1: x\n",
        Some("(top level)"),
        1,
        "expected a key name",
    ),
    (
        "base: 1.4.2\nfiles:\n- to: /data/a\n  content: 80\n",
        Some("files[0].content"),
        4,
        "expected a string",
    ),
    (
        "base: 1.4.2\noutput:\n  shrink: 2\n",
        Some("output.shrink"),
        3,
        "true or false",
    ),
    (
        "base: 1.4.2\nwrite_config: maybe\n",
        Some("write_config"),
        2,
        "true or false",
    ),
    (
        "base: 1.4.2\nfiles:\n  to: /data/x\n",
        Some("files"),
        3,
        "expected a sequence",
    ),
    (
        "base: 1.4.2\nfiles:\n- to: /data/x\n  url: u\n  size: 12Q\n",
        Some("files[0].size"),
        5,
        "unknown unit `Q`",
    ),
    (
        "base: 1.4.2\noci_images:\n- ident: a:1\n  filesize: -5\n",
        Some("oci_images[0].filesize"),
        4,
        "negative",
    ),
    (
        "base: 1.4.2\noci_images:\n- ghcr.io/a b:1\n",
        Some("oci_images[0]"),
        3,
        "contains a space",
    ),
    (
        "base: 1.4.2\noci_images:\n- ident: ''\n",
        Some("oci_images[0].ident"),
        3,
        "must not be empty",
    ),
    (
        "base: 1.4.2\noffspot: hello\n",
        Some("offspot"),
        2,
        "expected a mapping",
    ),
    // files[].to
    (
        "base: 1.4.2\nfiles:\n- to: /data/../etc/x\n  content: x\n",
        Some("files[0].to"),
        3,
        "outside /data",
    ),
    (
        "base: 1.4.2\n\
     files:\n- to: /tmp/x\n  content: x\n",
        Some("files[0].to"),
        3,
        "`/tmp/x` is outside /data",
    ),
    (
        "base: 1.4.2\nfiles:\n- to: data/x\n  content: x\n",
        Some("files[0].to"),
        3,
        "not absolute",
    ),
    (
        "base: 1.4.2\nfiles:\n- to: /data/\n  content: x\n",
        Some("files[0].to"),
        3,
        "/data itself",
    ),
    (
        "base: 1.4.2\nfiles:\n- {to: /data/a, content: x}\n- {to: /data/b, content: x}\n\
         - {to: /data/./a, content: y}\n",
        Some("files[2].to"),
        5,
        "also the target of files[0]",
    ),
    (
        "base: 1.4.2\nfiles:\n- {to: /data/a, content: x}\n- {to: /data/a/b, content: x}\n",
        Some("files[1].to"),
        4,
        "which files[0] writes as a file",
    ),
    (
        "base: 1.4.2\nwrite_config: true\nfiles:\n- {to: /data/conf/image.yaml, content: x}\n",
        Some("files[0].to"),
        4,
        "`write_config: true`",
    ),
    // via
    (
        "base: 1.4.2\nfiles:\n- to: /data/a\n  url: u.zip\n  via: zipp\n",
        Some("files[0].via"),
        5,
        "unknown value `zipp`, expected one of direct, base64, zip, tar, gztar, bztar, xztar",
    ),
    (
        "base: 1.4.2\nfiles:\n- to: /data/a\n  content: 'not base64!!'\n  via: base64\n",
        Some("files[0].content"),
        4,
        "not valid base64 for `via: base64`: character `!` at position 9",
    ),
    (
        "base: 1.4.2\nfiles:\n- to: /data/a\n  url: u\n  via: base64\n",
        Some("files[0].via"),
        5,
        "`base64` decodes `content`",
    ),
    (
        "base: 1.4.2\nfiles:\n- to: /data/a\n  content: x\n  via: tar\n",
        Some("files[0].via"),
        5,
        "expands an archive",
    ),
    // checksums
    (
        "base: 1.4.2\nfiles:\n- to: /data/a\n  url: u\n  checksum: {algo: sha-257, value: ab}\n",
        Some("files[0].checksum.algo"),
        5,
        "unknown value `sha-257`, expected one of sha-1, sha-224, sha-256",
    ),
    (
        "base: 1.4.2\n\
         files:\n- to: /data/a\n  url: u\n  checksum:\n    algo: sha-256\n    value: abcd\n",
        Some("files[0].checksum.value"),
        7,
        "a sha-256 digest has 64 hex digits, this one has 4",
    ),
    (
        "base:\n  source: x.img\n  checksum:\n    algo: md5\n\
         \x20   value: zz41d8cd98f00b204e9800998ecf8427\n",
        Some("base.checksum.value"),
        5,
        "not a hex digest",
    ),
    (
        "base: 1.4.2\n\
         files:\n- to: /data/a\n  url: u\n  checksum:\n    algo: adler32\n    value: 12345678\n",
        Some("files[0].checksum.value"),
        7,
        "quote the digest",
    ),
    (
        "base: 1.4.2\n\
         files:\n- to: /data/a\n  url: u\n  checksum: {algo: md5, kind: url, value: nope}\n",
        Some("files[0].checksum.value"),
        5,
        "not a URL",
    ),
    (
        "base: 1.4.2\n\
         files:\n- to: /data/a\n  url: u\n  checksum: {algo: md5, kind: sig, value: x}\n",
        Some("files[0].checksum.kind"),
        5,
        "expected one of digest, url",
    ),
    (
        "base: 1.4.2\n\
         files:\n- to: /data/a\n  content: x\n\
         \x20 checksum: {algo: md5, value: d41d8cd98f00b204e9800998ecf8427e}\n",
        Some("files[0].checksum"),
        5,
        "this entry has `content`",
    ),
];

#[test]
fn bad_configs_point_at_the_key_and_line() {
    assert!(CASES.len() >= 20);
    for (text, key_path, line, needle) in CASES {
        let err = match parse(text, "bad.yaml") {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e,
        };
        let msg = err.to_string();
        assert_eq!(err.class(), ErrorClass::BadInput);
        assert!(
            msg.starts_with(&format!("bad.yaml:{line}:")),
            "want line {line}: {msg}\n--- config:\n{text}"
        );
        assert_eq!(err.mark().line, *line, "{msg}");
        match key_path {
            Some(path) => {
                assert!(msg.contains(&format!(": {path}: ")), "want {path}: {msg}");
                assert_eq!(err.key_path(), Some(*path));
            }
            None => assert!(matches!(err, ConfigError::Syntax { .. }), "{msg}"),
        }
        assert!(msg.contains(needle), "want {needle:?} in: {msg}");
    }
}

#[test]
fn error_columns_point_at_the_value_or_the_key() {
    let text = "base: 1.4.2\nfiles:\n- to: /data/a\n  url: u.zip\n  via: zipp\n";
    let err = parse(text, "demo.yaml").unwrap_err();
    assert_eq!(
        err.to_string(),
        "demo.yaml:5:8: files[0].via: unknown value `zipp`, expected one of direct, base64, \
         zip, tar, gztar, bztar, xztar"
    );
    let err = parse("base: 1.4.2\n  \nwite_config: true\n", "d.yaml").unwrap_err();
    assert!(
        err.to_string().starts_with("d.yaml:3:1: wite_config:"),
        "{err}"
    );
}

/// Deterministic pseudo-random numbers (no dependency needed for a mutation test).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % bound.max(1)
    }
}

#[test]
fn mutated_configs_never_panic() {
    let full = super::FULL.as_bytes();
    let pieces: &[&[u8]] = &[
        b":",
        b"-",
        b" ",
        b"\n",
        b"'",
        b"\"",
        b"[",
        b"{",
        b"}",
        b"&a ",
        b"*a",
        b"!!",
        b"\t",
        b"..",
        b"/",
        b"0",
        b"-1",
        b"~",
        b"#",
        b"|",
        b">",
        b"\xff",
        b"\xc3",
        b"via: zip\n",
    ];
    let mut rng = Lcg(42);
    let mut outcomes = (0, 0);
    for round in 0..400 {
        let mut text = full.to_vec();
        match round % 4 {
            // truncation anywhere
            0 => text.truncate(rng.next(full.len())),
            // delete a span
            1 => {
                let at = rng.next(text.len());
                let len = rng.next(40).min(text.len() - at);
                text.drain(at..at + len);
            }
            // insert junk
            2 => {
                for _ in 0..1 + rng.next(4) {
                    let at = rng.next(text.len());
                    let piece = pieces[rng.next(pieces.len())];
                    text.splice(at..at, piece.iter().copied());
                }
            }
            // swap two lines
            _ => {
                let mut lines: Vec<&[u8]> = full.split(|b| *b == b'\n').collect();
                let (a, b) = (rng.next(lines.len()), rng.next(lines.len()));
                lines.swap(a, b);
                text = lines.join(&b'\n');
            }
        }
        let text = String::from_utf8_lossy(&text);
        match parse(&text, "fuzz.yaml") {
            Ok(_) => outcomes.0 += 1,
            Err(e) => {
                assert!(e.to_string().starts_with("fuzz.yaml:"), "{e}");
                outcomes.1 += 1;
            }
        }
    }
    // Both paths were exercised, so the test is not vacuous.
    assert!(outcomes.0 > 0 && outcomes.1 > 0, "{outcomes:?}");
}

#[test]
fn hostile_yaml_is_refused_not_expanded() {
    let mut bomb = String::from("base: 1.4.2\nx0: &a0 [aaaaaaaaaa, aaaaaaaaaa]\n");
    for i in 1..40 {
        bomb.push_str(&format!(
            "x{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}]\n",
            p = i - 1
        ));
    }
    assert!(parse(&bomb, "bomb.yaml").is_err());
    let deep = format!("base: {}1{}\n", "[".repeat(100_000), "]".repeat(100_000));
    assert!(parse(&deep, "deep.yaml").is_err());
}
