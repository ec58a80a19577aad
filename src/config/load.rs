//! Config text → validated [`Config`]. Shapes are checked by serde on the `raw` structs; the
//! node tree gives every error its line:column and hands `offspot:` to the offspot rules.

use base64::Engine as _;

use super::error::{ConfigError, KeyPath, Locator};
use super::files;
use super::model::{Algo, Base, Checksum, ChecksumKind, Config, OciImage, Output, OutputSize};
use super::offspot::{Offspot, OffspotError};
use super::raw::{OutputSizeRaw, RawBase, RawChecksum, RawConfig, RawOci, RawOutput};
use crate::yaml::node::{self, Mark, NodeKind};
use crate::yaml::prescan::prescan;

/// Parses and validates a config. `origin` (file name or URL) prefixes every error message.
pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
    prescan(text).map_err(|p| ConfigError::Syntax {
        origin: origin.to_string(),
        mark: p.mark,
        message: p.message,
    })?;
    // serde_yaml_ng's Value cannot hold an integer between 2^64 and 2^128, which PyYAML (and
    // the `offspot:` rules, reading the node tree) take as any other: deserialize without the
    // Value then, and keep the Value's error if that fails too.
    let (value, direct) = match serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text) {
        Ok(value) => (Some(value), None),
        Err(e) => match serde_yaml_ng::from_str::<RawConfig>(text) {
            Ok(raw) => (None, Some(raw)),
            Err(_) => return Err(yaml_error(origin, &e)),
        },
    };
    let root = node::parse(text).map_err(|e| ConfigError::Syntax {
        origin: origin.to_string(),
        mark: e.mark,
        message: e.info,
    })?;
    let loc = Locator {
        origin,
        root: &root,
    };
    let top = KeyPath::root();
    match &root.kind {
        NodeKind::Map(entries) if entries.is_empty() => {
            return Err(loc.invalid(&top, "the config is empty; at least `base` is required"))
        }
        NodeKind::Map(_) => {}
        NodeKind::Seq(_) => {
            return Err(loc.invalid(&top, "expected a mapping (`base: …`), found a list"));
        }
        NodeKind::Scalar { .. } => {
            return Err(loc.invalid(&top, "expected a mapping (`base: …`), found a single value"));
        }
    }
    let raw: RawConfig = match (value, direct) {
        (_, Some(raw)) => raw,
        (value, None) => serde_path_to_error::deserialize(value.unwrap_or_default())
            .map_err(|e| serde_error(&loc, &e))?,
    };
    build(raw, &loc)
}

/// Decodes `via: base64` content. Line breaks and spaces are ignored because block scalars
/// wrap long base64; missing padding is tolerated.
pub fn decode_base64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    let compact: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    engine.decode(compact)
}

fn yaml_error(origin: &str, err: &serde_yaml_ng::Error) -> ConfigError {
    let mut message = err.to_string();
    let mark = match err.location() {
        Some(l) => {
            // The position goes in front; don't repeat it inside the message.
            let suffix = format!(" at line {} column {}", l.line(), l.column());
            message = message.replacen(&suffix, "", 1);
            Mark {
                line: l.line(),
                col: l.column(),
            }
        }
        None => Mark { line: 1, col: 1 },
    };
    ConfigError::Syntax {
        origin: origin.to_string(),
        mark,
        message,
    }
}

/// Text between the first pair of backticks after `prefix`.
fn quoted_after<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    message.strip_prefix(prefix)?.split('`').next()
}

/// The closest known key, if it is close enough to be a likely typo.
pub(super) fn did_you_mean<'a>(unknown: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::jaro_winkler(unknown, k), *k))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

fn serde_error(
    loc: &Locator,
    err: &serde_path_to_error::Error<serde_yaml_ng::Error>,
) -> ConfigError {
    let path = KeyPath::from_serde(err.path());
    let message = err.inner().to_string();
    // serde's wording for these two is fixed (`serde::de::Error::unknown_field`/`missing_field`).
    if let Some(key) = quoted_after(&message, "unknown field `") {
        let known: Vec<&str> = message
            .split_once(", expected")
            .map(|(_, list)| list.split('`').skip(1).step_by(2).collect())
            .unwrap_or_default();
        let text = match did_you_mean(key, &known) {
            Some(k) => format!("unknown key `{key}`; did you mean `{k}`?"),
            None if known.is_empty() => format!("unknown key `{key}`; this mapping takes none"),
            None => format!("unknown key `{key}`; expected one of {}", known.join(", ")),
        };
        // serde_path_to_error records the key before the field name is refused; older
        // versions did not, so add it only when missing.
        let path = if path.last_key() == Some(key) {
            path
        } else {
            path.key(key)
        };
        return loc.invalid_key(&path, text);
    }
    if let Some(key) = quoted_after(&message, "missing field `") {
        return loc.invalid(&path.key(key), "required key is missing");
    }
    loc.invalid(
        &path,
        message
            .replace("invalid type: unit value", "empty value")
            .replace("expected field identifier", "expected a key name"),
    )
}

