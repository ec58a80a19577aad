//! YAML 1.1 resolution of a node tree, as PyYAML's `SafeLoader` does it on the device.
//!
//! The device reads `offspot.yaml` with PyYAML, whose implicit resolver differs from YAML 1.2:
//! `yes`/`on` are booleans, `0755` is octal, `80:80` is the sexagesimal integer 4880, `2024-01-01`
//! a date. The patterns below mirror PyYAML's resolver table (same alternatives, same order), and
//! the constructors mirror `SafeConstructor` — including the values PyYAML *fails* on (`0b_`,
//! `2024-13-45`, a plain `=`), which would make the device drop the whole file.

use std::sync::LazyLock;

use regex::Regex;

use super::construct::construct_scalar;
use super::node::{Mark, Node, NodeKind, Style};

/// A value PyYAML would refuse (or one we cannot represent), at `path` (dotted, relative to the
/// resolved root) and `mark` (the offending node).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ResolveError {
    pub path: String,
    pub mark: Mark,
    pub message: String,
}

/// A resolved node: its value plus where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub value: Value,
    pub mark: Mark,
    /// The text of a plain (unquoted, untagged) scalar, kept for hints (`80:80` → 4880).
    pub source: Option<String>,
}

/// What PyYAML's `safe_load` would build.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i128),
    /// An integer beyond i128; the text is what PyYAML's int constructor reads.
    BigInt(String),
    Float(f64),
    /// A date or datetime, as its original (valid) text.
    Timestamp(String),
    Str(String),
    Seq(Vec<Item>),
    Map(Vec<(Item, Item)>),
}

impl Item {
    /// The value under a string key of a mapping.
    pub fn get(&self, key: &str) -> Option<&Item> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| matches!(&k.value, Value::Str(s) if s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// How the value reads in a message or a path: strings as-is, other scalars as written
    /// (or in their canonical form when they came from a tag or a merge).
    pub fn display(&self) -> String {
        match (&self.value, &self.source) {
            (Value::Str(s), _) => s.clone(),
            (_, Some(src)) => src.clone(),
            (Value::Null, None) => "null".to_string(),
            (Value::Bool(b), None) => b.to_string(),
            (Value::Int(i), None) => i.to_string(),
            (Value::BigInt(t) | Value::Timestamp(t), None) => t.clone(),
            (Value::Float(f), None) => super::emit::float(*f),
            (v, None) => v.kind_name().to_string(),
        }
    }
}

impl Value {
    pub fn kind_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) | Value::BigInt(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Timestamp(_) => "a date",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

const TAG: &str = "tag:yaml.org,2002:";

// PyYAML's implicit resolver patterns (resolver.py), written without the verbose flag.
static BOOL: LazyLock<Regex> = LazyLock::new(|| {
    re(r"^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$")
});
// Note the exponent needs a sign and the mantissa a dot: `1e3` and `1.0e3` are strings.
static FLOAT: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?",
        r"|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?",
        r"|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*",
        r"|[-+]?\.(?:inf|Inf|INF)",
        r"|\.(?:nan|NaN|NAN))$"
    ))
});
static INT: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"^(?:[-+]?0b[0-1_]+",
        r"|[-+]?0[0-7_]+",
        r"|[-+]?(?:0|[1-9][0-9_]*)",
        r"|[-+]?0x[0-9a-fA-F_]+",
        r"|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$"
    ))
});
static NULL: LazyLock<Regex> = LazyLock::new(|| re(r"^(?:~|null|Null|NULL|)$"));
static TIMESTAMP: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]",
        r"|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?",
        r"(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?",
        r"(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$"
    ))
});
pub(crate) fn re(pattern: &str) -> Regex {
    // The patterns are constants checked by the tests; a failure here is a programming error.
    #[allow(clippy::expect_used)]
    Regex::new(pattern).expect("static YAML 1.1 pattern")
}

/// The tag PyYAML's resolver gives a plain scalar (suffix after `tag:yaml.org,2002:`).
pub fn implicit_tag(text: &str) -> &'static str {
    if BOOL.is_match(text) {
        "bool"
    } else if FLOAT.is_match(text) {
        "float"
    } else if INT.is_match(text) {
        "int"
    } else if text == "<<" {
        "merge"
    } else if NULL.is_match(text) {
        "null"
    } else if TIMESTAMP.is_match(text) {
        "timestamp"
    } else if text == "=" {
        "value"
    } else if matches!(text, "!" | "&" | "*") {
        "yaml"
    } else {
        "str"
    }
}

/// Resolves a node tree; `path` is the dotted path of `node` (empty for the root).
pub fn resolve(node: &Node, path: &str) -> Result<Item, ResolveError> {
    let err = |message: String| ResolveError {
        path: path.to_string(),
        mark: node.mark,
        message,
    };
    match &node.kind {
        NodeKind::Scalar {
            text,
            style,
            tagged,
        } => {
            let (tag, source) = match (tagged.as_deref(), style) {
                // PyYAML departs from the spec here: the non-specific tag `!` asks for implicit
                // resolution, quoted or not (`! "123"` is the integer 123).
                (Some("!"), _) => (implicit_tag(text), Some(text.clone())),
                (Some(t), _) => (tag_suffix(t).ok_or_else(|| err(unsupported_tag(t)))?, None),
                (None, Style::Plain) => (implicit_tag(text), Some(text.clone())),
                (None, _) => ("str", None),
            };
            let value = construct_scalar(tag, text).map_err(err)?;
            Ok(Item {
                value,
                mark: node.mark,
                source,
            })
        }
        NodeKind::Seq(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                out.push(resolve(item, &format!("{path}[{i}]"))?);
            }
            Ok(Item {
                value: Value::Seq(out),
                mark: node.mark,
                source: None,
            })
        }
        NodeKind::Map(entries) => {
            let entries = resolve_map(entries, path)?;
            Ok(Item {
                value: Value::Map(entries),
                mark: node.mark,
                source: None,
            })
        }
    }
}

