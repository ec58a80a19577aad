//! The cache index: one JSON file (`CACHE_DIR/index.json`) listing every entry, plus the rules that
//! make entry ids safe file names.
//!
//! The index lives in a plain file rather than in xattrs so the cache works on any filesystem,
//! including the FAT32/exFAT USB sticks people carry to offline Raspberry Pis. It is only ever
//! replaced whole (write `index.json.tmp`, fsync, rename, fsync the directory) under the exclusive
//! [`CacheLock`](super::lock::CacheLock), so a reader sees the old or the new index, never a mix.

use super::store::CacheError;
use crate::digest;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{BufReader, BufWriter, ErrorKind, Write};
use std::path::{Path, PathBuf};

/// Name of the index file inside the cache directory.
pub const INDEX_FILE: &str = "index.json";
/// The index format this code reads and writes.
pub const INDEX_VERSION: u32 = 1;

/// Longest readable tail kept in an entry id. The whole id (16 + 1 + 8 + 1 + this) stays far below
/// the 255-character name limit of FAT32/exFAT (counted in UTF-16 units there; ids are ASCII).
const MAX_TAIL: usize = 96;
/// Longest extension kept when a tail must be shortened (`.zim`, `.img.xz`, `.tar.gz` all fit).
const MAX_EXT: usize = 12;

/// What the origin said about a resource's version, to decide later whether a cached copy is fresh.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Freshness {
    /// The raw RFC 3230 `Digest` header (e.g. `sha-256=BASE64`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
}

impl Freshness {
    /// One string standing for this version: the `Digest` header, else the ETag, else
    /// `"<length>|<last-modified>"` (length empty when unknown). `None` when the origin gave no
    /// validator: a length alone is not one (a file replaced by another of the same size would look
    /// unchanged), so such a resource has no known freshness.
    pub fn token(&self) -> Option<String> {
        if let Some(d) = &self.digest {
            return Some(d.clone());
        }
        if let Some(e) = &self.etag {
            return Some(e.clone());
        }
        let lm = self.last_modified.as_ref()?;
        let len = self.length.map(|l| l.to_string()).unwrap_or_default();
        Some(format!("{len}|{lm}"))
    }

    /// Whether `other` describes the same version. Compared on the strongest validator *both*
    /// sides have (a HEAD reply may lack the `Digest` a GET had), and never equal when they share
    /// none: unknown freshness must not pass for fresh. Differing known lengths always differ.
    pub fn matches(&self, other: &Freshness) -> bool {
        if let (Some(a), Some(b)) = (self.length, other.length) {
            if a != b {
                return false;
            }
        }
        if let (Some(a), Some(b)) = (&self.digest, &other.digest) {
            return a == b;
        }
        if let (Some(a), Some(b)) = (&self.etag, &other.etag) {
            // Weak comparison: proxies and compressing servers turn `"x"` into `W/"x"` for the
            // same bytes; the sha256 check on use still guards the content itself.
            return strip_weak(a) == strip_weak(b);
        }
        if let (Some(a), Some(b)) = (&self.last_modified, &other.last_modified) {
            return a == b;
        }
        false
    }
}

fn strip_weak(etag: &str) -> &str {
    etag.strip_prefix("W/").unwrap_or(etag)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A downloaded file (base image, content file, archive).
    File,
    /// An OCI image saved as a docker-archive.
    OciImage,
    /// An image this tool built from a config (`--reuse`).
    BuiltImage,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// The file name under `CACHE_DIR/data/` (see [`entry_id`]).
    pub id: String,
    pub kind: EntryKind,
    /// Source URL, or for OCI images `registry/repo/name:tag@digest|platform`.
    pub key: String,
    pub size: u64,
    /// Lowercase hex SHA-256 of the file's bytes.
    pub sha256: String,
    /// Unix seconds.
    pub added: u64,
    pub last_used: u64,
    pub uses: u64,
    #[serde(default)]
    pub freshness: Freshness,
    /// Unix seconds of the last freshness check against the origin.
    pub checked: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    pub version: u32,
    pub entries: Vec<IndexEntry>,
}

impl Default for Index {
    fn default() -> Self {
        Index {
            version: INDEX_VERSION,
            entries: Vec::new(),
        }
    }
}

/// The id (= file name in `data/`) of an entry: `<16 hex of sha256(key)>-<8 hex of the content
/// sha256>-<readable tail>`, e.g. `a1b2c3d4e5f60718-9f86d081-wikipedia_fr_all_maxi_2024-05.zim`.
///
/// - The key hash makes ids of different keys differ, case-insensitively too (hex is lowercase),
///   as FAT/exFAT compare names without case.
/// - The content hash makes a new version of the same URL a *new* file: the older one is unlinked
///   rather than overwritten, so a build still reading it keeps consistent bytes.
/// - The tail is only for humans browsing the stick: `[A-Za-z0-9._-]` only, no leading dot
///   (hidden files), no trailing dot or space (FAT drops them), at most [`MAX_TAIL`] bytes.
pub fn entry_id(kind: EntryKind, key: &str, sha256: &str) -> String {
    let key_hash = digest::sha256_hex(key.as_bytes());
    let content: String = sha256
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(8)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let tail = readable_tail(kind, key);
    let mut id = format!("{}-{content}", &key_hash[..16]);
    if !tail.is_empty() {
        id.push('-');
        id.push_str(&tail);
    }
    id
}

