use super::*;
// sha2 directly, as an independent judge of crate::digest.
use sha2::{Digest, Sha256};

const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

/// What FAT32/exFAT accept as a long name, and what our ids promise beyond it.
fn assert_fat_safe(id: &str) {
    assert!(
        !id.is_empty() && id.len() <= 255,
        "length {}: {id}",
        id.len()
    );
    for c in id.chars() {
        assert!(
            c.is_ascii() && !c.is_ascii_control(),
            "non-ASCII or control char in {id:?}"
        );
        assert!(!":*?\"<>|\\/".contains(c), "forbidden {c:?} in {id:?}");
    }
    assert!(!id.ends_with('.') && !id.ends_with(' '), "{id:?}");
    assert!(!id.starts_with('.'), "{id:?}");
    assert!(is_safe_id(id), "{id:?}");
}

#[test]
fn readable_id_for_a_zim_url() {
    let key = "https://download.kiwix.org/zim/wikipedia/wikipedia_fr_all_maxi_2024-05.zim";
    let id = entry_id(EntryKind::File, key, SHA);
    let key_hash = hex::encode(Sha256::digest(key.as_bytes()));
    assert_eq!(
        id,
        format!(
            "{}-9f86d081-wikipedia_fr_all_maxi_2024-05.zim",
            &key_hash[..16]
        )
    );
    assert_fat_safe(&id);
}

#[test]
fn hostile_keys_give_fat_safe_ids() {
    let long = format!("http://x/{}.zim", "a".repeat(1000));
    let long_unicode = format!("http://x/{}", "é".repeat(600));
    let keys = [
        "http://x/a:b*c?.zim",
        "http://x/a:b*c.zim?x=1#frag",
        "http://x/weird<>|\"name\\.zim",
        "http://x/trailing.dots...",
        "http://x/trailing space ",
        "http://x/.hidden",
        "http://x/..",
        "http://x/",
        "",
        "http://x/%2e%2e%2fetc%2fpasswd",
        "http://x/Wikipedia%20FR%20%E2%9C%93.zim",
        "http://x/\u{0}\u{7}ctl",
        "CON",
        long.as_str(),
        long_unicode.as_str(),
    ];
    for key in keys {
        assert_fat_safe(&entry_id(EntryKind::File, key, SHA));
    }
    let id = entry_id(EntryKind::File, "http://x/a:b*c?.zim", SHA);
    assert!(id.ends_with("-a_b_c"), "{id}"); // query dropped, `:` and `*` replaced
    let id = entry_id(EntryKind::File, &long, SHA);
    assert!(
        id.ends_with("aaaa.zim") && id.len() <= 16 + 1 + 8 + 1 + 96,
        "{id}"
    );
    let id = entry_id(EntryKind::File, "http://x/Wikipedia%20FR.zim", SHA);
    assert!(id.ends_with("-Wikipedia_FR.zim"), "{id}");
    // Nothing readable left: the hashes alone.
    let id = entry_id(EntryKind::File, "http://x/...", SHA);
    assert_eq!(id.len(), 16 + 1 + 8, "{id}");
}

#[test]
fn oci_ids_use_name_and_tag() {
    let key = "ghcr.io/offspot/kiwix-serve:3.7.0@sha256:abcd|linux/arm64";
    let id = entry_id(EntryKind::OciImage, key, SHA);
    assert!(id.ends_with("-kiwix-serve_3.7.0"), "{id}");
    assert_fat_safe(&id);
    // Another platform of the same image is another entry.
    let other = entry_id(
        EntryKind::OciImage,
        "ghcr.io/offspot/kiwix-serve:3.7.0@sha256:abcd|linux/amd64",
        SHA,
    );
    assert_ne!(id.to_lowercase(), other.to_lowercase());
}

#[test]
fn ids_differ_case_insensitively_for_keys_differing_only_in_case() {
    // FAT compares names without case: `A.zim` and `a.zim` would be the same file there.
    let a = entry_id(EntryKind::File, "http://x/A.zim", SHA);
    let b = entry_id(EntryKind::File, "http://x/a.zim", SHA);
    assert_ne!(a.to_lowercase(), b.to_lowercase());
    // Same key, new content: a new name, so the old file is never overwritten in place.
    let c = entry_id(EntryKind::File, "http://x/a.zim", &"0".repeat(64));
    assert_ne!(b, c);
    assert_eq!(b, entry_id(EntryKind::File, "http://x/a.zim", SHA));
}

#[test]
fn unsafe_ids_are_rejected() {
    for id in [
        "",
        "../x",
        "a/b",
        ".lock",
        "x.",
        "a\\b",
        "a:b",
        "é",
        &"a".repeat(256),
    ] {
        assert!(!is_safe_id(id), "{id:?}");
    }
    assert!(is_safe_id("0123456789abcdef-9f86d081-a.zim"));
}

