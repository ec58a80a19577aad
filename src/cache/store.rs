//! The cache's storage: plain files under `CACHE_DIR/data/`, listed by `CACHE_DIR/index.json`.
//!
//! Layout (nothing but plain files, so it can live on a FAT32/exFAT stick; no xattrs, links or
//! permissions are relied on):
//! ```text
//! CACHE_DIR/.lock         flock target (see lock.rs)
//! CACHE_DIR/index.json    the index (see index.rs)
//! CACHE_DIR/data/<id>     committed entries
//! CACHE_DIR/tmp/*.part    in-flight inserts, each flock'ed by its writer
//! ```
//! Crash safety (`kill -9`, power cut): a download is written to `tmp/`, fsync'ed, then renamed into
//! `data/` and added to the index *in the same exclusive-lock section*. So a killed insert leaves at
//! most a temp file (removed by a later [`Store::open`]) or a file in `data/` the index does not
//! list (an orphan, also removed on open: its content cannot be trusted to belong to any key). What
//! [`Store::lookup`] serves is always a file the index lists, with the listed size.

use super::index::{self, entry_id, Freshness, Index, IndexEntry, INDEX_FILE};
use super::lock::{self, CacheLock};
use crate::digest::{self, Algo};
use crate::{Classify, ErrorClass};
use nix::fcntl::Flock;
use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

pub use super::index::EntryKind;

/// Directory of committed entries.
pub const DATA_DIR: &str = "data";
/// Directory of in-flight inserts (same filesystem as `data/`, so the final rename is atomic).
pub const TMP_DIR: &str = "tmp";
/// Temp files younger than this are never removed, even when unlocked. The writer's flock is what
/// really protects a live insert; the age is a second guard in case locks misbehave on some
/// filesystem.
pub const STALE_TEMP_AGE: Duration = Duration::from_secs(10 * 60);

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// `cache show|verify|apply` on a directory that is not there (a typo must not read as "empty").
    #[error("{dir}: no cache here (the directory does not exist)")]
    NoCache { dir: PathBuf },

    /// A folder that holds something else: the tidying at open would delete its files.
    #[error(
        "{dir}: not an image-creator cache (no CACHEDIR.TAG or index.json) and not empty; give a new or empty \
         directory for a cache"
    )]
    NotACache { dir: PathBuf },

    #[error("{path}: {op}")]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        cause: std::io::Error,
    },

    #[error("cannot rename {from} to {to}")]
    Rename {
        from: PathBuf,
        to: PathBuf,
        #[source]
        cause: std::io::Error,
    },

    /// We refuse to guess: rebuilding from the data files is impossible (names do not hold the
    /// full key) and silently starting empty would discard a possibly large cache.
    #[error("{path}: corrupt cache index; move it away to start with an empty cache (its data files are then discarded)")]
    CorruptIndex {
        path: PathBuf,
        #[source]
        cause: serde_json::Error,
    },

    #[error("{path}: cache index version {found} is newer than this tool supports ({supported})")]
    IndexVersion {
        path: PathBuf,
        found: u32,
        supported: u32,
    },

    #[error("cache {dir} was opened read-only")]
    ReadOnly { dir: PathBuf },

    #[error("{digest:?} is not a SHA-256 hex digest")]
    BadDigest { digest: String },

    #[error(transparent)]
    Policy(Box<super::policy::PolicyError>),
}

/// A SHA-256 hex digest, lower-cased; anything else is refused before it reaches the index.
fn checked_sha256(sha256: &str) -> Result<String, CacheError> {
    let sha = sha256.to_ascii_lowercase();
    if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(CacheError::BadDigest {
            digest: sha256.to_owned(),
        });
    }
    Ok(sha)
}

impl CacheError {
    pub(crate) fn io(path: &Path, op: &'static str, cause: std::io::Error) -> Self {
        CacheError::Io {
            path: path.to_owned(),
            op,
            cause,
        }
    }
}

