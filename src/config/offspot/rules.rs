//! The device's checks for `timezone`, `hostname`, `ethernet` and `firmware` (`ap` is in
//! [`super::ap`]), and the helpers they share, applied before writing: on the device a failing key is skipped (no Wi-Fi, wrong network…) with
//! nobody there to read the log.

use std::sync::LazyLock;

use regex::Regex;

use super::net;
use super::tzdata;
use super::OffspotError;
use crate::yaml::yaml11::{Item, Value};

static TIMEZONE: LazyLock<Regex> = LazyLock::new(|| re(r"^[a-zA-Z0-9\-_/]{1,80}$"));
static LABEL: LazyLock<Regex> =
    LazyLock::new(|| re(r"^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$"));

pub fn re(pattern: &str) -> Regex {
    // Constant patterns exercised by the tests: failing here is a programming error.
    #[allow(clippy::expect_used)]
    Regex::new(pattern).expect("static validation pattern")
}

pub fn fail(path: &str, item: &Item, message: impl Into<String>) -> OffspotError {
    OffspotError {
        path: path.to_string(),
        mark: item.mark,
        message: message.into(),
    }
}

pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The string value, or an error that explains what YAML 1.1 made of an unquoted text.
pub fn expect_str<'a>(item: &'a Item, path: &str, what: &str) -> Result<&'a str, OffspotError> {
    match (&item.value, &item.source) {
        (Value::Str(s), _) => Ok(s),
        (Value::Null, _) => Err(fail(path, item, format!("expected {what}, found no value"))),
        (other, Some(src)) if !matches!(other, Value::Seq(_) | Value::Map(_)) => Err(fail(
            path,
            item,
            format!(
                "expected {what}, but `{src}` unquoted is read by YAML 1.1 as {}; quote it: \"{src}\"",
                describe(other)
            ),
        )),
        (other, _) => Err(fail(
            path,
            item,
            format!("expected {what}, found {}", other.kind_name()),
        )),
    }
}

/// What a resolved scalar became, for messages: `the boolean false`, `the number 4880`.
pub fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null (no value)".to_string(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Int(i) => format!("the number {i}"),
        Value::BigInt(t) => format!("the number {t}"),
        Value::Float(f) => format!("the number {}", crate::yaml::emit::float(*f)),
        Value::Timestamp(t) => format!("the date {t}"),
        other => other.kind_name().to_string(),
    }
}

pub fn expect_map<'a>(
    item: &'a Item,
    path: &str,
    what: &str,
) -> Result<&'a [(Item, Item)], OffspotError> {
    match &item.value {
        Value::Map(entries) => Ok(entries),
        other => Err(fail(
            path,
            item,
            format!("expected {what} (a mapping), found {}", other.kind_name()),
        )),
    }
}

/// A key whose value is null counts as absent, as on the device (`item.get(key) is not None`).
pub fn present<'a>(map: &'a Item, key: &str) -> Option<&'a Item> {
    map.get(key).filter(|v| v.value != Value::Null)
}

pub fn check_timezone(item: &Item) -> Result<(), OffspotError> {
    let path = "timezone";
    let tz = expect_str(item, path, "an IANA time zone name such as `Africa/Bamako`")?;
    if !TIMEZONE.is_match(tz) {
        return Err(fail(
            path,
            item,
            format!("`{tz}` is not a time zone name: expected 1–80 of a-z A-Z 0-9 - _ /"),
        ));
    }
    if !tzdata::is_timezone(tz) {
        return Err(fail(
            path,
            item,
            format!("`{tz}` is not a known IANA time zone (names are case-sensitive, e.g. `UTC`, `Africa/Bamako`)"),
        ));
    }
    Ok(())
}

/// ≤ 255 characters of dot-separated labels, each 1–63 of a-z A-Z 0-9 -, not starting or
/// ending with `-`.
pub fn hostname_error(name: &str) -> Option<String> {
    if name.len() > 255 {
        return Some(format!("`{name}` is longer than 255 characters"));
    }
    if name.split('.').count() > 64 {
        return Some(format!("`{name}` has more than 64 labels"));
    }
    let bad = name.split('.').find(|label| !LABEL.is_match(label));
    bad.map(|label| {
        format!(
            "`{name}` is not a valid host name: label `{label}` must be 1–63 characters of \
             a-z A-Z 0-9 and `-`, not starting or ending with `-`"
        )
    })
}

