//! Command-line definitions. The default command is seed-compatible:
//! `image-creator [OPTIONS] CONFIG_SRC OUTPUT`; helpers are subcommands.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const ABOUT: &str =
    "Create an Offspot / Kiwix Hotspot image from a config file — no root, no loop devices";

const LONG_ABOUT: &str = "\
Create an Offspot / Kiwix Hotspot image from a YAML config file.

The base image (a version such as 1.4.2, a URL or a path; .img or .img.xz) is copied, its data
partition is re-created and filled with the config's files, expanded archives and container images,
and the runtime config (`offspot:`) is written to the boot partition as offspot.yaml.
Runs as an unprivileged user: no root, no loop devices, no mounts (root is only needed to open a
block device as OUTPUT).";

const AFTER_HELP: &str = "\
Exit codes: 0 success, 1 failure, 2 missing requirement (e.g. mke2fs), 3 bad input (config,
options, sizes that cannot fit, OUTPUT exists without -X), 4 unreachable source.
Progress is drawn as bars on a terminal and written as one JSON object per line otherwise.
Config reference: README.md, section \"Config reference\".";

#[derive(Debug, Parser)]
#[command(
    name = "image-creator",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub build: BuildArgs,

    /// Debug logs (and backtraces of errors) on stderr.
    #[arg(short = 'D', long, global = true)]
    pub debug: bool,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Directory for temporary files (downloads, staging tree). Created if missing; only what this run
    /// puts in it is removed. Default: a new directory under $TMPDIR.
    #[arg(long, value_name = "DIR")]
    pub build_dir: Option<PathBuf>,

    /// Only check the config, sources (reachability and sizes) and free space; write nothing anywhere.
    #[arg(short = 'C', long)]
    pub check: bool,

    /// Keep the (partial) output and build directory when the build fails, for debugging.
    #[arg(short = 'K', long)]
    pub keep: bool,

    /// Replace an existing OUTPUT file (it is replaced only once the new image is complete).
    #[arg(short = 'X', long)]
    pub overwrite: bool,

    /// Parallel downloads (at most one per file): 0 = automatic (based on CPUs), 1 = sequential.
    #[arg(short = 'T', long, value_name = "N", default_value_t = 0)]
    pub concurrency: usize,

    /// Refuse to build an image larger than this (e.g. 512GB, 64GiB).
    #[arg(long, value_name = "SIZE")]
    pub max_size: Option<String>,

    /// Config: a path, a file:// URL or an http(s):// URL.
    #[arg(value_name = "CONFIG_SRC", required = true)]
    pub config_src: Option<String>,

    /// Where to write the image: a file (created sparse) or a whole block device.
    #[arg(value_name = "OUTPUT", required = true)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write the tiny demo base image (the README demo and the test fixtures are made with it).
    #[command(name = "make-demo-base")]
    MakeDemoBase {
        /// Output file (must not exist). A name ending in .xz is xz-compressed.
        output: PathBuf,
        /// Start of p1 in 512-byte sectors: 16384 (1.4.x layout) or 8192 (older releases).
        #[arg(long, default_value_t = 16384)]
        p1_start: u64,
        /// MBR type of p3: 0x83, or 0x07 as in releases 1.0.0–1.2.1 (decimal or 0x-prefixed).
        #[arg(long, default_value = "0x83")]
        p3_type: String,
    },
}