impl Classify for CacheError {
    fn class(&self) -> ErrorClass {
        if let CacheError::Policy(e) = self {
            return e.class();
        }
        if let CacheError::NoCache { .. } | CacheError::NotACache { .. } = self {
            return ErrorClass::BadInput;
        }
        // All of these are the cache itself failing (disk, corruption, misuse), never the user's
        // config or the network.
        ErrorClass::Failure
    }
}

#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
    read_only: bool,
    /// Keys of entries dropped when the store was opened (file missing or of the wrong size).
    dropped: Vec<String>,
}

/// An insert in progress: write the bytes to it, then [`Store::commit`] it. Dropping it without
/// committing removes the temp file.
#[derive(Debug)]
pub struct Insert {
    pub path: PathBuf,
    /// Locked for the insert's whole life: see [`Store::open_with_grace`].
    file: Flock<File>,
    committed: bool,
}

impl Insert {
    /// The temp file (e.g. to seek or to query its length).
    pub fn file(&self) -> &File {
        &self.file
    }
}

impl Write for Insert {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl Drop for Insert {
    fn drop(&mut self) {
        // Not committed: remove the temp file (the lock is released after, with the field).
        if !self.committed {
            if let Err(e) = fs::remove_file(&self.path) {
                tracing::debug!(path = %self.path.display(), error = %e, "cannot remove abandoned insert");
            }
        }
    }
}

impl Store {
    /// Opens (creating if needed) a writable cache, and tidies it: see [`Store::open_with_grace`].
    pub fn open(dir: &Path) -> Result<Store, CacheError> {
        Self::open_with_grace(dir, STALE_TEMP_AGE)
    }

    /// [`Store::open`] with a chosen minimum age for removing abandoned temp files. Under the
    /// exclusive lock it: drops index entries whose file is missing or has the wrong size (an
    /// interrupted copy of the stick), removes orphan files in `data/`, and removes temp files in
    /// `tmp/` older than `grace` whose flock it can take — a live writer holds its lock, a killed
    /// one does not. [`Store::begin_insert`] creates and locks its temp file under the shared cache
    /// lock, so there is no instant where a live temp file exists unlocked while we clean.
    pub fn open_with_grace(dir: &Path, grace: Duration) -> Result<Store, CacheError> {
        super::marker::claim(dir, false)?;
        for d in [dir.to_owned(), dir.join(DATA_DIR), dir.join(TMP_DIR)] {
            fs::create_dir_all(&d)
                .map_err(|cause| CacheError::io(&d, "cannot create directory", cause))?;
        }
        let mut store = Store {
            dir: dir.to_owned(),
            read_only: false,
            dropped: Vec::new(),
        };
        let _lock = CacheLock::exclusive(dir)?;
        let existing = index::read_index(&store.index_path())?;
        let missing = existing.is_none();
        let mut idx = existing.unwrap_or_default();
        store.dropped = store.reconcile(&mut idx)?;
        let changed = !store.dropped.is_empty();
        if changed || missing {
            index::write_index(dir, &idx)?;
        }
        // A leftover from a write killed before its rename; only ever rewritten under this lock.
        let _ = fs::remove_file(index::tmp_index_path(dir));
        store.clean_tmp(grace)?;
        Ok(store)
    }

