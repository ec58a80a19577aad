use std::time::Duration;

use super::*;

const GIB: u64 = 1 << 30;
const DAY: u64 = 86_400;

fn parse(text: &str) -> Policy {
    match Policy::parse(text, "policy.yaml") {
        Ok(p) => p,
        Err(e) => panic!("{text}\n→ {e}"),
    }
}

fn error(text: &str) -> String {
    match Policy::parse(text, "policy.yaml") {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => {
            assert_eq!(e.class(), ErrorClass::BadInput, "{e}");
            e.to_string()
        }
    }
}

#[test]
fn seed_default_policy() {
    let p = parse(DEFAULT_POLICY_YAML);
    assert!(p.enabled);
    assert_eq!(
        p.limits,
        Limits {
            max_size: Some(10 * GIB),
            eviction: Strategy::Lru,
            ..Limits::default()
        }
    );
    for sub in [&p.oci_images, &p.files] {
        assert!(sub.enabled);
        assert_eq!(sub.limits, Limits::default());
        assert!(sub.filters.is_empty());
    }
    assert_eq!(Policy::default_policy().limits.max_size, Some(10 * GIB));
}

#[test]
fn seed_sample_policy() {
    let p = parse("---\nenabled: true\nmax_size: 0\noci_images:\n  eviction: oldest\nfiles:\n  enabled: false\n");
    assert!(p.enabled);
    assert_eq!(p.limits.max_size, None, "`0` is unlimited");
    assert_eq!(p.oci_images.limits.eviction, Strategy::Oldest);
    assert!(p.oci_images.enabled);
    assert!(!p.files.enabled);
}

#[test]
fn every_key_at_every_level() {
    let p = parse(
        r#"
enabled: true
max_size: 100GiB
max_age: 1y
max_num: 500
eviction: largest
check_after: 1w
keep_identified_versions: 3
oci_images:
  enabled: true
  max_size: 20GiB
  max_age: 30d
  max_num: 40
  eviction: newest
  check_after: 1d
  keep_identified_versions: 2
  filters:
    - pattern: /kiwix/
      max_size: 2.5GiB
      max_age: 4w
      max_num: 5
      eviction: smallest
      check_after: 12h
      keep_identified_versions: 1
files:
  max_size: "50G"
  filters:
    - pattern: 'https?://download\.kiwix\.org/zim/'
      ignore: false
    - pattern: "\\.img$"
      ignore: true
"#,
    );
    assert_eq!(
        p.limits,
        Limits {
            max_size: Some(100 * GIB),
            max_age: Some(Duration::from_secs(52 * 7 * DAY)),
            max_num: Some(500),
            eviction: Strategy::Largest,
            check_after: Some(Duration::from_secs(7 * DAY)),
            keep_identified_versions: Some(3),
        }
    );
    assert_eq!(p.oci_images.limits.eviction, Strategy::Newest);
    assert_eq!(p.oci_images.limits.max_num, Some(40));
    let f = &p.oci_images.filters[0];
    assert_eq!(f.source, "/kiwix/");
    assert!(!f.ignore);
    assert_eq!(
        f.limits,
        Limits {
            max_size: Some(2_684_354_560),
            max_age: Some(Duration::from_secs(28 * DAY)),
            max_num: Some(5),
            eviction: Strategy::Smallest,
            check_after: Some(Duration::from_secs(12 * 3600)),
            keep_identified_versions: Some(1),
        }
    );
    assert_eq!(p.files.limits.max_size, Some(50_000_000_000));
    assert_eq!(p.files.limits.eviction, Strategy::Lru, "default strategy");
    assert_eq!(p.files.filters.len(), 2);
    assert!(p.files.filters[1].ignore);
}

#[test]
fn zero_means_unlimited_and_empty_file_is_unlimited() {
    let p =
        parse("max_size: 0\nmax_num: 0\nmax_age: 0\nkeep_identified_versions: 0\ncheck_after: 0\n");
    assert_eq!(p.limits.max_size, None);
    assert_eq!(p.limits.max_num, None);
    assert_eq!(p.limits.max_age, None);
    assert_eq!(p.limits.keep_identified_versions, None);
    assert_eq!(
        p.limits.check_after,
        Some(Duration::ZERO),
        "0 = re-check every use"
    );
    for text in ["", "---\n", "# nothing\n"] {
        let p = parse(text);
        assert!(p.enabled && p.files.enabled && p.oci_images.enabled);
        assert_eq!(p.limits, Limits::default());
    }
}

