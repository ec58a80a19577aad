//! Units: size and duration strings, parsed with the rules of Python's `humanfriendly` (which the original
//! tool used), so existing configs and cache policies keep their meaning:
//! sizes are decimal unless the unit says `iB` (`1G` = 10^9, `1GiB` = 2^30), fractions are
//! truncated, never rounded up; durations count a year as 52 weeks and have no months.

use std::time::Duration;

use crate::{Classify, ErrorClass};

const SIZE_EXPECTED: &str = "expected a number of bytes with an optional unit: B, K/KB/KiB, \
     M/MB/MiB, G/GB/GiB, T/TB/TiB, P/PB/PiB, E/EB/EiB (e.g. `8G`, `512MB`, `2.4GiB`)";
const DURATION_EXPECTED: &str = "expected a number with an optional unit: s, m (minutes), h, d, \
     w or y (52 weeks), or their long forms (e.g. `30d`, `4w`, `1.5h`); no unit means seconds";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("empty size; {SIZE_EXPECTED}")]
    Empty,
    #[error("`{input}`: sizes cannot be negative")]
    Negative { input: String },
    #[error("`{input}`: too large (more than 2^64 bytes)")]
    Overflow { input: String },
    #[error("`{input}`: unknown unit `{unit}`; {SIZE_EXPECTED}")]
    UnknownUnit { input: String, unit: String },
    #[error("`{input}`: not a size; {SIZE_EXPECTED}")]
    NotANumber { input: String },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration; {DURATION_EXPECTED}")]
    Empty,
    #[error("`{input}`: durations cannot be negative")]
    Negative { input: String },
    #[error("`{input}`: too long")]
    Overflow { input: String },
    #[error("`{input}`: unknown unit `{unit}`; {DURATION_EXPECTED}")]
    UnknownUnit { input: String, unit: String },
    #[error("`{input}`: not a duration; {DURATION_EXPECTED}")]
    NotANumber { input: String },
}

impl Classify for SizeError {
    fn class(&self) -> ErrorClass {
        ErrorClass::BadInput
    }
}

impl Classify for DurationError {
    fn class(&self) -> ErrorClass {
        ErrorClass::BadInput
    }
}

/// A non-negative decimal number split into its digits, so that `2.4 × 2^30` can be computed
/// exactly and truncated like humanfriendly does (floats would give off-by-one results).
struct Decimal {
    int: u128,
    frac: u128,
    /// 10^(number of fraction digits kept).
    frac_scale: u128,
}

enum NumError {
    Negative,
    Overflow,
    NotANumber,
}

/// Splits `s` into a number and the unit text after it (spaces between them allowed).
fn split_number(s: &str) -> Result<(Decimal, &str), NumError> {
    if s.starts_with('-') {
        return Err(NumError::Negative);
    }
    let end = s
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_digit() || *c == '.'))
        .map_or(s.len(), |(i, _)| i);
    let (number, unit) = s.split_at(end);
    let (int_part, frac_part) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    if frac_part.contains('.') || (int_part.is_empty() && frac_part.is_empty()) {
        return Err(NumError::NotANumber);
    }
    let mut int: u128 = 0;
    for d in int_part.bytes() {
        int = int
            .checked_mul(10)
            .and_then(|v| v.checked_add(u128::from(d - b'0')))
            .ok_or(NumError::Overflow)?;
    }
    // Digits past the 19th cannot change the truncated result by a whole byte for any unit up
    // to EiB (2^60 × 10^-19 < 1), and keeping them could overflow the multiplication below.
    let (mut frac, mut frac_scale) = (0u128, 1u128);
    for d in frac_part.bytes().take(19) {
        frac = frac * 10 + u128::from(d - b'0');
        frac_scale *= 10;
    }
    Ok((
        Decimal {
            int,
            frac,
            frac_scale,
        },
        unit.trim_start(),
    ))
}

/// `number × multiplier`, truncated; `None` on overflow of u128.
fn scale(n: &Decimal, multiplier: u128) -> Option<u128> {
    let whole = n.int.checked_mul(multiplier)?;
    let part = n.frac.checked_mul(multiplier)? / n.frac_scale;
    whole.checked_add(part)
}

fn size_multiplier(unit: &str) -> Option<u128> {
    let unit = unit.to_ascii_lowercase();
    let unit = unit.as_str();
    if matches!(unit, "" | "b" | "byte" | "bytes") {
        return Some(1);
    }
    let prefixes = ['k', 'm', 'g', 't', 'p', 'e'];
    let mut chars = unit.chars();
    let first = chars.next()?;
    let power = prefixes.iter().position(|p| *p == first)? as u32 + 1;
    match chars.as_str() {
        "" | "b" => Some(1000u128.pow(power)),
        "ib" => Some(1024u128.pow(power)),
        _ => None,
    }
}

