//! One test per device rule: a valid case and the invalid ones, with path, mark and message.

use super::net::{check_dhcp_range, netmask_prefix, usable_ipv4};
use super::{Offspot, OffspotError};
use crate::yaml::node::parse;
use std::net::Ipv4Addr;

/// A minimal valid compose, to append to sections that test other keys.
pub(super) const COMPOSE: &str = "containers:\n  services:\n    web:\n      image: ghcr.io/offspot/base-httpd:1.0\n      ports: [\"80:80\"]\n";

pub(super) fn check(section: &str) -> Result<Offspot, OffspotError> {
    Offspot::from_node(&parse(section).unwrap())
}

pub(super) fn ok(section: &str) {
    if let Err(e) = check(section) {
        panic!(
            "expected valid:\n{section}\ngot {} at {} ({})",
            e.message, e.path, e.mark
        );
    }
}

/// Fails at `path`, on `line`, with a message containing `needle`.
pub(super) fn bad(section: &str, path: &str, line: usize, needle: &str) {
    match check(section) {
        Ok(_) => panic!("expected an error at {path}:\n{section}"),
        Err(e) => {
            assert_eq!(e.path, path, "{section}\n{}", e.message);
            assert_eq!(e.mark.line, line, "{section}\n{}", e.message);
            assert!(
                e.message.contains(needle),
                "{:?} lacks {needle:?}",
                e.message
            );
        }
    }
}

#[test]
fn section_must_be_a_mapping() {
    bad("- a\n", "", 1, "must be a mapping");
    ok("{}\n");
    ok("timezone:\n"); // a null value requests no change
}

#[test]
fn timezone() {
    ok("timezone: Africa/Bamako\n");
    ok("timezone: UTC\n");
    bad(
        "timezone: utc\n",
        "timezone",
        1,
        "not a known IANA time zone",
    );
    bad("timezone: Europe/Nowhere\n", "timezone", 1, "not a known");
    bad(
        "timezone: \"Europe/Paris \"\n",
        "timezone",
        1,
        "not a time zone name",
    );
    bad(
        "timezone: 2024-01-01\n",
        "timezone",
        1,
        "read by YAML 1.1 as the date",
    );
}

#[test]
fn hostname() {
    ok("hostname: kiwix-hotspot\n");
    ok("hostname: a.b-c.d1\n");
    bad("hostname: -kiwix\n", "hostname", 1, "label `-kiwix`");
    bad(
        "hostname: kiwix-\n",
        "hostname",
        1,
        "not starting or ending",
    );
    bad(
        "hostname: kiwix_hotspot\n",
        "hostname",
        1,
        "not a valid host name",
    );
    bad("hostname: a..b\n", "hostname", 1, "label ``");
    bad(
        &format!("hostname: {}\n", "a".repeat(64)),
        "hostname",
        1,
        "1–63",
    );
    bad(
        &format!("hostname: {}\n", ["abc"; 70].join(".")),
        "hostname",
        1,
        "255",
    );
    bad(
        "hostname: yes\n",
        "hostname",
        1,
        "the boolean true; quote it",
    );
}

#[test]
fn ethernet() {
    ok("ethernet: {type: dhcp}\n");
    ok("ethernet:\n  type: static\n  address: 192.168.5.10\n  routers: [192.168.5.1]\n  dns: [1.1.1.1, 8.8.8.8]\n");
    bad(
        "ethernet: {type: auto}\n",
        "ethernet.type",
        1,
        "expected `dhcp` or `static`",
    );
    ok("ethernet: {}\n"); // empty: no change requested
    bad(
        "ethernet: {address: 192.168.1.10}\n",
        "ethernet",
        1,
        "`type` is required",
    );
    bad("ethernet: dhcp\n", "ethernet", 1, "a mapping");
    bad(
        "ethernet:\n  type: static\n  routers: [192.168.5.1]\n",
        "ethernet",
        2,
        "`address` is required",
    );
    bad("ethernet:\n  type: static\n  address: 192.168.5.0\n  routers: [192.168.5.1]\n  dns: [1.1.1.1]\n", "ethernet.address", 3, "network address");
    bad(
        "ethernet:\n  type: static\n  address: 127.0.0.5\n",
        "ethernet.address",
        3,
        "loopback",
    );
    bad(
        "ethernet:\n  type: static\n  address: 192.168.5.10\n  dns: [1.1.1.1]\n",
        "ethernet",
        2,
        "`routers` is required",
    );
    bad(
        "ethernet:\n  type: static\n  address: 192.168.5.10\n  routers: []\n  dns: [1.1.1.1]\n",
        "ethernet.routers",
        4,
        "must not be empty",
    );
    bad("ethernet:\n  type: static\n  address: 192.168.5.10\n  routers: [192.168.5.1]\n  dns:\n  - 1.1.1.1\n  - 1.1.1\n", "ethernet.dns[1]", 7, "not a valid IPv4");
}

