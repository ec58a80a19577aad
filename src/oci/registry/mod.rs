//! Registry client (distribution API v2): resolve a reference to one platform's manifest, pull its
//! config and layers with digest verification, retries and resumed transfers.

mod blob;
mod client;
mod manifest;
mod retry;

use crate::digest::{Algo, Hasher};
use crate::net::retry::{race, Retrier};
use crate::net::NetSettings;
use crate::oci::auth::Credentials;
use crate::oci::error::OciError;
use crate::oci::{LayerBlob, LayerCompression, Platform, PulledImage, Reference};
use crate::progress::{Progress, TaskKind};
use crate::CancellationToken;
use futures_util::{StreamExt, TryStreamExt};
use manifest::Kind;
use reqwest::StatusCode;
use retry::Failed;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

/// Manifests and configs are read into memory: the distribution spec lets registries cap manifests at
/// 4 MiB; configs with long histories stay well under 16 MiB.
const MANIFEST_LIMIT: u64 = 4 << 20;
const CONFIG_LIMIT: u64 = 16 << 20;
/// An index may point at another index (rare); more nesting than this is refused.
const MAX_INDEX_DEPTH: usize = 2;
/// Layers downloaded at once per image.
const PARALLEL_BLOBS: usize = 3;

/// The manifest chosen for one platform, without its layers downloaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformManifest {
    pub manifest_digest: String,
    pub config_digest: String,
    pub config_size: u64,
    /// (digest, media type, compressed size), in manifest order.
    pub layers: Vec<(String, String, u64)>,
    /// Every image platform the reference offers (one entry for a single-platform image).
    pub available_platforms: Vec<Platform>,
}

pub struct Registry {
    client: reqwest::Client,
    settings: NetSettings,
    /// Hosts spoken to in plain HTTP besides loopback ones.
    insecure: Vec<String>,
    /// Credentials given by the caller, by registry (as in [`Reference::registry`]); others are looked
    /// up with [`crate::oci::auth::lookup`].
    overrides: HashMap<String, Credentials>,
    /// `Authorization` values that worked, by (API host, repository). Secret: never logged.
    auth: Mutex<HashMap<(String, String), String>>,
}

impl Registry {
    pub fn new(insecure_hosts: Vec<String>) -> Result<Registry, OciError> {
        Self::with_settings(insecure_hosts, NetSettings::default())
    }

    /// Retry budget, backoff and timeouts as for other downloads.
    pub fn with_settings(
        insecure_hosts: Vec<String>,
        settings: NetSettings,
    ) -> Result<Registry, OciError> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("image-creator/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(settings.connect_timeout)
            .build()
            .map_err(OciError::Client)?;
        Ok(Registry {
            client,
            settings,
            insecure: insecure_hosts,
            overrides: HashMap::new(),
            auth: Mutex::new(HashMap::new()),
        })
    }

    /// Use `credentials` for `registry` instead of the environment / Docker config lookup.
    pub fn with_credentials(mut self, registry: &str, credentials: Credentials) -> Registry {
        self.overrides.insert(registry.to_string(), credentials);
        self
    }

    pub fn settings(&self) -> &NetSettings {
        &self.settings
    }

    /// Resolve `reference` to the manifest for `platform`: follows Docker manifest lists and OCI
    /// indexes, accepts a single manifest after checking its config's os/arch. No layer download.
    pub async fn resolve(
        &self,
        reference: &Reference,
        platform: &Platform,
        cancel: &CancellationToken,
    ) -> Result<PlatformManifest, OciError> {
        Ok(self
            .resolve_full(reference, platform, None, cancel)
            .await?
            .0)
    }