/// Parses `1G`, `1 GB`, `2.4GiB`, `1234`… into bytes (see the module doc for the rules).
pub fn parse_size(s: &str) -> Result<u64, SizeError> {
    let input = s.trim();
    if input.is_empty() {
        return Err(SizeError::Empty);
    }
    let owned = || input.to_string();
    let (number, unit) = split_number(input).map_err(|e| match e {
        NumError::Negative => SizeError::Negative { input: owned() },
        NumError::Overflow => SizeError::Overflow { input: owned() },
        NumError::NotANumber => SizeError::NotANumber { input: owned() },
    })?;
    let multiplier = size_multiplier(unit).ok_or_else(|| SizeError::UnknownUnit {
        input: owned(),
        unit: unit.to_string(),
    })?;
    scale(&number, multiplier)
        .and_then(|v| u64::try_from(v).ok())
        .ok_or(SizeError::Overflow { input: owned() })
}

fn duration_seconds(unit: &str) -> Option<u128> {
    const MINUTE: u128 = 60;
    const HOUR: u128 = 60 * MINUTE;
    const DAY: u128 = 24 * HOUR;
    const WEEK: u128 = 7 * DAY;
    // Case-insensitive on purpose: `M` is minutes, there are no months (humanfriendly).
    Some(match unit.to_ascii_lowercase().as_str() {
        "" | "s" | "sec" | "secs" | "second" | "seconds" => 1,
        "m" | "min" | "mins" | "minute" | "minutes" => MINUTE,
        "h" | "hr" | "hrs" | "hour" | "hours" => HOUR,
        "d" | "day" | "days" => DAY,
        "w" | "week" | "weeks" => WEEK,
        "y" | "yr" | "yrs" | "year" | "years" => 52 * WEEK,
        _ => return None,
    })
}

/// Parses `30d`, `4w`, `1y`, `1.5h`, `90` (seconds)… into a [`Duration`].
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let input = s.trim();
    if input.is_empty() {
        return Err(DurationError::Empty);
    }
    let owned = || input.to_string();
    let (number, unit) = split_number(input).map_err(|e| match e {
        NumError::Negative => DurationError::Negative { input: owned() },
        NumError::Overflow => DurationError::Overflow { input: owned() },
        NumError::NotANumber => DurationError::NotANumber { input: owned() },
    })?;
    let seconds = duration_seconds(unit).ok_or_else(|| DurationError::UnknownUnit {
        input: owned(),
        unit: unit.to_string(),
    })?;
    let nanos = scale(&number, seconds * 1_000_000_000)
        .ok_or(DurationError::Overflow { input: owned() })?;
    let secs = u64::try_from(nanos / 1_000_000_000)
        .map_err(|_| DurationError::Overflow { input: owned() })?;
    // The remainder is below 10^9 so it always fits.
    Ok(Duration::new(secs, (nanos % 1_000_000_000) as u32))
}