fn ap(extra: &str) -> String {
    format!("ap:\n  ssid: Kiwix\n{extra}{COMPOSE}")
}

#[test]
fn ap_ssid() {
    ok(&ap(""));
    ok("ap:\n  ssid: \"Café 'Wi-Fi' 📶\"\n");
    ok(&format!("ap:\n  ssid: \"{}\"\n", "é".repeat(16)));
    bad(
        "ap:\n  passphrase: secret12\n",
        "ap",
        2,
        "`ssid` is required",
    );
    bad("ap:\n  ssid: \"\"\n", "ap.ssid", 2, "must not be empty");
    bad(
        &format!("ap:\n  ssid: \"{}\"\n", "é".repeat(17)),
        "ap.ssid",
        2,
        "34 bytes",
    );
    for first in ["!", "#", ";"] {
        bad(
            &format!("ap:\n  ssid: \"{first}wifi\"\n"),
            "ap.ssid",
            2,
            "must not start",
        );
    }
    for inner in ["+", "]", "/", "\\\"", "\\t"] {
        bad(
            &format!("ap:\n  ssid: \"wi{inner}fi\"\n"),
            "ap.ssid",
            2,
            "must not contain",
        );
    }
    bad(
        "ap:\n  ssid: \"a\\nb\"\n",
        "ap.ssid",
        2,
        "control characters",
    );
    bad(
        "ap:\n  ssid: 1234\n",
        "ap.ssid",
        2,
        "the number 1234; quote it",
    );
}

#[test]
fn ap_passphrase() {
    ok(&ap("  passphrase: \"12345678\"\n"));
    ok(&ap(&format!("  passphrase: \"{}\"\n", "x".repeat(63))));
    ok(&ap("  passphrase:\n")); // null: open network
    bad(&ap("  passphrase: short\n"), "ap.passphrase", 3, "8–63");
    bad(
        &ap(&format!("  passphrase: \"{}\"\n", "x".repeat(64))),
        "ap.passphrase",
        3,
        "8–63",
    );
    bad(
        &ap("  passphrase: \"pässwörd\"\n"),
        "ap.passphrase",
        3,
        "printable ASCII",
    );
    // The device uses str(value): a plain decimal number is the same text.
    ok(&ap("  passphrase: 12345678\n"));
    ok(&ap("  passphrase: \"\"\n")); // empty: open network
    bad(
        &ap("  passphrase: 0x1234ABCD\n"),
        "ap.passphrase",
        3,
        "quote it",
    );
    // The device passes it on a command line, where it reads as an option.
    bad(
        &ap("  passphrase: -secretpass\n"),
        "ap.passphrase",
        3,
        "must not start with `-`",
    );
}

