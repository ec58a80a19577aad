//! Cache policy: `CACHE_DIR/policy.yaml` → typed, validated [`Policy`].
//!
//! Three levels: the main level, the `oci_images` and `files` sub-policies (files cover the base
//! image too), and `filters[]` inside each sub-policy. Every level takes the same limits
//! (`max_size`, `max_age`, `max_num`, `eviction`, `check_after`, `keep_identified_versions`);
//! `0` means unlimited for sizes, counts, ages and version counts. Sub-levels inherit nothing
//! but are bounded by their parent: a stated limit must fit within the nearest ancestor that
//! states the same limit, else the policy is refused (the original silently accepted it).
//! `check_after: 0` means "re-check on every use"; absent means never re-check.

mod raw;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::yaml::node::Mark;
use crate::{Classify, ErrorClass};

use raw::parse_policy;

/// What each level evicts first; the name says which entry goes first (the original had
/// `oldest` and `newest` reversed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Strategy {
    /// Earliest added first.
    Oldest,
    /// Latest added first.
    Newest,
    /// Biggest first.
    Largest,
    /// Smallest first.
    Smallest,
    /// Least recently used first.
    #[default]
    Lru,
}

impl Strategy {
    pub const NAMES: [&'static str; 5] = ["oldest", "newest", "largest", "smallest", "lru"];

    pub fn from_name(name: &str) -> Option<Strategy> {
        Some(match name {
            "oldest" => Strategy::Oldest,
            "newest" => Strategy::Newest,
            "largest" => Strategy::Largest,
            "smallest" => Strategy::Smallest,
            "lru" => Strategy::Lru,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Strategy::Oldest => "oldest",
            Strategy::Newest => "newest",
            Strategy::Largest => "largest",
            Strategy::Smallest => "smallest",
            Strategy::Lru => "lru",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The limits of one level; `None` is unlimited.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Limits {
    pub max_size: Option<u64>,
    pub max_age: Option<Duration>,
    pub max_num: Option<u64>,
    pub eviction: Strategy,
    pub check_after: Option<Duration>,
    pub keep_identified_versions: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct Filter {
    /// Case-insensitive, searched anywhere in the key.
    pub pattern: regex::Regex,
    /// The pattern as written.
    pub source: String,
    /// Never cache what matches.
    pub ignore: bool,
    pub limits: Limits,
}

#[derive(Debug, Clone)]
pub struct SubPolicy {
    pub enabled: bool,
    pub limits: Limits,
    /// The first matching filter owns an entry.
    pub filters: Vec<Filter>,
}

impl Default for SubPolicy {
    fn default() -> Self {
        SubPolicy {
            enabled: true,
            limits: Limits::default(),
            filters: Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub enabled: bool,
    pub limits: Limits,
    pub oci_images: SubPolicy,
    pub files: SubPolicy,
    /// Images this tool built (`--reuse`); the key names the config and digests it with its inputs.
    pub built_images: SubPolicy,
}

/// What a cache entry is; decides its sub-policy and what its key looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Files and the base image; the key is the URL.
    File,
    /// OCI images; the key is `registry/repo/name:tag[@digest]`.
    OciImage,
    /// Images built by this tool, kept for `--reuse`; the key is `built:CONFIG_NAME|DIGEST`.
    BuiltImage,
}

impl Kind {
    /// The sub-policy's key in the policy file.
    pub fn key(self) -> &'static str {
        match self {
            Kind::File => "files",
            Kind::OciImage => "oci_images",
            Kind::BuiltImage => "built_images",
        }
    }

    pub const ALL: [Kind; 3] = [Kind::OciImage, Kind::File, Kind::BuiltImage];

    /// The kind of an index entry.
    pub fn of(entry: super::EntryKind) -> Kind {
        match entry {
            super::EntryKind::File => Kind::File,
            super::EntryKind::OciImage => Kind::OciImage,
            super::EntryKind::BuiltImage => Kind::BuiltImage,
        }
    }
}

/// Where an entry belongs in a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub kind: Kind,
    /// Index of the owning filter in the sub-policy's `filters`.
    pub filter: Option<usize>,
    /// False when the cache or the sub-policy is disabled, or the owning filter says `ignore`.
    pub cacheable: bool,
}

/// The seed's default policy, written to `CACHE_DIR/policy.yaml` when it is absent.
pub const DEFAULT_POLICY_YAML: &str = "---
enabled: true
max_size: 10GiB
eviction: lru
oci_images:
  enabled: true
  eviction: lru
files:
  enabled: true
  eviction: lru
";

/// The policy file's name inside the cache directory.
pub const POLICY_FILE: &str = "policy.yaml";

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// Not YAML.
    #[error("{}: invalid YAML: {message}", place(origin, *mark))]
    Syntax {
        origin: String,
        mark: Option<Mark>,
        message: String,
    },
    /// A key or value that breaks the schema.
    #[error("{}: {key_path}: {message}", place(origin, *mark))]
    Invalid {
        origin: String,
        mark: Option<Mark>,
        key_path: String,
        message: String,
    },
    /// A sub-level's limit does not fit within its parent's.
    #[error(
        "{}: {} ({}) exceeds {} ({}); a sub-level must fit within its parent",
        place(origin, *mark),
        detail.child_path,
        detail.child_value,
        detail.parent_path,
        detail.parent_value
    )]
    Exceeds {
        origin: String,
        mark: Option<Mark>,
        detail: Box<Exceeding>,
    },
    #[error("{}: cannot read the cache policy", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: cannot write the default cache policy", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Both sides of an [`PolicyError::Exceeds`]: key paths and values as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exceeding {
    pub child_path: String,
    pub child_value: String,
    pub parent_path: String,
    pub parent_value: String,
}

fn place(origin: &str, mark: Option<Mark>) -> String {
    match mark {
        Some(m) => format!("{origin}:{m}"),
        None => origin.to_string(),
    }
}

impl Classify for PolicyError {
    fn class(&self) -> ErrorClass {
        match self {
            PolicyError::Read { .. } | PolicyError::Write { .. } => ErrorClass::Failure,
            _ => ErrorClass::BadInput,
        }
    }
}

impl Policy {
    /// Parses and validates a policy; `origin` (the file's path) prefixes every error.
    pub fn parse(text: &str, origin: &str) -> Result<Policy, PolicyError> {
        parse_policy(text, origin)
    }

    /// The seed's default policy.
    pub fn default_policy() -> Policy {
        // The constant is tested to parse; a failure here is a bug in this file, not input.
        parse_policy(DEFAULT_POLICY_YAML, "default policy").expect("the default policy parses")
    }

    /// Reads `CACHE_DIR/policy.yaml`; when absent, writes [`DEFAULT_POLICY_YAML`] there
    /// (temp file + rename, so a concurrent reader never sees half a file) unless `read_only`,
    /// in which case the default is only used.
    pub fn load_or_init(cache_dir: &Path, read_only: bool) -> Result<Policy, PolicyError> {
        let path = cache_dir.join(POLICY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => return Policy::parse(&text, &path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(PolicyError::Read { path, source }),
        }
        if read_only {
            return Ok(Policy::default_policy());
        }
        let write_err = |source| PolicyError::Write {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(cache_dir).map_err(write_err)?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".policy.yaml.")
            .tempfile_in(cache_dir)
            .map_err(write_err)?;
        std::io::Write::write_all(&mut tmp, DEFAULT_POLICY_YAML.as_bytes()).map_err(write_err)?;
        // tempfile creates 0600; a cache on a shared USB disk is read by other users too.
        std::fs::set_permissions(
            tmp.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o644),
        )
        .map_err(write_err)?;
        tmp.as_file().sync_all().map_err(write_err)?;
        match tmp.persist_noclobber(&path) {
            Ok(_) => {
                tracing::info!(path = %path.display(), "wrote the default cache policy");
                Ok(Policy::default_policy())
            }
            // Another process wrote it first: theirs wins, read it.
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
                let text = std::fs::read_to_string(&path).map_err(|source| PolicyError::Read {
                    path: path.clone(),
                    source,
                })?;
                Policy::parse(&text, &path.display().to_string())
            }
            Err(e) => Err(write_err(e.error)),
        }
    }

    pub fn sub(&self, kind: Kind) -> &SubPolicy {
        match kind {
            Kind::File => &self.files,
            Kind::OciImage => &self.oci_images,
            Kind::BuiltImage => &self.built_images,
        }
    }

    /// Which sub-policy and which filter (first match wins) own an entry.
    pub fn classify(&self, kind: Kind, key: &str) -> Placement {
        let sub = self.sub(kind);
        let filter = sub.filters.iter().position(|f| f.pattern.is_match(key));
        let ignored = filter.is_some_and(|i| sub.filters[i].ignore);
        Placement {
            kind,
            filter,
            cacheable: self.enabled && sub.enabled && !ignored,
        }
    }
}

#[cfg(test)]
mod tests;
