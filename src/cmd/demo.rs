//! `image-creator make-demo-base OUTPUT`: the tiny base image the README demo and the tests use.

use std::path::Path;

use image_creator::disk::{demo, DemoOptions};

use super::{boxed, CmdResult};

pub fn run(output: &Path, p1_start: u64, p3_type: u8) -> CmdResult {
    let opts = DemoOptions {
        p1_start,
        p3_type,
        ..DemoOptions::default()
    };
    demo::write_demo_base(output, &opts).map_err(boxed)?;
    let xz = if output.extension().is_some_and(|e| e == "xz") {
        " (xz)"
    } else {
        ""
    };
    Ok(format!("demo base written to {}{xz}", output.display()))
}
