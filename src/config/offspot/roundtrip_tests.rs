//! PyYAML itself (the device's reader) loads each original section and our `to_yaml()` output;
//! both must give the same values, types and order. Needs `python3` with PyYAML
//! (Debian: python3-yaml); the tests fail, not skip, without it.

use std::process::Command;

use super::Offspot;
use crate::yaml::emit::to_yaml;
use crate::yaml::node::parse;
use crate::yaml::yaml11::resolve;

/// Loads argv[1] and argv[2] with `yaml.safe_load` (taking key argv[3] of the first when given)
/// and compares them as tagged trees: `True == 1` and `nan != nan` in Python, so plain `==`
/// would hide type changes and fail on NaN.
const COMPARE: &str = r#"
import datetime, math, sys, yaml
def norm(v):
    if isinstance(v, bool): return ('bool', v)
    if isinstance(v, int): return ('int', v)
    if isinstance(v, float): return ('float', 'nan' if math.isnan(v) else repr(v))
    if isinstance(v, str): return ('str', v)
    if v is None: return ('null',)
    if isinstance(v, datetime.datetime): return ('datetime', v.isoformat(), repr(v.tzinfo))
    if isinstance(v, datetime.date): return ('date', v.isoformat())
    if isinstance(v, list): return ('seq', [norm(x) for x in v])
    if isinstance(v, dict): return ('map', [(norm(k), norm(x)) for k, x in v.items()])
    return ('other', type(v).__name__, repr(v))
with open(sys.argv[1], encoding='utf-8') as f: original = yaml.safe_load(f)
with open(sys.argv[2], encoding='utf-8') as f: emitted = yaml.safe_load(f)
if len(sys.argv) > 3: original = original[sys.argv[3]]
if original is None: original = {}
a, b = norm(original), norm(emitted)
if a != b:
    print('ORIGINAL:', a)
    print('EMITTED: ', b)
    sys.exit(1)
print('same', len(repr(a)))
"#;

fn pyyaml_same(original: &str, emitted: &str, key: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        dir.path().join("original.yaml"),
        dir.path().join("emitted.yaml"),
    );
    std::fs::write(&a, original).unwrap();
    std::fs::write(&b, emitted).unwrap();
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(COMPARE).arg(&a).arg(&b);
    if let Some(key) = key {
        cmd.arg(key);
    }
    let out = cmd
        .output()
        .expect("python3 is required for the offspot round-trip tests");
    assert!(
        out.status.success(),
        "PyYAML disagrees (is python3-yaml installed?)\n--- original\n{original}\n--- emitted\n{emitted}\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("same"));
}

/// Resolves a whole document as if it were the `offspot` section (without the device rules)
/// and round-trips it through PyYAML.
fn roundtrip(doc: &str) {
    let item =
        resolve(&parse(doc).unwrap(), "").unwrap_or_else(|e| panic!("{doc}\n{e} at {}", e.path));
    pyyaml_same(doc, &to_yaml(&item), None);
}

#[test]
fn pyyaml_is_available() {
    let out = Command::new("python3")
        .args(["-c", "import yaml; print(yaml.__version__)"])
        .output()
        .expect("python3 is required");
    assert!(out.status.success(), "PyYAML missing: install python3-yaml");
}

#[test]
fn booleans_and_lookalikes() {
    roundtrip("bools: [yes, no, on, off, Yes, NO, True, FALSE, y, n, On, OFF]\nquoted: [\"yes\", 'no', \"on\", 'True']\nyes: key\nOff: key2\n");
}

#[test]
fn numbers() {
    roundtrip(
        "ints: [0755, 0x1F, -0x1f, 0b101, 1_000, -0, +12, 00, 0_7, 0x_1F, 1__0]\n\
         sexa: [80:30, 22:22, 190:20:30, -1:30, 1_0:30, 80:80, 8080-8090:80-90, 1:60]\n\
         floats: [1.5, 1., .5, 09.5, 1.0e+3, -1_0.5e-1, 1:30.5, 6.02e+23, 1.5e-10, 3.14159265358979]\n\
         specials: [.inf, -.inf, +.inf, .NaN, .nan, -0.0]\n\
         strings: [08, 09, 1e3, 1.0e3, 0o17, 12e3, 1.2.3, inf, nan]\n\
         big: [100000000000000000000000000000000000000000000000, 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF, -99999999999999999999999999999999999999999]\n",
    );
}

