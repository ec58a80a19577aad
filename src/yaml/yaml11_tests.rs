//! Resolver and emitter unit tests (no Python needed; see roundtrip_tests for PyYAML itself).

use super::construct::construct_float;
use super::emit::{float, quote};
use super::node::parse;
use super::yaml11::{implicit_tag, resolve, Item, Value};

fn resolved(text: &str) -> Item {
    resolve(&parse(text).unwrap(), "").unwrap()
}

/// The value of `v:` in a one-line document.
fn val(scalar: &str) -> Value {
    resolved(&format!("v: {scalar}\n"))
        .get("v")
        .unwrap()
        .value
        .clone()
}

fn s(x: &str) -> Value {
    Value::Str(x.to_string())
}

#[test]
fn booleans_are_the_yaml11_words_only() {
    for t in [
        "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON",
    ] {
        assert_eq!(val(t), Value::Bool(true), "{t}");
    }
    for t in [
        "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF",
    ] {
        assert_eq!(val(t), Value::Bool(false), "{t}");
    }
    for t in ["y", "n", "yEs", "oN", "tRUE"] {
        assert_eq!(val(t), s(t), "{t}");
    }
    assert_eq!(val("\"yes\""), s("yes"));
    assert_eq!(val("'off'"), s("off"));
}

#[test]
fn integers_follow_pyyaml() {
    let cases: &[(&str, i128)] = &[
        ("0", 0),
        ("-0", 0),
        ("+12", 12),
        ("1_000", 1000),
        ("0755", 0o755),
        ("0_7", 7),
        ("00", 0),
        ("0x1F", 31),
        ("-0x1f", -31),
        ("0x_1F", 31),
        ("0b101", 5),
        ("80:30", 4830),
        ("22:22", 1342),
        ("190:20:30", 190 * 3600 + 20 * 60 + 30),
        ("-1:30", -90),
        ("1_0:30", 630),
    ];
    for (text, want) in cases {
        assert_eq!(val(text), Value::Int(*want), "{text}");
    }
    // Not integers for YAML 1.1: strings.
    // `80:80` is a string too: each sexagesimal digit after a colon is 0–59.
    for t in [
        "80:80",
        "8080:80",
        "443:443",
        "08",
        "09",
        "0o17",
        "1:60",
        "0:30",
        "12e3",
        "0x",
        "1-2",
        "8080-8090:80-90",
    ] {
        assert_eq!(val(t), s(t), "{t}");
    }
    // Larger than i128: the text is kept.
    let big = "1".repeat(50);
    assert_eq!(val(&big), Value::BigInt(big.clone()));
}

#[test]
fn floats_need_a_dot_and_a_signed_exponent() {
    assert_eq!(val("1.5"), Value::Float(1.5));
    assert_eq!(val("1."), Value::Float(1.0));
    assert_eq!(val(".5"), Value::Float(0.5));
    assert_eq!(val("09.5"), Value::Float(9.5));
    assert_eq!(val("1.0e+3"), Value::Float(1000.0));
    assert_eq!(val("-1_0.5e-1"), Value::Float(-1.05));
    assert_eq!(val("1:30.5"), Value::Float(90.5));
    assert_eq!(val(".inf"), Value::Float(f64::INFINITY));
    assert_eq!(val("-.Inf"), Value::Float(f64::NEG_INFINITY));
    assert!(matches!(val(".NaN"), Value::Float(f) if f.is_nan()));
    for t in ["1e3", "1.0e3", "1.5E5", "-.nan", ".", "inf", "nan", "1.2.3"] {
        assert_eq!(val(t), s(t), "{t}");
    }
    assert_eq!(construct_float("6.02e+23"), Some(6.02e23));
}

#[test]
fn nulls_and_timestamps() {
    for t in ["~", "null", "Null", "NULL", ""] {
        assert_eq!(val(t), Value::Null, "{t:?}");
    }
    assert_eq!(val("nil"), s("nil"));
    assert_eq!(val("nULL"), s("nULL"));
    for t in [
        "2024-01-01",
        "2001-12-14t21:59:43.10-05:00",
        "2001-12-14 21:59:43.10 -5",
        "2001-12-15T02:59:43.1Z",
        "2024-1-1 1:00:00",
    ] {
        assert_eq!(val(t), Value::Timestamp(t.to_string()), "{t}");
    }
    // Date-only needs two-digit month and day.
    assert_eq!(val("2024-1-1"), s("2024-1-1"));
}

#[test]
fn values_pyyaml_fails_on_are_errors() {
    for t in [
        "2024-13-01",
        "2023-02-29",
        "0000-01-01",
        "2024-01-01 24:00:00",
        "2024-01-01T10:00:00+24:00",
        "0b_",
        "0x_",
        "=",
    ] {
        let err = resolve(&parse(&format!("v: {t}\n")).unwrap(), "").unwrap_err();
        assert_eq!(err.path, "v", "{t}");
        assert_eq!(err.mark.line, 1);
        assert!(err.message.contains("quote it"), "{t}: {}", err.message);
    }
    // Leap day of a leap year is fine.
    assert_eq!(val("2024-02-29"), Value::Timestamp("2024-02-29".into()));
}

