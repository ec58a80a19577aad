//! Command-line definitions (binary side only). The default command is seed-compatible:
//! `image-creator [OPTIONS] CONFIG_SRC OUTPUT`; helpers are subcommands. Values are parsed here (sizes,
//! byte values) so the library only ever sees typed options.

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

    /// OUTPUT is a block device: do not ask before erasing it (without a terminal, required).
    #[arg(short = 'y', long)]
    pub yes: bool,

    /// OUTPUT is a block device: allow one that is not removable, USB or MMC (never the system disk).
    #[arg(long)]
    pub force: bool,

    /// Parallel downloads (at most one per file): 0 = automatic (based on CPUs), 1 = sequential.
    #[arg(short = 'T', long, value_name = "N", default_value_t = 0)]
    pub concurrency: usize,

    /// Refuse to build an image larger than this (e.g. 512GB, 64GiB).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_size: Option<u64>,

    /// Download cache: remote inputs are served from DIR when present and fresh, and stored there after
    /// downloading, following DIR/policy.yaml (a default one is written when absent). Plain files and an
    /// index: the directory can live on any USB disk (FAT32, exFAT) and be carried to an offline machine.
    #[arg(long, value_name = "DIR", env = "IMAGE_CREATOR_CACHE")]
    pub cache_dir: Option<PathBuf>,

    /// Print the cache's content (totals, entries, what the policy would evict) after the build;
    /// with -C, print it and touch nothing.
    #[arg(long, requires = "cache_dir")]
    pub show_cache: bool,

    /// No network access at all: every remote input must be in the cache (all missing ones are listed).
    #[arg(long)]
    pub offline: bool,

    /// Reuse the cache's earlier build of this config when the config and every input are unchanged
    /// (same text, same cached bytes or origin validators): OUTPUT is then a copy of it, made in the time
    /// of a copy. Each new build is kept in the cache (policy `built_images`). File OUTPUT only.
    #[arg(long)]
    pub reuse: bool,

    #[command(flatten)]
    pub oci: OciArgs,

    /// Config: a path, a file:// URL or an http(s):// URL.
    #[arg(value_name = "CONFIG_SRC", required = true)]
    pub config_src: Option<String>,

    /// Where to write the image: a file (created sparse) or a whole block device.
    #[arg(value_name = "OUTPUT", required = true)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the `oci_images` YAML snippet (ident, filesize, fullsize) for images or docker-archive tars,
    /// ready to paste into a config. Images are pulled for --platform to measure them.
    #[command(name = "oci-sizes")]
    OciSizes {
        /// Image references (ghcr.io/offspot/kiwix-serve:3.8.1) or docker-archive .tar files.
        #[arg(value_name = "IDENT|TAR", required = true)]
        items: Vec<String>,
        #[command(flatten)]
        oci: OciArgs,
    },
    /// Write one image to one or more cards at once: only its used blocks (from IMAGE.bmap or the file's
    /// holes), each card in its own thread, each read back and compared (verification reads the card, not
    /// the page cache). Every device is checked first: whole disk, not the system disk, nothing mounted,
    /// large enough, removable/USB/MMC unless --force. Exit 0 only when every card succeeded.
    Write {
        /// A raw image (with or without IMAGE.bmap beside it), or .img.xz / .img.zst / .img.gz (decompressed once).
        #[arg(value_name = "IMAGE")]
        image: PathBuf,
        /// Whole-disk block devices (/dev/sdb, /dev/mmcblk0).
        #[arg(value_name = "DEVICE", required = true)]
        devices: Vec<PathBuf>,
        /// Skip reading every card back.
        #[arg(long)]
        no_verify: bool,
        /// Discard (TRIM) the unmapped ranges first, so they read as zeros.
        #[arg(long)]
        discard: bool,
        /// Allow devices that are not removable, USB or MMC.
        #[arg(long)]
        force: bool,
        /// Do not ask for confirmation.
        #[arg(short = 'y', long)]
        yes: bool,
        /// Before writing, check each card really holds its advertised size (fake-capacity cards).
        #[arg(long)]
        probe: bool,
        /// Bytes per write (1–8 MiB, a multiple of 64 KiB).
        #[arg(long, value_name = "SIZE", default_value = "4MiB", value_parser = parse_chunk)]
        chunk: usize,
    },
    /// Manage a download cache without building: show, prefetch, verify, apply the policy.
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Write the tiny demo base image (the README demo and the test fixtures are made with it).
    #[command(name = "make-demo-base")]
    MakeDemoBase {
        /// Output file (must not exist). A name ending in .xz is xz-compressed.
        output: PathBuf,
        /// Start of p1 in 512-byte sectors: 16384 (1.4.x layout) or 8192 (older releases).
        #[arg(long, default_value_t = 16384)]
        p1_start: u64,
        /// MBR type of p3: 0x83, or 0x07 as in releases 1.0.0–1.2.1 (decimal or 0x-prefixed).
        #[arg(long, default_value = "0x83", value_parser = parse_byte)]
        p3_type: u8,
    },
}

#[derive(Debug, Args, Clone)]
pub struct OciArgs {
    /// Platform of the container images to pull (the hotspot's): OS/ARCH[/VARIANT].
    #[arg(long, value_name = "PLATFORM", default_value = "linux/arm64/v8")]
    pub platform: image_creator::oci::Platform,

    /// Reach this registry (HOST[:PORT]) over plain HTTP; loopback registries always are, as with Docker.
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure_registries: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CacheDir {
    /// The cache directory.
    #[arg(long, value_name = "DIR", env = "IMAGE_CREATOR_CACHE")]
    pub cache_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Print totals and every entry (size, added, uses, last used, source), marking what the policy would evict.
    Show {
        #[command(flatten)]
        dir: CacheDir,
    },
    /// Download everything CONFIG_SRC needs into the cache, so the cache can be carried to an offline machine.
    Prefetch {
        #[command(flatten)]
        dir: CacheDir,
        /// Config: a path, a file:// URL or an http(s):// URL.
        #[arg(value_name = "CONFIG_SRC")]
        config_src: String,
        /// Parallel downloads: 0 = automatic, 1 = sequential.
        #[arg(short = 'T', long, value_name = "N", default_value_t = 0)]
        concurrency: usize,
    },
    /// Re-hash every entry; entries whose bytes do not match their SHA-256 are removed.
    Verify {
        #[command(flatten)]
        dir: CacheDir,
    },
    /// Apply policy.yaml now: evict what it says must go.
    Apply {
        #[command(flatten)]
        dir: CacheDir,
    },
}

fn parse_size(text: &str) -> Result<u64, String> {
    image_creator::units::parse_size(text).map_err(|e| e.to_string())
}

fn parse_chunk(text: &str) -> Result<usize, String> {
    usize::try_from(parse_size(text)?).map_err(|_| "too large".to_string())
}

/// A byte as `0x83` or `131`.
fn parse_byte(text: &str) -> Result<u8, String> {
    match text.strip_prefix("0x") {
        Some(hex) => u8::from_str_radix(hex, 16),
        None => text.parse(),
    }
    .map_err(|_| format!("`{text}`: expected a byte such as 0x83 or 0x07"))
}