pub fn check_hostname(item: &Item, path: &str) -> Result<(), OffspotError> {
    let name = expect_str(item, path, "a host name")?;
    match hostname_error(name) {
        Some(msg) => Err(fail(path, item, msg)),
        None => Ok(()),
    }
}

pub fn check_ipv4_list(
    map: &Item,
    parent: &str,
    key: &str,
    required: bool,
) -> Result<(), OffspotError> {
    let path = join(parent, key);
    let Some(item) = present(map, key) else {
        return if required {
            Err(fail(
                parent,
                map,
                format!("`{key}` is required: a non-empty list of IPv4 addresses"),
            ))
        } else {
            Ok(())
        };
    };
    let Value::Seq(list) = &item.value else {
        return Err(fail(
            &path,
            item,
            format!(
                "expected a list of IPv4 addresses, found {}",
                item.value.kind_name()
            ),
        ));
    };
    if required && list.is_empty() {
        return Err(fail(&path, item, "must not be empty"));
    }
    for (i, entry) in list.iter().enumerate() {
        let epath = format!("{path}[{i}]");
        let text = expect_str(entry, &epath, "an IPv4 address")?;
        net::usable_ipv4(text).map_err(|e| fail(&epath, entry, e))?;
    }
    Ok(())
}

pub fn check_ethernet(item: &Item) -> Result<(), OffspotError> {
    let path = "ethernet";
    expect_map(item, path, "the wired network settings")?;
    let Some(kind) = present(item, "type") else {
        return Err(fail(path, item, "`type` is required: `dhcp` or `static`"));
    };
    let tpath = join(path, "type");
    match expect_str(kind, &tpath, "`dhcp` or `static`")? {
        "dhcp" => Ok(()),
        "static" => {
            let apath = join(path, "address");
            let Some(address) = present(item, "address") else {
                return Err(fail(
                    path,
                    item,
                    "`address` is required with `type: static`",
                ));
            };
            let text = expect_str(address, &apath, "an IPv4 address")?;
            net::usable_ipv4(text).map_err(|e| fail(&apath, address, e))?;
            check_ipv4_list(item, path, "routers", true)?;
            check_ipv4_list(item, path, "dns", true)
        }
        other => Err(fail(
            &tpath,
            kind,
            format!("`{other}` is not a network type: expected `dhcp` or `static`"),
        )),
    }
}

/// Firmware choices per chipset, as offspot-config's runtime knows them (`checks.FIRMWARES`,
/// the same in 2.7.1 and 2.10.5): its argparse refuses any other name and the runtime exits 1.
const FIRMWARES: &[(&str, &[&str])] = &[
    (
        "brcm43455",
        &[
            "raspios",
            "supports-19_2021-11-30",
            "supports-24_2021-10-05_noap+sta",
            "supports-32_2015-03-01_unreliable",
        ],
    ),
    ("brcm43430", &["raspios", "supports-30_2018-09-28"]),
];

pub fn check_firmware(item: &Item) -> Result<(), OffspotError> {
    let entries = expect_map(item, "firmware", "firmware choices per Wi-Fi chipset")?;
    for (key, value) in entries {
        let chip = key.display();
        let path = join("firmware", &chip);
        let Some((_, known)) = FIRMWARES.iter().find(|(c, _)| *c == chip) else {
            // The device only looks at the chipsets it knows.
            tracing::warn!(key = %path, "unknown Wi-Fi chipset, ignored by the device (known: brcm43455, brcm43430)");
            continue;
        };
        // An empty value is no change requested (`if item.get(key)`).
        if is_falsy(&value.value) {
            continue;
        }
        let name = expect_str(value, &path, "a firmware name")?;
        if !known.contains(&name) {
            return Err(fail(
                &path,
                value,
                format!(
                    "`{name}` is not a firmware the device has for {chip}: expected one of {}",
                    known.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// What Python's `if value:` takes as false: the device skips such a key (no change).
pub fn is_falsy(value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(false) | Value::Int(0) => true,
        Value::Float(f) => *f == 0.0,
        Value::Str(s) => s.is_empty(),
        Value::Seq(l) => l.is_empty(),
        Value::Map(m) => m.is_empty(),
        _ => false,
    }
}