    /// Opens a cache for `--check` / `show`: never creates, writes or removes anything (a missing
    /// directory is an empty cache). Write operations fail with [`CacheError::ReadOnly`].
    pub fn open_read_only(dir: &Path) -> Result<Store, CacheError> {
        super::marker::claim(dir, true)?;
        let store = Store {
            dir: dir.to_owned(),
            read_only: true,
            dropped: Vec::new(),
        };
        // Read once now so a corrupt index is reported at open, like for a writable store.
        store.read()?;
        Ok(store)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether this store came from [`Store::open_read_only`].
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The entry for `key`, if its file is present with the recorded size.
    pub fn lookup(&self, key: &str) -> Result<Option<IndexEntry>, CacheError> {
        let idx = self.read()?;
        let Some(e) = idx.entries.into_iter().find(|e| e.key == key) else {
            return Ok(None);
        };
        // symlink_metadata: the cache never makes links, so one is foreign and not served.
        match fs::symlink_metadata(self.path_of(&e)) {
            Ok(m) if m.is_file() && m.len() == e.size => Ok(Some(e)),
            // Gone or truncated behind our back: not servable. A later open or commit tidies it.
            _ => Ok(None),
        }
    }

    /// Keys of the entries dropped when the store was opened because their file was missing or of the
    /// wrong size (an interrupted copy of the stick).
    pub fn dropped_at_open(&self) -> &[String] {
        &self.dropped
    }

    pub fn path_of(&self, e: &IndexEntry) -> PathBuf {
        self.dir.join(DATA_DIR).join(&e.id)
    }

    /// Verifies an entry's bytes against its sha256, streaming. On a mismatch (or a missing file)
    /// the entry and its file are removed from a writable cache, and `Ok(false)` is returned.
    pub fn verify(&self, e: &IndexEntry) -> Result<bool, CacheError> {
        let path = self.path_of(e);
        let actual = match File::open(&path) {
            Ok(f) => Some(sha256_of(f, &path)?),
            Err(err) if err.kind() == ErrorKind::NotFound => None,
            Err(cause) => return Err(CacheError::io(&path, "cannot read", cause)),
        };
        if actual.as_deref() == Some(e.sha256.as_str()) {
            return Ok(true);
        }
        tracing::warn!(path = %path.display(), key = %e.key, "cached file is damaged; dropping it");
        if !self.read_only {
            // Only if the index still lists this very version (it may have been replaced since).
            self.remove_where(|x| x.id == e.id && x.sha256 == e.sha256)?;
        }
        Ok(false)
    }

    /// Starts an insert: a new temp file in `tmp/`, flock'ed until committed or dropped.
    pub fn begin_insert(&self) -> Result<Insert, CacheError> {
        self.writable()?;
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let tmp = self.dir.join(TMP_DIR);
        // Shared: excludes a concurrent open's cleaning between our create and our flock.
        let _guard = CacheLock::shared(&self.dir)?;
        loop {
            let nanos = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let n = SEQ.fetch_add(1, Ordering::Relaxed);
            let path = tmp.join(format!("ins-{}-{n}-{nanos:08x}.part", std::process::id()));
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => {
                    // Nobody else can know this fresh name yet, so the lock is ours at once.
                    let file = match lock::try_lock_exclusive(file, &path) {
                        Ok(Some(l)) => l,
                        Ok(None) => {
                            let _ = fs::remove_file(&path);
                            let cause = ErrorKind::WouldBlock.into();
                            return Err(CacheError::io(&path, "cannot lock", cause));
                        }
                        Err(e) => {
                            let _ = fs::remove_file(&path);
                            return Err(e);
                        }
                    };
                    return Ok(Insert {
                        path,
                        file,
                        committed: false,
                    });
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(cause) => return Err(CacheError::io(&path, "cannot create", cause)),
            }
        }
    }

    /// Commits an insert: fsync the file, then under the exclusive lock rename it into
    /// `data/<id>`, fsync `data/`, and record it in the index, replacing any older entry of the
    /// same key (whose file is removed). `sha256` is the digest computed while downloading; it is
    /// not recomputed (that would mean reading a multi-GB file twice).
    pub fn commit(
        &self,
        mut ins: Insert,
        kind: EntryKind,
        key: &str,
        sha256: &str,
        freshness: Freshness,
        now: u64,
    ) -> Result<IndexEntry, CacheError> {
        self.writable()?;
        let sha = checked_sha256(sha256)?;
        let size = {
            let f = ins.file();
            // Durable before it becomes visible: after a power cut, `data/` never holds a file
            // whose blocks were not written.
            f.sync_all()
                .map_err(|cause| CacheError::io(&ins.path, "cannot sync", cause))?;
            f.metadata()
                .map_err(|cause| CacheError::io(&ins.path, "cannot stat", cause))?
                .len()
        };
        self.install(
            &ins.path.clone(),
            size,
            kind,
            key,
            sha,
            freshness,
            now,
            || ins.committed = true,
        )
    }

    /// Adopts a complete file that was downloaded elsewhere on the cache's filesystem (the build dir
    /// lives inside the cache): it is synced and renamed into `data/`, so no byte is written twice.
    /// Across filesystems it is copied through a normal insert instead.
    #[allow(clippy::too_many_arguments)]
    pub fn adopt(
        &self,
        path: &Path,
        kind: EntryKind,
        key: &str,
        sha256: &str,
        freshness: Freshness,
        now: u64,
    ) -> Result<IndexEntry, CacheError> {
        self.writable()?;
        let sha = checked_sha256(sha256)?;
        let file = File::open(path).map_err(|cause| CacheError::io(path, "cannot open", cause))?;
        file.sync_all()
            .map_err(|cause| CacheError::io(path, "cannot sync", cause))?;
        let size = file
            .metadata()
            .map_err(|cause| CacheError::io(path, "cannot stat", cause))?
            .len();
        let same_fs = {
            use std::os::unix::fs::MetadataExt;
            let data = fs::metadata(self.dir.join(DATA_DIR))
                .map_err(|cause| CacheError::io(&self.dir, "cannot stat", cause))?;
            file.metadata()
                .map(|m| m.dev() == data.dev())
                .unwrap_or(false)
        };
        if same_fs {
            return self.install(path, size, kind, key, sha, freshness, now, || {});
        }
        let mut ins = self.begin_insert()?;
        let mut src = file;
        std::io::copy(&mut src, &mut ins)
            .map_err(|cause| CacheError::io(&ins.path.clone(), "cannot copy into", cause))?;
        self.commit(ins, kind, key, &sha, freshness, now)
    }

    /// Renames `from` into `data/<id>` and records it, in one exclusive section: an open() in between
    /// would otherwise see the new file as an orphan and delete it.
    #[allow(clippy::too_many_arguments)]
    fn install(
        &self,
        from: &Path,
        size: u64,
        kind: EntryKind,
        key: &str,
        sha: String,
        freshness: Freshness,
        now: u64,
        on_renamed: impl FnOnce(),
    ) -> Result<IndexEntry, CacheError> {
        let id = entry_id(kind, key, &sha);
        let data = self.dir.join(DATA_DIR);
        let dest = data.join(&id);

        // Rename and index update in one exclusive section: an open() in between would otherwise
        // see `dest` as an orphan and delete it.
        let _lock = CacheLock::exclusive(&self.dir)?;
        let mut idx = self.read_locked()?;
        // Same key and same bytes again: the rename below replaces a listed file by an identical one.
        let listed = idx.entries.iter().any(|e| e.id == id);
        fs::rename(from, &dest).map_err(|cause| CacheError::Rename {
            from: from.to_path_buf(),
            to: dest.clone(),
            cause,
        })?;
        on_renamed();
        let result = (|| {
            index::sync_dir(&data)?;
            let (old, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut idx.entries)
                .into_iter()
                .partition(|e| e.key == key || e.id == id);
            idx.entries = kept;
            let uses = old.iter().find(|e| e.key == key).map_or(0, |e| e.uses);
            let entry = IndexEntry {
                id: id.clone(),
                kind,
                key: key.to_owned(),
                size,
                sha256: sha,
                added: now,
                last_used: now,
                // A new version of the same source is the same item for LFU purposes.
                uses,
                freshness,
                checked: now,
            };
            idx.entries.push(entry.clone());
            index::write_index(&self.dir, &idx)?;
            for e in old.iter().filter(|e| e.id != id) {
                self.unlink(e);
            }
            Ok(entry)
        })();
        if result.is_err() && !listed {
            // Not in the index: an orphan. Remove it now rather than at the next open.
            let _ = fs::remove_file(&dest);
        }
        result
    }

    /// Records a use: `last_used = now`, `uses += 1`. A missing id (evicted meanwhile) is no error.
    pub fn touch(&self, id: &str, now: u64) -> Result<(), CacheError> {
        self.update(|idx| match idx.entries.iter_mut().find(|e| e.id == id) {
            Some(e) => {
                e.last_used = now;
                e.uses += 1;
                true
            }
            None => false,
        })
    }

    /// Records a freshness check against the origin.
    pub fn set_checked(&self, id: &str, freshness: Freshness, now: u64) -> Result<(), CacheError> {
        self.update(|idx| match idx.entries.iter_mut().find(|e| e.id == id) {
            Some(e) => {
                e.freshness = freshness;
                e.checked = now;
                true
            }
            None => false,
        })
    }

    /// Removes entries and their files; returns the bytes freed. Unknown ids are skipped.
    pub fn remove(&self, ids: &[String]) -> Result<u64, CacheError> {
        let ids: HashSet<&str> = ids.iter().map(String::as_str).collect();
        self.remove_where(|e| ids.contains(e.id.as_str()))
    }

    pub fn entries(&self) -> Result<Vec<IndexEntry>, CacheError> {
        Ok(self.read()?.entries)
    }

    fn index_path(&self) -> PathBuf {
        self.dir.join(INDEX_FILE)
    }

    fn writable(&self) -> Result<(), CacheError> {
        if self.read_only {
            return Err(CacheError::ReadOnly {
                dir: self.dir.clone(),
            });
        }
        Ok(())
    }

    /// Reads the index under a shared lock (a read-only store only locks if the lock file exists).
    fn read(&self) -> Result<Index, CacheError> {
        let _lock = if self.read_only {
            CacheLock::shared_if_present(&self.dir)?
        } else {
            Some(CacheLock::shared(&self.dir)?)
        };
        self.read_locked()
    }

    fn read_locked(&self) -> Result<Index, CacheError> {
        Ok(index::read_index(&self.index_path())?.unwrap_or_default())
    }

    /// Read-modify-write of the index under the exclusive lock; `f` says whether it changed it.
    fn update(&self, f: impl FnOnce(&mut Index) -> bool) -> Result<(), CacheError> {
        self.writable()?;
        let _lock = CacheLock::exclusive(&self.dir)?;
        let mut idx = self.read_locked()?;
        if f(&mut idx) {
            index::write_index(&self.dir, &idx)?;
        }
        Ok(())
    }

    /// Drops matching entries from the index first, then unlinks their files: a crash in between
    /// leaves orphans (removed on open), never an entry without its file.
    fn remove_where(&self, pred: impl Fn(&IndexEntry) -> bool) -> Result<u64, CacheError> {
        self.writable()?;
        let _lock = CacheLock::exclusive(&self.dir)?;
        let mut idx = self.read_locked()?;
        let (gone, kept): (Vec<_>, Vec<_>) = idx.entries.into_iter().partition(|e| pred(e));
        idx.entries = kept;
        if gone.is_empty() {
            return Ok(0);
        }
        index::write_index(&self.dir, &idx)?;
        Ok(gone.iter().map(|e| self.unlink(e)).sum())
    }

    /// Removes an entry's file, returning its size when it was removed. Failure is only logged:
    /// the index no longer lists it, so the next open removes it as an orphan.
    fn unlink(&self, e: &IndexEntry) -> u64 {
        match fs::remove_file(self.path_of(e)) {
            Ok(()) => e.size,
            Err(err) if err.kind() == ErrorKind::NotFound => 0,
            Err(err) => {
                tracing::warn!(id = %e.id, error = %err, "cannot remove cached file");
                0
            }
        }
    }
}

/// Streams a file through SHA-256 (lowercase hex).
pub(crate) fn sha256_of(f: File, path: &Path) -> Result<String, CacheError> {
    digest::of_reader(Algo::Sha256, f).map_err(|cause| CacheError::io(path, "cannot read", cause))
}

/// Open-time tidying (orphans, dead temp files), kept apart to keep this file short.
#[path = "store_tidy.rs"]
mod tidy;

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "store_proc_tests.rs"]
mod proc_tests;