/// Binary human form with two decimals, as the original printed sizes: `5.70MiB`, `123B`. For image,
/// partition and file sizes.
pub fn format_size(bytes: u64) -> String {
    match scaled(bytes, 1024.0, &["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]) {
        Some((value, unit)) => format!("{value:.2}{unit}"),
        None => format!("{bytes}B"),
    }
}

/// Decimal human form, as card packaging counts capacities (a "32 GB" card holds about `31.9 GB`). For
/// device capacities only, so a card reads as the number printed on it.
pub fn format_decimal(bytes: u64) -> String {
    match scaled(bytes, 1000.0, &["kB", "MB", "GB", "TB", "PB", "EB"]) {
        Some((value, unit)) => format!("{value:.1} {unit}"),
        None => format!("{bytes} B"),
    }
}

/// `bytes` in the largest of `units` (each `base` times the previous, the first being `base`) that keeps
/// the value at least 1; `None` below `base`.
fn scaled(bytes: u64, base: f64, units: &[&'static str]) -> Option<(f64, &'static str)> {
    let mut value = bytes as f64;
    if value < base {
        return None;
    }
    let mut unit = 0;
    value /= base;
    while value >= base && unit + 1 < units.len() {
        value /= base;
        unit += 1;
    }
    Some((value, units[unit]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_humanfriendly() {
        let cases: &[(&str, u64)] = &[
            ("1G", 1_000_000_000),
            ("1GB", 1_000_000_000),
            ("1GiB", 1 << 30),
            ("2.4GiB", 2_576_980_377),
            ("512GB", 512_000_000_000),
            ("8G", 8_000_000_000),
            ("0", 0),
            ("1234", 1234),
            ("1 GB", 1_000_000_000),
            ("1 gb", 1_000_000_000),
            ("1k", 1000),
            ("1K", 1000),
            ("1KB", 1000),
            ("1KiB", 1024),
            ("1kib", 1024),
            ("3M", 3_000_000),
            ("3MB", 3_000_000),
            ("3MiB", 3 << 20),
            ("2T", 2_000_000_000_000),
            ("1P", 1_000_000_000_000_000),
            ("1TiB", 1 << 40),
            ("10B", 10),
            ("10 bytes", 10),
            ("1.5K", 1500),
            ("0.5", 0),
            ("  42  ", 42),
            ("6EiB", 6 << 60),
            ("15EiB", 15 << 60),
        ];
        for (text, want) in cases {
            assert_eq!(parse_size(text), Ok(*want), "{text}");
        }
    }

    #[test]
    fn bad_sizes_say_what_was_expected() {
        for text in [
            "", "   ", "-1G", "banana", "1X", "1GiBs", "1.2.3G", ".", "G", "16EiB",
        ] {
            let err = parse_size(text).unwrap_err();
            let msg = err.to_string();
            assert_eq!(err.class(), ErrorClass::BadInput);
            match err {
                SizeError::Negative { .. } | SizeError::Overflow { .. } => {}
                _ => assert!(msg.contains("expected"), "{text}: {msg}"),
            }
        }
        assert!(matches!(
            parse_size("99999999999999999999999999999999999999999999"),
            Err(SizeError::Overflow { .. })
        ));
        assert!(matches!(
            parse_size("18446744073709551616"),
            Err(SizeError::Overflow { .. })
        ));
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
        assert!(matches!(parse_size("-5"), Err(SizeError::Negative { .. })));
        assert!(matches!(
            parse_size("5 parsecs"),
            Err(SizeError::UnknownUnit { unit, .. }) if unit == "parsecs"
        ));
    }

    #[test]
    fn durations_follow_humanfriendly() {
        let day = 86_400;
        let cases: &[(&str, u64)] = &[
            ("30d", 30 * day),
            ("4w", 28 * day),
            ("1y", 52 * 7 * day),
            ("2 years", 2 * 52 * 7 * day),
            ("1 year", 52 * 7 * day),
            ("10s", 10),
            ("1 second", 1),
            ("5 seconds", 5),
            ("5m", 300),
            ("5M", 300),
            ("1 minute", 60),
            ("3 minutes", 180),
            ("2h", 7200),
            ("1 hour", 3600),
            ("2 hours", 7200),
            ("1 day", day),
            ("3 days", 3 * day),
            ("1 week", 7 * day),
            ("2 weeks", 14 * day),
            ("0", 0),
            ("90", 90),
            ("1.5h", 5400),
        ];
        for (text, want) in cases {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_secs(*want)),
                "{text}"
            );
        }
        assert_eq!(parse_duration("0.5s"), Ok(Duration::from_millis(500)));
    }

    #[test]
    fn bad_durations() {
        for text in ["", "1mo", "-3d", "soon", "1.2.3d", "99999999999999999999y"] {
            let err = parse_duration(text).unwrap_err();
            assert_eq!(err.class(), ErrorClass::BadInput, "{text}");
        }
        assert!(matches!(
            parse_duration("2 months"),
            Err(DurationError::UnknownUnit { .. })
        ));
        assert!(parse_duration("x")
            .unwrap_err()
            .to_string()
            .contains("expected"));
    }

    #[test]
    fn formats_binary_sizes() {
        assert_eq!(format_size(5_980_160), "5.70MiB");
        assert_eq!(format_size(512 << 20), "512.00MiB");
        assert_eq!(format_size(1 << 30), "1.00GiB");
        assert_eq!(format_size(123), "123B");
        assert_eq!(format_size(0), "0B");
        assert_eq!(format_size(1024), "1.00KiB");
        assert_eq!(format_size(43_847_680), "41.82MiB");
        assert_eq!(format_size(u64::MAX), "16.00EiB");
    }

    #[test]
    fn binary_and_decimal_forms() {
        assert_eq!(format_size(123), "123B");
        assert_eq!(format_size(5_976_883), "5.70MiB");
        assert_eq!(format_size(1 << 30), "1.00GiB");
        assert_eq!(format_decimal(999), "999 B");
        assert_eq!(format_decimal(31_914_983_424), "31.9 GB");
        assert_eq!(format_decimal(1_500_000), "1.5 MB");
    }
}
