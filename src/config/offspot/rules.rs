//! The device's checks for `timezone`, `hostname`, `ethernet`, `ap` and `firmware`, applied
//! before writing: on the device a failing key is skipped (no Wi-Fi, wrong network…) with
//! nobody there to read the log.

use std::net::Ipv4Addr;
use std::sync::LazyLock;

use regex::Regex;

use super::net;
use super::tzdata;
use super::OffspotError;
use crate::yaml::yaml11::{Item, Value};

static TIMEZONE: LazyLock<Regex> = LazyLock::new(|| re(r"^[a-zA-Z0-9\-_/]{1,80}$"));
static TLD: LazyLock<Regex> = LazyLock::new(|| re(r"^[a-zA-Z][a-zA-Z0-9\-]*$"));
static IFACE: LazyLock<Regex> = LazyLock::new(|| re(r"^[a-z][a-z0-9]+[0-9]+$"));
static LABEL: LazyLock<Regex> =
    LazyLock::new(|| re(r"^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$"));

fn re(pattern: &str) -> Regex {
    // Constant patterns exercised by the tests: failing here is a programming error.
    #[allow(clippy::expect_used)]
    Regex::new(pattern).expect("static validation pattern")
}

/// The AP address the device uses when `ap.address` is absent.
const DEFAULT_AP_ADDRESS: Ipv4Addr = Ipv4Addr::new(192, 168, 2, 1);

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

fn expect_bool(item: &Item, path: &str) -> Result<(), OffspotError> {
    match &item.value {
        Value::Bool(_) => Ok(()),
        Value::Str(s) => Err(fail(
            path,
            item,
            format!("expected a boolean (true/false), found the string \"{s}\"; remove the quotes"),
        )),
        other => Err(fail(
            path,
            item,
            format!("expected a boolean (true/false), found {}", describe(other)),
        )),
    }
}

/// A key whose value is null counts as absent, as on the device (`item.get(key) is not None`).
fn present<'a>(map: &'a Item, key: &str) -> Option<&'a Item> {
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

