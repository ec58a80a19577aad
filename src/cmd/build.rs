//! The default command: `image-creator [OPTIONS] CONFIG_SRC OUTPUT`.

use image_creator::build::{self, BuildOptions};
use image_creator::progress::Progress;
use image_creator::CancellationToken;

use super::cli::BuildArgs;
use super::{boxed, CmdResult};

pub fn options(args: BuildArgs) -> BuildOptions {
    BuildOptions {
        config_src: args.config_src.unwrap_or_default(),
        output: args.output.unwrap_or_default(),
        build_dir: args.build_dir,
        check: args.check,
        keep: args.keep,
        overwrite: args.overwrite,
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
    let report = build::build(&options(args), progress, cancel, rt).map_err(boxed)?;
    Ok(report.summary())
}
