//! Download cache: plain files plus an index file (no xattrs, FAT-safe names) so a cache can live on
//! any USB disk and be carried to an offline machine; a policy (`policy.yaml`, seed format) bounds it.
//!
//! - [`store`]: data files, `index.json`, locking, atomic inserts (`kill -9` safe);
//! - [`policy`]: `policy.yaml` parsing and validation; [`evict`]: which entries must go (pure);
//! - [`Cache`]: the two together, as a build or the `cache` subcommands use them.

pub mod evict;
pub mod index;
pub mod lock;
mod marker;
pub mod policy;
pub mod store;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use index::{EntryKind, Freshness, IndexEntry};
pub use policy::{Kind, Placement, Policy, PolicyError};
pub use store::{CacheError, Insert, Store};

use crate::units::format_size;

pub struct Cache {
    store: Store,
    policy: Policy,
}

pub fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn time_of(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

impl Cache {
    /// Opens the cache at `dir`. Read-only (`--check`, `show`): nothing is written, not even the default policy.
    pub fn open(dir: &Path, read_only: bool) -> Result<Cache, CacheError> {
        let store = if read_only {
            Store::open_read_only(dir)?
        } else {
            Store::open(dir)?
        };
        let policy =
            Policy::load_or_init(dir, read_only).map_err(|e| CacheError::Policy(Box::new(e)))?;
        Ok(Cache { store, policy })
    }

    /// Opens a cache that must already exist (`cache show|verify|apply`).
    pub fn open_existing(dir: &Path, read_only: bool) -> Result<Cache, CacheError> {
        if !dir.is_dir() {
            return Err(CacheError::NoCache {
                dir: dir.to_path_buf(),
            });
        }
        Cache::open(dir, read_only)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn dir(&self) -> &Path {
        self.store.dir()
    }

    /// Whether entries of this kind and key may be cached at all (policy `enabled`, `ignore` filters).
    pub fn cacheable(&self, kind: Kind, key: &str) -> bool {
        self.policy.classify(kind, key).cacheable
    }

    /// A usable entry for `key`, if the policy allows caching it.
    pub fn lookup(&self, kind: Kind, key: &str) -> Result<Option<IndexEntry>, CacheError> {
        if !self.cacheable(kind, key) {
            return Ok(None);
        }
        self.store.lookup(key)
    }

    /// `check_after` of the level owning `key` (filter, else sub-policy, else main); `None` = check every time.
    pub fn check_after(&self, kind: Kind, key: &str) -> Option<Duration> {
        let placement = self.policy.classify(kind, key);
        let sub = self.policy.sub(kind);
        placement
            .filter
            .and_then(|i| sub.filters.get(i))
            .and_then(|f| f.limits.check_after)
            .or(sub.limits.check_after)
            .or(self.policy.limits.check_after)
    }

    /// True when the entry was checked against its source recently enough to skip asking again.
    pub fn recently_checked(&self, entry: &IndexEntry, kind: Kind, now: SystemTime) -> bool {
        match self.check_after(kind, &entry.key) {
            Some(after) => unix(now).saturating_sub(entry.checked) < after.as_secs(),
            None => false,
        }
    }

    fn evict_entries(&self) -> Result<Vec<(IndexEntry, evict::Entry)>, CacheError> {
        Ok(self
            .store
            .entries()?
            .into_iter()
            .map(|e| {
                let kind = Kind::of(e.kind);
                let ev = evict::Entry {
                    id: e.id.clone(),
                    kind,
                    key: e.key.clone(),
                    size: e.size,
                    added: time_of(e.added),
                    last_used: time_of(e.last_used),
                    uses: e.uses,
                };
                (e, ev)
            })
            .collect())
    }

    /// What the policy would evict now, with reasons (nothing is removed).
    pub fn would_evict(&self, now: SystemTime) -> Result<evict::Verdict, CacheError> {
        let entries: Vec<evict::Entry> =
            self.evict_entries()?.into_iter().map(|(_, e)| e).collect();
        Ok(evict::plan(&self.policy, &entries, now))
    }

    /// Applies the policy: removes what it says must go. Returns the removed entries with their reason.
    pub fn apply(&self, now: SystemTime) -> Result<Vec<(IndexEntry, String)>, CacheError> {
        let verdict = self.would_evict(now)?;
        if verdict.evict.is_empty() {
            return Ok(Vec::new());
        }
        let all = self.store.entries()?;
        self.store.remove(&verdict.evict)?;
        Ok(all
            .into_iter()
            .filter(|e| verdict.evict.contains(&e.id))
            .map(|e| {
                let why = verdict.reasons.get(&e.id).cloned().unwrap_or_default();
                (e, why)
            })
            .collect())
    }

    /// Re-hashes every entry; corrupt ones are removed. Returns (kept, removed keys).
    pub fn verify_all(&self) -> Result<(usize, Vec<String>), CacheError> {
        let mut kept = 0;
        // Entries whose file had the wrong size were dropped when the cache was opened: removed too.
        let mut removed = self.store.dropped_at_open().to_vec();
        for e in self.store.entries()? {
            if self.store.verify(&e)? {
                kept += 1;
            } else {
                removed.push(e.key);
            }
        }
        Ok((kept, removed))
    }

    /// The `show` table: totals, then one line per entry; `*` marks what the policy would evict.
    pub fn table(&self, now: SystemTime) -> Result<String, CacheError> {
        let entries = self.store.entries()?;
        let verdict = self.would_evict(now)?;
        let total: u64 = entries.iter().map(|e| e.size).sum();
        let doomed: u64 = entries
            .iter()
            .filter(|e| verdict.evict.contains(&e.id))
            .map(|e| e.size)
            .sum();
        let mut out = format!(
            "cache {}: {} entries, {} ({} would be evicted by the policy: {})\n",
            self.dir().display(),
            entries.len(),
            format_size(total),
            verdict.evict.len(),
            format_size(doomed)
        );
        out.push_str(&format!(
            "{:1} {:>10}  {:16}  {:>5}  {:16}  {}\n",
            "", "size", "added", "uses", "last used", "source"
        ));
        let mut sorted = entries;
        sorted.sort_by(|a, b| b.last_used.cmp(&a.last_used).then(a.key.cmp(&b.key)));
        for e in &sorted {
            let mark = if verdict.evict.contains(&e.id) {
                "*"
            } else {
                ""
            };
            out.push_str(&format!(
                "{:1} {:>10}  {:16}  {:>5}  {:16}  {}",
                mark,
                format_size(e.size),
                day_time(e.added),
                e.uses,
                day_time(e.last_used),
                e.key
            ));
            if let Some(why) = verdict.reasons.get(&e.id) {
                out.push_str(&format!("   <- {why}"));
            }
            out.push('\n');
        }
        Ok(out)
    }
}

/// `YYYY-MM-DD HH:MM` in UTC.
fn day_time(secs: u64) -> String {
    let (y, m, d) = crate::calendar::civil_from_days((secs / 86400) as i64);
    let rem = secs % 86400;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_time_is_utc_civil_time() {
        assert_eq!(day_time(0), "1970-01-01 00:00");
        assert_eq!(day_time(951_782_400), "2000-02-29 00:00");
        assert_eq!(day_time(1_795_651_200 + 3600 + 60), "2026-11-26 01:01");
    }
}
