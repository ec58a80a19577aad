//! The build pipeline: load → plan → fetch → assemble (base copy) → stage → fill p3 → finish.
//! See ARCHITECTURE.md "Data flow of a build". Nothing here needs root, loop devices or mounts.

mod assemble;
mod gather;
mod images;
mod output;
mod plan;
mod prefetch;
mod reuse;
pub mod size;
mod sourcing;
mod stage;

use std::path::{Path, PathBuf};

use crate::archive::ArchiveError;
use crate::config::{self, ConfigError};
use crate::disk::ext4::Ext4Error;
use crate::disk::DiskError;
use crate::fetch::{FetchError, Fetcher, Source};
use crate::progress::{Progress, Step};
use crate::{CancellationToken, Classify, ErrorClass};

pub use images::oci_sizes;
pub use plan::Plan;
pub use prefetch::{prefetch, PrefetchReport};

#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Path, file:// or http(s):// URL of the config.
    pub config_src: String,
    pub output: PathBuf,
    pub build_dir: Option<PathBuf>,
    pub check: bool,
    pub keep: bool,
    pub overwrite: bool,
    /// A block-device OUTPUT may be a fixed disk (not removable, USB or MMC); never the system disk.
    pub force: bool,
    /// 0 = auto.
    pub concurrency: usize,
    pub max_size: Option<u64>,
    pub cache_dir: Option<PathBuf>,
    pub show_cache: bool,
    pub offline: bool,
    /// Platform of the container images (default linux/arm64/v8).
    pub platform: crate::oci::Platform,
    pub insecure_registries: Vec<String>,
    /// Hand out the cached build of this config when none of its inputs changed, and keep each new
    /// build in the cache for next time (file OUTPUT only; needs `cache_dir`).
    pub reuse: bool,
}

/// What every step of one run needs.
pub(crate) struct Env<'a> {
    pub opts: &'a BuildOptions,
    pub fetcher: &'a Fetcher,
    pub cache: Option<&'a crate::cache::Cache>,
    pub progress: &'a Progress,
    pub cancel: &'a CancellationToken,
    /// The caller's runtime: the pipeline is blocking code that waits on async work with `block_on`, so
    /// it must run on a thread outside the runtime (a plain thread or `spawn_blocking`).
    pub rt: &'a tokio::runtime::Handle,
}

#[derive(Debug)]
pub struct BuildReport {
    pub output: PathBuf,
    pub check_only: bool,
    pub image_size: u64,
    pub data_size: u64,
    pub lines: Vec<String>,
}

