//! The `offspot:` runtime config, written as `offspot.yaml` at the root of p1.
//!
//! The device reads that file with PyYAML (YAML 1.1) at every boot and applies each top-level
//! key as a change request. So the section is resolved here exactly as PyYAML would resolve it
//! ([`yaml11`]), checked against the rules the device's runtime applies ([`rules`],
//! [`compose`]) — a key that fails there silently leaves a hotspot without Wi-Fi or services —
//! and written back ([`emit`]) in a form PyYAML loads to the very same values.

mod ap;
mod compose;
mod net;
mod rules;
mod tzdata;

#[cfg(test)]
mod compose_tests;
#[cfg(test)]
mod roundtrip_tests;
#[cfg(test)]
mod rules_tests;

use crate::yaml::emit;
use crate::yaml::node::{Mark, Node};
use crate::yaml::yaml11::{self, ResolveError};
use crate::{Classify, ErrorClass};
use yaml11::{Item, Value};

/// The resolved and validated `offspot` section.
#[derive(Debug, Clone, PartialEq)]
pub struct Offspot {
    root: Item,
}

/// A rule the section breaks, at `path` (relative to `offspot`, e.g. `ap.ssid`,
/// `containers.services.kiwix.ports[0]`) and `mark` (the offending node in the config file).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct OffspotError {
    pub path: String,
    pub mark: Mark,
    pub message: String,
}

/// A value PyYAML itself refuses breaks the section like any rule does.
impl From<ResolveError> for OffspotError {
    fn from(e: ResolveError) -> Self {
        OffspotError {
            path: e.path,
            mark: e.mark,
            message: e.message,
        }
    }
}

impl Classify for OffspotError {
    fn class(&self) -> ErrorClass {
        ErrorClass::BadInput
    }
}

/// Top-level keys the runtime applies (in its order: firmware, timezone, hostname, ethernet,
/// containers, ap).
const KNOWN_KEYS: &[&str] = &[
    "firmware",
    "timezone",
    "hostname",
    "ethernet",
    "containers",
    "ap",
];

impl Offspot {
    /// Resolves `node` (the value of the config's `offspot` key) as YAML 1.1 and validates it.
    pub fn from_node(node: &Node) -> Result<Offspot, OffspotError> {
        let mut root = yaml11::resolve(node, "")?;
        // An empty `offspot:` is null for PyYAML, and the runtime crashes on a null document;
        // write an empty mapping instead.
        if root.value == Value::Null {
            root.value = Value::Map(Vec::new());
        }
        let Value::Map(entries) = &root.value else {
            return Err(OffspotError {
                path: String::new(),
                mark: root.mark,
                message: format!(
                    "`offspot` must be a mapping of runtime settings, found {}",
                    root.value.kind_name()
                ),
            });
        };
        for (key, value) in entries {
            let name = match &key.value {
                Value::Str(s) => s.as_str(),
                _ => "",
            };
            // The runtime skips a key whose value is falsy in Python (`if config.get(key)`):
            // null, `""`, `false`, `0`, `{}`, `[]` request no change.
            if rules::is_falsy(&value.value) && KNOWN_KEYS.contains(&name) {
                continue;
            }
            match name {
                "timezone" => rules::check_timezone(value)?,
                "hostname" => rules::check_hostname(value, "hostname")?,
                "ethernet" => rules::check_ethernet(value)?,
                "ap" => ap::check_ap(value)?,
                "containers" => compose::check_containers(value)?,
                "firmware" => rules::check_firmware(value)?,
                // The runtime may grow keys this tool does not know yet: pass them through.
                _ => tracing::warn!(
                    key = %key.display(),
                    line = key.mark.line,
                    "unknown `offspot` key, written as is"
                ),
            }
        }
        Ok(Offspot { root })
    }

    /// The text of `offspot.yaml`.
    pub fn to_yaml(&self) -> String {
        emit::to_yaml(&self.root)
    }

    /// The `image:` of every compose service, in order.
    pub fn images(&self) -> Vec<String> {
        compose::images(&self.root)
    }

    /// Absolute host paths that services bind-mount (they must exist on `/data`).
    pub fn bind_sources(&self) -> Vec<String> {
        compose::bind_sources(&self.root)
    }

    /// The resolved tree, as the device will see it.
    pub fn root(&self) -> &Item {
        &self.root
    }
}
