//! Manifest documents (Docker v2 / OCI), media types and platform matching.

use crate::oci::error::OciError;
use crate::oci::reference::check_digest;
use crate::oci::{LayerCompression, Platform};
use serde::Deserialize;

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Every manifest type we can use, for `Accept`.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json";

const CONFIG_TYPES: [&str; 2] = [
    "application/vnd.docker.container.image.v1+json",
    "application/vnd.oci.image.config.v1+json",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Index,
    Manifest,
}

/// What a manifest body is: its own `mediaType` field wins over the HTTP `Content-Type` (some
/// registries answer `application/json`); an OCI document without either is told apart by its shape.
pub fn kind(reference: &str, body: &[u8], content_type: Option<&str>) -> Result<Kind, OciError> {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
        config: Option<serde_json::Value>,
    }
    let p: Probe = parse(reference, body, "manifest")?;
    let ct = content_type.map(|c| c.split(';').next().unwrap_or(c).trim());
    let mt = p.media_type.as_deref().or(ct).unwrap_or_default();
    match mt {
        OCI_INDEX | DOCKER_LIST => Ok(Kind::Index),
        OCI_MANIFEST | DOCKER_MANIFEST => Ok(Kind::Manifest),
        _ if p.manifests.is_some() => Ok(Kind::Index),
        _ if p.config.is_some() => Ok(Kind::Manifest),
        other => Err(OciError::UnsupportedMediaType {
            reference: reference.to_string(),
            media_type: other.to_string(),
            what: "manifest (schema 1 and artifacts are not images)",
        }),
    }
}

fn parse<'a, T: Deserialize<'a>>(
    reference: &str,
    body: &'a [u8],
    what: &'static str,
) -> Result<T, OciError> {
    serde_json::from_slice(body).map_err(|cause| OciError::BadJson {
        reference: reference.to_string(),
        what,
        cause,
    })
}

#[derive(Debug, Clone, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub platform: Option<PlatformJson>,
}