impl BuildReport {
    pub fn summary(&self) -> String {
        let mut s = if self.check_only {
            format!(
                "check ok: {} would be {}",
                self.output.display(),
                crate::units::format_size(self.image_size)
            )
        } else {
            format!(
                "image ready: {} ({}, data partition {})",
                self.output.display(),
                crate::units::format_size(self.image_size),
                crate::units::format_size(self.data_size)
            )
        };
        for line in &self.lines {
            s.push_str("\n  ");
            s.push_str(line);
        }
        s
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(transparent)]
    Disk(#[from] DiskError),
    #[error(transparent)]
    Device(#[from] crate::device::DeviceError),
    /// CONFIG_SRC is a path (or file://) that is not there.
    #[error(transparent)]
    ConfigMissing(crate::fetch::FetchError),
    #[error(transparent)]
    Ext4(#[from] Ext4Error),
    #[error("bad option {option}: {message}")]
    Option {
        option: &'static str,
        message: String,
    },
    #[error("{path}: output exists; pass -X/--overwrite to replace it")]
    OutputExists { path: PathBuf },
    #[error("{path}: {message}")]
    Output { path: PathBuf, message: String },
    #[error("{what} is too small: {given} bytes ({given_h}) given, the image needs at least {needed} bytes ({needed_h})")]
    TooSmall {
        what: String,
        given: u64,
        given_h: String,
        needed: u64,
        needed_h: String,
    },
    #[error(
        "the image would be {size} bytes ({size_h}), larger than --max-size {max} bytes ({max_h})"
    )]
    MaxSize {
        size: u64,
        size_h: String,
        max: u64,
        max_h: String,
    },
    #[error(
        "not enough free space in {path}: {needed_h} needed ({what}), {available_h} available"
    )]
    NoSpace {
        path: PathBuf,
        what: String,
        needed_h: String,
        available_h: String,
    },
    #[error("base image {source_name}: {message}")]
    BadBase {
        source_name: String,
        message: String,
    },
    #[error("{key}: {message}")]
    Content { key: String, message: String },
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cancelled")]
    Cancelled,
    #[error(transparent)]
    Cache(#[from] crate::cache::CacheError),
    #[error(transparent)]
    Export(#[from] crate::oci::ExportError),
    #[error(transparent)]
    Oci(#[from] crate::oci::OciError),
    #[error(transparent)]
    Bmap(#[from] crate::disk::bmap::BmapError),
    #[error("offline: {} input(s) not in the cache (prefetch them with `image-creator cache prefetch` on a connected machine):\n  {}", missing.len(), missing.join("\n  "))]
    Offline { missing: Vec<String> },
    #[error("{key}: the cached copy of {url} is corrupt (removed from the cache) and --offline forbids downloading it again")]
    CorruptOffline { key: String, url: String },
}

impl Classify for BuildError {
    fn class(&self) -> ErrorClass {
        match self {
            BuildError::Config(e) => e.class(),
            BuildError::Fetch(e) => e.class(),
            BuildError::Archive(e) => e.class(),
            BuildError::Disk(e) => e.class(),
            BuildError::Device(e) => e.class(),
            BuildError::ConfigMissing(_) => ErrorClass::BadInput,
            BuildError::Ext4(e) => e.class(),
            BuildError::Option { .. }
            | BuildError::OutputExists { .. }
            | BuildError::Output { .. }
            | BuildError::TooSmall { .. }
            | BuildError::MaxSize { .. }
            | BuildError::NoSpace { .. }
            | BuildError::BadBase { .. }
            | BuildError::Content { .. } => ErrorClass::BadInput,
            BuildError::Io { .. } | BuildError::Cancelled => ErrorClass::Failure,
            BuildError::Cache(e) => e.class(),
            BuildError::Export(e) => e.class(),
            BuildError::Oci(e) => e.class(),
            BuildError::Bmap(e) => e.class(),
            BuildError::Offline { .. } | BuildError::CorruptOffline { .. } => {
                ErrorClass::Unreachable
            }
        }
    }
}

pub(crate) fn io_err(
    action: &'static str,
    path: &Path,
) -> impl FnOnce(std::io::Error) -> BuildError {
    let path = path.to_path_buf();
    move |source| BuildError::Io {
        action,
        path,
        source,
    }
}

/// Runs a whole build (or only its checks with `opts.check`). Blocking: call it from a plain thread or
/// `spawn_blocking`, with a handle of the runtime that serves its downloads.
pub fn build(
    opts: &BuildOptions,
    progress: &Progress,
    cancel: &CancellationToken,
    rt: &tokio::runtime::Handle,
) -> Result<BuildReport, BuildError> {
    let fetcher = Fetcher::new(Default::default())?;

    let (text, config, base_dir) = load_config(
        &opts.config_src,
        opts.offline,
        &fetcher,
        progress,
        cancel,
        rt,
    )?;

    let out = output::Output::preflight(&opts.output, opts.overwrite, opts.force)?;
    // --check opens the cache read-only: it never writes a policy file, an index or anything else.
    let cache = match &opts.cache_dir {
        Some(dir) => Some(crate::cache::Cache::open(dir, opts.check)?),
        None => None,
    };
    if opts.reuse && cache.is_none() {
        return Err(BuildError::Option {
            option: "--reuse",
            message:
                "needs a cache (--cache-dir or IMAGE_CREATOR_CACHE): built images are kept there"
                    .into(),
        });
    }
    let env = Env {
        opts,
        fetcher: &fetcher,
        cache: cache.as_ref(),
        progress,
        cancel,
        rt,
    };

    progress.step(Step::Plan, "Checking sources, sizes and free space");
    let plan = rt.block_on(plan::Plan::make(&config, base_dir.as_deref(), &out, &env))?;
    progress.step_done(Step::Plan);
    // --reuse: the key exists only when every input's freshness is known (build::reuse).
    let reuse_key = match &cache {
        Some(_) if opts.reuse && !opts.check && !out.is_device() => {
            reuse::key(&reuse::config_name(&opts.config_src), &text, &plan, &env)
        }
        _ => None,
    };
    if opts.reuse && reuse_key.is_none() && !opts.check {
        progress.info(if out.is_device() {
            "--reuse: a build onto a device is not kept (its data partition fills the card)"
        } else {
            "--reuse: some input cannot tell whether it changed; building"
        });
    }
    let cached_build = match (&cache, &reuse_key) {
        (Some(c), Some(k)) => c.lookup(crate::cache::Kind::BuiltImage, k)?,
        _ => None,
    };
    let reused = match (&cache, cached_build) {
        (Some(c), Some(entry)) => match reuse::deliver(c, &entry, out.clone(), &plan, &env) {
            Ok(report) => Some(report),
            Err(BuildError::Content { message, .. }) => {
                progress.warn(message);
                None
            }
            Err(e) => return Err(e),
        },
        _ => None,
    };
    let mut report = if let Some(report) = reused {
        report
    } else if opts.check {
        BuildReport {
            output: opts.output.clone(),
            check_only: true,
            image_size: plan.image_size,
            data_size: plan.image_size - plan.root_size,
            lines: plan.describe(),
        }
    } else {
        let report = assemble::run(&config, &text, &plan, out, &env)?;
        if let (Some(c), Some(k)) = (&cache, &reuse_key) {
            reuse::keep(c, k, &report.output, &env);
        }
        report
    };
    if let Some(cache) = &cache {
        let now = std::time::SystemTime::now();
        if !opts.check {
            for (entry, why) in cache.apply(now)? {
                progress.info(format!("cache: evicted {} ({why})", entry.key));
            }
        }
        if opts.show_cache {
            report
                .lines
                .extend(cache.table(now)?.lines().map(str::to_string));
        }
    }
    Ok(report)
}

/// Reads and parses CONFIG_SRC; returns its text, the config, and the folder relative paths resolve in.
pub(crate) fn load_config(
    config_src: &str,
    offline: bool,
    fetcher: &Fetcher,
    progress: &Progress,
    cancel: &CancellationToken,
    rt: &tokio::runtime::Handle,
) -> Result<(String, config::Config, Option<PathBuf>), BuildError> {
    progress.step(Step::Load, format!("Reading config {config_src}"));
    let cwd =
        std::env::current_dir().map_err(io_err("reading the current directory", Path::new(".")))?;
    let config_source = Source::parse(config_src, Some(&cwd))?;
    if offline && matches!(config_source, Source::Http(_)) {
        return Err(BuildError::Offline {
            missing: vec![format!("config: {}", config_source.display())],
        });
    }
    // A config file that is not there is bad input (exit 3); a config URL that does not answer stays
    // unreachable (4).
    let text = rt
        .block_on(fetcher.fetch_text(&config_source, cancel))
        .map_err(|e| match e {
            FetchError::LocalMissing { .. } => BuildError::ConfigMissing(e),
            e => e.into(),
        })?;
    let config = config::parse(&text, &config_source.display())?;
    let base_dir = match &config_source {
        Source::File(path) => path.parent().map(Path::to_path_buf),
        Source::Http(_) => None,
    };
    progress.step_done(Step::Load);
    Ok((text, config, base_dir))
}