#[test]
fn ap_address_tld_domains_country_interface() {
    ok(&ap("  address: 10.0.0.1\n  tld: offspot\n  domain: kiwix\n  welcome: goto.kiwix\n  country: FR\n  interface: wlan0\n"));
    // `00` (the drivers' "world" domain) is not an ISO 3166 code: the device refuses it.
    bad(&ap("  country: \"00\"\n"), "ap.country", 3, "ISO 3166");
    ok(&ap("  captured-address: 198.51.100.1\n"));
    bad(
        &ap("  captured-address: 1.2.3\n"),
        "ap.captured-address",
        3,
        "not a valid IPv4 address",
    );
    bad(
        &ap("  captured-address: 10.0.0.0\n"),
        "ap.captured-address",
        3,
        "network address",
    );
    bad(
        &ap("  address: 192.168.2.255\n"),
        "ap.address",
        3,
        "broadcast",
    );
    bad(
        &ap("  address: 169.254.1.1\n"),
        "ap.address",
        3,
        "link-local",
    );
    bad(&ap("  address: 224.0.0.1\n"), "ap.address", 3, "multicast");
    bad(
        &ap("  address: 192.168.2.1/24\n"),
        "ap.address",
        3,
        "not an IPv4 address",
    );
    bad(&ap("  tld: local\n"), "ap.tld", 3, "reserved");
    bad(&ap("  tld: 1offspot\n"), "ap.tld", 3, "a letter then");
    bad(
        &ap("  domain: kiwix_box\n"),
        "ap.domain",
        3,
        "not a valid host name",
    );
    bad(
        &ap("  welcome: -goto\n"),
        "ap.welcome",
        3,
        "not a valid host name",
    );
    bad(&ap("  country: fr\n"), "ap.country", 3, "ISO 3166");
    let e = check(&ap("  country: XX\n")).unwrap_err();
    assert!(!e.message.contains("00"), "{}", e.message);
    bad(&ap("  country: XX\n"), "ap.country", 3, "ISO 3166");
    // Norway unquoted is the boolean false for YAML 1.1.
    bad(
        &ap("  country: NO\n"),
        "ap.country",
        3,
        "`NO` unquoted is read by YAML 1.1 as the boolean false; quote it: \"NO\"",
    );
    bad(
        &ap("  interface: eth\n"),
        "ap.interface",
        3,
        "interface name",
    );
    bad(
        &ap("  other-interfaces: [eth0, Eth1]\n"),
        "ap.other-interfaces[1]",
        3,
        "interface name",
    );
    bad(
        &ap("  dns: [1.1.1.1, 0.0.0.0]\n"),
        "ap.dns[1]",
        3,
        "network address",
    );
}

#[test]
fn ap_booleans_channel_spoof() {
    ok(&ap(
        "  hide: yes\n  as-gateway: false\n  channel: 6\n  spoof: auto\n",
    ));
    // The device sets these flags when the value is truthy: 1 and 0 mean what they say, a
    // string turns the flag on whatever it says.
    ok(&ap("  hide: 1\n  as-gateway: 0\n"));
    bad(
        &ap("  hide: \"false\"\n"),
        "ap.hide",
        3,
        "remove the quotes",
    );
    bad(
        &ap("  as-gateway: 1.5\n"),
        "ap.as-gateway",
        3,
        "expected a boolean",
    );
    // 2.7.1 reads the channel as int(str(value)).
    ok(&ap("  channel: \"6\"\n"));
    ok(&ap("  channel: 14\n"));
    bad(&ap("  channel: 15\n"), "ap.channel", 3, "1–14");
    bad(&ap("  channel: \"6a\"\n"), "ap.channel", 3, "1–14");
    bad(&ap("  channel: true\n"), "ap.channel", 3, "1–14");
    bad(
        &ap("  channel: 99999999999999999999999999999999999999999\n"),
        "ap.channel",
        3,
        "1–14",
    );
    // null is not passed by the device: no bug then.
    ok(&ap("  channel_24:\n"));
    bad(
        &ap("  channel_24: 6\n"),
        "ap.channel_24",
        3,
        "whole `ap` configuration fail",
    );
    bad(
        &ap("  channel_5: 36\n"),
        "ap.channel_5",
        3,
        "whole `ap` configuration fail",
    );
    bad(&ap("  spoof: true\n"), "ap.spoof", 3, "only `spoof: auto`");
    bad(
        &ap("  spoof: \"yes\"\n"),
        "ap.spoof",
        3,
        "only `spoof: auto`",
    );
}