#[test]
fn explicit_tags_are_honoured() {
    assert_eq!(val("!!str 0755"), s("0755"));
    assert_eq!(val("!!str yes"), s("yes"));
    assert_eq!(val("! 123"), Value::Int(123));
    assert_eq!(val("! \"yes\""), Value::Bool(true));
    assert_eq!(val("!!int \"0x1F\""), Value::Int(31));
    assert_eq!(val("!!float \"1e3\""), Value::Float(1000.0));
    assert_eq!(val("!!bool \"on\""), Value::Bool(true));
    assert_eq!(val("!!null \"x\""), Value::Null);
    assert_eq!(
        val("!!timestamp \"2024-01-01\""),
        Value::Timestamp("2024-01-01".into())
    );
    for bad in ["!!int abc", "!!bool maybe", "!!binary aGk=", "!custom x"] {
        assert!(
            resolve(&parse(&format!("v: {bad}\n")).unwrap(), "").is_err(),
            "{bad}"
        );
    }
}

#[test]
fn quoted_and_block_scalars_are_strings() {
    assert_eq!(val("\"80:80\""), s("80:80"));
    assert_eq!(val("'0755'"), s("0755"));
    let doc = resolved("v: |\n  80:80\n");
    assert_eq!(doc.get("v").unwrap().value, s("80:80\n"));
}

#[test]
fn keys_are_resolved_and_order_is_kept() {
    let doc = resolved("zeta: 1\n80: a\nyes: b\n~: c\n1.5: d\nalpha: 2\n");
    let Value::Map(entries) = &doc.value else {
        panic!()
    };
    let keys: Vec<Value> = entries.iter().map(|(k, _)| k.value.clone()).collect();
    assert_eq!(
        keys,
        vec![
            s("zeta"),
            Value::Int(80),
            Value::Bool(true),
            Value::Null,
            Value::Float(1.5),
            s("alpha")
        ]
    );
}

#[test]
fn keys_equal_after_resolution_are_refused() {
    for doc in [
        "yes: 1\non: 2\n",
        "1: a\n01: b\n",
        "1: a\n1.0: b\n",
        "true: a\n1: b\n",
    ] {
        let err = resolve(&parse(doc).unwrap(), "").unwrap_err();
        assert_eq!(err.mark.line, 2, "{doc}");
        assert!(err.message.contains("same key"), "{}", err.message);
    }
    // A collection as a key cannot be hashed by PyYAML.
    assert!(resolve(&parse("? [1]\n: 2\n").unwrap(), "").is_err());
}

#[test]
fn merge_keys_follow_pyyaml() {
    let doc = resolved(
        "base: &b {image: x, restart: always}\nsvc:\n  <<: *b\n  restart: \"no\"\n\
         multi:\n  <<: [{a: 1, b: 1}, {b: 2, c: 2}]\n  d: 4\n",
    );
    let svc = doc.get("svc").unwrap();
    let Value::Map(e) = &svc.value else { panic!() };
    let flat: Vec<(Value, Value)> = e
        .iter()
        .map(|(k, v)| (k.value.clone(), v.value.clone()))
        .collect();
    assert_eq!(flat, vec![(s("image"), s("x")), (s("restart"), s("no"))]);
    let multi = doc.get("multi").unwrap();
    let Value::Map(e) = &multi.value else {
        panic!()
    };
    let flat: Vec<(Value, Value)> = e
        .iter()
        .map(|(k, v)| (k.value.clone(), v.value.clone()))
        .collect();
    // PyYAML: later maps in the list go first, earlier ones win.
    assert_eq!(
        flat,
        vec![
            (s("b"), Value::Int(1)),
            (s("c"), Value::Int(2)),
            (s("a"), Value::Int(1)),
            (s("d"), Value::Int(4))
        ]
    );
    assert!(resolve(&parse("a:\n  <<: 3\n").unwrap(), "").is_err());
    // Paths name non-string keys by their text.
    let doc = "80:\n  ? !!int \"0x10\"\n  : 2024-02-30\n";
    assert_eq!(resolve(&parse(doc).unwrap(), "").unwrap_err().path, "80.16");
}

#[test]
fn error_paths_and_marks() {
    let err = resolve(
        &parse("ap:\n  list:\n  - ok\n  - 2024-02-30\n").unwrap(),
        "",
    )
    .unwrap_err();
    assert_eq!(err.path, "ap.list[1]");
    assert_eq!((err.mark.line, err.mark.col), (4, 5));
}

#[test]
fn implicit_tags_table() {
    assert_eq!(implicit_tag("<<"), "merge");
    assert_eq!(implicit_tag("="), "value");
    assert_eq!(implicit_tag("hello"), "str");
}

#[test]
fn floats_are_written_in_a_yaml11_float_shape() {
    assert_eq!(float(1.0), "1.0");
    assert_eq!(float(0.1), "0.1");
    assert_eq!(float(1e300), "1.0e+300");
    assert_eq!(float(1.5e-7), "1.5e-7");
    assert_eq!(float(-2.5e20), "-2.5e+20");
    assert_eq!(float(f64::NEG_INFINITY), "-.inf");
    assert_eq!(float(f64::NAN), ".nan");
    for f in [1e300, 1.5e-7, 123456.789, -0.0, 6.02e23, 5e-324] {
        let text = float(f);
        assert_eq!(implicit_tag(&text), "float", "{text}");
        assert_eq!(
            construct_float(&text).map(f64::to_bits),
            Some(f.to_bits()),
            "{text}"
        );
    }
}

#[test]
fn strings_are_escaped() {
    assert_eq!(quote("say \"hi\"\n"), r#""say \"hi\"\n""#);
    assert_eq!(quote("C:\\x\t"), r#""C:\\x\t""#);
    assert_eq!(
        quote("\u{7}\u{1b}\u{7f}\u{85}\u{2028}\u{feff}"),
        r#""\x07\x1B\x7F\x85\u2028\uFEFF""#
    );
    assert_eq!(quote("Café 📶"), "\"Café 📶\"");
}