fn check_ipv4_list(
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

fn check_ssid(item: &Item, path: &str) -> Result<(), OffspotError> {
    let ssid = expect_str(item, path, "the network name (a string)")?;
    let msg = if ssid.is_empty() {
        Some("the SSID must not be empty".to_string())
    } else if ssid.len() > 32 {
        Some(format!(
            "the SSID is {} bytes long in UTF-8; at most 32 are allowed",
            ssid.len()
        ))
    } else if ssid.starts_with(['!', '#', ';']) {
        Some("the SSID must not start with `!`, `#` or `;`".to_string())
    } else if ssid.contains(['+', ']', '/', '"', '\t']) {
        Some("the SSID must not contain `+`, `]`, `/`, `\"` or a tab".to_string())
    } else if ssid.chars().any(char::is_control) {
        Some("the SSID must not contain control characters (line breaks…)".to_string())
    } else {
        None
    };
    msg.map_or(Ok(()), |m| Err(fail(path, item, m)))
}

fn check_passphrase(item: &Item, path: &str) -> Result<(), OffspotError> {
    let pass = expect_str(
        item,
        path,
        "a passphrase (a string; omit it for an open network)",
    )?;
    let len = pass.chars().count();
    if !(8..=63).contains(&len) {
        return Err(fail(
            path,
            item,
            format!("the passphrase has {len} characters; WPA2 needs 8–63"),
        ));
    }
    if let Some(c) = pass.chars().find(|c| !(' '..='~').contains(c)) {
        return Err(fail(
            path,
            item,
            format!("the passphrase may only use printable ASCII characters, not {c:?}"),
        ));
    }
    Ok(())
}

fn check_ifaces(ap: &Item, key: &str) -> Result<(), OffspotError> {
    let path = join("ap", key);
    let Some(item) = present(ap, key) else {
        return Ok(());
    };
    let Value::Seq(list) = &item.value else {
        return Err(fail(
            &path,
            item,
            format!(
                "expected a list of interface names, found {}",
                item.value.kind_name()
            ),
        ));
    };
    for (i, entry) in list.iter().enumerate() {
        let epath = format!("{path}[{i}]");
        check_iface(entry, &epath)?;
    }
    Ok(())
}

fn check_iface(item: &Item, path: &str) -> Result<(), OffspotError> {
    let name = expect_str(item, path, "a network interface name")?;
    if IFACE.is_match(name) {
        Ok(())
    } else {
        Err(fail(
            path,
            item,
            format!(
                "`{name}` is not an interface name like `wlan0` (lower-case letters then digits)"
            ),
        ))
    }
}

const AP_KEYS: &[&str] = &[
    "ssid",
    "passphrase",
    "hide",
    "address",
    "as-gateway",
    "spoof",
    "tld",
    "domain",
    "welcome",
    "channel",
    "country",
    "interface",
    "dhcp-range",
    "network",
    "dns",
    "other-interfaces",
    "except-interfaces",
    "nodhcp-interfaces",
];

pub fn check_ap(ap: &Item) -> Result<(), OffspotError> {
    let entries = expect_map(ap, "ap", "the Wi-Fi access point settings")?;
    let p = |key: &str| join("ap", key);
    for (key, value) in entries {
        let name = key.display();
        if matches!(name.as_str(), "channel_24" | "channel_5") {
            return Err(fail(&p(&name), key, format!(
                "`ap.{name}` makes the device's whole `ap` configuration fail (known runtime bug): remove it (use `channel`)"
            )));
        }
        if !AP_KEYS.contains(&name.as_str()) || !matches!(key.value, Value::Str(_)) {
            tracing::warn!(key = %p(&name), line = value.mark.line, "unknown `offspot.ap` key, passed through as is");
        }
    }
    match present(ap, "ssid") {
        Some(ssid) => check_ssid(ssid, &p("ssid"))?,
        None => return Err(fail("ap", ap, "`ssid` is required: the Wi-Fi network name")),
    }
    if let Some(pass) = present(ap, "passphrase") {
        check_passphrase(pass, &p("passphrase"))?;
    }
    for key in ["hide", "as-gateway"] {
        if let Some(v) = present(ap, key) {
            expect_bool(v, &p(key))?;
        }
    }
    if let Some(spoof) = present(ap, "spoof") {
        if spoof.as_str() != Some("auto") {
            return Err(fail(&p("spoof"), spoof, format!(
                "only `spoof: auto` works on the device (known runtime bug), found {}; use `auto` or remove the key",
                describe(&spoof.value)
            )));
        }
    }
    let address = match present(ap, "address") {
        Some(item) => {
            let text = expect_str(item, &p("address"), "an IPv4 address")?;
            net::usable_ipv4(text).map_err(|e| fail(&p("address"), item, e))?
        }
        None => DEFAULT_AP_ADDRESS,
    };
    if let Some(item) = present(ap, "tld") {
        let tld = expect_str(item, &p("tld"), "a top-level domain")?;
        if matches!(
            tld,
            "example" | "invalid" | "local" | "localhost" | "onion" | "test"
        ) {
            return Err(fail(
                &p("tld"),
                item,
                format!("`{tld}` is a reserved top-level domain the device refuses"),
            ));
        }
        if !TLD.is_match(tld) {
            return Err(fail(
                &p("tld"),
                item,
                format!("`{tld}` is not a top-level domain: a letter then letters, digits or `-`"),
            ));
        }
    }
    for key in ["domain", "welcome"] {
        if let Some(item) = present(ap, key) {
            check_hostname(item, &p(key))?;
        }
    }
    if let Some(item) = present(ap, "channel") {
        match item.value {
            Value::Int(c @ 1..=14) => {
                if c > 11 {
                    tracing::warn!(
                        channel = c,
                        "Wi-Fi channels 12–14 are not allowed in every country"
                    );
                }
            }
            _ => {
                return Err(fail(
                    &p("channel"),
                    item,
                    format!(
                        "expected a Wi-Fi channel number 1–14, found {}",
                        describe(&item.value)
                    ),
                ))
            }
        }
    }
    if let Some(item) = present(ap, "country") {
        let cc = expect_str(
            item,
            &p("country"),
            "a two-letter country code such as `FR`",
        )?;
        if cc != "00" && !tzdata::is_country(cc) {
            return Err(fail(&p("country"), item, format!("`{cc}` is not an ISO 3166 country code (two upper-case letters, e.g. `FR`, or `00`)")));
        }
    }
    if let Some(item) = present(ap, "interface") {
        check_iface(item, &p("interface"))?;
    }
    if let Some(item) = present(ap, "dhcp-range") {
        let range = expect_str(
            item,
            &p("dhcp-range"),
            "a DHCP range `start,end,netmask,lease`",
        )?;
        net::check_dhcp_range(range, address).map_err(|e| fail(&p("dhcp-range"), item, e))?;
    }
    if let Some(item) = present(ap, "network") {
        let cidr = expect_str(item, &p("network"), "a network such as `192.168.2.0/24`")?;
        net::check_network(cidr, address).map_err(|e| fail(&p("network"), item, e))?;
    }
    check_ipv4_list(ap, "ap", "dns", false)?;
    for key in ["other-interfaces", "except-interfaces", "nodhcp-interfaces"] {
        check_ifaces(ap, key)?;
    }
    Ok(())
}

/// Firmware choices per chipset as offspot-config's runtime knows them (its `firmware` MATRIX,
/// files shipped by base-image's 05-wifi-firmware stage). Newer runtimes may add choices we
/// cannot verify from here, so an unknown name is only warned about.
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
        if value.value == Value::Null {
            continue;
        }
        let name = expect_str(value, &path, "a firmware name")?;
        match FIRMWARES.iter().find(|(c, _)| *c == chip) {
            Some((_, known)) if known.contains(&name) => {}
            Some((_, known)) => tracing::warn!(
                key = %path, firmware = name, known = %known.join(", "),
                "firmware name not known to this tool; the device refuses names it lacks"
            ),
            None => {
                tracing::warn!(key = %path, "unknown Wi-Fi chipset (known: brcm43455, brcm43430)")
            }
        }
    }
    Ok(())
}
