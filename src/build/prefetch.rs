//! Prefetch: resolve a config's inputs exactly as a build does and store them in the cache, so a cache
//! filled on a connected machine serves an `--offline` build elsewhere.

use std::time::SystemTime;

use super::plan::{remotes_of, resolve_base};
use super::sourcing::{self, Origin, Remote};
use super::{gather, io_err, load_config, BuildError, BuildOptions, Env};
use crate::cache::Cache;
use crate::fetch::Fetcher;
use crate::progress::{Progress, Step};
use crate::CancellationToken;

/// What a prefetch did, per input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefetchReport {
    pub cache_dir: std::path::PathBuf,
    /// Inputs downloaded into the cache now.
    pub downloaded: usize,
    /// Inputs already in the cache (re-hashed and found intact).
    pub cached: usize,
    /// Local files, which a cache does not hold.
    pub local: usize,
    /// Inputs the cache policy refuses to hold.
    pub not_cacheable: usize,
}

/// Downloads everything the config `opts.config_src` needs into `opts.cache_dir`, resolving it exactly
/// as a build does. Blocking, like [`super::build`].
pub fn prefetch(
    opts: &BuildOptions,
    progress: &Progress,
    cancel: &CancellationToken,
    rt: &tokio::runtime::Handle,
) -> Result<PrefetchReport, BuildError> {
    let fetcher = Fetcher::new(Default::default())?;
    let cache_dir = opts.cache_dir.clone().unwrap_or_default();
    let cache = Cache::open(&cache_dir, false)?;
    let env = Env {
        opts,
        fetcher: &fetcher,
        cache: Some(&cache),
        progress,
        cancel,
        rt,
    };
    let (_, config, base_dir) =
        load_config(&opts.config_src, false, &fetcher, progress, cancel, rt)?;

    progress.step(Step::Plan, "Checking sources");
    let mut base = resolve_base(&config, base_dir.as_deref())?;
    let (mut files, mut oci) = remotes_of(&config, base_dir.as_deref())?;
    {
        let mut all: Vec<&mut Remote> = std::iter::once(&mut base.remote)
            .chain(files.values_mut())
            .chain(oci.values_mut())
            .collect();
        rt.block_on(sourcing::resolve(
            &mut all,
            &fetcher,
            Some(&cache),
            false,
            SystemTime::now(),
            cancel,
        ))?;
    }
    progress.step_done(Step::Plan);
    let all: Vec<&Remote> = std::iter::once(&base.remote)
        .chain(files.values())
        .chain(oci.values())
        .collect();
    let fetched = all
        .iter()
        .filter(|r| matches!(r.origin, Origin::Download { cache: true, .. }))
        .count();
    let hits = all
        .iter()
        .filter(|r| matches!(r.origin, Origin::Cached(_)))
        .count();
    let local = all
        .iter()
        .filter(|r| matches!(r.origin, Origin::Local))
        .count();
    let skipped = all.len() - fetched - hits - local;

    let work = cache.dir().join("build");
    std::fs::create_dir_all(&work).map_err(io_err("creating", &work))?;
    let downloads = tempfile::Builder::new()
        .prefix("prefetch-")
        .tempdir_in(&work)
        .map_err(io_err("creating a work directory in", &work))?;
    gather::gather_inputs(&config, &base.remote, &files, &oci, downloads.path(), &env)?;
    for (entry, why) in cache.apply(SystemTime::now())? {
        progress.warn(format!(
            "the cache policy evicted {} ({why}) right after prefetching",
            entry.key
        ));
    }
    Ok(PrefetchReport {
        cache_dir: cache.dir().to_path_buf(),
        downloaded: fetched,
        cached: hits,
        local,
        not_cacheable: skipped,
    })
}