fn build(raw: RawConfig, loc: &Locator) -> Result<Config, ConfigError> {
    let top = KeyPath::root();
    let base = base(raw.base, loc)?;
    let output = match raw.output {
        Some(o) => output(o, loc)?,
        None => Output::default(),
    };
    let mut oci_images = Vec::new();
    for (index, raw) in raw.oci_images.unwrap_or_default().into_iter().enumerate() {
        oci_images.push(oci_image(index, raw, loc)?);
    }
    let write_config = raw.write_config.is_some_and(|b| b.0);
    let files = files::entries(raw.files.unwrap_or_default(), write_config, loc)?;
    let offspot = match loc.root.get("offspot") {
        None => None,
        Some(node) if matches!(node.kind, NodeKind::Map(_)) => {
            Some(Offspot::from_node(node).map_err(|inner| wrap_offspot(loc.origin, inner))?)
        }
        Some(_) => {
            return Err(loc.invalid(
                &top.key("offspot"),
                "expected a mapping of runtime settings (`timezone: …`, `ap: …`)",
            ))
        }
    };
    Ok(Config {
        base,
        output,
        oci_images,
        files,
        write_config,
        offspot,
    })
}

/// The offspot rules report paths relative to `offspot`.
pub(super) fn wrap_offspot(origin: &str, inner: OffspotError) -> ConfigError {
    ConfigError::Offspot {
        origin: origin.to_string(),
        mark: inner.mark,
        key_path: if inner.path.is_empty() {
            "offspot".to_string()
        } else {
            format!("offspot.{}", inner.path)
        },
        inner: Box::new(inner),
    }
}

fn non_empty(text: String, path: &KeyPath, loc: &Locator) -> Result<String, ConfigError> {
    if text.trim().is_empty() {
        return Err(loc.invalid(path, "must not be empty"));
    }
    Ok(text)
}

fn base(raw: RawBase, loc: &Locator) -> Result<Base, ConfigError> {
    let path = KeyPath::root().key("base");
    match raw {
        RawBase::Bare(source) => Ok(Base {
            source: non_empty(source, &path, loc)?,
            root_size: None,
            checksum: None,
        }),
        RawBase::Map(m) => {
            let root_size = match (m.root_size, m.rootfs_size) {
                (Some(_), Some(_)) => {
                    return Err(loc.invalid_key(
                        &path.key("rootfs_size"),
                        "`root_size` and `rootfs_size` are the same setting; give only one",
                    ))
                }
                (a, b) => a.or(b).map(|s| s.0),
            };
            let checksum = match m.checksum {
                Some(c) => Some(checksum(c, &path.key("checksum"), loc)?),
                None => None,
            };
            Ok(Base {
                source: non_empty(m.source, &path.key("source"), loc)?,
                root_size,
                checksum,
            })
        }
    }
}

fn output(raw: RawOutput, loc: &Locator) -> Result<Output, ConfigError> {
    let size = match raw.size {
        None | Some(OutputSizeRaw::Auto) => OutputSize::Auto,
        Some(OutputSizeRaw::Bytes(0)) => {
            return Err(loc.invalid(
                &KeyPath::root().key("output").key("size"),
                "must be more than 0 bytes (or `auto` for the smallest size that fits)",
            ))
        }
        Some(OutputSizeRaw::Bytes(n)) => OutputSize::Bytes(n),
    };
    Ok(Output {
        size,
        shrink: raw.shrink.is_some_and(|b| b.0),
    })
}

fn oci_image(index: usize, raw: RawOci, loc: &Locator) -> Result<OciImage, ConfigError> {
    let path = KeyPath::root().key("oci_images").index(index);
    let (ident_path, ident, url, filesize, fullsize) = match raw {
        RawOci::Bare(ident) => (path.clone(), ident, None, None, None),
        RawOci::Map(m) => (
            path.key("ident"),
            m.ident,
            m.url,
            m.filesize.map(|s| s.0),
            m.fullsize.map(|s| s.0),
        ),
    };
    let ident = non_empty(ident, &ident_path, loc)?;
    if ident.chars().any(char::is_whitespace) {
        return Err(loc.invalid(
            &ident_path,
            format!(
                "`{ident}` contains a space; expected an image reference like \
                 `ghcr.io/offspot/kiwix-serve:dev`"
            ),
        ));
    }
    let url = match url {
        Some(u) => Some(non_empty(u, &path.key("url"), loc)?),
        None => None,
    };
    Ok(OciImage {
        index,
        ident,
        url,
        filesize,
        fullsize,
    })
}

pub(super) fn checksum(
    raw: RawChecksum,
    path: &KeyPath,
    loc: &Locator,
) -> Result<Checksum, ConfigError> {
    let algo: Algo = raw.algo.0;
    let kind = raw.kind.map(|k| k.0).unwrap_or_default();
    let text = raw.value.0.trim().to_string();
    let value_path = path.key("value");
    let value = match kind {
        ChecksumKind::Digest => {
            let digest = text.to_ascii_lowercase();
            if digest.is_empty() || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(loc.invalid(
                    &value_path,
                    format!("`{text}` is not a hex digest (use `kind: url` for a checksum file)"),
                ));
            }
            if digest.len() != algo.hex_len() {
                return Err(loc.invalid(
                    &value_path,
                    format!(
                        "a {} digest has {} hex digits, this one has {}",
                        algo.name(),
                        algo.hex_len(),
                        digest.len()
                    ),
                ));
            }
            digest
        }
        ChecksumKind::Url => {
            let ok = url::Url::parse(&text)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https" | "file"));
            if !ok {
                return Err(loc.invalid(
                    &value_path,
                    format!(
                        "`{text}` is not a URL; `kind: url` needs the http(s):// or file:// \
                         URL of a checksum file"
                    ),
                ));
            }
            text
        }
    };
    Ok(Checksum { algo, value, kind })
}
