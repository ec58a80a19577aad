//! `image-creator cache show|prefetch|verify|apply`: manage a cache without building. Prefetch resolves a
//! config's inputs exactly as a build does and stores them, so a cache filled on a connected machine
//! serves an `--offline` build elsewhere.

use std::time::SystemTime;

use super::plan::{remotes_of, resolve_base};
use super::sourcing::{self, Origin, Remote};
use super::{gather, io_err, load_config, BuildError, BuildOptions, Env};
use crate::cache::Cache;
use crate::cli::CacheCommand;
use crate::config::size::format_size;
use crate::fetch::Fetcher;
use crate::progress::{Progress, Step};
use crate::CancellationToken;

pub fn run_cache_command(cmd: CacheCommand, progress: &Progress) -> Result<String, BuildError> {
    let now = SystemTime::now();
    match cmd {
        CacheCommand::Show { dir } => Ok(Cache::open(&dir.cache_dir, true)?.table(now)?),
        CacheCommand::Verify { dir } => {
            let cache = Cache::open(&dir.cache_dir, false)?;
            let (kept, removed) = cache.verify_all()?;
            let mut out = format!(
                "{kept} entries verified, {} corrupt entries removed",
                removed.len()
            );
            for key in removed {
                out.push_str(&format!("\n  removed: {key}"));
            }
            Ok(out)
        }
        CacheCommand::Apply { dir } => {
            let cache = Cache::open(&dir.cache_dir, false)?;
            let evicted = cache.apply(now)?;
            let freed: u64 = evicted.iter().map(|(e, _)| e.size).sum();
            let mut out = format!(
                "{} entries evicted, {} freed",
                evicted.len(),
                format_size(freed)
            );
            for (e, why) in evicted {
                out.push_str(&format!("\n  evicted: {} ({why})", e.key));
            }
            Ok(out)
        }
        CacheCommand::Prefetch {
            dir,
            config_src,
            concurrency,
        } => {
            let opts = BuildOptions {
                config_src,
                concurrency,
                cache_dir: Some(dir.cache_dir.clone()),
                ..Default::default()
            };
            prefetch(&opts, progress)
        }
    }
}

fn prefetch(opts: &BuildOptions, progress: &Progress) -> Result<String, BuildError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(io_err(
            "starting the runtime for",
            std::path::Path::new("-"),
        ))?;
    let fetcher = Fetcher::new(Default::default())?;
    let cache_dir = opts.cache_dir.clone().unwrap_or_default();
    let cache = Cache::open(&cache_dir, false)?;
    let cancel = CancellationToken::new();
    let env = Env {
        opts,
        fetcher: &fetcher,
        cache: Some(&cache),
        progress,
        cancel: &cancel,
        rt: &rt,
    };
    let (_, config, base_dir) = load_config(&opts.config_src, false, &fetcher, progress, &rt)?;

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
    let mut out = format!(
        "prefetched into {}: {fetched} downloaded, {hits} already cached (verified), {local} local (not cached)",
        cache.dir().display()
    );
    if skipped > 0 {
        out.push_str(&format!(", {skipped} not cacheable by the policy"));
    }
    Ok(out)
}
