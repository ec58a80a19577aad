//! `image-creator cache show|prefetch|verify|apply`: manage a cache without building.

use std::time::SystemTime;

use image_creator::build::{self, BuildOptions};
use image_creator::cache::Cache;
use image_creator::progress::Progress;
use image_creator::units::format_size;
use image_creator::CancellationToken;

use super::cli::CacheCommand;
use super::{boxed, CmdResult};

pub fn run(
    cmd: CacheCommand,
    progress: &Progress,
    cancel: &CancellationToken,
    rt: &tokio::runtime::Handle,
) -> CmdResult {
    let now = SystemTime::now();
    match cmd {
        CacheCommand::Show { dir } => Ok(Cache::open_existing(&dir.cache_dir, true)
            .and_then(|c| c.table(now))
            .map_err(boxed)?),
        CacheCommand::Verify { dir } => {
            let cache = Cache::open_existing(&dir.cache_dir, false).map_err(boxed)?;
            let (kept, removed) = cache.verify_all().map_err(boxed)?;
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
            let cache = Cache::open_existing(&dir.cache_dir, false).map_err(boxed)?;
            let evicted = cache.apply(now).map_err(boxed)?;
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
                cache_dir: Some(dir.cache_dir),
                ..Default::default()
            };
            let r = build::prefetch(&opts, progress, cancel, rt).map_err(boxed)?;
            let mut out = format!(
                "prefetched into {}: {} downloaded, {} already cached (verified), {} local (not cached)",
                r.cache_dir.display(),
                r.downloaded,
                r.cached,
                r.local
            );
            if r.not_cacheable > 0 {
                out.push_str(&format!(
                    ", {} not cacheable by the policy",
                    r.not_cacheable
                ));
            }
            Ok(out)
        }
    }
}
