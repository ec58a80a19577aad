//! What a pull produces and an export consumes: an image for one platform, its blobs on local disk.

use std::path::PathBuf;

/// A platform as registries name it (`linux/arm64/v8`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// The Offspot default: 64-bit Raspberry Pi 3 and newer.
    pub fn arm64() -> Platform {
        Platform {
            os: "linux".into(),
            architecture: "arm64".into(),
            variant: Some("v8".into()),
        }
    }
}

impl Default for Platform {
    fn default() -> Self {
        Platform::arm64()
    }
}

impl std::str::FromStr for Platform {
    type Err = String;
    /// `os/arch[/variant]`, e.g. `linux/arm64/v8`, `linux/amd64`, `linux/arm/v7`.
    fn from_str(s: &str) -> Result<Platform, String> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok =
            |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: None,
            }),
            [os, arch, v] if ok(os) && ok(arch) && ok(v) => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: Some(v.to_string()),
            }),
            _ => Err(format!(
                "`{s}`: expected OS/ARCH or OS/ARCH/VARIANT, e.g. linux/arm64/v8"
            )),
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerCompression {
    None,
    Gzip,
    Zstd,
}

/// One layer blob as downloaded (still compressed), its digest already verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerBlob {
    pub path: PathBuf,
    /// `sha256:<hex>` of the blob as stored in the registry.
    pub digest: String,
    pub media_type: String,
    pub compression: LayerCompression,
    /// Compressed size in bytes.
    pub size: u64,
}

/// An image pulled for one platform: everything needed to write a docker-archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledImage {
    /// Canonical reference, e.g. `ghcr.io/offspot/kiwix-serve:3.8.1` (becomes `RepoTags[0]`).
    pub reference: String,
    pub platform: Platform,
    /// `sha256:<hex>` of the platform's image manifest.
    pub manifest_digest: String,
    /// The image config blob, byte-exact (its sha256 is `config_digest`).
    pub config: Vec<u8>,
    pub config_digest: String,
    /// In manifest order.
    pub layers: Vec<LayerBlob>,
}
