//! The device's checks for `ap`, as `offspot-runtime-config-ap` applies them (2.7.1 and 2.10.5).
//!
//! On the device each `ap` value is passed as `--key str(value)` on a command line (`hide` and
//! `as-gateway` as bare flags when truthy, the lists entry by entry, the SSID last), parsed by
//! argparse and checked by `checks.is_valid_ap_config`, which also checks the defaults of absent
//! keys against the given ones. Any failure leaves the whole `ap` block unapplied: no Wi-Fi.

use std::borrow::Cow;
use std::net::Ipv4Addr;
use std::sync::LazyLock;

use regex::Regex;

use super::rules::{
    check_hostname, check_ipv4_list, describe, expect_map, expect_str, fail, join, present, re,
};
use super::{net, tzdata, OffspotError};
use crate::yaml::yaml11::{Item, Value};

static TLD: LazyLock<Regex> = LazyLock::new(|| re(r"^[a-zA-Z][a-zA-Z0-9\-]*$"));
static IFACE: LazyLock<Regex> = LazyLock::new(|| re(r"^[a-z][a-z0-9]+[0-9]+$"));
/// What argparse takes for a negative number rather than an option (Python 3.11).
static NEGATIVE_NUMBER: LazyLock<Regex> = LazyLock::new(|| re(r"^-\d+$|^-\d*\.\d+$"));

/// The AP address the device uses when `ap.address` is absent (`DEFAULT_ADDRESS`, both
/// versions): `network` and `dhcp-range` given alone must fit it.
const DEFAULT_AP_ADDRESS: Ipv4Addr = Ipv4Addr::new(192, 168, 144, 1);

/// `--profile` choices of 2.10 (argparse refuses others, the whole `ap` fails). 2.7.1 ignores the
/// key; a config must work on both.
const PROFILES: &[&str] = &["perf", "coverage"];

fn check_ssid(item: &Item, path: &str) -> Result<(), OffspotError> {
    let ssid = expect_str(item, path, "the network name (a string)")?;
    let msg = if ssid.is_empty() {
        Some("the SSID must not be empty".to_string())
    } else if ssid.len() > 32 {
        // The device counts characters, but Wi-Fi (hostapd) allows 32 bytes: a longer SSID
        // passes the device's check and the access point does not start.
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
        dash_error(ssid, "the SSID")
    };
    msg.map_or(Ok(()), |m| Err(fail(path, item, m)))
}

/// The device hands values to a program as command-line arguments: one starting with `-` is
/// taken for an option by argparse, and the program refuses the whole `ap`.
fn dash_error(value: &str, what: &str) -> Option<String> {
    (value.starts_with('-') && value.len() > 1 && !NEGATIVE_NUMBER.is_match(value)).then(|| {
        format!("{what} must not start with `-`: the device reads it as a command-line option and refuses the `ap` settings")
    })
}

/// The text the device uses for a value it passes as `str(value)`: a string, or an integer
/// written in plain decimal (`12345678` is used as "12345678"). Other scalars would reach the
/// device as another text (`0x10` as "16", `yes` as "True"), so they are refused.
fn device_text<'a>(item: &'a Item, path: &str, what: &str) -> Result<Cow<'a, str>, OffspotError> {
    if let (Value::Int(i), Some(src)) = (&item.value, &item.source) {
        if *src == i.to_string() {
            return Ok(Cow::Owned(src.clone()));
        }
    }
    expect_str(item, path, what).map(Cow::Borrowed)
}

fn check_passphrase(item: &Item, path: &str) -> Result<(), OffspotError> {
    let pass = device_text(
        item,
        path,
        "a passphrase (a string; omit it for an open network)",
    )?;
    // An empty passphrase is an open network (`if passphrase:` on the device).
    if pass.is_empty() {
        return Ok(());
    }
    let len = pass.chars().count();
    let msg = if !(8..=63).contains(&len) {
        Some(format!(
            "the passphrase has {len} characters; WPA2 needs 8–63 (or \"\" for an open network)"
        ))
    } else if let Some(c) = pass.chars().find(|c| !(' '..='~').contains(c)) {
        Some(format!(
            "the passphrase may only use printable ASCII characters, not {c:?}"
        ))
    } else {
        dash_error(&pass, "the passphrase")
    };
    msg.map_or(Ok(()), |m| Err(fail(path, item, m)))
}

/// `hide` and `as-gateway` are flags the device sets when the value is truthy. Booleans and
/// integers (`1`, `0`) mean what they say; a string would turn the flag on whatever it says
/// (`"false"` hides the network), so it is refused although the device takes it.
fn check_flag(item: &Item, path: &str) -> Result<(), OffspotError> {
    match &item.value {
        Value::Bool(_) | Value::Int(_) | Value::BigInt(_) => Ok(()),
        Value::Str(s) => Err(fail(
            path,
            item,
            format!("expected a boolean (true/false), found the string \"{s}\", which the device takes as true; remove the quotes"),
        )),
        other => Err(fail(
            path,
            item,
            format!("expected a boolean (true/false), found {}", describe(other)),
        )),
    }
}