#[test]
fn freshness_token_prefers_digest_then_etag_then_length_and_date() {
    let mut f = Freshness {
        digest: Some("sha-256=abc".into()),
        etag: Some("\"e1\"".into()),
        length: Some(10),
        last_modified: Some("Wed, 21 Oct 2015 07:28:00 GMT".into()),
    };
    assert_eq!(f.token().as_deref(), Some("sha-256=abc"));
    f.digest = None;
    assert_eq!(f.token().as_deref(), Some("\"e1\""));
    f.etag = None;
    assert_eq!(
        f.token().as_deref(),
        Some("10|Wed, 21 Oct 2015 07:28:00 GMT")
    );
    f.length = None;
    assert_eq!(f.token().as_deref(), Some("|Wed, 21 Oct 2015 07:28:00 GMT"));
    // A length alone is no validator.
    let len_only = Freshness {
        length: Some(10),
        ..Default::default()
    };
    assert_eq!(len_only.token(), None);
    assert_eq!(Freshness::default().token(), None);
}

#[test]
fn freshness_matches_on_strongest_common_validator() {
    let get = Freshness {
        digest: Some("sha-256=abc".into()),
        etag: Some("\"e1\"".into()),
        length: Some(10),
        last_modified: Some("d1".into()),
    };
    // A HEAD without Digest still matches on the ETag, weak or not.
    let head = Freshness {
        digest: None,
        etag: Some("W/\"e1\"".into()),
        length: Some(10),
        last_modified: Some("d2".into()),
    };
    assert!(get.matches(&head) && head.matches(&get));
    let changed = Freshness {
        etag: Some("\"e2\"".into()),
        ..head.clone()
    };
    assert!(!get.matches(&changed));
    let other_digest = Freshness {
        digest: Some("sha-256=xyz".into()),
        ..get.clone()
    };
    assert!(!get.matches(&other_digest));
    // Length differing wins over an equal ETag (a broken server).
    let other_len = Freshness {
        length: Some(11),
        ..head.clone()
    };
    assert!(!get.matches(&other_len));
    let dated = |d: &str| Freshness {
        length: Some(5),
        last_modified: Some(d.into()),
        ..Default::default()
    };
    assert!(dated("d1").matches(&dated("d1")));
    assert!(!dated("d1").matches(&dated("d2")));
    // Nothing in common: unknown is not fresh.
    let len_only = Freshness {
        length: Some(10),
        ..Default::default()
    };
    assert!(!len_only.matches(&len_only));
    assert!(!Freshness::default().matches(&Freshness::default()));
}

#[test]
fn index_round_trips_and_rejects_newer_versions() {
    let dir = tempfile::tempdir().unwrap();
    let idx = Index {
        version: INDEX_VERSION,
        entries: vec![IndexEntry {
            id: entry_id(EntryKind::OciImage, "r/n:t@d|p", SHA),
            kind: EntryKind::OciImage,
            key: "r/n:t@d|p".into(),
            size: 3,
            sha256: SHA.into(),
            added: 1,
            last_used: 2,
            uses: 3,
            freshness: Freshness {
                etag: Some("\"x\"".into()),
                ..Default::default()
            },
            checked: 4,
        }],
    };
    write_index(dir.path(), &idx).unwrap();
    let path = dir.path().join(INDEX_FILE);
    assert_eq!(read_index(&path).unwrap(), Some(idx));
    assert!(!tmp_index_path(dir.path()).exists());
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"oci_image\""), "{text}");
    assert!(
        !text.contains("\"digest\""),
        "absent fields are omitted: {text}"
    );

    std::fs::write(&path, r#"{"version": 99, "entries": []}"#).unwrap();
    let err = read_index(&path).unwrap_err();
    assert!(
        matches!(err, CacheError::IndexVersion { found: 99, .. }),
        "{err}"
    );
    assert!(read_index(&dir.path().join("absent.json"))
        .unwrap()
        .is_none());
}

#[test]
fn entries_with_unsafe_ids_are_dropped_on_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(INDEX_FILE);
    let entry = |id: &str| {
        serde_json::json!({"id": id, "kind": "file", "key": id, "size": 1, "sha256": SHA,
            "added": 0, "last_used": 0, "uses": 0, "checked": 0})
    };
    let doc =
        serde_json::json!({"version": 1, "entries": [entry("../../etc/passwd"), entry("ok.zim")]});
    std::fs::write(&path, doc.to_string()).unwrap();
    let idx = read_index(&path).unwrap().unwrap();
    let ids: Vec<_> = idx.entries.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["ok.zim"]);
    // `freshness` may be absent (defaults to unknown).
    assert_eq!(idx.entries[0].freshness, Freshness::default());
}
