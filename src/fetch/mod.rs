//! Fetching every remote input: sources (http, https, file, path), resumable downloads with retries,
//! checksums, and a concurrent batch downloader.
//!
//! HTTP downloads stream into `dest.part` (hashing while writing) and are renamed to `dest` only once
//! verified; local files are never copied: their own path is returned after verification, so the caller
//! can hardlink or read them in place.

mod error;
mod http;
mod local;
mod partial;
mod range;
mod source;

pub use error::FetchError;
pub use source::Source;

use crate::digest::{first_token, Algo, Checksum, ChecksumKind};
use crate::net::NetSettings;
use crate::progress::{self, Progress, TaskKind};
use crate::CancellationToken;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What a probe learnt about a source without downloading it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Probe {
    pub size: Option<u64>,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// The raw RFC 3230 `Digest` header (e.g. `sha-256=BASE64`), when the server sends one.
    pub digest: Option<String>,
}

/// What a download must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expect {
    pub checksum: Option<Checksum>,
    /// Exact byte size of the downloaded file. Leave `None` for archives, whose config `size` is the
    /// expanded size.
    pub size: Option<u64>,
}

/// One file to download: a request of [`Fetcher::download_all`] (not `Job`: that is a card's work).
#[derive(Debug, Clone)]
pub struct Download {
    pub source: Source,
    pub dest: PathBuf,
    pub expect: Expect,
    /// Progress label (URL or file name).
    pub label: String,
}

/// A verified local file: `dest` for HTTP, the file itself for local sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    pub path: PathBuf,
    pub size: u64,
    /// Lower-case hex SHA-256 of the content.
    pub sha256: String,
}

/// The one fetcher every remote input goes through.
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    settings: NetSettings,
}

impl Fetcher {
    pub fn new(settings: NetSettings) -> Result<Self, FetchError> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("image-creator/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(settings.connect_timeout)
            .build()
            .map_err(FetchError::Client)?;
        Ok(Self { client, settings })
    }

    pub fn settings(&self) -> &NetSettings {
        &self.settings
    }

    /// Size and validators of a source. HTTP: HEAD, falling back to a GET whose body is not read when
    /// HEAD fails, is refused or has no length. File: stat (etag/last_modified stay `None`).
    pub async fn probe(
        &self,
        src: &Source,
        cancel: &CancellationToken,
    ) -> Result<Probe, FetchError> {
        match src {
            Source::Http(url) => self.probe_http(url, cancel).await,
            Source::File(path) => local::probe(path).await,
        }
    }

    /// The whole content of a small text (config file, md5sum file), with retries.
    pub async fn fetch_text(
        &self,
        src: &Source,
        cancel: &CancellationToken,
    ) -> Result<String, FetchError> {
        match src {
            Source::Http(url) => self.fetch_text_http(url, cancel).await,
            Source::File(path) => local::read_text(path).await,
        }
    }

    /// The first `n` bytes of a source (fewer if it is shorter): the planner reads the base image's
    /// partition table this way without downloading the whole image.
    pub async fn fetch_prefix(
        &self,
        src: &Source,
        n: u64,
        cancel: &CancellationToken,
    ) -> Result<Vec<u8>, FetchError> {
        match src {
            // From 0 a server ignoring `Range` still gives the right first bytes.
            Source::Http(url) => Ok(self
                .range_http(url, 0, n, cancel)
                .await?
                .unwrap_or_default()),
            Source::File(path) => local::read_range(path, 0, n).await,
        }
    }

    /// `n` bytes of a source from `start` (fewer at its end); `None` when the server ignores `Range`.
    /// The planner reads a remote base's index and one block this way.
    pub async fn fetch_range(
        &self,
        src: &Source,
        start: u64,
        n: u64,
        cancel: &CancellationToken,
    ) -> Result<Option<Vec<u8>>, FetchError> {
        match src {
            Source::Http(url) => self.range_http(url, start, n, cancel).await,
            Source::File(path) => local::read_range(path, start, n).await.map(Some),
        }
    }

    /// Streams `src` to `dest` (via `dest.part`), verifying `expect` while streaming. For
    /// [`Source::File`] nothing is written: the file's own path is returned once verified.
    pub async fn download(
        &self,
        src: &Source,
        dest: &Path,
        expect: &Expect,
        task: &mut progress::Task,
        cancel: &CancellationToken,
    ) -> Result<Downloaded, FetchError> {
        self.download_with(src, dest, expect, task, cancel).await
    }

    async fn download_with(
        &self,
        src: &Source,
        dest: &Path,
        expect: &Expect,
        task: &mut progress::Task,
        cancel: &CancellationToken,
    ) -> Result<Downloaded, FetchError> {
        let expected = self
            .expected_digest(src, expect.checksum.as_ref(), cancel)
            .await?;
        match src {
            Source::Http(url) => {
                self.download_http(url, dest, expect, expected, task, cancel)
                    .await
            }
            Source::File(path) => local::verify(path, expect, expected, task, cancel).await,
        }
    }

