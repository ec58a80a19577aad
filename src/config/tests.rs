//! Loader tests: a config using every feature, the seed sample, and many bad inputs.

use std::path::PathBuf;

use super::*;
use crate::{Classify, ErrorClass};

pub(super) const FULL: &str = r#"---
base:
  source: https://drive.offspot.it/base/offspot-base-arm64-1.4.2.img.xz
  rootfs_size: 2.4GiB
  checksum:
    algo: sha-256
    value: "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"
output:
  size: 8G
  shrink: yes
oci_images:
- ghcr.io/offspot/kiwix-serve:dev
- ident: ghcr.io/offspot/base-httpd:dev
  url: https://example.org/base-httpd.tar
  filesize: 5980160
  fullsize: 5.67MiB
files:
- url: http://download.kiwix.org/zim/wikipedia_fr_test.zim
  to: /data/contents/zims/wikipedia_fr_test.zim
  via: direct
  size: 1234
  checksum:
    algo: md5
    value: d41d8cd98f00b204e9800998ecf8427e
- to: /data/conf/message.txt
  content: |
    hello world
- to: /data/conf/./logo.png
  content: |
    aGVsbG8g
    d29ybGQ=
  via: base64
- url: file:///srv/site.zip
  to: /data/contents/site
  via: zip
  size: 1GB
  checksum:
    algo: sha-1
    kind: url
    value: https://example.org/site.zip.sha1
- url: ./packages.tar.gz
  to: /data/contents/site/extra/../packages
  via: gztar
- url: https://example.org/a.tar.bz2
  to: /data/b
  via: bztar
- url: https://example.org/a.tar.xz
  to: /data/x
  via: xztar
- url: https://example.org/a.tar
  to: /data/t
  via: tar
  checksum:
    algo: adler32
    value: "0a1b2c3d"
write_config: On
offspot:
  timezone: Africa/Bamako
"#;

fn expected_full() -> Config {
    let file = |index: usize, to: &str, source: FileSource, via: Via| FileEntry {
        index,
        to: to.to_string(),
        rel: PathBuf::from(to.trim_start_matches("/data/")),
        source,
        via,
        size: None,
        checksum: None,
    };
    let url = |u: &str| FileSource::Url(u.to_string());
    let mut files = vec![
        file(
            0,
            "/data/contents/zims/wikipedia_fr_test.zim",
            url("http://download.kiwix.org/zim/wikipedia_fr_test.zim"),
            Via::Direct,
        ),
        file(
            1,
            "/data/conf/message.txt",
            FileSource::Content("hello world\n".into()),
            Via::Direct,
        ),
        file(
            2,
            "/data/conf/logo.png",
            FileSource::Content("aGVsbG8g\nd29ybGQ=\n".into()),
            Via::Base64,
        ),
        file(
            3,
            "/data/contents/site",
            url("file:///srv/site.zip"),
            Via::Zip,
        ),
        file(
            4,
            "/data/contents/site/packages",
            url("./packages.tar.gz"),
            Via::Gztar,
        ),
        file(
            5,
            "/data/b",
            url("https://example.org/a.tar.bz2"),
            Via::Bztar,
        ),
        file(
            6,
            "/data/x",
            url("https://example.org/a.tar.xz"),
            Via::Xztar,
        ),
        file(7, "/data/t", url("https://example.org/a.tar"), Via::Tar),
    ];
    files[0].size = Some(1234);
    files[0].checksum = Some(Checksum {
        algo: Algo::Md5,
        value: "d41d8cd98f00b204e9800998ecf8427e".into(),
        kind: ChecksumKind::Digest,
    });
    files[3].size = Some(1_000_000_000);
    files[3].checksum = Some(Checksum {
        algo: Algo::Sha1,
        value: "https://example.org/site.zip.sha1".into(),
        kind: ChecksumKind::Url,
    });
    files[7].checksum = Some(Checksum {
        algo: Algo::Adler32,
        value: "0a1b2c3d".into(),
        kind: ChecksumKind::Digest,
    });
    Config {
        base: Base {
            source: "https://drive.offspot.it/base/offspot-base-arm64-1.4.2.img.xz".into(),
            root_size: Some(2_576_980_377),
            checksum: Some(Checksum {
                algo: Algo::Sha256,
                value: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into(),
                kind: ChecksumKind::Digest,
            }),
        },
        output: Output {
            size: OutputSize::Bytes(8_000_000_000),
            shrink: true,
        },
        oci_images: vec![
            OciImage {
                index: 0,
                ident: "ghcr.io/offspot/kiwix-serve:dev".into(),
                url: None,
                filesize: None,
                fullsize: None,
            },
            OciImage {
                index: 1,
                ident: "ghcr.io/offspot/base-httpd:dev".into(),
                url: Some("https://example.org/base-httpd.tar".into()),
                filesize: Some(5_980_160),
                fullsize: Some(5_945_425),
            },
        ],
        files,
        write_config: true,
        offspot: None,
    }
}

#[test]
fn full_config_parses_to_the_expected_model() {
    let mut config = parse(FULL, "full.yaml").unwrap();
    // The offspot value belongs to the offspot rules (tested there); only its presence here.
    assert!(config.offspot.take().is_some());
    assert_eq!(config, expected_full());
    assert_eq!(
        decode_base64("aGVsbG8g\nd29ybGQ=\n").unwrap(),
        b"hello world"
    );
}

