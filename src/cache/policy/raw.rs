//! Policy text → [`Policy`]: serde checks shapes (unknown keys refused), then values and the
//! child-fits-in-parent rule are checked here with the key path and line:column of each value.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use super::{Exceeding, Filter, Limits, Policy, PolicyError, Strategy, SubPolicy};
use crate::units::{parse_duration, parse_size};
use crate::yaml::node::{self, Mark};

/// A scalar as written. YAML gives `0` as an integer and `10GiB` as a string; both are text
/// here so sizes, durations and counts all go through one parser with one error message.
struct Text(String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size, a duration or a number")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

// The limit keys are repeated in each level because `deny_unknown_fields` does not work
// together with `flatten`.
#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping of cache policy keys (`max_size: 10GiB`…)"
)]
struct RawMain {
    enabled: Option<bool>,
    max_size: Option<Text>,
    max_age: Option<Text>,
    max_num: Option<Text>,
    eviction: Option<String>,
    check_after: Option<Text>,
    keep_identified_versions: Option<Text>,
    oci_images: Option<RawSub>,
    files: Option<RawSub>,
    built_images: Option<RawSub>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping (`enabled`, `max_size`, `filters`…)"
)]
struct RawSub {
    enabled: Option<bool>,
    max_size: Option<Text>,
    max_age: Option<Text>,
    max_num: Option<Text>,
    eviction: Option<String>,
    check_after: Option<Text>,
    keep_identified_versions: Option<Text>,
    filters: Option<Vec<RawFilter>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with at least `pattern`")]
struct RawFilter {
    pattern: String,
    ignore: Option<bool>,
    max_size: Option<Text>,
    max_age: Option<Text>,
    max_num: Option<Text>,
    eviction: Option<String>,
    check_after: Option<Text>,
    keep_identified_versions: Option<Text>,
}

struct RawLimits {
    max_size: Option<Text>,
    max_age: Option<Text>,
    max_num: Option<Text>,
    eviction: Option<String>,
    check_after: Option<Text>,
    keep_identified_versions: Option<Text>,
}

macro_rules! raw_limits {
    ($r:expr) => {
        RawLimits {
            max_size: $r.max_size,
            max_age: $r.max_age,
            max_num: $r.max_num,
            eviction: $r.eviction,
            check_after: $r.check_after,
            keep_identified_versions: $r.keep_identified_versions,
        }
    };
}

/// The tightest stated limit above a level: value, key path, and the text as written.
#[derive(Clone, Default)]
struct Bounds {
    size: Option<(u64, String, String)>,
    age: Option<(Duration, String, String)>,
    num: Option<(u64, String, String)>,
}

struct Ctx<'a> {
    origin: &'a str,
    marks: HashMap<String, Mark>,
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

impl Ctx<'_> {
    fn invalid(&self, key_path: &str, message: impl Into<String>) -> PolicyError {
        PolicyError::Invalid {
            origin: self.origin.to_string(),
            mark: self.marks.get(key_path).copied(),
            key_path: key_path.to_string(),
            message: message.into(),
        }
    }

    /// Checks one level's limits, and that they fit in `parent`; returns the bounds for the
    /// level's children.
    fn limits(
        &self,
        prefix: &str,
        raw: RawLimits,
        parent: &Bounds,
    ) -> Result<(Limits, Bounds), PolicyError> {
        let path = |key| join(prefix, key);
        let size = match raw.max_size {
            Some(Text(t)) => match parse_size(&t) {
                Ok(0) => None,
                Ok(n) => Some((n, path("max_size"), t.trim().to_string())),
                Err(e) => return Err(self.invalid(&path("max_size"), e.to_string())),
            },
            None => None,
        };
        let age = self.duration(&path("max_age"), raw.max_age)?;
        let age = age.filter(|(d, _)| !d.is_zero());
        let age = age.map(|(d, t)| (d, path("max_age"), t));
        let num = self
            .count(&path("max_num"), raw.max_num)?
            .filter(|n| *n != 0)
            .map(|n| (n, path("max_num"), n.to_string()));
        let eviction = match raw.eviction {
            None => Strategy::default(),
            Some(name) => Strategy::from_name(name.trim()).ok_or_else(|| {
                let hint = did_you_mean(name.trim(), &Strategy::NAMES)
                    .map(|s| format!("did you mean `{s}`? "))
                    .unwrap_or_default();
                self.invalid(
                    &path("eviction"),
                    format!(
                        "unknown strategy `{name}`; {hint}expected one of {}",
                        Strategy::NAMES.join(", ")
                    ),
                )
            })?,
        };
        let check_after = self.duration(&path("check_after"), raw.check_after)?;
        let kiv_path = path("keep_identified_versions");
        let keep = match self.count(&kiv_path, raw.keep_identified_versions)? {
            None | Some(0) => None,
            Some(n) => Some(u32::try_from(n).map_err(|_| {
                self.invalid(
                    &kiv_path,
                    format!("{n} is too large (at most {})", u32::MAX),
                )
            })?),
        };
        self.fits(&size, &parent.size)?;
        self.fits(&age, &parent.age)?;
        self.fits(&num, &parent.num)?;
        let limits = Limits {
            max_size: size.as_ref().map(|s| s.0),
            max_age: age.as_ref().map(|a| a.0),
            max_num: num.as_ref().map(|n| n.0),
            eviction,
            check_after: check_after.map(|c| c.0),
            keep_identified_versions: keep,
        };
        let bounds = Bounds {
            size: size.or_else(|| parent.size.clone()),
            age: age.or_else(|| parent.age.clone()),
            num: num.or_else(|| parent.num.clone()),
        };
        Ok((limits, bounds))
    }

