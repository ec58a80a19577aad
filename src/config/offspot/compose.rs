//! `containers`: the compose document the device starts. Its checks mirror the runtime's
//! `is_valid_compose(required_ports=[80])`; a failure there means no services and no Wi-Fi.

use super::rules::{describe, expect_map, expect_str, fail, join};
use super::OffspotError;
use crate::yaml::yaml11::{Item, Value};

pub fn check_containers(item: &Item) -> Result<(), OffspotError> {
    let path = "containers";
    expect_map(item, path, "a compose document")?;
    let spath = join(path, "services");
    let Some(services) = item.get("services") else {
        return Err(fail(
            path,
            item,
            "`services` is required: the compose services to run",
        ));
    };
    let entries = expect_map(services, &spath, "the compose services")?;
    if entries.is_empty() {
        return Err(fail(&spath, services, "at least one service is required"));
    }
    // Every entry the device skips because YAML 1.1 made a number of it (`80:80` → 4880).
    let mut sexagesimal: Vec<(String, &Item)> = Vec::new();
    let mut publishes_80 = false;
    for (name, service) in entries {
        let svc_path = join(&spath, &name.display());
        check_service(service, &svc_path)?;
        let Some(ports) = service.get("ports") else {
            continue;
        };
        let Value::Seq(list) = &ports.value else {
            continue;
        };
        for (i, port) in list.iter().enumerate() {
            let ppath = format!("{svc_path}.ports[{i}]");
            match &port.value {
                Value::Str(s) => publishes_80 |= short_port_publishes(s, 80),
                Value::Map(_) => publishes_80 |= long_port_publishes(port, 80),
                Value::Int(_) if port.source.as_deref().is_some_and(|s| s.contains(':')) => {
                    sexagesimal.push((ppath, port));
                }
                _ => {}
            }
        }
    }
    if let Some((ppath, port)) = sexagesimal.first() {
        let hint = sexagesimal_hint(port);
        let message = if publishes_80 {
            hint
        } else {
            format!("no service publishes TCP port 80, which the device requires; {hint}")
        };
        return Err(fail(ppath, port, message));
    }
    if !publishes_80 {
        return Err(fail(
            &spath,
            services,
            "no service publishes TCP port 80, which the device requires (e.g. `ports: [\"80:80\"]`)",
        ));
    }
    Ok(())
}

fn sexagesimal_hint(port: &Item) -> String {
    let src = port.source.as_deref().unwrap_or_default();
    format!(
        "`{src}` unquoted is read by YAML 1.1 as {}; quote it: \"{src}\"",
        describe(&port.value)
    )
}

fn check_service(service: &Item, path: &str) -> Result<(), OffspotError> {
    expect_map(service, path, "a compose service")?;
    if let Some(build) = service.get("build") {
        return Err(fail(
            &join(path, "build"),
            build,
            "`build` is not supported: the device has no build context, use a prebuilt `image`",
        ));
    }
    match service.get("image") {
        None => {
            return Err(fail(
                path,
                service,
                "`image` is required (the device cannot `build`)",
            ))
        }
        Some(image) => {
            let ipath = join(path, "image");
            if expect_str(image, &ipath, "an image reference")?.is_empty() {
                return Err(fail(&ipath, image, "the image reference is empty"));
            }
        }
    }
    // `ports:` with no value is no ports, for the device as for compose (`ports is None`).
    let Some(ports) = service.get("ports").filter(|p| p.value != Value::Null) else {
        return Ok(());
    };
    let ppath = join(path, "ports");
    if !matches!(ports.value, Value::Seq(_)) {
        return Err(fail(
            &ppath,
            ports,
            format!("`ports` must be a list, found {}", ports.value.kind_name()),
        ));
    }
    let host_mode = service
        .get("network_mode")
        .and_then(Item::as_str)
        .is_some_and(|m| m == "host");
    if host_mode && matches!(&ports.value, Value::Seq(l) if !l.is_empty()) {
        return Err(fail(
            &ppath,
            ports,
            "`network_mode: host` cannot be combined with `ports`",
        ));
    }
    Ok(())
}

/// Whether `range_or_port` (`80` or `8080-8090`) covers `port`, digits only as on the device.
fn port_in_range(range_or_port: &str, port: u32) -> bool {
    let parts: Vec<&str> = range_or_port.splitn(2, '-').collect();
    if parts
        .iter()
        .any(|p| p.is_empty() || !p.chars().all(|c| c.is_ascii_digit()))
    {
        return false;
    }
    let num = |s: &str| s.parse::<u64>().ok();
    match parts[..] {
        [single] => num(single) == Some(u64::from(port)),
        [start, end] => match (num(start), num(end)) {
            (Some(s), Some(e)) => (s..=e).contains(&u64::from(port)),
            _ => false,
        },
        _ => false,
    }
}

/// Short syntax `[ip:]host[-range]:container[-range][/proto]`: published if the host part
/// covers `port` over TCP. A bare container port publishes nothing.
pub fn short_port_publishes(spec: &str, port: u32) -> bool {
    if !spec.contains(':') {
        return false;
    }
    if let Some((_, proto)) = spec.rsplit_once('/') {
        if proto != "tcp" {
            return false;
        }
    }
    let Some((host, _)) = spec.rsplit_once(':') else {
        return false;
    };
    let host_port = host.rsplit_once(':').map_or(host, |(_, p)| p);
    port_in_range(host_port, port)
}

/// Long syntax `{target: 80, published: 80, protocol: tcp}`.
fn long_port_publishes(spec: &Item, port: u32) -> bool {
    let tcp = spec
        .get("protocol")
        .is_none_or(|p| p.as_str() == Some("tcp"));
    let published = match spec.get("published").map(|p| &p.value) {
        Some(Value::Int(i)) => i.to_string(),
        Some(Value::Str(s)) => s.clone(),
        _ => return false,
    };
    tcp && port_in_range(&published, port)
}

fn services(root: &Item) -> impl Iterator<Item = &Item> {
    let entries = match root.get("containers").and_then(|c| c.get("services")) {
        Some(Item {
            value: Value::Map(entries),
            ..
        }) => entries.as_slice(),
        _ => &[],
    };
    entries.iter().map(|(_, service)| service)
}

pub fn images(root: &Item) -> Vec<String> {
    services(root)
        .filter_map(|s| s.get("image").and_then(Item::as_str))
        .map(str::to_string)
        .collect()
}

/// Absolute host paths bind-mounted by services: short `/host:/ctr[:mode]` volumes and long
/// `{type: bind, source: /host}` ones. Named volumes and relative paths are not host paths.
pub fn bind_sources(root: &Item) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for service in services(root) {
        let Some(Value::Seq(volumes)) = service.get("volumes").map(|v| &v.value) else {
            continue;
        };
        for volume in volumes {
            let source = match &volume.value {
                Value::Str(spec) => spec.split(':').next().filter(|_| spec.contains(':')),
                Value::Map(_) if volume.get("type").and_then(Item::as_str) == Some("bind") => {
                    volume.get("source").and_then(Item::as_str)
                }
                _ => None,
            };
            if let Some(src) = source.filter(|s| s.starts_with('/')) {
                if !out.iter().any(|o| o == src) {
                    out.push(src.to_string());
                }
            }
        }
    }
    out
}
