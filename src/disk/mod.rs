//! The output disk: target (file or block device), the base's MBR, FAT (p1) access by byte range, and the
//! demo base image generator used by the README demo and by tests. Everything works rootless on byte
//! ranges: no loop devices, no mounts.

pub mod bmap;
pub mod demo;
pub mod ext4;
pub mod fat;
pub mod ioctl;
pub mod mbr;
pub mod sparse;
pub mod target;

pub use demo::{make_demo_base, DemoOptions};
pub use fat::{read_root_file, write_root_file};
pub use mbr::{with_p3_size, BaseLayout, Partition};
pub use target::{free_space, Target, TargetKind};

use crate::{Classify, ErrorClass};
use std::path::PathBuf;

/// Bytes per sector in the MBR and in every offset computation (the base images use 512).
pub const SECTOR: u64 = 512;

#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// The base image's first sector is not the three-partition MBR layout of an Offspot base.
    #[error("the base image is not a usable Offspot base: {reason}")]
    BadBase { reason: String },

    /// A command-line option of a disk helper (make-demo-base) has a bad value.
    #[error("{option}: {reason}")]
    BadOption { option: String, reason: String },

    /// The requested data partition cannot be described by an MBR entry (2 TiB limit).
    #[error("data partition of {sectors} sectors starting at sector {start} does not fit in an MBR (2 TiB limit)")]
    TooLarge { start: u64, sectors: u64 },

    /// I/O on a path (open, read, write, sync, stat); `what` says which operation.
    #[error("{what} {path}", path = path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A FAT filesystem operation failed on the byte range of a partition.
    #[error("FAT filesystem at byte {offset} of {path}: {what}", path = path.display())]
    Fat {
        what: String,
        path: PathBuf,
        offset: u64,
        #[source]
        source: std::io::Error,
    },

    /// A regular-file output already exists (it is created with O_EXCL).
    #[error("output {path} already exists", path = path.display())]
    Exists { path: PathBuf },

    /// The block device is mounted or opened exclusively by someone else.
    #[error("device {path} is in use (mounted or opened by another program)", path = path.display())]
    DeviceBusy { path: PathBuf },

    /// No permission to open the output (typically a block device without root).
    #[error("permission denied on {path} (writing to a device needs root or membership of its group)", path = path.display())]
    PermissionDenied { path: PathBuf },

    #[error("{path} is not a block device", path = path.display())]
    NotBlockDevice { path: PathBuf },

    /// The source stream ended before the announced length.
    #[error("source ended after {got} of {expected} bytes")]
    SourceTruncated { expected: u64, got: u64 },

    /// Reading the source stream (base image, maybe being decompressed) failed.
    #[error("reading the source stream")]
    SourceRead {
        #[source]
        source: std::io::Error,
    },

    /// A write would go past the end of the target device.
    #[error(
        "{needed} bytes ({}) do not fit on {path} ({size} bytes, {})",
        crate::units::format_size(*needed),
        crate::units::format_size(*size),
        path = path.display()
    )]
    DeviceTooSmall {
        path: PathBuf,
        needed: u64,
        size: u64,
    },

    /// An external program (mke2fs, debugfs) is not installed.
    #[error("required program `{tool}` not found (install e2fsprogs)")]
    ToolMissing {
        tool: &'static str,
        #[source]
        source: std::io::Error,
    },

    /// An external program failed; keeps the command line and its stderr.
    #[error("`{command}` failed ({status}): {stderr}")]
    ToolFailed {
        command: String,
        status: String,
        stderr: String,
    },

    #[error("cancelled")]
    Cancelled,
}

impl Classify for DiskError {
    fn class(&self) -> ErrorClass {
        match self {
            DiskError::BadBase { .. }
            | DiskError::BadOption { .. }
            | DiskError::TooLarge { .. }
            | DiskError::Exists { .. }
            | DiskError::DeviceBusy { .. }
            | DiskError::NotBlockDevice { .. }
            | DiskError::SourceTruncated { .. }
            | DiskError::DeviceTooSmall { .. } => ErrorClass::BadInput,
            DiskError::PermissionDenied { .. } | DiskError::ToolMissing { .. } => {
                ErrorClass::MissingRequirement
            }
            DiskError::Io { .. }
            | DiskError::Fat { .. }
            | DiskError::ToolFailed { .. }
            | DiskError::SourceRead { .. }
            | DiskError::Cancelled => ErrorClass::Failure,
        }
    }
}

impl DiskError {
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DiskError::Io {
            what,
            path: path.into(),
            source,
        }
    }
}