#[test]
fn dates_and_nulls() {
    roundtrip(
        "dates:\n- 2024-01-01\n- 2001-12-14t21:59:43.10-05:00\n- 2001-12-14 21:59:43.10 -5\n\
         - 2001-12-15T02:59:43.1Z\n- 2024-1-1 1:00:00\n- 2024-1-1\n- 2024-02-29\n\
         nulls: [~, null, Null, NULL, nil, \"null\", '~']\nempty:\nalso_empty: \n~: null key\n",
    );
}

#[test]
fn unicode_quotes_and_escapes() {
    roundtrip(concat!(
        "ssid: \"Café \\\"Wi-Fi\\\" 📶 d'été\"\n",
        "single: 'it''s \"quoted\"'\n",
        "backslash: \"C:\\\\path\\\\to\"\n",
        "control: \"bell\\x07 esc\\x1b del\\x7f nel\\x85 ls\\u2028 ps\\u2029 bom\\ufeff nul\\0\"\n",
        "tab: \"a\\tb\\r\\n\"\n",
        "emoji_🎉: value\n",
        "\"quoted key: with colon\": 1\n",
        "specials: ['- dash', 'k: v', '# hash', '@at', '`tick', ' lead', 'trail ', '', '*star', '&amp', '!bang', '%pct', '|pipe', '>gt', '{b', '[b', \"'\", '\"', '? q', ',']\n",
        "nbsp: \"a\u{a0}b\"\n",
        "cjk: 日本語のテキスト\n",
    ));
}

#[test]
fn block_scalars() {
    roundtrip(
        "script: |\n  #!/bin/sh\n  echo \"hi\" # not a comment\n    indented\n\n  last\n\
         folded: >\n  a\n  b\n\n  c\n\
         keep: |+\n  x\n\n\
         strip: |-\n  y\n\
         plain: this is\n  a multi line\n  plain scalar\n\
         after: end\n",
    );
}

#[test]
fn keys_of_every_type() {
    roundtrip("80: int key\n\"81\": str key\n? yes\n: bool key\n~: null key\n1.5: float key\n2024-01-01: date key\n0x10: hex key\n\"\": empty key\n-3: neg\n");
}

#[test]
fn nesting_and_empty_collections() {
    roundtrip(
        "empty_map: {}\nempty_list: []\nnested:\n  - - a\n    - b\n  - {x: 1, y: [1, 2, {z: yes}]}\n  - []\n  - {}\n  - [[], [[]], [{}]]\n\
         deep: {a: {b: {c: [[], [[]]]}}}\nlist_of_maps:\n- name: a\n  ports: [\"80:80\"]\n- name: b\n  env: {DEBUG: on}\n",
    );
}

#[test]
fn merges_and_explicit_tags() {
    roundtrip(
        "base: &b {image: x, restart: always}\nsvc:\n  <<: *b\n  restart: \"no\"\n\
         multi:\n  <<: [{a: 1, b: 1}, {b: 2, c: 2}]\n  d: 4\n\
         tags: [!!str 0755, !!int \"0x1F\", !!float \"1e3\", !!bool \"yes\", !!null \"\", ! 123, ! \"on\", !!timestamp \"2024-01-01\", !!str yes]\n",
    );
}

#[test]
fn long_keys_use_the_explicit_form() {
    let key = "k".repeat(1500);
    roundtrip(&format!(
        "? \"{key}\"\n: 1\nnested:\n- ? \"{key}\"\n  : [1]\n  short: 2\n"
    ));
}

/// A realistic section, through the full `from_node` (device rules) and `to_yaml`, loaded by
/// PyYAML from the whole config as the build would see it.
#[test]
fn full_offspot_section() {
    let config = r#"base: 1.4.2
offspot:
  timezone: Africa/Bamako
  hostname: kiwix-hotspot
  ethernet:
    type: static
    address: 192.168.5.10
    routers: [192.168.5.200]
    dns: [192.168.5.200, 1.1.1.1]
  ap:
    ssid: 'Kiwix ''Hotspot'' 📚'
    passphrase: correct horse
    as-gateway: yes
    hide: off
    country: "NO"
    spoof: auto
    address: 192.168.2.1
    dhcp-range: 192.168.2.2,192.168.2.254,255.255.255.0,1h
    channel: 11
  firmware:
    brcm43455: supports-24_2021-10-05_noap+sta
  containers:
    services:
      kiwix:
        image: ghcr.io/offspot/kiwix-serve:3.8.1
        ports:
        - 80:80
        - "127.0.0.1:8080:8080/tcp"
        volumes:
        - /data/contents/zims:/data:ro
        - type: bind
          source: /data/contents/branding
          target: /branding
        - cache:/cache
        environment:
          DEBUG: on
          VERSION: 0755
          STARTED: 2024-01-01
      reverse-proxy:
        image: ghcr.io/offspot/reverse-proxy:1.9
        ports:
        - target: 443
          published: 443
  x-future-key: [1, two]
"#;
    let root = parse(config).unwrap();
    let offspot = Offspot::from_node(root.get("offspot").unwrap()).unwrap();
    let yaml = offspot.to_yaml();
    assert!(yaml.starts_with("# written by image-creator\n"));
    assert!(
        yaml.contains("  \"ssid\": \"Kiwix 'Hotspot' 📚\"\n"),
        "{yaml}"
    );
    assert!(yaml.contains("        \"DEBUG\": true\n"), "{yaml}");
    pyyaml_same(config, &yaml, Some("offspot"));
    assert_eq!(
        offspot.images(),
        vec![
            "ghcr.io/offspot/kiwix-serve:3.8.1",
            "ghcr.io/offspot/reverse-proxy:1.9"
        ]
    );
    assert_eq!(
        offspot.bind_sources(),
        vec!["/data/contents/zims", "/data/contents/branding"]
    );
}

