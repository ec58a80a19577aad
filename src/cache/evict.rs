//! Which cache entries must go so that every limit of a [`Policy`] holds. Pure: the caller
//! passes the entries and the clock (`now`), and deletes what the [`Verdict`] lists.
//!
//! Semantics:
//! - Every entry is classified once with [`Policy::classify`]. An entry that is not cacheable
//!   (cache disabled, its sub-policy disabled, or its first matching filter says `ignore`) is
//!   evicted, whatever the limits.
//! - Levels are applied innermost first: each filter over the entries it owns (first matching
//!   filter), then each sub-policy (`oci_images`, `files`) over all its entries still kept —
//!   filter-owned ones included, each counted once — then the main level over everything still
//!   kept. An entry evicted by an inner level is not seen by outer levels.
//! - At each level, in this order:
//!   1. `max_age`: entries added more than `max_age` before `now` go (an entry added "in the
//!      future", after a clock change, has age zero);
//!   2. `keep_identified_versions` N: entries are grouped by identity — for OCI images the
//!      key without its `:tag` and `@digest`, for files the URL's file name with a trailing
//!      `_YYYY-MM` before the extension removed (`wikipedia_fr_all_maxi_2024-05.zim` →
//!      `wikipedia_fr_all_maxi.zim`) — and only the N most recently added of each group stay;
//!   3. `max_num` and `max_size`: entries are evicted one by one in the level's strategy order
//!      ([`eviction_order`]) and eviction stops as soon as both hold. Nothing is evicted that
//!      this greedy order did not require.
//! - Ties in every order are broken by id, so a plan is deterministic. Ids are expected to be
//!   unique.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use super::policy::{Kind, Limits, Placement, Policy, Strategy};
use crate::units::format_size;

/// What the eviction planner knows of a cache entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: String,
    pub kind: Kind,
    /// URL for files, `registry/repo/name:tag[@digest]` for OCI images.
    pub key: String,
    pub size: u64,
    pub added: SystemTime,
    pub last_used: SystemTime,
    pub uses: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Ids to evict, in the order the decisions were taken.
    pub evict: Vec<String>,
    /// Id → why, e.g. `files: max_num 3 (lru)`.
    pub reasons: HashMap<String, String>,
}

/// A level of the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Level {
    Main,
    Sub(Kind),
    /// A sub-policy's filter, by index.
    Filter(Kind, usize),
}

impl Level {
    /// As a key path prefix: `cache`, `files`, `oci_images.filters[2]`.
    pub fn label(self) -> String {
        match self {
            Level::Main => "cache".to_string(),
            Level::Sub(kind) => kind.key().to_string(),
            Level::Filter(kind, i) => format!("{}.filters[{i}]", kind.key()),
        }
    }
}

/// Why an entry is evicted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cause {
    /// The cache or the sub-policy is disabled.
    Disabled,
    /// Its filter says `ignore: true`.
    Ignored,
    MaxAge,
    KeepVersions,
    MaxNum,
    MaxSize,
}

/// One eviction decision: `index` into the entries given to [`plan_steps`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Eviction {
    pub index: usize,
    pub level: Level,
    pub cause: Cause,
}

/// Which entries must go for every limit of `policy` to hold at time `now` (see the module doc).
pub fn plan(policy: &Policy, entries: &[Entry], now: SystemTime) -> Verdict {
    let mut verdict = Verdict::default();
    for step in plan_steps(policy, entries, now) {
        let entry = &entries[step.index];
        let reason = reason(policy, entry, step);
        verdict.evict.push(entry.id.clone());
        verdict.reasons.insert(entry.id.clone(), reason);
    }
    verdict
}