    /// Download config and layers into `dir` (one file per blob, named by its digest's hex), each
    /// digest verified while streaming. A blob already in `dir` with the right digest is reused.
    pub async fn pull(
        &self,
        reference: &Reference,
        platform: &Platform,
        dir: &Path,
        progress: &Progress,
        cancel: &CancellationToken,
    ) -> Result<PulledImage, OciError> {
        let (pm, config) = self
            .resolve_full(reference, platform, Some(progress), cancel)
            .await?;
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|cause| OciError::Write {
                path: dir.to_path_buf(),
                cause,
            })?;
        let config_path = dir.join(blob::file_name(&pm.config_digest));
        blob::write_whole(&config_path, &config).await?;
        let name = reference.canonical();
        let n = pm.layers.len();
        // A blob the manifest names twice is downloaded once: two transfers of one blob into one
        // directory would race, and the second adds nothing.
        let firsts = blob::distinct(&name, &pm.layers)?;
        // Futures built up front (not in a `map` closure) so the pull future stays `Send`.
        let jobs: Vec<_> = firsts
            .into_iter()
            .map(|i| {
                let (digest, _, size) = &pm.layers[i];
                let label = format!("{name} layer {}/{n}", i + 1);
                let path = dir.join(blob::file_name(digest));
                async move {
                    self.download_blob(reference, digest, *size, &path, &label, progress, cancel)
                        .await
                }
            })
            .collect();
        futures_util::stream::iter(jobs)
            .buffered(PARALLEL_BLOBS)
            .try_collect::<Vec<()>>()
            .await?;
        // Every manifest entry, repeats included, in order: the config's diff_ids count them all.
        let layers = pm
            .layers
            .iter()
            .map(|(digest, media_type, size)| {
                Ok(LayerBlob {
                    path: dir.join(blob::file_name(digest)),
                    digest: digest.clone(),
                    media_type: media_type.clone(),
                    compression: manifest::layer_compression(&name, digest, media_type)?,
                    size: *size,
                })
            })
            .collect::<Result<Vec<_>, OciError>>()?;
        Ok(PulledImage {
            reference: name,
            platform: platform.clone(),
            manifest_digest: pm.manifest_digest,
            config,
            config_digest: pm.config_digest,
            layers,
        })
    }

    /// The platform manifest and the (verified) config bytes; the config download is a progress task
    /// when `progress` is given.
    async fn resolve_full(
        &self,
        r: &Reference,
        want: &Platform,
        progress: Option<&Progress>,
        cancel: &CancellationToken,
    ) -> Result<(PlatformManifest, Vec<u8>), OciError> {
        let shown = r.to_string();
        let (mut body, mut ct, mut digest) = self.manifest(r, r.manifest_ref(), cancel).await?;
        let mut available: Option<Vec<Platform>> = None;
        let mut depth = 0;
        while manifest::kind(&shown, &body, ct.as_deref())? == Kind::Index {
            depth += 1;
            if depth > MAX_INDEX_DEPTH {
                return Err(OciError::Protocol {
                    url: shown,
                    what: "image indexes nested too deep".into(),
                });
            }
            let index = manifest::parse_index(&shown, &body)?;
            let platforms: Vec<(Platform, &manifest::Descriptor)> = index
                .manifests
                .iter()
                .filter_map(|d| d.platform.as_ref().map(|p| (p.to_platform(), d)))
                .filter(|(p, _)| manifest::is_image_platform(p))
                .collect();
            let chosen = platforms
                .iter()
                .find(|(p, _)| manifest::platform_matches(want, p))
                .map(|(_, d)| d.digest.clone());
            let listed: Vec<Platform> = platforms.into_iter().map(|(p, _)| p).collect();
            let Some(next) = chosen else {
                return Err(OciError::PlatformMissing {
                    reference: shown,
                    wanted: want.clone(),
                    available: listed,
                });
            };
            available.get_or_insert(listed);
            (body, ct, digest) = self.manifest(r, &next, cancel).await?;
        }
        let m = manifest::parse_manifest(&shown, &body)?;
        for l in &m.layers {
            manifest::layer_compression(&shown, &l.digest, &l.media_type)?;
        }
        let task = progress.map(|p| {
            p.task(
                TaskKind::Download,
                format!("{} config", r.canonical()),
                Some(m.config.size),
            )
        });
        let config = self
            .small_blob(r, &m.config.digest, m.config.size, cancel)
            .await?;
        if let Some(mut t) = task {
            t.set(config.len() as u64);
            t.finish();
        }
        let have = manifest::config_platform(&shown, &config)?;
        if !manifest::platform_matches(want, &have) {
            // An index entry that lies about its platform is as missing as an absent one.
            return Err(OciError::PlatformMissing {
                reference: shown,
                wanted: want.clone(),
                available: vec![have],
            });
        }
        let pm = PlatformManifest {
            manifest_digest: digest,
            config_digest: m.config.digest.clone(),
            config_size: m.config.size,
            layers: m
                .layers
                .iter()
                .map(|l| (l.digest.clone(), l.media_type.clone(), l.size))
                .collect(),
            available_platforms: available.unwrap_or_else(|| vec![have]),
        };
        Ok((pm, config))
    }

    /// GET a manifest by tag or digest: (body, content type, digest of the body). A digest reference
    /// is verified against the body.
    async fn manifest(
        &self,
        r: &Reference,
        which: &str,
        cancel: &CancellationToken,
    ) -> Result<(Vec<u8>, Option<String>, String), OciError> {
        let url = self.url(r, &format!("manifests/{which}"));
        let mut retrier = Retrier::new(&self.settings, &url);
        loop {
            let attempt = async {
                let resp = self.send_once(r, &url, Some(manifest::ACCEPT), 0).await?;
                if resp.status() == StatusCode::NOT_FOUND {
                    let what = not_found_code(resp, &url, self.settings.read_timeout).await;
                    return Err(Failed::Fatal(Box::new(OciError::ManifestUnknown {
                        reference: r.to_string(),
                        what,
                    })));
                }
                check_ok(&resp, &url)?;
                let ct = resp
                    .headers()
                    .get(reqwest::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let body =
                    read_limited(resp, &url, MANIFEST_LIMIT, self.settings.read_timeout).await?;
                Ok((body, ct))
            };
            match race::<OciError, _>(cancel, &url, attempt).await? {
                Ok((body, ct)) => {
                    let algo = if which.contains(':') {
                        which.split(':').next().unwrap_or("sha256")
                    } else {
                        "sha256"
                    };
                    let mut h = Algo::of_oci_digest(algo).map(Hasher::new).ok_or_else(|| {
                        OciError::Protocol {
                            url: url.clone(),
                            what: format!("unsupported digest algorithm {algo}"),
                        }
                    })?;
                    h.update(&body);
                    let actual = h.finish_prefixed();
                    if which.contains(':') && actual != which {
                        return Err(OciError::DigestMismatch {
                            blob: format!("manifest of {r}"),
                            expected: which.to_string(),
                            actual,
                        });
                    }
                    return Ok((body, ct, actual));
                }
                Err(failed) => retrier.after(failed, cancel).await.map_err(|e| *e)?,
            }
        }
    }

    /// A small blob (the config) read into memory and verified.
    async fn small_blob(
        &self,
        r: &Reference,
        digest: &str,
        size: u64,
        cancel: &CancellationToken,
    ) -> Result<Vec<u8>, OciError> {
        if size > CONFIG_LIMIT {
            return Err(OciError::TooLarge {
                url: format!("{r} config {digest}"),
                limit: CONFIG_LIMIT,
            });
        }
        let url = self.url(r, &format!("blobs/{digest}"));
        let mut retrier = Retrier::new(&self.settings, &url);
        let body = loop {
            let attempt = async {
                let resp = self.send_once(r, &url, None, 0).await?;
                if resp.status() == StatusCode::NOT_FOUND {
                    return Err(Failed::Fatal(Box::new(OciError::BlobUnknown {
                        reference: r.to_string(),
                        blob: digest.to_string(),
                    })));
                }
                check_ok(&resp, &url)?;
                read_limited(resp, &url, CONFIG_LIMIT, self.settings.read_timeout).await
            };
            match race::<OciError, _>(cancel, &url, attempt).await? {
                Ok(b) => break b,
                Err(failed) => retrier.after(failed, cancel).await.map_err(|e| *e)?,
            }
        };
        blob::verify(digest, size, &body)?;
        Ok(body)
    }
}

