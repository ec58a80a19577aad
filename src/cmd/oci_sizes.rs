//! `image-creator oci-sizes IDENT|TAR...`: the `oci_images` snippet, ready to paste into a config.

use image_creator::build;
use image_creator::oci::sizes::render;
use image_creator::progress::Progress;
use image_creator::CancellationToken;

use super::cli::OciArgs;
use super::{boxed, CmdResult};

pub fn run(
    items: &[String],
    oci: &OciArgs,
    progress: &Progress,
    cancel: &CancellationToken,
    rt: &tokio::runtime::Handle,
) -> CmdResult {
    let lines = build::oci_sizes(
        items,
        &oci.platform,
        &oci.insecure_registries,
        progress,
        cancel,
        rt,
    )
    .map_err(boxed)?;
    Ok(render(&lines))
}
