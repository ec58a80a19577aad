//! IPv4 checks as the device's runtime applies them (Python's `ipaddress` semantics).

use std::net::Ipv4Addr;

/// A dotted-quad IPv4 address (no CIDR, no leading zeros, which Python refuses too).
pub fn parse_ipv4(text: &str) -> Result<Ipv4Addr, String> {
    if text.is_empty() || !text.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(format!(
            "`{text}` is not an IPv4 address (expected a.b.c.d)"
        ));
    }
    text.parse::<Ipv4Addr>()
        .map_err(|_| format!("`{text}` is not a valid IPv4 address"))
}

/// An address a host can use: the device refuses .0 and .255 (it reasons in /24s), loopback,
/// link-local, multicast, reserved (240/4, broadcast) and 0.0.0.0.
pub fn usable_ipv4(text: &str) -> Result<Ipv4Addr, String> {
    let ip = parse_ipv4(text)?;
    let last = ip.octets()[3];
    let why = if last == 0 {
        Some("it is a network address (ends in .0)")
    } else if last == 255 {
        Some("it is a broadcast address (ends in .255)")
    } else if ip.is_loopback() {
        Some("it is a loopback address")
    } else if ip.is_link_local() {
        Some("it is a link-local address")
    } else if ip.is_multicast() {
        Some("it is a multicast address")
    } else if ip.octets()[0] >= 240 {
        Some("it is in the reserved range 240.0.0.0/4")
    } else if ip.is_unspecified() {
        Some("it is unspecified")
    } else {
        None
    };
    match why {
        Some(why) => Err(format!("`{text}` is not a usable host address: {why}")),
        None => Ok(ip),
    }
}

/// Prefix length of a contiguous netmask (`255.255.255.0` → 24).
pub fn netmask_prefix(mask: Ipv4Addr) -> Option<u32> {
    let bits = u32::from(mask);
    let ones = bits.leading_ones();
    (bits.checked_shl(ones).unwrap_or(0) == 0).then_some(ones)
}

/// `start,end,netmask,lease` (dnsmasq's `dhcp-range`), with `host` (the AP address) inside the
/// same network, as the device checks it before configuring dnsmasq.
pub fn check_dhcp_range(range: &str, host: Ipv4Addr) -> Result<(), String> {
    let parts: Vec<&str> = range.split(',').collect();
    let [start, end, mask, lease] = parts[..] else {
        return Err(format!(
            "`{range}` must be `start,end,netmask,lease-time` (e.g. \
             `192.168.2.2,192.168.2.254,255.255.255.0,1h`)"
        ));
    };
    let start_ip = usable_ipv4(start).map_err(|e| format!("range start: {e}"))?;
    let end_ip = usable_ipv4(end).map_err(|e| format!("range end: {e}"))?;
    let mask_ip = parse_ipv4(mask).map_err(|e| format!("range netmask: {e}"))?;
    let prefix = netmask_prefix(mask_ip)
        .ok_or_else(|| format!("range netmask `{mask}` is not a valid netmask"))?;
    if start_ip == end_ip {
        return Err("range start and end are identical".to_string());
    }
    if start_ip == host || end_ip == host {
        return Err(format!(
            "the range cannot start or end at the AP address {host}"
        ));
    }
    let net_mask = u32::from(mask_ip);
    let network = u32::from(start_ip) & net_mask;
    let in_net = |ip: Ipv4Addr| u32::from(ip) & net_mask == network;
    let network_ip = Ipv4Addr::from(network);
    if !in_net(end_ip) {
        return Err(format!(
            "range end {end_ip} is outside the network {network_ip}/{prefix} of the range start"
        ));
    }
    if !in_net(host) {
        return Err(format!(
            "the AP address {host} is outside the range's network {network_ip}/{prefix}"
        ));
    }
    if u32::from(start_ip) > u32::from(end_ip) {
        return Err(format!("range start {start_ip} is after its end {end_ip}"));
    }
    check_lease(lease)
}

fn check_lease(lease: &str) -> Result<(), String> {
    if lease == "infinite" {
        return Ok(());
    }
    let ok = lease.len() >= 2
        && lease.ends_with(['s', 'm', 'h', 'd', 'w'])
        && lease[..lease.len() - 1].chars().all(|c| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "lease time `{lease}` must be `infinite` or a number with a unit s, m, h, d or w \
             (e.g. `1h`)"
        ))
    }
}

/// `a.b.c.d/n` containing `host`.
pub fn check_network(cidr: &str, host: Ipv4Addr) -> Result<(), String> {
    let (addr, prefix) = cidr
        .split_once('/')
        .ok_or_else(|| format!("`{cidr}` must be a network in CIDR form (e.g. 192.168.2.0/24)"))?;
    let addr = parse_ipv4(addr)?;
    let prefix: u32 = prefix
        .parse()
        .ok()
        .filter(|p| *p <= 30)
        .ok_or_else(|| format!("`{cidr}`: the prefix length must be 0–30"))?;
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    if u32::from(addr) & !mask != 0 {
        return Err(format!("`{cidr}` has host bits set"));
    }
    if u32::from(host) & mask != u32::from(addr) {
        return Err(format!("the AP address {host} is not inside `{cidr}`"));
    }
    Ok(())
}