/// The seed README's sample config, verbatim (typo included).
const SEED_SAMPLE: &str = r#"---
base: 1.0.0
output:
  size: 8G
oci_images:
- ghcr.io/offspot/kiwix-serve:dev
files:
- url: http://download.kiwix.org/zim/wikipedia_fr_test.zim
  to: /data/contents/zims/wikipedia_fr_test.zim
  via: direct
- to: /data/conf/message.txt
  content: |
    hello world
wite_config: true
offspot:
  timezone: Africa/Bamako
  ap:
    ssid: Kiwix Offspot
    as-gateway: true
    domain: demo
    tld: offspot
  containers:
    services:
      kiwix:
        container_name: kiwix
        image: ghcr.io/offspot/kiwix-serve:dev
        command: /bin/sh -c "kiwix-serve /data/*.zim"
        volumes:
          - "/data/contents/zims:/data:ro"
        ports:
          - "80:80"

"#;

#[test]
fn seed_sample_typo_gets_did_you_mean_and_fixed_sample_parses() {
    let sample = SEED_SAMPLE;
    let err = parse(sample, "sample.yaml").unwrap_err();
    let msg = err.to_string();
    assert_eq!(
        msg,
        "sample.yaml:14:1: wite_config: unknown key `wite_config`; did you mean `write_config`?"
    );
    assert_eq!(err.class(), ErrorClass::BadInput);

    let fixed = sample.replace("wite_config", "write_config");
    let config = parse(&fixed, "sample.yaml").unwrap();
    assert_eq!(config.base.source, "1.0.0");
    assert_eq!(config.output.size, OutputSize::Bytes(8_000_000_000));
    assert!(!config.output.shrink);
    assert_eq!(
        config.oci_images[0].ident,
        "ghcr.io/offspot/kiwix-serve:dev"
    );
    assert_eq!(config.files.len(), 2);
    assert_eq!(config.files[1].rel, PathBuf::from("conf/message.txt"));
    assert_eq!(
        config.files[1].source,
        FileSource::Content("hello world\n".into())
    );
    assert!(config.write_config);
    assert!(config.offspot.is_some());
}

#[test]
fn minimal_and_defaults() {
    let config = parse("base: 1.4.2\n", "m.yaml").unwrap();
    assert_eq!(config.base.source, "1.4.2");
    assert_eq!(config.output, Output::default());
    assert!(config.oci_images.is_empty() && config.files.is_empty());
    assert!(!config.write_config && config.offspot.is_none());

    let text = "base: {source: x.img, root_size: 1000}\noutput: {size: AUTO, shrink: false}\n\
                files:\noci_images:\nwrite_config: NO\n";
    let config = parse(text, "m.yaml").unwrap();
    assert_eq!(config.base.root_size, Some(1000));
    assert_eq!(config.output.size, OutputSize::Auto);
    assert!(!config.write_config);
}

#[test]
fn content_wins_over_url() {
    let text = "base: 1.4.2\nfiles:\n- to: /data/a\n  url: http://x/y\n  content: hi\n";
    let config = parse(text, "c.yaml").unwrap();
    assert_eq!(config.files[0].source, FileSource::Content("hi".into()));
}

#[test]
fn archive_may_contain_other_entries_and_siblings_are_fine() {
    let text = "base: 1.4.2\nfiles:\n- {to: /data/site, url: a.zip, via: zip}\n\
                - {to: /data/site/index.html, content: hi}\n\
                - {to: /data/siteb, content: x}\n- {to: /data/sit, content: y}\n";
    assert_eq!(parse(text, "a.yaml").unwrap().files.len(), 4);
}

/// PyYAML reads any integer; serde_yaml_ng's Value stops at 2^64 ("invalid YAML … u128").
#[test]
fn offspot_takes_integers_beyond_64_bits() {
    let text = "base: 1.4.2\noffspot:\n  future: 18446744073709551616\n  ap: {ssid: K, hide: 340282366920938463463374607431768211455}\n";
    let config = parse(text, "o.yaml").unwrap();
    let yaml = config.offspot.unwrap().to_yaml();
    assert!(yaml.contains("18446744073709551616"), "{yaml}");
    // Elsewhere such a number is still an error with its place.
    let err = parse("base: 1.4.2\nzzz: 18446744073709551616\n", "o.yaml").unwrap_err();
    assert!(err.to_string().contains("o.yaml:2"), "{err}");
}

#[test]
fn offspot_errors_are_wrapped_with_their_mark() {
    let inner = |path: &str| offspot::OffspotError {
        path: path.into(),
        mark: crate::yaml::node::Mark { line: 4, col: 9 },
        message: "too long".into(),
    };
    let err = load::wrap_offspot("o.yaml", inner("ap.ssid"));
    assert_eq!(err.to_string(), "o.yaml:4:9: offspot.ap.ssid: too long");
    assert_eq!(err.key_path(), Some("offspot.ap.ssid"));
    assert_eq!(err.class(), ErrorClass::BadInput);
    let err = load::wrap_offspot("o.yaml", inner(""));
    assert_eq!(err.to_string(), "o.yaml:4:9: offspot: too long");
}

#[path = "tests_bad.rs"]
mod bad;