#[test]
fn ap_dhcp_range_and_network() {
    ok(&ap(
        "  address: 192.168.2.1\n  dhcp-range: 192.168.2.2,192.168.2.254,255.255.255.0,1h\n",
    ));
    // Without `address`, the device's default 192.168.144.1 must be in the range's network.
    ok(&ap(
        "  dhcp-range: 192.168.144.2,192.168.144.254,255.255.255.0,1h\n",
    ));
    bad(
        &ap("  dhcp-range: 192.168.2.2,192.168.2.254,255.255.255.0,1h\n"),
        "ap.dhcp-range",
        3,
        "outside the range's network",
    );
    ok(&ap("  address: 10.1.0.1\n  dhcp-range: 10.1.0.10,10.1.3.200,255.255.252.0,infinite\n  network: 10.1.0.0/22\n"));
    let cases = [
        (
            "192.168.2.2,192.168.2.254,255.255.255.0",
            "start,end,netmask",
        ),
        (
            "192.168.3.2,192.168.3.254,255.255.255.0,1h",
            "outside the range's network",
        ),
        (
            "192.168.2.2,192.168.3.254,255.255.255.0,1h",
            "outside the network",
        ),
        (
            "192.168.2.200,192.168.2.20,255.255.255.0,1h",
            "after its end",
        ),
        ("192.168.2.1,192.168.2.20,255.255.255.0,1h", "AP address"),
        ("192.168.2.2,192.168.2.2,255.255.255.0,1h", "identical"),
        (
            "192.168.2.2,192.168.2.254,255.0.255.0,1h",
            "not a valid netmask",
        ),
        ("192.168.2.2,192.168.2.254,255.255.255.0,1y", "lease time"),
        ("192.168.2.2,192.168.2.254,255.255.255.0,h", "lease time"),
    ];
    for (range, needle) in cases {
        bad(
            &ap(&format!("  address: 192.168.2.1\n  dhcp-range: {range}\n")),
            "ap.dhcp-range",
            4,
            needle,
        );
    }
    bad(
        &ap("  network: 10.0.0.0/8\n"),
        "ap.network",
        3,
        "not inside",
    );
}

#[test]
fn firmware() {
    ok("firmware:\n  brcm43455: supports-19_2021-11-30\n  brcm43430: raspios\n");
    // The device's argparse refuses other names; it ignores chipsets it does not know.
    bad(
        "firmware:\n  brcm43455: some-future-firmware\n",
        "firmware.brcm43455",
        2,
        "expected one of raspios,",
    );
    bad(
        "firmware:\n  brcm43455: supports-30_2018-09-28\n",
        "firmware.brcm43455",
        2,
        "not a firmware the device has for brcm43455",
    );
    ok("firmware:\n  brcm99999: x\n  brcm43430: \"\"\n");
    bad("firmware: raspios\n", "firmware", 1, "a mapping");
    bad(
        "firmware:\n  brcm43455: 2021-11-30\n",
        "firmware.brcm43455",
        2,
        "the date 2021-11-30",
    );
}

#[test]
fn unknown_top_level_keys_pass_through() {
    let o = check("future: {a: 1}\n").unwrap();
    assert!(o.to_yaml().contains("\"future\":\n  \"a\": 1\n"));
}

#[test]
fn ipv4_helpers() {
    assert_eq!(
        usable_ipv4("192.168.2.1"),
        Ok(Ipv4Addr::new(192, 168, 2, 1))
    );
    assert!(usable_ipv4("192.168.002.1").is_err());
    assert!(usable_ipv4("240.0.0.1").is_err());
    assert_eq!(netmask_prefix(Ipv4Addr::new(255, 255, 254, 0)), Some(23));
    assert_eq!(netmask_prefix(Ipv4Addr::new(0, 0, 0, 0)), Some(0));
    assert_eq!(netmask_prefix(Ipv4Addr::new(255, 255, 255, 255)), Some(32));
    assert_eq!(netmask_prefix(Ipv4Addr::new(255, 0, 255, 0)), None);
    assert!(check_dhcp_range(
        "10.0.0.2,10.0.0.9,255.255.255.0,12m",
        Ipv4Addr::new(10, 0, 0, 1)
    )
    .is_ok());
}
