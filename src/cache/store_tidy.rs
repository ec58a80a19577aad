//! Tidying a writable cache when it is opened (always under the exclusive cache lock).

use super::{CacheError, Store, DATA_DIR, TMP_DIR};
use crate::cache::index::Index;
use crate::cache::lock;
use std::collections::HashSet;
use std::fs::{self, File};
use std::path::Path;
use std::time::{Duration, SystemTime};

impl Store {
    /// Makes index and `data/` agree (under the exclusive lock). Returns the keys of the entries it
    /// dropped (the index changed when there are any).
    pub(super) fn reconcile(&self, idx: &mut Index) -> Result<Vec<String>, CacheError> {
        let data = self.dir.join(DATA_DIR);
        let mut seen = HashSet::new();
        let mut dropped = Vec::new();
        idx.entries.retain(|e| {
            let ok = seen.insert(e.id.clone())
                // symlink_metadata: the cache never makes links, so one is foreign and not served.
                && matches!(fs::symlink_metadata(data.join(&e.id)), Ok(m) if m.is_file() && m.len() == e.size);
            if !ok {
                tracing::warn!(id = %e.id, "dropping cache entry whose file is missing, damaged or listed twice");
                dropped.push(e.key.clone());
            }
            ok
        });
        let listed: HashSet<&str> = idx.entries.iter().map(|e| e.id.as_str()).collect();
        for item in read_dir(&data)? {
            let name = item.file_name();
            let name = name.to_string_lossy();
            // Files and (foreign) symlinks; removing a symlink never touches its target.
            // Only names the cache itself makes: a stranger's file is never ours to delete.
            let removable = item.file_type().is_ok_and(|t| !t.is_dir()) && is_entry_name(&name);
            if removable && !listed.contains(name.as_ref()) {
                tracing::info!(file = %item.path().display(), "removing orphan cache file");
                if let Err(e) = fs::remove_file(item.path()) {
                    tracing::warn!(file = %item.path().display(), error = %e, "cannot remove orphan");
                }
            }
        }
        Ok(dropped)
    }

    /// Removes temp files left by killed inserts: older than `grace` and not locked by a writer.
    pub(super) fn clean_tmp(&self, grace: Duration) -> Result<(), CacheError> {
        let tmp = self.dir.join(TMP_DIR);
        let now = SystemTime::now();
        for item in read_dir(&tmp)? {
            let path = item.path();
            let Ok(meta) = item.metadata() else { continue };
            let name = item.file_name();
            let name = name.to_string_lossy();
            // Only our own inserts (`Store::begin_insert`): `ins-<pid>-<n>-<nanos>.part`.
            if !(meta.is_file() && name.starts_with("ins-") && name.ends_with(".part")) {
                continue;
            }
            // A modification time in the future means the clock went back (a Raspberry Pi without
            // RTC booting before NTP): age says nothing then, so only the lock decides.
            let young = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|age| age < grace);
            if young {
                continue;
            }
            let Ok(file) = File::open(&path) else {
                continue;
            };
            match lock::try_lock_exclusive(file, &path) {
                Ok(Some(_held)) => {
                    tracing::info!(file = %path.display(), "removing abandoned cache download");
                    if let Err(e) = fs::remove_file(&path) {
                        tracing::warn!(file = %path.display(), error = %e, "cannot remove");
                    }
                }
                Ok(None) => {} // A live insert.
                Err(e) => tracing::warn!(error = %e, "cannot check a cache temp file"),
            }
        }
        Ok(())
    }
}

/// `<16 hex>-<8 hex>-<tail>`: the shape of [`crate::cache::index::entry_id`].
fn is_entry_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() > 26
        && b[..16].iter().all(u8::is_ascii_hexdigit)
        && b[16] == b'-'
        && b[17..25].iter().all(u8::is_ascii_hexdigit)
        && b[25] == b'-'
}

fn read_dir(dir: &Path) -> Result<Vec<fs::DirEntry>, CacheError> {
    let err = |cause| CacheError::io(dir, "cannot list directory", cause);
    fs::read_dir(dir)
        .map_err(err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)
}
