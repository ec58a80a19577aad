//! The typed config: what a build needs, after parsing and validation.
//! Field docs give the seed README key each one comes from.

use std::path::PathBuf;

use super::offspot::Offspot;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Via {
    #[default]
    Direct,
    Base64,
    Zip,
    Tar,
    Gztar,
    Bztar,
    Xztar,
}

impl Via {
    pub fn is_archive(self) -> bool {
        !matches!(self, Via::Direct | Via::Base64)
    }

    pub fn name(self) -> &'static str {
        match self {
            Via::Direct => "direct",
            Via::Base64 => "base64",
            Via::Zip => "zip",
            Via::Tar => "tar",
            Via::Gztar => "gztar",
            Via::Bztar => "bztar",
            Via::Xztar => "xztar",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    pub algo: Algo,
    /// Lower-case hex digest (kind `digest`) or the URL of an md5sum-format file (kind `url`).
    pub value: String,
    pub kind: ChecksumKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algo {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
    Md5,
    Adler32,
}

impl Algo {
    /// The config spelling (`sha-256`).
    pub fn name(self) -> &'static str {
        match self {
            Algo::Sha1 => "sha-1",
            Algo::Sha224 => "sha-224",
            Algo::Sha256 => "sha-256",
            Algo::Sha384 => "sha-384",
            Algo::Sha512 => "sha-512",
            Algo::Md5 => "md5",
            Algo::Adler32 => "adler32",
        }
    }

    /// Length of the lower-case hex digest.
    pub fn hex_len(self) -> usize {
        match self {
            Algo::Sha1 => 40,
            Algo::Sha224 => 56,
            Algo::Sha256 => 64,
            Algo::Sha384 => 96,
            Algo::Sha512 => 128,
            Algo::Md5 => 32,
            Algo::Adler32 => 8,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChecksumKind {
    #[default]
    Digest,
    Url,
}
