//! The default command: `image-creator [OPTIONS] CONFIG_SRC OUTPUT`.

use image_creator::build::{self, BuildOptions};
use image_creator::device::{self, Eligibility};
use image_creator::disk::Target;
use image_creator::progress::Progress;
use image_creator::CancellationToken;

use super::cli::BuildArgs;
use super::write::WriteError;
use super::{boxed, CmdResult};

pub fn options(args: BuildArgs) -> BuildOptions {
    BuildOptions {
        config_src: args.config_src.unwrap_or_default(),
        output: args.output.unwrap_or_default(),
        build_dir: args.build_dir,
        check: args.check,
        keep: args.keep,
        overwrite: args.overwrite,
        force: args.force,
        concurrency: args.concurrency,
        max_size: args.max_size,
        cache_dir: args.cache_dir,
        show_cache: args.show_cache,
        offline: args.offline,
        platform: args.oci.platform,
        insecure_registries: args.oci.insecure_registries,
        reuse: args.reuse,
    }
}

pub fn run(
    args: BuildArgs,
    progress: &Progress,
    cancel: &CancellationToken,
    rt: &tokio::runtime::Handle,
) -> CmdResult {
    let yes = args.yes;
    let opts = options(args);
    // A card is erased: the same gate and question as `write` before anything starts.
    if !opts.check && Target::is_block_device(&opts.output) {
        let policy = Eligibility {
            allow_non_removable: opts.force,
            min_size: 0,
            image: None,
            extra_allowed_buses: Vec::new(),
        };
        let facts = device::gate(std::slice::from_ref(&opts.output), &policy).map_err(boxed)?;
        let what = format!("the build of {}", opts.config_src);
        if !yes && !super::write::ask(&facts, &what, cancel, rt) {
            return Err(boxed(if cancel.is_cancelled() {
                WriteError::Cancelled
            } else {
                WriteError::NotConfirmed
            }));
        }
    }
    let report = build::build(&opts, progress, cancel, rt).map_err(boxed)?;
    Ok(report.summary())
}
