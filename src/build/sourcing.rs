//! Where each remote input comes from: the local file system, the cache, or a download (stored in the
//! cache afterwards when the policy allows). Offline, a missing input is an error listed with the others.

use std::path::PathBuf;
use std::time::SystemTime;

use futures_util::future::join_all;

use super::BuildError;
use crate::cache::{Cache, Freshness, IndexEntry, Kind};
use crate::fetch::{Fetcher, Probe, Source};
use crate::CancellationToken;

#[derive(Debug, Clone)]
pub enum Origin {
    /// A `file://` URL or a path: used in place.
    Local,
    /// A verified-fresh (or offline) cache entry.
    Cached(IndexEntry),
    /// To download; `cache` when the policy lets the result be stored.
    Download { cache: bool, freshness: Freshness },
}

/// One input that comes from a URL or path: the base, a `files[]` entry, an `oci_images[].url`.
#[derive(Debug, Clone)]
pub struct Remote {
    /// `base`, `files[2]`, `oci_images[0]`: for messages.
    pub key: String,
    pub source: Source,
    pub checksum: Option<crate::config::Checksum>,
    pub download_size: Option<u64>,
    pub origin: Origin,
}

impl Remote {
    pub fn new(key: String, source: Source, checksum: Option<crate::config::Checksum>) -> Self {
        Remote {
            key,
            source,
            checksum,
            download_size: None,
            origin: Origin::Local,
        }
    }

    /// A local path holding the bytes already (local files and cache hits), before the fetch step.
    pub fn local_path(&self, cache: Option<&Cache>) -> Option<PathBuf> {
        match (&self.origin, &self.source) {
            (Origin::Local, Source::File(p)) => Some(p.clone()),
            (Origin::Cached(e), _) => cache.map(|c| c.store().path_of(e)),
            _ => None,
        }
    }
}

fn freshness(p: &Probe) -> Freshness {
    Freshness {
        digest: p.digest.clone(),
        etag: p.etag.clone(),
        length: p.size,
        last_modified: p.last_modified.clone(),
    }
}

/// Decides every remote's origin, probing (HEAD, falling back to GET) only what needs it: local files
/// (stat), downloads, and cache entries whose `check_after` has elapsed. Offline, nothing is probed over
/// the network and every input missing from the cache is reported at once.
pub async fn resolve(
    remotes: &mut [&mut Remote],
    fetcher: &Fetcher,
    cache: Option<&Cache>,
    offline: bool,
    now: SystemTime,
    cancel: &CancellationToken,
) -> Result<(), BuildError> {
    let mut missing = Vec::new();
    let mut cached: Vec<Option<IndexEntry>> = Vec::with_capacity(remotes.len());
    for r in remotes.iter() {
        let entry = match (&r.source, cache) {
            (Source::Http(url), Some(c)) => c.lookup(Kind::File, url.as_str())?,
            _ => None,
        };
        cached.push(entry);
    }
    let mut to_probe = Vec::new();
    for (i, r) in remotes.iter_mut().enumerate() {
        match (&r.source, cached[i].take()) {
            (Source::File(_), _) => {
                r.origin = Origin::Local;
                to_probe.push(i);
            }
            (Source::Http(_), Some(entry)) if offline || recently(cache, &entry, now) => {
                r.download_size = Some(entry.size);
                r.origin = Origin::Cached(entry);
            }
            (Source::Http(url), entry) if offline => {
                drop(entry);
                missing.push(format!("{}: {url}", r.key));
            }
            (Source::Http(url), entry) => {
                let cacheable = cache.is_some_and(|c| c.cacheable(Kind::File, url.as_str()));
                // Keep the entry to compare with the probe's validators below.
                r.origin = match entry {
                    Some(e) => Origin::Cached(e),
                    None => Origin::Download {
                        cache: cacheable,
                        freshness: Freshness::default(),
                    },
                };
                to_probe.push(i);
            }
        }
    }
    if !missing.is_empty() {
        return Err(BuildError::Offline { missing });
    }
    let probes = join_all(
        to_probe
            .iter()
            .map(|&i| fetcher.probe(&remotes[i].source, cancel)),
    )
    .await;
    for (&i, probe) in to_probe.iter().zip(probes) {
        let probe = probe?;
        let r = &mut *remotes[i];
        r.download_size = probe.size;
        let fresh = freshness(&probe);
        if let Origin::Cached(entry) = &r.origin {
            if entry.freshness.matches(&fresh) {
                if let Some(c) = cache {
                    c.store()
                        .set_checked(&entry.id, fresh, crate::cache::unix(now))
                        .ok();
                }
                continue;
            }
            tracing::debug!("{}: cached copy is stale, downloading again", r.key);
            r.origin = Origin::Download {
                cache: true,
                freshness: fresh,
            };
        } else if let Origin::Download { cache: c, .. } = r.origin {
            r.origin = Origin::Download {
                cache: c,
                freshness: fresh,
            };
        }
    }
    Ok(())
}

fn recently(cache: Option<&Cache>, entry: &IndexEntry, now: SystemTime) -> bool {
    cache.is_some_and(|c| c.recently_checked(entry, Kind::File, now))
}