fn tag_suffix(tag: &str) -> Option<&'static str> {
    let suffix = tag.strip_prefix(TAG)?;
    ["str", "int", "float", "bool", "null", "timestamp"]
        .into_iter()
        .find(|s| *s == suffix)
}

fn unsupported_tag(tag: &str) -> String {
    format!(
        "the tag `{tag}` is not supported here (the device's YAML reader only knows !!str, \
         !!int, !!float, !!bool, !!null and !!timestamp on scalars)"
    )
}

fn is_merge_key(node: &Node) -> bool {
    matches!(&node.kind, NodeKind::Scalar { text, style: Style::Plain, tagged }
        if text == "<<" && tagged.as_deref().is_none_or(|t| t == "tag:yaml.org,2002:merge"))
}

fn key_path(path: &str, key: &Item) -> String {
    let key = key.display();
    if path.is_empty() {
        key
    } else {
        format!("{path}.{key}")
    }
}

/// Builds a mapping like PyYAML: `<<` entries first (flatten_mapping), then the mapping's own
/// entries; a key seen again keeps its first position and takes the later value (dict update).
fn resolve_map(entries: &[(Node, Node)], path: &str) -> Result<Vec<(Item, Item)>, ResolveError> {
    let mut merged: Vec<(Item, Item)> = Vec::new();
    let mut own: Vec<(Item, Item)> = Vec::new();
    for (k, v) in entries {
        if is_merge_key(k) {
            let mpath = if path.is_empty() {
                "<<".to_string()
            } else {
                format!("{path}.<<")
            };
            let value = resolve(v, &mpath)?;
            match value.value {
                Value::Map(e) => merged.extend(e),
                Value::Seq(maps) => {
                    let mut parts = Vec::new();
                    for m in maps {
                        match m.value {
                            Value::Map(e) => parts.push(e),
                            other => {
                                return Err(ResolveError {
                                    path: mpath,
                                    mark: m.mark,
                                    message: format!(
                                        "a merge (`<<`) list must hold mappings, not {}",
                                        other.kind_name()
                                    ),
                                })
                            }
                        }
                    }
                    parts.into_iter().rev().for_each(|e| merged.extend(e));
                }
                other => {
                    return Err(ResolveError {
                        path: mpath,
                        mark: v.mark,
                        message: format!(
                            "a merge (`<<`) needs a mapping or a list of mappings, not {}",
                            other.kind_name()
                        ),
                    })
                }
            }
            continue;
        }
        let key = resolve(k, path)?;
        if matches!(key.value, Value::Seq(_) | Value::Map(_)) {
            return Err(ResolveError {
                path: path.to_string(),
                mark: k.mark,
                message: "a list or mapping cannot be a key (the device's YAML reader refuses it)"
                    .to_string(),
            });
        }
        if let Some((prev, _)) = own
            .iter()
            .find(|(p, _)| python_key_eq(&p.value, &key.value))
        {
            return Err(ResolveError {
                path: key_path(path, &key),
                mark: k.mark,
                message: format!(
                    "key `{}` is the same key as `{}` (line {}) once read as YAML 1.1; the \
                     device would keep only one of them",
                    key.display(),
                    prev.display(),
                    prev.mark.line
                ),
            });
        }
        let mut value = resolve(v, &key_path(path, &key))?;
        // The parser marks an empty value where the next token starts (often the next line);
        // the key is where a reader looks for it.
        if value.value == Value::Null && value.source.as_deref() == Some("") {
            value.mark = key.mark;
        }
        own.push((key, value));
    }
    let mut out: Vec<(Item, Item)> = Vec::with_capacity(merged.len() + own.len());
    for (k, v) in merged.into_iter().chain(own) {
        match out
            .iter_mut()
            .find(|(p, _)| python_key_eq(&p.value, &k.value))
        {
            Some(slot) => slot.1 = v,
            None => out.push((k, v)),
        }
    }
    Ok(out)
}

/// Python's `==` between hashable scalars: `True == 1 == 1.0`, strings only equal strings.
pub fn python_key_eq(a: &Value, b: &Value) -> bool {
    fn num(v: &Value) -> Option<f64> {
        match v {
            Value::Bool(b) => Some(f64::from(u8::from(*b))),
            // Exact enough for key comparison: i128 → f64 only loses precision past 2^53,
            // where the ints are compared exactly below anyway.
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Str(x), Value::Str(y)) => x == y,
        (Value::Timestamp(x), Value::Timestamp(y)) => x == y,
        (Value::BigInt(x), Value::BigInt(y)) => x == y,
        (Value::Int(x), Value::Int(y)) => x == y,
        _ => matches!((num(a), num(b)), (Some(x), Some(y)) if x == y),
    }
}