#[test]
fn child_must_fit_in_parent() {
    assert_eq!(
        error("max_size: 10GiB\nfiles:\n  max_size: 20GiB\n"),
        "policy.yaml:3:13: files.max_size (20GiB) exceeds max_size (10GiB); \
         a sub-level must fit within its parent"
    );
    assert!(error("max_num: 10\noci_images:\n  max_num: 11\n")
        .contains("oci_images.max_num (11) exceeds max_num (10)"));
    assert!(error("max_age: 30d\nfiles:\n  max_age: 5w\n")
        .contains("files.max_age (5w) exceeds max_age (30d)"));
    // A filter is bounded by its sub-policy…
    assert!(
        error("files:\n  max_size: 1G\n  filters:\n    - pattern: x\n      max_size: 2G\n")
            .contains("files.filters[0].max_size (2G) exceeds files.max_size (1G)")
    );
    // …and by the main level when the sub-policy states nothing.
    assert!(error(
        "max_num: 3\nfiles:\n  filters:\n    - pattern: a\n    - pattern: x\n      max_num: 4\n"
    )
    .contains("files.filters[1].max_num (4) exceeds max_num (3)"));
    // A stated child under an unlimited parent is fine; so are equal values and a child `0`.
    parse("max_size: 0\nfiles:\n  max_size: 20GiB\n");
    parse("files:\n  max_size: 20GiB\n  filters:\n    - pattern: x\n      max_size: 20GiB\n");
    parse("max_size: 1G\nfiles:\n  max_size: 0\n");
    parse("max_size: 1GB\noci_images:\n  max_size: 1000MB\n");
}

#[test]
fn bad_values_name_file_key_and_expectation() {
    let e = error("eviction: lur\n");
    assert!(
        e.starts_with("policy.yaml:1:11: eviction: unknown strategy `lur`"),
        "{e}"
    );
    assert!(e.contains("did you mean `lru`?"), "{e}");
    assert!(e.contains("oldest, newest, largest, smallest, lru"), "{e}");
    let e = error("files:\n  max_size: 12 parsecs\n");
    assert!(
        e.starts_with("policy.yaml:2:13: files.max_size: `12 parsecs`: unknown unit"),
        "{e}"
    );
    let e = error("oci_images:\n  filters:\n    - pattern: x\n      max_age: 3 months\n");
    assert!(
        e.contains("oci_images.filters[0].max_age: `3 months`: unknown unit"),
        "{e}"
    );
    assert!(e.contains("expected a number with an optional unit"), "{e}");
    let e = error("max_num: lots\n");
    assert!(
        e.contains("max_num: `lots`: expected a whole number"),
        "{e}"
    );
    let e = error("max_size: -1G\n");
    assert!(
        e.contains("max_size: `-1G`: sizes cannot be negative"),
        "{e}"
    );
    let e = error("files:\n  filters:\n    - pattern: '(unclosed'\n");
    assert!(
        e.contains("files.filters[0].pattern: not a valid regular expression"),
        "{e}"
    );
    let e = error("files:\n  enabled: maybe\n");
    assert!(e.contains("files.enabled"), "{e}");
    assert!(e.contains("boolean"), "{e}");
}

#[test]
fn unknown_keys_suggest_the_closest() {
    let e = error("enabled: true\nmax_sise: 1G\n");
    assert!(e.starts_with("policy.yaml:2:"), "{e}");
    assert!(
        e.contains("max_sise: unknown key `max_sise`; did you mean `max_size`?"),
        "{e}"
    );
    let e = error("files:\n  filter:\n    - pattern: x\n");
    assert!(
        e.contains("files.filter: unknown key `filter`; did you mean `filters`?"),
        "{e}"
    );
    let e = error("oci_images:\n  filters:\n    - pattern: x\n      ignroe: true\n");
    assert!(
        e.contains("oci_images.filters[0].ignroe: unknown key `ignroe`; did you mean `ignore`?"),
        "{e}"
    );
    // `filters` is not a key of the main level; nothing close: list what is accepted.
    let e = error("zzz: 1\n");
    assert!(e.contains("unknown key `zzz`; expected one of"), "{e}");
    assert!(e.contains("keep_identified_versions"), "{e}");
    // A filter takes no `enabled`.
    let e = error("files:\n  filters:\n    - pattern: x\n      enabled: false\n");
    assert!(e.contains("unknown key `enabled`"), "{e}");
}

#[test]
fn filters_require_a_pattern() {
    let e = error("files:\n  filters:\n    - max_num: 2\n");
    assert!(
        e.contains("files.filters[0].pattern: required key is missing"),
        "{e}"
    );
}

