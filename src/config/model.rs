//! The typed config: what a build needs, after parsing and validation.
//! Field docs give the seed README key each one comes from.

use std::path::PathBuf;

use super::offspot::Offspot;

/// How a file is delivered is the archive layer's vocabulary; the config names it.
pub use crate::archive::Via;
/// Checksums are declared in the config but verified by fetch, so their types live in `digest`.
pub use crate::digest::{Algo, Checksum, ChecksumKind};

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `base` (bare string or mapping).
    pub base: Base,
    /// `output`.
    pub output: Output,
    /// `oci_images[]` (mapping or bare ident string).
    pub oci_images: Vec<OciImage>,
    /// `files[]`.
    pub files: Vec<FileEntry>,
    /// `write_config`: the raw config text goes to `/data/conf/image.yaml`.
    pub write_config: bool,
    /// `offspot`: runtime config, validated, written as `offspot.yaml` on p1.
    pub offspot: Option<Offspot>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Base {
    /// Version (`1.4.2`), URL (`https://…`, `file://…`) or path, as written in the config.
    pub source: String,
    /// `root_size` / `rootfs_size`: bytes before the data partition's content.
    pub root_size: Option<u64>,
    pub checksum: Option<Checksum>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputSize {
    /// The computed minimum.
    #[default]
    Auto,
    Bytes(u64),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Output {
    pub size: OutputSize,
    /// Create the image at its computed minimum; a given `size` is only checked to fit the content.
    pub shrink: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciImage {
    /// Position in `oci_images[]`, for error messages (`oci_images[2]`).
    pub index: usize,
    pub ident: String,
    /// A prebuilt docker-archive to use instead of pulling.
    pub url: Option<String>,
    /// Bytes of the docker-archive tar.
    pub filesize: Option<u64>,
    /// Bytes once unpacked by the container engine.
    pub fullsize: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Position in `files[]`, for error messages (`files[3]`).
    pub index: usize,
    /// `to` as written, normalised (`..` collapsed), always starting with `/data/`.
    pub to: String,
    /// `to` relative to the data partition's root (`/data/contents/x` → `contents/x`); never empty,
    /// never absolute, no `..` component.
    pub rel: PathBuf,
    pub source: FileSource,
    pub via: Via,
    /// `size`: expanded size for archives, file size otherwise.
    pub size: Option<u64>,
    pub checksum: Option<Checksum>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileSource {
    /// `url`: `http(s)://`, `file://` or a path (relative to the config file's folder).
    Url(String),
    /// `content`: text written as-is (`via: direct`) or decoded (`via: base64`).
    Content(String),
}