/// The decisions behind [`plan`], in the order they were taken, with level and cause.
pub fn plan_steps(policy: &Policy, entries: &[Entry], now: SystemTime) -> Vec<Eviction> {
    let placements: Vec<Placement> = entries
        .iter()
        .map(|e| policy.classify(e.kind, &e.key))
        .collect();
    let mut run = Run {
        entries,
        placements: &placements,
        now,
        kept: vec![true; entries.len()],
        out: Vec::new(),
    };
    for (index, p) in placements.iter().enumerate() {
        if p.cacheable {
            continue;
        }
        let (level, cause) = if !policy.enabled {
            (Level::Main, Cause::Disabled)
        } else if !policy.sub(p.kind).enabled {
            (Level::Sub(p.kind), Cause::Disabled)
        } else {
            let level = p
                .filter
                .map_or(Level::Sub(p.kind), |f| Level::Filter(p.kind, f));
            (level, Cause::Ignored)
        };
        run.evict(index, level, cause);
    }
    for kind in Kind::ALL {
        let sub = policy.sub(kind);
        for (f, filter) in sub.filters.iter().enumerate() {
            run.level(Level::Filter(kind, f), &filter.limits, |p| {
                p.kind == kind && p.filter == Some(f)
            });
        }
        run.level(Level::Sub(kind), &sub.limits, |p| p.kind == kind);
    }
    run.level(Level::Main, &policy.limits, |_| true);
    run.out
}

/// `Less` when `a` is to be evicted before `b` under `strategy`; ties broken by id.
pub fn eviction_order(strategy: Strategy, a: &Entry, b: &Entry) -> Ordering {
    let primary = match strategy {
        Strategy::Oldest => a.added.cmp(&b.added),
        Strategy::Newest => b.added.cmp(&a.added),
        Strategy::Largest => b.size.cmp(&a.size),
        Strategy::Smallest => a.size.cmp(&b.size),
        Strategy::Lru => a.last_used.cmp(&b.last_used),
    };
    primary.then_with(|| a.id.cmp(&b.id))
}

/// What makes two entries versions of the same thing (see the module doc).
pub fn identity(kind: Kind, key: &str) -> String {
    match kind {
        Kind::OciImage => {
            let name = key.split_once('@').map_or(key, |(name, _)| name);
            // The tag is after the last `:` of the last path segment; a `:` before the last
            // `/` is a registry port.
            let segment = name.rfind('/').map_or(0, |i| i + 1);
            match name[segment..].rfind(':') {
                Some(colon) => name[..segment + colon].to_string(),
                None => name.to_string(),
            }
        }
        // Builds of one config (by name) are versions of each other.
        Kind::BuiltImage => key.split('|').next().unwrap_or(key).to_string(),
        Kind::File => {
            let path = key.split(['?', '#']).next().unwrap_or(key);
            let name = path.rsplit('/').next().unwrap_or(path);
            without_month(name)
        }
    }
}

/// `name_2024-05.zim` → `name.zim`; other names unchanged.
fn without_month(name: &str) -> String {
    let (stem, ext) = match name.rfind('.') {
        Some(dot) if dot > 0 => name.split_at(dot),
        _ => (name, ""),
    };
    let b = stem.as_bytes();
    let is_month = b.len() > 8 && {
        let t = &b[b.len() - 8..];
        t[0] == b'_'
            && t[1..5].iter().all(u8::is_ascii_digit)
            && t[5] == b'-'
            && t[6..8].iter().all(u8::is_ascii_digit)
    };
    if is_month {
        // The cut is just before an ASCII `_`, so it is a char boundary.
        format!("{}{ext}", &stem[..stem.len() - 8])
    } else {
        name.to_string()
    }
}

struct Run<'a> {
    entries: &'a [Entry],
    placements: &'a [Placement],
    now: SystemTime,
    kept: Vec<bool>,
    out: Vec<Eviction>,
}

