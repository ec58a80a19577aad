//! OCI images: registry client, platform selection, docker-archive writer.
pub mod auth;
pub mod error;
pub mod image;
pub mod reference;
pub mod registry;

pub use auth::{credentials_for, Credentials};
pub use error::OciError;
pub use image::{LayerBlob, LayerCompression, Platform, PulledImage};
pub use reference::Reference;
pub use registry::{PlatformManifest, Registry};
