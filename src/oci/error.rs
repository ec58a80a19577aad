//! The OCI module's error type: references, registry access, manifests and blobs.

use super::Platform;
use crate::{Classify, ErrorClass};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error("invalid image reference {input:?}: {reason}")]
    BadReference { input: String, reason: String },

    #[error("cannot set up the HTTP client")]
    Client(#[source] reqwest::Error),

    /// The tag, digest or repository does not exist (HTTP 404 / `MANIFEST_UNKNOWN`, `NAME_UNKNOWN`).
    #[error("image {reference} not found in its registry ({what})")]
    ManifestUnknown { reference: String, what: String },

    #[error("blob {blob} of image {reference} not found in its registry")]
    BlobUnknown { reference: String, blob: String },

    #[error("image {reference} has no {wanted} variant; available: {}", list(.available))]
    PlatformMissing {
        reference: String,
        wanted: Platform,
        available: Vec<Platform>,
    },

    #[error("digest mismatch for blob {blob}: expected {expected}, got {actual}")]
    DigestMismatch {
        blob: String,
        expected: String,
        actual: String,
    },

    #[error(
        "size mismatch for blob {blob}: expected {expected} bytes ({}), got {actual} ({})",
        crate::units::format_size(*expected),
        crate::units::format_size(*actual)
    )]
    SizeMismatch {
        blob: String,
        expected: u64,
        actual: u64,
    },

    #[error(
        "registry {registry} requires credentials for {reference} (or the repository does not exist): \
         set {env}=user:password, or `docker login {registry}` (read from $DOCKER_CONFIG/config.json or \
         ~/.docker/config.json)"
    )]
    AuthRequired {
        registry: String,
        reference: String,
        env: String,
    },

    #[error(
        "registry {registry} refused the credentials from {origin} for {reference}: check them \
         (or the repository name)"
    )]
    AuthFailed {
        registry: String,
        reference: String,
        origin: String,
    },

    #[error("registry {registry}: cannot connect ({url})")]
    RegistryDown {
        registry: String,
        url: String,
        #[source]
        cause: reqwest::Error,
    },

    #[error("{url}: HTTP {status}")]
    Status { url: String, status: u16 },

    #[error("{url}: transfer failed after {done} bytes")]
    Transfer {
        url: String,
        done: u64,
        #[source]
        cause: reqwest::Error,
    },

    #[error("{url}: no data for {secs}s (after {done} bytes)")]
    Stalled { url: String, done: u64, secs: u64 },

    #[error("{url}: connection closed after {done} of {total} bytes")]
    ShortBody { url: String, done: u64, total: u64 },

    #[error("{url}: unexpected reply: {what}")]
    Protocol { url: String, what: String },

    #[error("{url}: larger than the {limit} bytes allowed for a manifest or config")]
    TooLarge { url: String, limit: u64 },

    #[error("image {reference}: unsupported media type {media_type} ({what})")]
    UnsupportedMediaType {
        reference: String,
        media_type: String,
        what: &'static str,
    },

    #[error(
        "image {reference}: layer {blob} is foreign / non-distributable ({media_type}); it cannot be \
         pulled from the registry"
    )]
    ForeignLayer {
        reference: String,
        blob: String,
        media_type: String,
    },

    #[error("image {reference}: malformed {what}")]
    BadJson {
        reference: String,
        what: &'static str,
        #[source]
        cause: serde_json::Error,
    },

    #[error("{path}: write error")]
    Write {
        path: PathBuf,
        #[source]
        cause: std::io::Error,
    },

    #[error("{path}: read error")]
    Read {
        path: PathBuf,
        #[source]
        cause: std::io::Error,
    },

    #[error("pull of {reference} cancelled")]
    Cancelled { reference: String },
}

fn list(platforms: &[Platform]) -> String {
    if platforms.is_empty() {
        return "none".into();
    }
    platforms
        .iter()
        .map(Platform::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl OciError {
    pub fn is_cancelled(&self) -> bool {
        matches!(self, OciError::Cancelled { .. })
    }
}

impl Classify for OciError {
    fn class(&self) -> ErrorClass {
        use OciError::*;
        match self {
            BadReference { .. } => ErrorClass::BadInput,
            ManifestUnknown { .. }
            | BlobUnknown { .. }
            | PlatformMissing { .. }
            | RegistryDown { .. }
            | Transfer { .. }
            | Stalled { .. }
            | ShortBody { .. } => ErrorClass::Unreachable,
            // Server errors that survived every retry: the registry is unreachable in practice.
            Status { status, .. } if *status >= 500 || *status == 429 || *status == 408 => {
                ErrorClass::Unreachable
            }
            AuthRequired { .. } | AuthFailed { .. } => ErrorClass::MissingRequirement,
            Client(_)
            | Status { .. }
            | DigestMismatch { .. }
            | SizeMismatch { .. }
            | Protocol { .. }
            | TooLarge { .. }
            | UnsupportedMediaType { .. }
            | ForeignLayer { .. }
            | BadJson { .. }
            | Write { .. }
            | Read { .. }
            | Cancelled { .. } => ErrorClass::Failure,
        }
    }
}
