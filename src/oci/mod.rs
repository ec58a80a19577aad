//! OCI images: registry client, platform selection, docker-archive writer.
pub mod export;
pub mod image;
pub mod sizes;

pub use export::{
    archive_file_name, inspect_docker_archive, write_docker_archive, ArchiveInfo, ExportError,
    Exported,
};
pub use image::{LayerBlob, LayerCompression, Platform, PulledImage};
pub use sizes::SizeLine;