/// Non-success statuses left after auth and retries are permanent.
fn check_ok(resp: &reqwest::Response, url: &str) -> Result<(), Failed> {
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(Failed::Fatal(Box::new(OciError::Status {
            url: url.to_string(),
            status: resp.status().as_u16(),
        })))
    }
}

/// The distribution error code of a 404 (`MANIFEST_UNKNOWN`, `NAME_UNKNOWN`…) in words.
async fn not_found_code(resp: reqwest::Response, url: &str, stall: Duration) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorItem>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorItem {
        code: String,
    }
    let code = read_limited(resp, url, 64 << 10, stall)
        .await
        .ok()
        .and_then(|b| serde_json::from_slice::<Errors>(&b).ok())
        .and_then(|e| e.errors.into_iter().next())
        .map(|e| e.code);
    match code.as_deref() {
        Some("NAME_UNKNOWN") => "repository unknown".into(),
        // Some registries (docker-registry 2.8) also say this for an unknown repository.
        Some("MANIFEST_UNKNOWN") => "tag, digest or repository unknown".into(),
        Some(c) => c.to_string(),
        None => "HTTP 404".into(),
    }
}

/// Reads a whole body of at most `limit` bytes, each chunk within `stall`.
async fn read_limited(
    resp: reqwest::Response,
    url: &str,
    limit: u64,
    stall: Duration,
) -> Result<Vec<u8>, Failed> {
    if resp.content_length().is_some_and(|n| n > limit) {
        return Err(Failed::Fatal(Box::new(OciError::TooLarge {
            url: url.to_string(),
            limit,
        })));
    }
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    loop {
        let next = tokio::time::timeout(stall, stream.next()).await;
        match next {
            Err(_) => {
                return Err(Failed::Retry {
                    err: Box::new(OciError::Stalled {
                        url: url.to_string(),
                        done: body.len() as u64,
                        secs: stall.as_secs(),
                    }),
                    after: None,
                })
            }
            Ok(None) => return Ok(body),
            Ok(Some(Err(cause))) => {
                return Err(Failed::Retry {
                    err: Box::new(OciError::Transfer {
                        url: url.to_string(),
                        done: body.len() as u64,
                        cause,
                    }),
                    after: None,
                })
            }
            Ok(Some(Ok(chunk))) => {
                if body.len() as u64 + chunk.len() as u64 > limit {
                    return Err(Failed::Fatal(Box::new(OciError::TooLarge {
                        url: url.to_string(),
                        limit,
                    })));
                }
                body.extend_from_slice(&chunk);
            }
        }
    }
}

/// The compression named by a layer media type (`None` for unknown or foreign types).
pub fn compression_of(media_type: &str) -> Option<LayerCompression> {
    manifest::layer_compression("", "", media_type).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}

    /// Callers spawn pulls on a multi-threaded runtime: the futures must be `Send`.
    #[test]
    fn futures_are_send() {
        let reg = Registry::new(vec![]).unwrap();
        let r = Reference::parse("ghcr.io/offspot/kiwix-serve:3.8.1").unwrap();
        let p = Platform::arm64();
        let progress = Progress::silent();
        let cancel = CancellationToken::new();
        let dir = std::path::PathBuf::from("/nonexistent");
        let pull = reg.pull(&r, &p, &dir, &progress, &cancel);
        assert_send(&pull);
        let resolve = reg.resolve(&r, &p, &cancel);
        assert_send(&resolve);
        fn sync<T: Sync + Send>(_: &T) {}
        sync(&reg);
    }
}