#[test]
fn syntax_errors_have_a_position() {
    let e = error("files: [\n");
    assert!(e.starts_with("policy.yaml:"), "{e}");
    assert!(e.contains("invalid YAML"), "{e}");
    let e = error("- a\n- b\n");
    assert!(e.starts_with("policy.yaml:1:1: (top level): "), "{e}");
    assert!(e.contains("expected a mapping of cache policy keys"), "{e}");
    let e = error("files: true\n");
    assert!(
        e.contains("files: invalid type: boolean `true`, expected a mapping"),
        "{e}"
    );
}

#[test]
fn classify_first_match_wins_case_insensitive_anywhere() {
    let p = parse(
        r#"
files:
  filters:
    - pattern: download\.kiwix\.org/zim/
      max_num: 1
    - pattern: \.ZIM$
      ignore: true
    - pattern: wikipedia
oci_images:
  filters:
    - pattern: /KIWIX/
      ignore: true
"#,
    );
    let zim = "https://download.kiwix.org/zim/wikipedia/wikipedia_fr_all_maxi_2024-05.zim";
    assert_eq!(
        p.classify(Kind::File, zim),
        Placement {
            kind: Kind::File,
            filter: Some(0),
            cacheable: true
        }
    );
    let other = p.classify(Kind::File, "https://mirror.example/wikipedia_en.zim");
    assert_eq!((other.filter, other.cacheable), (Some(1), false));
    let none = p.classify(Kind::File, "https://example.com/base.img");
    assert_eq!((none.filter, none.cacheable), (None, true));
    let oci = p.classify(Kind::OciImage, "ghcr.io/offspot/kiwix-serve:3.7.0");
    assert_eq!((oci.filter, oci.cacheable), (None, true));
    let oci = p.classify(Kind::OciImage, "ghcr.io/Kiwix/kiwix-serve:3.7.0");
    assert_eq!(
        (oci.kind, oci.filter, oci.cacheable),
        (Kind::OciImage, Some(0), false)
    );
    // The same key as an image is matched against the image filters only.
    let as_oci = p.classify(Kind::OciImage, zim);
    assert_eq!((as_oci.filter, as_oci.cacheable), (None, true));
}

#[test]
fn classify_disabled_levels() {
    let p = parse("enabled: false\n");
    assert!(!p.classify(Kind::File, "https://a/b").cacheable);
    assert!(!p.classify(Kind::OciImage, "a/b:1").cacheable);
    let p = parse("files:\n  enabled: false\n  filters:\n    - pattern: b\n");
    let placed = p.classify(Kind::File, "https://a/b");
    assert_eq!((placed.filter, placed.cacheable), (Some(0), false));
    assert!(p.classify(Kind::OciImage, "a/b:1").cacheable);
}

#[test]
fn load_or_init_writes_the_default_once() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    // Read-only: the default is used, nothing is written.
    let p = Policy::load_or_init(&cache, true).unwrap();
    assert_eq!(p.limits.max_size, Some(10 * GIB));
    assert!(!cache.exists());
    let p = Policy::load_or_init(&cache, false).unwrap();
    assert_eq!(p.limits.max_size, Some(10 * GIB));
    let written = std::fs::read_to_string(cache.join(POLICY_FILE)).unwrap();
    assert_eq!(written, DEFAULT_POLICY_YAML);
    // No temp file left behind.
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 1);
    // An existing policy is read, never overwritten.
    std::fs::write(cache.join(POLICY_FILE), "max_num: 7\n").unwrap();
    assert_eq!(
        Policy::load_or_init(&cache, false).unwrap().limits.max_num,
        Some(7)
    );
    assert_eq!(
        std::fs::read_to_string(cache.join(POLICY_FILE)).unwrap(),
        "max_num: 7\n"
    );
    // Errors name the policy file.
    std::fs::write(
        cache.join(POLICY_FILE),
        "max_num: 7\nfiles:\n  max_num: 8\n",
    )
    .unwrap();
    let e = Policy::load_or_init(&cache, true).unwrap_err().to_string();
    let want = format!(
        "{}:3:12: files.max_num (8) exceeds max_num (7)",
        cache.join(POLICY_FILE).display()
    );
    assert!(e.starts_with(&want), "{e}");
}

#[test]
fn load_or_init_reports_io_failures() {
    let dir = tempfile::tempdir().unwrap();
    // The cache "directory" is a file: it cannot be created.
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "").unwrap();
    let e = Policy::load_or_init(&file, false).unwrap_err();
    assert_eq!(e.class(), ErrorClass::Failure);
    assert!(
        matches!(e, PolicyError::Read { .. } | PolicyError::Write { .. }),
        "{e}"
    );
    assert!(e.to_string().contains("not-a-dir"), "{e}");
}