impl Run<'_> {
    fn evict(&mut self, index: usize, level: Level, cause: Cause) {
        self.kept[index] = false;
        self.out.push(Eviction {
            index,
            level,
            cause,
        });
    }

    fn scope(&self, owns: &impl Fn(&Placement) -> bool) -> Vec<usize> {
        (0..self.entries.len())
            .filter(|&i| self.kept[i] && owns(&self.placements[i]))
            .collect()
    }

    fn level(&mut self, level: Level, limits: &Limits, owns: impl Fn(&Placement) -> bool) {
        if let Some(max) = limits.max_age {
            for i in self.scope(&owns) {
                let age = self
                    .now
                    .duration_since(self.entries[i].added)
                    .unwrap_or(Duration::ZERO);
                if age > max {
                    self.evict(i, level, Cause::MaxAge);
                }
            }
        }
        if let Some(keep) = limits.keep_identified_versions {
            let mut groups: BTreeMap<(Kind, String), Vec<usize>> = BTreeMap::new();
            for i in self.scope(&owns) {
                let e = &self.entries[i];
                groups
                    .entry((e.kind, identity(e.kind, &e.key)))
                    .or_default()
                    .push(i);
            }
            for mut group in groups.into_values() {
                // Newest first, so the first `keep` stay.
                group.sort_by(|&a, &b| {
                    eviction_order(Strategy::Newest, &self.entries[a], &self.entries[b])
                });
                for i in group.into_iter().skip(keep as usize) {
                    self.evict(i, level, Cause::KeepVersions);
                }
            }
        }
        if limits.max_num.is_none() && limits.max_size.is_none() {
            return;
        }
        let mut scope = self.scope(&owns);
        scope.sort_by(|&a, &b| eviction_order(limits.eviction, &self.entries[a], &self.entries[b]));
        let mut count = scope.len() as u64;
        // u128: a sum of u64 sizes cannot overflow it.
        let mut total: u128 = scope
            .iter()
            .map(|&i| u128::from(self.entries[i].size))
            .sum();
        for i in scope {
            let cause = if limits.max_num.is_some_and(|m| count > m) {
                Cause::MaxNum
            } else if limits.max_size.is_some_and(|m| total > u128::from(m)) {
                Cause::MaxSize
            } else {
                break;
            };
            self.evict(i, level, cause);
            count -= 1;
            total -= u128::from(self.entries[i].size);
        }
    }
}

fn limits_of(policy: &Policy, level: Level) -> &Limits {
    match level {
        Level::Main => &policy.limits,
        Level::Sub(kind) => &policy.sub(kind).limits,
        Level::Filter(kind, f) => policy
            .sub(kind)
            .filters
            .get(f)
            .map_or(&policy.sub(kind).limits, |filter| &filter.limits),
    }
}

fn reason(policy: &Policy, entry: &Entry, step: Eviction) -> String {
    let label = step.level.label();
    let limits = limits_of(policy, step.level);
    let unlimited = || "unlimited".to_string();
    match step.cause {
        Cause::Disabled => format!("{label}: disabled"),
        Cause::Ignored => match step.level {
            Level::Filter(kind, f) => {
                let pattern = policy.sub(kind).filters.get(f).map(|f| f.source.as_str());
                format!("{label} (`{}`): ignore", pattern.unwrap_or(""))
            }
            _ => format!("{label}: ignore"),
        },
        Cause::MaxAge => {
            let max = limits.max_age.map_or_else(unlimited, format_duration);
            format!("{label}: max_age {max}")
        }
        Cause::KeepVersions => format!(
            "{label}: keep_identified_versions {} ({})",
            limits.keep_identified_versions.unwrap_or(0),
            identity(entry.kind, &entry.key)
        ),
        Cause::MaxNum => format!(
            "{label}: max_num {} ({})",
            limits.max_num.map_or_else(unlimited, |n| n.to_string()),
            limits.eviction
        ),
        Cause::MaxSize => format!(
            "{label}: max_size {} ({})",
            limits.max_size.map_or_else(unlimited, format_size),
            limits.eviction
        ),
    }
}

/// `30d`, `12h`, `90s`: the largest unit that divides the duration exactly.
fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    for (unit, secs) in [("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60)] {
        if s > 0 && s % secs == 0 {
            return format!("{}{unit}", s / secs);
        }
    }
    format!("{s}s")
}

#[cfg(test)]
mod prop;
#[cfg(test)]
mod tests;
