//! OCI images: references, registry client (auth, manifests, platform selection, verified blobs),
//! docker-archive writer and inspector, and the `oci-sizes` snippet.
pub mod auth;
pub mod error;
pub mod export;
pub mod image;
pub mod reference;
pub mod registry;
pub mod sizes;

pub use auth::{credentials_for, Credentials};
pub use error::OciError;
pub use export::{
    archive_file_name, inspect_docker_archive, write_docker_archive, ArchiveInfo, ExportError,
    Exported,
};
pub use image::{LayerBlob, LayerCompression, Platform, PulledImage};
pub use reference::Reference;
pub use registry::{PlatformManifest, Registry};
pub use sizes::SizeLine;