    fn fits<T: PartialOrd>(
        &self,
        child: &Option<(T, String, String)>,
        parent: &Option<(T, String, String)>,
    ) -> Result<(), PolicyError> {
        match (child, parent) {
            (Some((c, cpath, ctext)), Some((p, ppath, ptext))) if c > p => {
                Err(PolicyError::Exceeds {
                    origin: self.origin.to_string(),
                    mark: self.marks.get(cpath).copied(),
                    detail: Box::new(Exceeding {
                        child_path: cpath.clone(),
                        child_value: ctext.clone(),
                        parent_path: ppath.clone(),
                        parent_value: ptext.clone(),
                    }),
                })
            }
            _ => Ok(()),
        }
    }

    fn duration(
        &self,
        path: &str,
        raw: Option<Text>,
    ) -> Result<Option<(Duration, String)>, PolicyError> {
        match raw {
            None => Ok(None),
            Some(Text(t)) => parse_duration(&t)
                .map(|d| Some((d, t.trim().to_string())))
                .map_err(|e| self.invalid(path, e.to_string())),
        }
    }

    fn count(&self, path: &str, raw: Option<Text>) -> Result<Option<u64>, PolicyError> {
        match raw {
            None => Ok(None),
            Some(Text(t)) => t.trim().parse::<u64>().map(Some).map_err(|_| {
                self.invalid(
                    path,
                    format!("`{t}`: expected a whole number of entries (`0` means unlimited)"),
                )
            }),
        }
    }

    fn sub(&self, key: &str, raw: Option<RawSub>, main: &Bounds) -> Result<SubPolicy, PolicyError> {
        let Some(raw) = raw else {
            return Ok(SubPolicy::default());
        };
        let enabled = raw.enabled.unwrap_or(true);
        let raw_filters = raw.filters.unwrap_or_default();
        let (limits, bounds) = self.limits(key, raw_limits!(raw), main)?;
        let mut filters = Vec::with_capacity(raw_filters.len());
        for (i, f) in raw_filters.into_iter().enumerate() {
            let prefix = format!("{key}.filters[{i}]");
            let pattern = regex::RegexBuilder::new(&f.pattern)
                .case_insensitive(true)
                .build()
                .map_err(|e| {
                    self.invalid(
                        &join(&prefix, "pattern"),
                        format!("not a valid regular expression: {e}"),
                    )
                })?;
            let source = f.pattern.clone();
            let ignore = f.ignore.unwrap_or(false);
            let (limits, _) = self.limits(&prefix, raw_limits!(f), &bounds)?;
            filters.push(Filter {
                pattern,
                source,
                ignore,
                limits,
            });
        }
        Ok(SubPolicy {
            enabled,
            limits,
            filters,
        })
    }
}

/// The closest known name, if it is close enough to be a likely typo (a transposition like
/// `lur` is one edit; Jaro-Winkler alone misses those in short words).
pub(super) fn did_you_mean<'a>(unknown: &str, known: &[&'a str]) -> Option<&'a str> {
    let max_edits = if unknown.chars().count() <= 4 { 1 } else { 2 };
    known
        .iter()
        .map(|k| (strsim::osa_distance(unknown, k), *k))
        .filter(|(d, k)| *d <= max_edits || strsim::jaro_winkler(unknown, k) >= 0.9)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Parses and validates a policy; see [`Policy::parse`].