    /// The digest to compare against: the config value, or the first token of the checksum URL's text.
    async fn expected_digest(
        &self,
        src: &Source,
        checksum: Option<&Checksum>,
        cancel: &CancellationToken,
    ) -> Result<Option<(Algo, String)>, FetchError> {
        let Some(c) = checksum else { return Ok(None) };
        let value = match c.kind {
            ChecksumKind::Digest => c.value.trim().to_ascii_lowercase(),
            ChecksumKind::Url => {
                let wrap = |e: FetchError| FetchError::ChecksumSource {
                    url: src.display(),
                    cause: Box::new(e),
                };
                let csrc = Source::parse(&c.value, None).map_err(wrap)?;
                let text = self.fetch_text(&csrc, cancel).await.map_err(wrap)?;
                first_token(&text).ok_or(FetchError::ChecksumEmpty {
                    url: c.value.clone(),
                })?
            }
        };
        Ok(Some((c.algo, value)))
    }

    /// Runs many downloads: at most `concurrency` at once (0 = auto: 2×CPUs capped at 8; 1 =
    /// sequential), never two into the same destination. The first failure cancels the others (their
    /// `.part` files are removed before this returns) and is returned. Results follow `jobs` order.
    pub async fn download_all(
        &self,
        jobs: Vec<Download>,
        concurrency: usize,
        progress: &Progress,
        cancel: &CancellationToken,
    ) -> Result<Vec<Downloaded>, FetchError> {
        let limit = effective_concurrency(concurrency);
        // The batch's own token: the first failure stops its siblings, the caller's token stops all.
        let batch = cancel.child_token();
        let n = jobs.len();
        let groups = group_by_dest(jobs);
        let mut stream = futures_util::stream::iter(groups)
            .map(|group| self.run_group(group, progress, &batch))
            .buffer_unordered(limit);

        let mut results: Vec<Option<Downloaded>> = vec![None; n];
        let mut first_err: Option<FetchError> = None;
        // Drain everything even after a failure so every cancelled job cleans up before we return.
        while let Some(out) = stream.next().await {
            match out {
                Ok(done) => {
                    for (i, d) in done {
                        results[i] = Some(d);
                    }
                }
                Err(e) => {
                    batch.cancel();
                    // The real cause beats the cancellations it triggered.
                    match &first_err {
                        None => first_err = Some(e),
                        Some(prev) if prev.is_cancelled() && !e.is_cancelled() => {
                            first_err = Some(e)
                        }
                        Some(_) => {}
                    }
                }
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        Ok(results.into_iter().flatten().collect())
    }

    /// Jobs sharing a destination, one after the other; an identical repeat reuses the first result.
    async fn run_group(
        &self,
        group: Vec<(usize, Download)>,
        progress: &Progress,
        cancel: &CancellationToken,
    ) -> Result<Vec<(usize, Downloaded)>, FetchError> {
        let mut out: Vec<(usize, Downloaded)> = Vec::with_capacity(group.len());
        let mut last: Option<(Source, Expect, Downloaded)> = None;
        for (i, job) in group {
            if let Some((s, e, d)) = &last {
                if *s == job.source && *e == job.expect {
                    out.push((i, d.clone()));
                    continue;
                }
            }
            crate::net::retry::check(cancel, &job.source.display())?;
            let mut task = progress.task(TaskKind::Download, job.label.clone(), job.expect.size);
            let d = self
                .download_with(&job.source, &job.dest, &job.expect, &mut task, cancel)
                .await
                .inspect_err(|e| {
                    if !e.is_cancelled() {
                        tracing::debug!("download of {} failed: {e}", job.source);
                    }
                })?;
            task.finish();
            out.push((i, d.clone()));
            last = Some((job.source, job.expect, d));
        }
        Ok(out)
    }
}

/// 0 = auto (2×CPUs, at most 8); anything else as given.
pub fn effective_concurrency(requested: usize) -> usize {
    if requested > 0 {
        return requested;
    }
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    (2 * cpus).clamp(1, 8)
}

/// Groups jobs by destination, keeping the order of first appearance and the original indexes.
fn group_by_dest(jobs: Vec<Download>) -> Vec<Vec<(usize, Download)>> {
    let mut groups: Vec<Vec<(usize, Download)>> = Vec::new();
    let mut by_dest: HashMap<PathBuf, usize> = HashMap::new();
    for (i, job) in jobs.into_iter().enumerate() {
        match by_dest.get(&job.dest) {
            Some(&g) => groups[g].push((i, job)),
            None => {
                by_dest.insert(job.dest.clone(), groups.len());
                groups.push(vec![(i, job)]);
            }
        }
    }
    groups
}

/// `dest` + `.part`, in the same folder so the final rename is atomic.
fn part_path(dest: &Path) -> PathBuf {
    let mut s = dest.as_os_str().to_owned();
    s.push(".part");
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(src: &str, dest: &str) -> Download {
        Download {
            source: Source::parse(src, None).unwrap(),
            dest: dest.into(),
            expect: Expect::default(),
            label: src.into(),
        }
    }

    #[test]
    fn groups_share_destination() {
        let g = group_by_dest(vec![
            job("/a", "/d/1"),
            job("/b", "/d/2"),
            job("/c", "/d/1"),
        ]);
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].iter().map(|(i, _)| *i).collect::<Vec<_>>(), [0, 2]);
        assert_eq!(g[1][0].0, 1);
    }

    #[test]
    fn concurrency() {
        assert_eq!(effective_concurrency(1), 1);
        assert_eq!(effective_concurrency(5), 5);
        let auto = effective_concurrency(0);
        assert!((1..=8).contains(&auto));
    }

    #[test]
    fn part_is_a_sibling() {
        assert_eq!(part_path(Path::new("/x/y.img")), Path::new("/x/y.img.part"));
    }
}