#[derive(Debug, Clone, Deserialize, Default)]
pub struct PlatformJson {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

impl PlatformJson {
    pub fn to_platform(&self) -> Platform {
        Platform {
            os: self.os.clone(),
            architecture: self.architecture.clone(),
            variant: self.variant.clone().filter(|v| !v.is_empty()),
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct Index {
    pub manifests: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
pub struct Manifest {
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

pub fn parse_index(reference: &str, body: &[u8]) -> Result<Index, OciError> {
    let idx: Index = parse(reference, body, "image index")?;
    for d in &idx.manifests {
        checked_digest(reference, &d.digest)?;
    }
    Ok(idx)
}

pub fn parse_manifest(reference: &str, body: &[u8]) -> Result<Manifest, OciError> {
    let m: Manifest = parse(reference, body, "image manifest")?;
    checked_digest(reference, &m.config.digest)?;
    for l in &m.layers {
        checked_digest(reference, &l.digest)?;
    }
    if !CONFIG_TYPES.contains(&m.config.media_type.as_str()) {
        return Err(OciError::UnsupportedMediaType {
            reference: reference.to_string(),
            media_type: m.config.media_type.clone(),
            what: "config (not a container image)",
        });
    }
    Ok(m)
}

/// Digests from a registry become file names: refuse anything but `algo:hex`.
fn checked_digest(reference: &str, d: &str) -> Result<(), OciError> {
    check_digest(d).map_err(|what| OciError::Protocol {
        url: reference.to_string(),
        what,
    })
}

/// The compression of a layer media type; foreign and unknown layers are errors.
pub fn layer_compression(
    reference: &str,
    digest: &str,
    media_type: &str,
) -> Result<LayerCompression, OciError> {
    match media_type {
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
        | "application/vnd.oci.image.layer.v1.tar+gzip" => Ok(LayerCompression::Gzip),
        "application/vnd.oci.image.layer.v1.tar+zstd" => Ok(LayerCompression::Zstd),
        "application/vnd.oci.image.layer.v1.tar"
        | "application/vnd.docker.image.rootfs.diff.tar" => Ok(LayerCompression::None),
        m if m.contains("foreign") || m.contains("nondistributable") => {
            Err(OciError::ForeignLayer {
                reference: reference.to_string(),
                blob: digest.to_string(),
                media_type: m.to_string(),
            })
        }
        m => Err(OciError::UnsupportedMediaType {
            reference: reference.to_string(),
            media_type: m.to_string(),
            what: "layer",
        }),
    }
}

/// The platform an image config declares.
pub fn config_platform(reference: &str, config: &[u8]) -> Result<Platform, OciError> {
    let p: PlatformJson = parse(reference, config, "image config")?;
    Ok(p.to_platform())
}

/// (os, architecture, variant) with aliases folded and default variants filled in, the way
/// containerd compares platforms: `arm64` ≡ `arm64/v8`, `arm` ≡ `arm/v7`, `aarch64` ≡ `arm64`.
fn normalise(p: &Platform) -> (String, String, Option<String>) {
    let os = p.os.to_ascii_lowercase();
    let (arch, implied) = match p.architecture.to_ascii_lowercase().as_str() {
        "aarch64" => ("arm64".to_string(), None),
        "x86_64" | "x86-64" => ("amd64".to_string(), None),
        "i386" => ("386".to_string(), None),
        "armhf" => ("arm".to_string(), Some("v7")),
        "armel" => ("arm".to_string(), Some("v6")),
        a => (a.to_string(), None),
    };
    let variant = p
        .variant
        .as_deref()
        .map(str::to_ascii_lowercase)
        .or(implied.map(str::to_string))
        .or_else(|| match arch.as_str() {
            "arm64" => Some("v8".to_string()),
            "arm" => Some("v7".to_string()),
            _ => None,
        });
    (os, arch, variant)
}

/// Whether an image for `have` runs where `want` is asked for. A wanted platform without a variant
/// takes any variant of its architecture.
pub fn platform_matches(want: &Platform, have: &Platform) -> bool {
    let (wo, wa, wv) = normalise(want);
    let (ho, ha, hv) = normalise(have);
    wo == ho && wa == ha && ((want.variant.is_none() && wa != "arm64") || wv == hv)
}

/// Index entries that are images (attestations and other artifacts say `unknown/unknown`).
pub fn is_image_platform(p: &Platform) -> bool {
    !p.os.is_empty()
        && p.os != "unknown"
        && !p.architecture.is_empty()
        && p.architecture != "unknown"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(os: &str, arch: &str, v: Option<&str>) -> Platform {
        Platform {
            os: os.into(),
            architecture: arch.into(),
            variant: v.map(Into::into),
        }
    }

    #[test]
    fn arm64_variants() {
        let want = Platform::arm64();
        assert!(platform_matches(&want, &p("linux", "arm64", None)));
        assert!(platform_matches(&want, &p("linux", "arm64", Some("v8"))));
        assert!(platform_matches(&want, &p("linux", "aarch64", None)));
        assert!(!platform_matches(&want, &p("linux", "arm64", Some("v9"))));
        assert!(!platform_matches(&want, &p("linux", "amd64", None)));
        assert!(!platform_matches(&want, &p("linux", "arm", Some("v7"))));
        assert!(!platform_matches(&want, &p("windows", "arm64", None)));
        assert!(platform_matches(
            &p("linux", "arm64", None),
            &p("linux", "arm64", Some("v8"))
        ));
    }

    #[test]
    fn other_arches() {
        assert!(platform_matches(
            &p("linux", "amd64", None),
            &p("linux", "x86_64", None)
        ));
        assert!(platform_matches(
            &p("linux", "arm", Some("v7")),
            &p("linux", "arm", None)
        ));
        assert!(!platform_matches(
            &p("linux", "arm", Some("v6")),
            &p("linux", "arm", None)
        ));
        // No variant asked: any variant of the architecture.
        assert!(platform_matches(
            &p("linux", "arm", None),
            &p("linux", "arm", Some("v6"))
        ));
        assert!(!is_image_platform(&p("unknown", "unknown", None)));
    }

    #[test]
    fn layer_types() {
        let c = |m: &str| layer_compression("r", "d", m);
        assert_eq!(
            c("application/vnd.docker.image.rootfs.diff.tar.gzip").unwrap(),
            LayerCompression::Gzip
        );
        assert_eq!(
            c("application/vnd.oci.image.layer.v1.tar+zstd").unwrap(),
            LayerCompression::Zstd
        );
        assert_eq!(
            c("application/vnd.oci.image.layer.v1.tar").unwrap(),
            LayerCompression::None
        );
        assert!(matches!(
            c("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"),
            Err(OciError::ForeignLayer { .. })
        ));
        assert!(matches!(
            c("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"),
            Err(OciError::ForeignLayer { .. })
        ));
        assert!(matches!(
            c("application/x-foo"),
            Err(OciError::UnsupportedMediaType { .. })
        ));
    }

    #[test]
    fn kinds_and_hostile_digests() {
        assert_eq!(
            kind(
                "r",
                br#"{"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#,
                None
            )
            .unwrap(),
            Kind::Index
        );
        assert_eq!(
            kind("r", br#"{"config":{}}"#, Some("application/json")).unwrap(),
            Kind::Manifest
        );
        assert_eq!(kind("r", b"{}", Some(DOCKER_LIST)).unwrap(), Kind::Index);
        assert!(matches!(
            kind("r", br#"{"schemaVersion":1,"fsLayers":[]}"#, None),
            Err(OciError::UnsupportedMediaType { .. })
        ));
        let m = br#"{"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:../../etc/passwd","size":1},"layers":[]}"#;
        assert!(matches!(
            parse_manifest("r", m),
            Err(OciError::Protocol { .. })
        ));
    }
}
