//! PyYAML's `SafeConstructor` for scalars: the value a resolved tag and its text become, and
//! `Err` where PyYAML raises (which would make the device drop the whole file).

use std::sync::LazyLock;

use regex::Regex;

use super::yaml11::Value;

// The constructor's own pattern, with the parts it converts.
static TIMESTAMP_PARTS: LazyLock<Regex> = LazyLock::new(|| {
    super::yaml11::re(concat!(
        r"^([0-9][0-9][0-9][0-9])-([0-9][0-9]?)-([0-9][0-9]?)",
        r"(?:(?:[Tt]|[ \t]+)([0-9][0-9]?):([0-9][0-9]):([0-9][0-9])(?:\.([0-9]*))?",
        r"(?:[ \t]*(Z|([-+])([0-9][0-9]?)(?::([0-9][0-9]))?))?)?$"
    ))
});

pub fn construct_scalar(tag: &str, text: &str) -> Result<Value, String> {
    match tag {
        "str" => Ok(Value::Str(text.to_string())),
        "null" => Ok(Value::Null),
        "bool" => match text.to_lowercase().as_str() {
            "yes" | "true" | "on" => Ok(Value::Bool(true)),
            "no" | "false" | "off" => Ok(Value::Bool(false)),
            _ => Err(format!("`{text}` is not a YAML 1.1 boolean")),
        },
        "int" => construct_int(text).ok_or_else(|| {
            format!("`{text}` cannot be read as an integer by the device's YAML reader; quote it")
        }),
        "float" => construct_float(text).map(Value::Float).ok_or_else(|| {
            format!("`{text}` cannot be read as a float by the device's YAML reader; quote it")
        }),
        "timestamp" => check_timestamp(text).map(|()| Value::Timestamp(text.to_string())),
        "merge" => Err("`<<` (merge) is only allowed as a mapping key".to_string()),
        _ => Err(format!(
            "`{text}` unquoted makes the device's YAML reader fail; quote it: \"{text}\""
        )),
    }
}

/// PyYAML's `construct_yaml_int`: `None` where it raises.
fn construct_int(text: &str) -> Option<Value> {
    let cleaned: String = text.chars().filter(|c| *c != '_').collect();
    let (sign, digits) = match cleaned.as_bytes().first()? {
        b'-' => (-1i128, &cleaned[1..]),
        b'+' => (1, &cleaned[1..]),
        _ => (1, cleaned.as_str()),
    };
    let parsed = if digits == "0" {
        Ok(0)
    } else if let Some(bin) = digits.strip_prefix("0b") {
        parse_radix(bin, 2)
    } else if let Some(hex) = digits.strip_prefix("0x") {
        parse_radix(hex, 16)
    } else if digits.starts_with('0') {
        parse_radix(digits, 8)
    } else if digits.contains(':') {
        digits.split(':').try_fold(0i128, |total, part| {
            let part = parse_radix(part, 10)?;
            total
                .checked_mul(60)
                .and_then(|t| t.checked_add(part))
                .ok_or(Overflow::Big)
        })
    } else {
        parse_radix(digits, 10)
    };
    match parsed {
        Ok(v) => Some(Value::Int(sign * v)),
        // Valid digits but too large for i128: PyYAML has big ints; keep the text.
        Err(Overflow::Big) => Some(Value::BigInt(text.to_string())),
        Err(Overflow::Invalid) => None,
    }
}

enum Overflow {
    Big,
    Invalid,
}

fn parse_radix(digits: &str, radix: u32) -> Result<i128, Overflow> {
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(Overflow::Invalid);
    }
    i128::from_str_radix(digits, radix).map_err(|_| Overflow::Big)
}

/// PyYAML's `construct_yaml_float`, same operations in the same order.
pub fn construct_float(text: &str) -> Option<f64> {
    let cleaned: String = text
        .chars()
        .filter(|c| *c != '_')
        .collect::<String>()
        .to_lowercase();
    let (sign, body) = match cleaned.as_bytes().first()? {
        b'-' => (-1.0f64, &cleaned[1..]),
        b'+' => (1.0, &cleaned[1..]),
        _ => (1.0, cleaned.as_str()),
    };
    if body == ".inf" {
        return Some(sign * f64::INFINITY);
    }
    if body == ".nan" {
        return Some(f64::NAN);
    }
    if body.contains(':') {
        let mut value = 0.0f64;
        let mut base = 1.0f64;
        for part in body.rsplit(':') {
            value += python_float(part)? * base;
            base *= 60.0;
        }
        return Some(sign * value);
    }
    python_float(body).map(|v| sign * v)
}

/// Python's `float()` on an already lower-cased text: surrounding whitespace is allowed,
/// `inf`/`infinity`/`nan` are words, otherwise a decimal number with an optional exponent.
fn python_float(text: &str) -> Option<f64> {
    let t = text.trim();
    let unsigned = t.trim_start_matches(['+', '-']);
    let numeric = unsigned
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | '+' | '-'))
        && unsigned.chars().any(|c| c.is_ascii_digit());
    let word = matches!(unsigned, "inf" | "infinity" | "nan");
    if t.len() - unsigned.len() > 1 || !(numeric || word) {
        return None;
    }
    t.parse::<f64>().ok()
}

/// PyYAML's `construct_yaml_timestamp` raises on dates that do not exist.
fn check_timestamp(text: &str) -> Result<(), String> {
    let bad = |why: &str| {
        Err(format!(
            "`{text}` unquoted is read by YAML 1.1 as a date, and {why}: the device's YAML \
             reader would fail on it; quote it: \"{text}\""
        ))
    };
    let Some(c) = TIMESTAMP_PARTS.captures(text) else {
        return bad("it is not a valid timestamp");
    };
    let num = |i: usize| -> u32 {
        c.get(i)
            .and_then(|m| m.as_str().parse::<u32>().ok())
            .unwrap_or(0)
    };
    let (year, month, day) = (num(1), num(2), num(3));
    if year < 1 {
        return bad("year 0 does not exist");
    }
    if !(1..=12).contains(&month) {
        return bad("the month is not in 1..12");
    }
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if day < 1 || day > days {
        return bad("the day does not exist in that month");
    }
    if c.get(4).is_some() {
        if num(4) > 23 || num(5) > 59 || num(6) > 59 {
            return bad("the time of day is out of range");
        }
        // timezone(timedelta(hours, minutes)) needs strictly less than 24 hours.
        if c.get(9).is_some() && num(10) * 60 + num(11) >= 24 * 60 {
            return bad("the UTC offset is 24 hours or more");
        }
    }
    Ok(())
}
