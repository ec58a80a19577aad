//! Writes a resolved tree back as block-style YAML that PyYAML (YAML 1.1) loads to the same
//! values: every string double-quoted (so `yes`, `80:80`, `0755` stay strings), every other
//! scalar in a canonical plain form the YAML 1.1 resolver maps back to the same type and value.

use std::fmt::Write as _;

use super::yaml11::{Item, Value};

/// PyYAML only looks 1024 characters ahead for the `:` of an implicit key; longer keys need the
/// explicit `? key` form. Stay well below that limit.
const MAX_IMPLICIT_KEY: usize = 1000;

pub fn to_yaml(root: &Item) -> String {
    let mut out = String::from("# written by image-creator\n");
    match &root.value {
        Value::Map(entries) if !entries.is_empty() => emit_map(entries, 0, &mut out),
        Value::Seq(items) if !items.is_empty() => emit_seq(items, 0, &mut out),
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
    out
}

fn emit_map(entries: &[(Item, Item)], indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    for (key, value) in entries {
        let key = scalar(&key.value);
        if key.chars().count() > MAX_IMPLICIT_KEY {
            let _ = write!(out, "{pad}? {key}\n{pad}:");
        } else {
            let _ = write!(out, "{pad}{key}:");
        }
        match &value.value {
            Value::Map(e) if !e.is_empty() => {
                out.push('\n');
                emit_map(e, indent + 2, out);
            }
            Value::Seq(s) if !s.is_empty() => {
                out.push('\n');
                emit_seq(s, indent + 2, out);
            }
            other => {
                out.push(' ');
                out.push_str(&scalar(other));
                out.push('\n');
            }
        }
    }
}

fn emit_seq(items: &[Item], indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    for item in items {
        // Nested collections go on the dash line (compact form): render them one level deeper,
        // then swap their first indentation for the dash.
        let mut nested = String::new();
        match &item.value {
            Value::Map(e) if !e.is_empty() => emit_map(e, indent + 2, &mut nested),
            Value::Seq(s) if !s.is_empty() => emit_seq(s, indent + 2, &mut nested),
            other => {
                let _ = writeln!(out, "{pad}- {}", scalar(other));
                continue;
            }
        }
        let _ = write!(out, "{pad}- {}", &nested[indent + 2..]);
    }
}

/// A scalar (or an empty collection) in flow form.
fn scalar(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        // Beyond i128 we never computed the value: let PyYAML's int constructor read the text.
        Value::BigInt(text) => format!("!!int {}", quote(text)),
        Value::Float(f) => float(*f),
        // The original text resolves to the same date; a tab cannot survive in a plain scalar.
        Value::Timestamp(text) if text.contains('\t') => format!("!!timestamp {}", quote(text)),
        Value::Timestamp(text) => text.clone(),
        Value::Str(s) => quote(s),
        Value::Seq(_) => "[]".to_string(),
        Value::Map(_) => "{}".to_string(),
    }
}

/// Shortest text that reads back as the same f64, in a shape PyYAML's float pattern accepts:
/// it needs a dot in the mantissa and a sign in the exponent (`1e300` would be a string).
pub fn float(f: f64) -> String {
    if f.is_nan() {
        return ".nan".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { ".inf" } else { "-.inf" }.to_string();
    }
    // Debug is the shortest round-trip form: `1.0`, `0.1`, `1e300`, `1.5e-7`.
    let text = format!("{f:?}");
    match text.split_once('e') {
        Some((mantissa, exp)) => {
            let dot = if mantissa.contains('.') { "" } else { ".0" };
            let sign = if exp.starts_with('-') { "" } else { "+" };
            format!("{mantissa}{dot}e{sign}{exp}")
        }
        None if text.contains('.') => text,
        None => format!("{text}.0"),
    }
}

/// A double-quoted YAML string. Characters the YAML reader refuses unescaped or would treat as
/// line breaks are escaped; everything else (UTF-8 included) is kept as is.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            c if needs_escape(c) => {
                let n = u32::from(c);
                let _ = match n {
                    0..=0xFF => write!(out, "\\x{n:02X}"),
                    0x100..=0xFFFF => write!(out, "\\u{n:04X}"),
                    _ => write!(out, "\\U{n:08X}"),
                };
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// PyYAML's printable set is `\t \n \r`, 0x20–0x7E, 0x85, 0xA0–0xD7FF, 0xE000–0xFFFD and the
/// astral planes; NEL, LS, PS are line breaks and the BOM is stripped, so those are escaped too.
fn needs_escape(c: char) -> bool {
    let n = u32::from(c);
    n < 0x20
        || (0x7F..=0x9F).contains(&n)
        || matches!(n, 0x2028 | 0x2029 | 0xFEFF | 0xFFFE | 0xFFFF)
}