/// 2.7.1 reads `channel` as `int(str(value))` in 1–14; 2.10 ignores the key (its 2.4 GHz channel
/// is `channel_24`, which its own reader cannot pass). So: what 2.7.1 accepts.
fn check_channel(item: &Item, path: &str) -> Result<(), OffspotError> {
    let channel = match &item.value {
        Value::Int(c) => Some(*c),
        Value::Str(s) => python_int(s),
        _ => None,
    };
    match channel {
        Some(c @ 1..=14) => {
            if c > 11 {
                tracing::warn!(
                    channel = c,
                    "Wi-Fi channels 12–14 are not allowed in every country"
                );
            }
            Ok(())
        }
        _ => Err(fail(
            path,
            item,
            format!(
                "expected a Wi-Fi channel number 1–14, found {}",
                match &item.value {
                    Value::Str(s) => format!("the string \"{s}\""),
                    other => describe(other),
                }
            ),
        )),
    }
}

/// Python's `int(text)` for the texts a channel can be: spaces around, a sign, decimal digits
/// with single `_` between them.
fn python_int(text: &str) -> Option<i128> {
    let t = text.trim();
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    let valid = !digits.is_empty()
        && !digits.starts_with('_')
        && !digits.ends_with('_')
        && !digits.contains("__")
        && digits.chars().all(|c| c.is_ascii_digit() || c == '_');
    if !valid {
        return None;
    }
    t.replace('_', "").parse().ok()
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
    "profile",
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
    "captured-address",
    "other-interfaces",
    "except-interfaces",
    "nodhcp-interfaces",
];

pub fn check_ap(ap: &Item) -> Result<(), OffspotError> {
    let entries = expect_map(ap, "ap", "the Wi-Fi access point settings")?;
    let p = |key: &str| join("ap", key);
    for (key, value) in entries {
        let name = key.display();
        // 2.10's reader passes them as `--channel_24`, which its own program does not know.
        if matches!(name.as_str(), "channel_24" | "channel_5") && value.value != Value::Null {
            return Err(fail(&p(&name), key, format!(
                "`ap.{name}` makes the device's whole `ap` configuration fail (known runtime bug): remove it (use `channel`)"
            )));
        }
        if !AP_KEYS.contains(&name.as_str()) || !matches!(key.value, Value::Str(_)) {
            tracing::warn!(key = %p(&name), line = value.mark.line, "unknown `offspot.ap` key, ignored by the device");
        }
    }
    match present(ap, "ssid") {
        Some(ssid) => check_ssid(ssid, &p("ssid"))?,
        None => return Err(fail("ap", ap, "`ssid` is required: the Wi-Fi network name")),
    }
    if let Some(item) = present(ap, "profile") {
        let profile = expect_str(item, &p("profile"), "`perf` or `coverage`")?;
        if !PROFILES.contains(&profile) {
            return Err(fail(&p("profile"), item, format!(
                "`{profile}` is not a Wi-Fi profile: expected `perf` (5 GHz where the chip has it) or `coverage` (2.4 GHz)"
            )));
        }
    }
    if let Some(pass) = present(ap, "passphrase") {
        check_passphrase(pass, &p("passphrase"))?;
    }
    for key in ["hide", "as-gateway"] {
        if let Some(v) = present(ap, key) {
            check_flag(v, &p(key))?;
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
        check_channel(item, &p("channel"))?;
    }
    if let Some(item) = present(ap, "country") {
        let cc = expect_str(
            item,
            &p("country"),
            "a two-letter country code such as `FR`",
        )?;
        // The device looks the code up in ISO 3166 (`iso3166.countries`): `00` (the "world"
        // regulatory domain of Wi-Fi drivers) is not there and fails the whole `ap`.
        if !tzdata::is_country(cc) {
            return Err(fail(&p("country"), item, format!(
                "`{cc}` is not an ISO 3166 country code: expected two upper-case letters such as `FR`, `US` or `KE`"
            )));
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
        let cidr = expect_str(item, &p("network"), "a network such as `192.168.144.0/24`")?;
        net::check_network(cidr, address).map_err(|e| fail(&p("network"), item, e))?;
    }
    check_ipv4_list(ap, "ap", "dns", false)?;
    // Where captive-portal traffic goes; the device checks it as a usable host address.
    if let Some(item) = present(ap, "captured-address") {
        let text = expect_str(item, &p("captured-address"), "an IPv4 address")?;
        net::usable_ipv4(text).map_err(|e| fail(&p("captured-address"), item, e))?;
    }
    for key in ["other-interfaces", "except-interfaces", "nodhcp-interfaces"] {
        check_ifaces(ap, key)?;
    }
    Ok(())
}
