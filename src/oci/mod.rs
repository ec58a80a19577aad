//! OCI images: registry client, platform selection, docker-archive writer.
pub mod image;

pub use image::{LayerBlob, LayerCompression, Platform, PulledImage};