#[test]
fn empty_section_is_an_empty_mapping() {
    let root = parse("offspot:\n").unwrap();
    let offspot = Offspot::from_node(root.get("offspot").unwrap()).unwrap();
    assert_eq!(offspot.to_yaml(), "# written by image-creator\n{}\n");
    pyyaml_same("{}\n", &offspot.to_yaml(), None);
}

/// PyYAML loads each of `docs`; prints the indexes of those it fails on.
const FAILING: &str = r#"
import sys, yaml
docs = open(sys.argv[1], encoding='utf-8').read().split('\n---SPLIT---\n')
for i, d in enumerate(docs):
    try: yaml.safe_load(d)
    except Exception: print(i)
"#;

/// Thousands of generated plain scalars built from the characters the YAML 1.1 patterns care
/// about: those we resolve must round-trip through PyYAML, those we refuse PyYAML must refuse.
#[test]
fn generated_plain_scalars_agree_with_pyyaml() {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    // Each token is a sequence of optional parts shaped like numbers, dates and words, so
    // near-misses of every pattern (`1.0e3`, `1:60`, `2024-1-1`, `0b_`) come up often.
    const PARTS: &[&[&str]] = &[
        &["-", "+", "."],
        &[
            "0", "1", "12", "08", "0x", "0b", "2024", "1_0", "190", "y", "n", "t", "o",
        ],
        &["1F", "_", "7", "es", "o", "ue", "n", "ull", "ff"],
        &[":", ":5", ":59", ":60", ":30.5", "-01", "-1", "-13"],
        &[".", ".5", "._", "-02", "-1", "-29", "-31", "-30"],
        &[
            "e3", "e+3", "e-3", "E+10", "inf", "nan", "NaN", "Inf", "T", " ",
        ],
        &["10:00:00", "1:00:00", "24:00:00", "10:60:00"],
        &[".5", "Z", "+01", "-5", " +05:30", "-24"],
    ];
    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    for _ in 0..4000 {
        let token: String = PARTS
            .iter()
            .map(|p| if next(10) < 6 { "" } else { p[next(p.len())] })
            .collect();
        let token = token.trim().to_string();
        let doc = format!("v: {token}\n");
        let Ok(node) = parse(&doc) else { continue };
        match resolve(&node, "") {
            Ok(_) => accepted.push(token),
            Err(_) => refused.push(doc),
        }
    }
    assert!(accepted.len() > 2000, "{}", accepted.len());
    for known in [
        "2024-02-30",
        "2023-02-29 10:00:00",
        "0b_",
        "-0x_",
        "=",
        "2024-01-01 10:00:00 +24",
    ] {
        let doc = format!("v: {known}\n");
        assert!(resolve(&parse(&doc).unwrap(), "").is_err(), "{known}");
        refused.push(doc);
    }
    let doc: String = accepted.iter().map(|t| format!("- {t}\n")).collect();
    roundtrip(&doc);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("refused.yaml");
    std::fs::write(&path, refused.join("\n---SPLIT---\n")).unwrap();
    let out = Command::new("python3")
        .args(["-c", FAILING])
        .arg(&path)
        .output()
        .expect("python3 is required");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let failing: Vec<usize> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect();
    let accepted_by_pyyaml: Vec<&String> = refused
        .iter()
        .enumerate()
        .filter(|(i, _)| !failing.contains(i))
        .map(|(_, d)| d)
        .collect();
    assert!(
        accepted_by_pyyaml.is_empty(),
        "PyYAML loads these, we refused them: {accepted_by_pyyaml:?}"
    );
}