/// Whether `id` is a name [`entry_id`] could have produced: checked on every id read from an index,
/// since a cache on a stick may come from anywhere and `data/<id>` must never leave `data/`.
pub fn is_safe_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 255
        && !id.starts_with('.')
        && !id.ends_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The last meaningful name in a key: the URL's last path segment (query and fragment dropped,
/// percent-escapes decoded) or the OCI `name:tag`, sanitised for FAT and shortened.
fn readable_tail(kind: EntryKind, key: &str) -> String {
    let name = match kind {
        EntryKind::File => {
            let no_query = key.split(['?', '#']).next().unwrap_or(key);
            let trimmed = no_query.trim_end_matches('/');
            let last = trimmed.rsplit('/').next().unwrap_or(trimmed);
            percent_decode(last)
        }
        EntryKind::OciImage => {
            let reference = key.split(['@', '|']).next().unwrap_or(key);
            reference.rsplit('/').next().unwrap_or(reference).to_owned()
        }
        EntryKind::BuiltImage => {
            let name = key.split('|').next().unwrap_or(key);
            format!("{}.img", name.trim_start_matches("built:"))
        }
    };
    sanitise(&name)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = (bytes[i] == b'%')
            .then(|| s.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match decoded {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn sanitise(name: &str) -> String {
    let mut out = String::with_capacity(name.len().min(MAX_TAIL * 2));
    for c in name.chars() {
        let c = if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
            c
        } else {
            '_'
        };
        // Runs of replaced characters collapse to one `_`, keeping names readable.
        if !(c == '_' && out.ends_with('_')) {
            out.push(c);
        }
    }
    let trimmed = out.trim_matches(|c| matches!(c, '.' | '_' | '-' | ' '));
    if trimmed.len() <= MAX_TAIL {
        return trimmed.to_owned();
    }
    // Too long: keep the start and the extension, which say most about the file.
    let ext = match trimmed.rfind('.') {
        Some(dot) if trimmed.len() - dot <= MAX_EXT => &trimmed[dot..],
        _ => "",
    };
    let head = trimmed[..MAX_TAIL - ext.len()].trim_end_matches(['.', '_', '-']);
    format!("{head}{ext}")
}

/// Reads the index, `None` when the file does not exist. Entries with an unsafe id are dropped
/// (with a warning): they cannot have been written by us and their path could escape `data/`.
pub(crate) fn read_index(path: &Path) -> Result<Option<Index>, CacheError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(cause) => return Err(CacheError::io(path, "cannot open the cache index", cause)),
    };
    let mut index: Index = serde_json::from_reader(BufReader::new(file)).map_err(|cause| {
        CacheError::CorruptIndex {
            path: path.to_owned(),
            cause,
        }
    })?;
    if index.version > INDEX_VERSION {
        return Err(CacheError::IndexVersion {
            path: path.to_owned(),
            found: index.version,
            supported: INDEX_VERSION,
        });
    }
    index.entries.retain(|e| {
        let ok = is_safe_id(&e.id);
        if !ok {
            tracing::warn!(id = %e.id, index = %path.display(), "ignoring cache entry with an unsafe id");
        }
        ok
    });
    Ok(Some(index))
}

/// Replaces `dir/index.json` atomically: temp file, fsync, rename, fsync of the directory (so the
/// rename itself survives a power cut). Must be called under the exclusive cache lock, which is
/// also what makes the fixed temp name safe.
pub(crate) fn write_index(dir: &Path, index: &Index) -> Result<(), CacheError> {
    let path = dir.join(INDEX_FILE);
    let tmp = tmp_index_path(dir);
    let write = || -> std::io::Result<()> {
        let file = File::create(&tmp)?;
        let mut w = BufWriter::new(file);
        serde_json::to_writer_pretty(&mut w, index)?;
        w.write_all(b"\n")?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()
    };
    write().map_err(|cause| CacheError::io(&tmp, "cannot write the cache index", cause))?;
    std::fs::rename(&tmp, &path).map_err(|cause| CacheError::Rename {
        from: tmp.clone(),
        to: path.clone(),
        cause,
    })?;
    sync_dir(dir)
}

pub(crate) fn tmp_index_path(dir: &Path) -> PathBuf {
    dir.join(format!("{INDEX_FILE}.tmp"))
}

/// fsync a directory so renames and unlinks in it are durable. Some filesystems refuse fsync on a
/// directory (EINVAL): there is nothing more we can do there, so that is not an error.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), CacheError> {
    let res = File::open(dir).and_then(|d| d.sync_all());
    match res {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
        other => other.map_err(|cause| CacheError::io(dir, "cannot sync directory", cause)),
    }
}

#[cfg(test)]
#[path = "index_tests.rs"]
mod tests;