pub fn parse_policy(text: &str, origin: &str) -> Result<Policy, PolicyError> {
    // A first pass for YAML syntax alone, so a syntax error is not reported as a schema one.
    let value: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(text).map_err(|e| PolicyError::Syntax {
            origin: origin.to_string(),
            mark: location(&e),
            message: without_location(&e),
        })?;
    let ctx = Ctx {
        origin,
        // Positions for value errors; a tree our reader refuses just loses them.
        marks: node::parse(text).map(|n| n.marks()).unwrap_or_default(),
    };
    // An empty file is a policy with nothing stated: enabled, unlimited.
    let raw = if value.is_null() {
        None
    } else {
        let de = serde_yaml_ng::Deserializer::from_str(text);
        let raw: RawMain =
            serde_path_to_error::deserialize(de).map_err(|e| schema_error(&ctx, &e))?;
        Some(raw)
    };
    let Some(raw) = raw else {
        return Ok(Policy {
            enabled: true,
            limits: Limits::default(),
            oci_images: SubPolicy::default(),
            files: SubPolicy::default(),
            built_images: SubPolicy::default(),
        });
    };
    let (oci, files, built) = (raw.oci_images, raw.files, raw.built_images);
    let enabled = raw.enabled.unwrap_or(true);
    let (limits, bounds) = ctx.limits("", raw_limits!(raw), &Bounds::default())?;
    Ok(Policy {
        enabled,
        limits,
        oci_images: ctx.sub("oci_images", oci, &bounds)?,
        files: ctx.sub("files", files, &bounds)?,
        built_images: ctx.sub("built_images", built, &bounds)?,
    })
}

fn location(err: &serde_yaml_ng::Error) -> Option<Mark> {
    err.location().map(|l| Mark {
        line: l.line(),
        col: l.column(),
    })
}

/// serde_yaml_ng's message without its trailing position, which goes in front instead.
fn without_location(err: &serde_yaml_ng::Error) -> String {
    let message = err.to_string();
    match err.location() {
        Some(l) => message.replacen(
            &format!(" at line {} column {}", l.line(), l.column()),
            "",
            1,
        ),
        None => message,
    }
}

fn key_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => {}
        }
    }
    out
}

fn schema_error(ctx: &Ctx, err: &serde_path_to_error::Error<serde_yaml_ng::Error>) -> PolicyError {
    let mut path = key_path(err.path());
    let message = without_location(err.inner());
    let message = without_yaml_path(&message, &path);
    let text = if let Some(key) = quoted_after(message, "unknown field `") {
        // serde lists the accepted keys after "expected"; the wording is serde's own.
        let known: Vec<&str> = message
            .split_once(", expected")
            .map(|(_, list)| list.split('`').skip(1).step_by(2).collect())
            .unwrap_or_default();
        // Newer serde_path_to_error put the refused key in the path, older did not.
        if !(path == key || path.ends_with(&format!(".{key}"))) {
            path = join(&path, key);
        }
        match did_you_mean(key, &known) {
            Some(k) => format!("unknown key `{key}`; did you mean `{k}`?"),
            None => format!("unknown key `{key}`; expected one of {}", known.join(", ")),
        }
    } else if let Some(key) = quoted_after(message, "missing field `") {
        path = join(&path, key);
        "required key is missing".to_string()
    } else {
        message.replace("invalid type: unit value", "empty value")
    };
    let mark = location(err.inner()).or_else(|| ctx.marks.get(&path).copied());
    PolicyError::Invalid {
        origin: ctx.origin.to_string(),
        mark,
        key_path: if path.is_empty() {
            "(top level)".to_string()
        } else {
            path
        },
        message: text,
    }
}

/// serde_yaml_ng puts its own path (`files.filters[0]: `) in front of the message; ours is
/// already in front of the whole error.
fn without_yaml_path<'m>(message: &'m str, path: &str) -> &'m str {
    match message.split_once(": ") {
        Some((prefix, rest))
            if !prefix.contains(' ')
                && (path == prefix
                    || path.starts_with(&format!("{prefix}."))
                    || path.starts_with(&format!("{prefix}["))) =>
        {
            rest
        }
        _ => message,
    }
}

/// Text between the first pair of backticks after `prefix`.
fn quoted_after<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    message.strip_prefix(prefix)?.split('`').next()
}
