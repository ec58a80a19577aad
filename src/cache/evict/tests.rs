use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;

const DAY: u64 = 86_400;

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn entry(kind: Kind, id: &str, key: &str, size: u64, added: u64, last_used: u64) -> Entry {
    Entry {
        id: id.to_string(),
        kind,
        key: key.to_string(),
        size,
        added: t(added),
        last_used: t(last_used),
        uses: 1,
    }
}

fn file(id: &str, size: u64, added: u64, last_used: u64) -> Entry {
    let url = format!("https://example.org/{id}.bin");
    entry(Kind::File, id, &url, size, added, last_used)
}

fn policy(yaml: &str) -> Policy {
    match Policy::parse(yaml, "test") {
        Ok(p) => p,
        Err(e) => panic!("{yaml}: {e}"),
    }
}

fn evicted(yaml: &str, entries: &[Entry], now: u64) -> Vec<String> {
    plan(&policy(yaml), entries, t(now)).evict
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

/// Each entry stands out on exactly one axis, so each strategy has a distinct first victim.
fn five() -> Vec<Entry> {
    vec![
        file("a", 30, 1, 50), // oldest
        file("b", 10, 2, 40), // smallest
        file("c", 50, 3, 30), // largest
        file("d", 20, 4, 10), // least recently used
        file("e", 40, 5, 20), // newest
    ]
}

#[test]
fn each_strategy_evicts_what_its_name_says_first() {
    for (strategy, first, first_two) in [
        ("oldest", "a", ["a", "b"]),
        ("newest", "e", ["e", "d"]),
        ("largest", "c", ["c", "e"]),
        ("smallest", "b", ["b", "d"]),
        ("lru", "d", ["d", "e"]),
    ] {
        let yaml = format!("max_num: 4\neviction: {strategy}\n");
        assert_eq!(evicted(&yaml, &five(), 100), [first], "{strategy}");
        let yaml = format!("max_num: 3\neviction: {strategy}\n");
        assert_eq!(evicted(&yaml, &five(), 100), first_two, "{strategy}");
    }
}

#[test]
fn max_size_stops_as_soon_as_it_holds() {
    // Total 150. Oldest first: a (30) → 120, b (10) → 110 ≤ 110: stop.
    assert_eq!(
        evicted("max_size: 110\neviction: oldest\n", &five(), 9),
        ["a", "b"]
    );
    assert_eq!(
        evicted("max_size: 150\neviction: oldest\n", &five(), 9),
        Vec::<String>::new()
    );
    // Largest first: c (50) → 100 ≤ 110.
    assert_eq!(
        evicted("max_size: 110\neviction: largest\n", &five(), 9),
        ["c"]
    );
    // Both limits: the count needs one out, the size needs more.
    let v = plan(&policy("max_size: 100\nmax_num: 4\n"), &five(), t(9));
    assert_eq!(v.evict, ["d", "e"]);
    assert_eq!(v.reasons["d"], "cache: max_num 4 (lru)");
    assert_eq!(v.reasons["e"], "cache: max_size 100B (lru)");
}

#[test]
fn ties_are_broken_by_id() {
    let entries = vec![file("z", 1, 5, 5), file("m", 1, 5, 5), file("q", 1, 5, 5)];
    for strategy in Strategy::NAMES {
        let yaml = format!("max_num: 1\neviction: {strategy}\n");
        assert_eq!(evicted(&yaml, &entries, 9), ["m", "q"], "{strategy}");
    }
}

#[test]
fn filter_level_limits_only_what_it_owns() {
    let yaml =
        "files:\n  filters:\n    - pattern: kiwix\n      max_num: 1\n      eviction: oldest\n";
    let entries = vec![
        entry(
            Kind::File,
            "k1",
            "https://download.kiwix.org/a.zim",
            5,
            1,
            9,
        ),
        entry(
            Kind::File,
            "k2",
            "https://download.KIWIX.org/b.zim",
            5,
            2,
            1,
        ),
        entry(Kind::File, "o1", "https://example.org/c", 5, 0, 0),
        entry(Kind::OciImage, "i1", "ghcr.io/kiwix/kiwix-serve:1", 5, 0, 0),
    ];
    let v = plan(&policy(yaml), &entries, t(9));
    assert_eq!(v.evict, ["k1"]);
    assert_eq!(v.reasons["k1"], "files.filters[0]: max_num 1 (oldest)");
}

#[test]
fn sub_level_counts_filter_owned_entries_once() {
    // The filter keeps 2 of its 3 (drops the oldest); the files level then sees those 2 plus
    // `other`: 3 > 2, one more goes (the largest). Counting the filter's victim again would
    // make it evict two.
    let yaml = "files:\n  max_num: 2\n  eviction: largest\n  filters:\n    - pattern: \\.zim$\n      max_num: 2\n      eviction: oldest\n";
    let entries = vec![
        entry(Kind::File, "z1", "https://x/1.zim", 10, 1, 1),
        entry(Kind::File, "z2", "https://x/2.zim", 30, 2, 2),
        entry(Kind::File, "z3", "https://x/3.zim", 20, 3, 3),
        entry(Kind::File, "other", "https://x/base.img", 25, 4, 4),
        entry(Kind::OciImage, "img1", "a/b:1", 99, 0, 0),
        entry(Kind::OciImage, "img2", "a/c:1", 99, 0, 0),
        entry(Kind::OciImage, "img3", "a/d:1", 99, 0, 0),
    ];
    let v = plan(&policy(yaml), &entries, t(9));
    assert_eq!(v.evict, ["z1", "z2"]);
    assert_eq!(v.reasons["z1"], "files.filters[0]: max_num 2 (oldest)");
    assert_eq!(v.reasons["z2"], "files: max_num 2 (largest)");
}

#[test]
fn main_level_applies_across_kinds_after_the_sub_levels() {
    let yaml = "max_size: 100\neviction: smallest\noci_images:\n  max_num: 1\n  eviction: newest\n";
    let entries = vec![
        entry(Kind::OciImage, "i1", "r/a:1", 60, 1, 1),
        entry(Kind::OciImage, "i2", "r/b:1", 5, 2, 2),
        entry(Kind::File, "f1", "https://x/1", 30, 3, 3),
        entry(Kind::File, "f2", "https://x/2", 20, 4, 4),
    ];
    // oci_images keeps i1 (drops the newer i2); then 60+30+20 = 110 > 100: smallest (f2) goes.
    let v = plan(&policy(yaml), &entries, t(9));
    assert_eq!(v.evict, ["i2", "f2"]);
    assert_eq!(v.reasons["i2"], "oci_images: max_num 1 (newest)");
    assert_eq!(v.reasons["f2"], "cache: max_size 100B (smallest)");
}

#[test]
fn disabled_main_or_sub_evicts_everything_it_covers() {
    let entries = vec![
        entry(Kind::OciImage, "i1", "r/a:1", 1, 1, 1),
        entry(Kind::File, "f1", "https://x/1", 1, 1, 1),
    ];
    let v = plan(&policy("enabled: false\n"), &entries, t(9));
    assert_eq!(sorted(v.evict), ["f1", "i1"]);
    assert_eq!(v.reasons["f1"], "cache: disabled");
    let v = plan(&policy("files:\n  enabled: false\n"), &entries, t(9));
    assert_eq!(v.evict, ["f1"]);
    assert_eq!(v.reasons["f1"], "files: disabled");
    let v = plan(&policy("oci_images:\n  enabled: false\n"), &entries, t(9));
    assert_eq!(v.evict, ["i1"]);
}

#[test]
fn ignore_filter_and_first_match_ownership() {
    let yaml =
        "files:\n  filters:\n    - pattern: keep\n    - pattern: \\.img$\n      ignore: true\n";
    let entries = vec![
        entry(Kind::File, "ign", "https://x/base.img", 1, 1, 1),
        // Matches both filters: the first (not ignored) owns it.
        entry(Kind::File, "kept", "https://x/keep.img", 1, 1, 1),
        entry(Kind::File, "plain", "https://x/data.zip", 1, 1, 1),
    ];
    let v = plan(&policy(yaml), &entries, t(9));
    assert_eq!(v.evict, ["ign"]);
    assert_eq!(v.reasons["ign"], "files.filters[1] (`\\.img$`): ignore");
}

#[test]
fn max_age_counts_from_added_at_the_injected_now() {
    let now = 100 * DAY;
    let entries = vec![
        file("old", 1, now - 31 * DAY, now), // older than 30d
        file("edge", 1, now - 30 * DAY, 0),  // exactly 30d: kept
        file("young", 1, now - DAY, 0),      // kept
        file("future", 1, now + DAY, 0),     // clock went back: age zero
    ];
    let v = plan(&policy("files:\n  max_age: 30d\n"), &entries, t(now));
    assert_eq!(v.evict, ["old"]);
    assert_eq!(v.reasons["old"], "files: max_age 30d");
    // The same entries a day later: `edge` is now too old.
    assert_eq!(
        evicted("max_age: 30d\n", &entries, now + DAY),
        ["old", "edge"]
    );
}

#[test]
fn keep_identified_versions_of_zims() {
    let zim = |id: &str, name: &str, added| {
        let url = format!("https://download.kiwix.org/zim/wikipedia/{name}");
        entry(Kind::File, id, &url, 1, added, added)
    };
    let entries = vec![
        zim("fr03", "wikipedia_fr_all_maxi_2024-03.zim", 3),
        zim("fr05", "wikipedia_fr_all_maxi_2024-05.zim", 5),
        zim("fr04", "wikipedia_fr_all_maxi_2024-04.zim", 4),
        zim("en05", "wikipedia_en_all_maxi_2024-05.zim", 5),
        zim("nodate", "wikipedia_fr_all_maxi.zim", 1),
    ];
    let v = plan(
        &policy("files:\n  keep_identified_versions: 1\n"),
        &entries,
        t(9),
    );
    // `nodate` shares the identity of the dated fr ZIMs and is the oldest of them.
    assert_eq!(sorted(v.evict.clone()), ["fr03", "fr04", "nodate"]);
    assert_eq!(
        v.reasons["fr03"],
        "files: keep_identified_versions 1 (wikipedia_fr_all_maxi.zim)"
    );
    let kept2 = evicted("keep_identified_versions: 2\n", &entries, 9);
    assert_eq!(sorted(kept2), ["fr03", "nodate"]);
}

#[test]
fn keep_identified_versions_of_oci_tags() {
    let img = |id: &str, key: &str, added| entry(Kind::OciImage, id, key, 1, added, added);
    let entries = vec![
        img("s36", "ghcr.io/offspot/kiwix-serve:3.6.0", 1),
        img("s37", "ghcr.io/offspot/kiwix-serve:3.7.0", 2),
        img("s37d", "ghcr.io/offspot/kiwix-serve:3.7.0@sha256:abcd", 3),
        img("p1", "localhost:5000/offspot/kiwix-serve:1", 1),
        img("p2", "localhost:5000/offspot/kiwix-serve:2", 2),
        img("other", "ghcr.io/offspot/file-manager:1", 0),
    ];
    let yaml =
        "oci_images:\n  filters:\n    - pattern: kiwix-serve\n      keep_identified_versions: 1\n";
    assert_eq!(sorted(evicted(yaml, &entries, 9)), ["p1", "s36", "s37"]);
}

#[test]
fn identities() {
    assert_eq!(identity(Kind::OciImage, "ghcr.io/a/b:1.0"), "ghcr.io/a/b");
    assert_eq!(
        identity(Kind::OciImage, "ghcr.io/a/b@sha256:ff"),
        "ghcr.io/a/b"
    );
    assert_eq!(identity(Kind::OciImage, "host:5000/a/b"), "host:5000/a/b");
    assert_eq!(identity(Kind::OciImage, "host:5000/a/b:2"), "host:5000/a/b");
    assert_eq!(
        identity(
            Kind::File,
            "https://m/zim/wikipedia_fr_all_maxi_2024-05.zim?x=1#f"
        ),
        "wikipedia_fr_all_maxi.zim"
    );
    assert_eq!(
        identity(Kind::File, "https://m/devdocs_en_rust_2025-01"),
        "devdocs_en_rust"
    );
    // Not a month suffix: unchanged.
    for name in [
        "a_2024-5.zim",
        "a-2024-05.zim",
        "a_20240-05.zim",
        "é_2024.zim",
        "_2024-05",
    ] {
        assert_eq!(identity(Kind::File, &format!("https://m/{name}")), name);
    }
}

#[test]
fn nothing_to_do() {
    assert_eq!(
        plan(&Policy::default_policy(), &[], t(0)),
        Verdict::default()
    );
    let v = plan(&Policy::default_policy(), &five(), t(1_000_000));
    assert!(v.evict.is_empty() && v.reasons.is_empty());
}

#[test]
fn durations_are_shown_in_their_largest_exact_unit() {
    assert_eq!(format_duration(Duration::from_secs(30 * DAY)), "30d");
    assert_eq!(format_duration(Duration::from_secs(28 * DAY)), "4w");
    assert_eq!(format_duration(Duration::from_secs(7200)), "2h");
    assert_eq!(format_duration(Duration::from_secs(90)), "90s");
    assert_eq!(format_duration(Duration::ZERO), "0s");
}
