//! OUTPUT safety. A file OUTPUT is built under a temporary name next to it and renamed over OUTPUT only
//! once complete, so a pre-existing OUTPUT survives every failure, every `--check` and every refusal;
//! a failed run removes only the temporary file it created (unless `-K`).

use std::path::{Path, PathBuf};

use super::BuildError;
use crate::device;
use crate::disk::bmap::bmap_path;
use crate::disk::Target;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputKind {
    File { existed: bool },
    Device,
}

#[derive(Debug, Clone)]
pub struct Output {
    pub path: PathBuf,
    pub kind: OutputKind,
    /// Where bytes are written: the temporary file, or the device itself.
    pub work_path: PathBuf,
}

impl Output {
    /// `force`: a block device may be a fixed disk.
    pub fn preflight(path: &Path, overwrite: bool, force: bool) -> Result<Output, BuildError> {
        let bad = |message: String| BuildError::Output {
            path: path.to_path_buf(),
            message,
        };
        if Target::is_block_device(path) {
            // The gate `write` and the station use: a fixed disk only with --force; never the system
            // disk, a partition, a mounted, held, LVM or read-only one.
            let policy = device::Eligibility {
                allow_non_removable: force,
                min_size: 0,
                image: None,
                extra_allowed_buses: Vec::new(),
            };
            device::gate(std::slice::from_ref(&path.to_path_buf()), &policy)?;
            return Ok(Output {
                path: path.to_path_buf(),
                kind: OutputKind::Device,
                work_path: path.to_path_buf(),
            });
        }
        let existed = match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.is_dir() => {
                return Err(bad(
                    "is a directory; OUTPUT must be a file or a block device".into(),
                ))
            }
            Ok(meta) if !meta.is_file() => {
                return Err(bad(
                    "exists and is neither a regular file nor a block device".into(),
                ))
            }
            Ok(_) if !overwrite => {
                return Err(BuildError::OutputExists {
                    path: path.to_path_buf(),
                })
            }
            Ok(_) => true,
            // OUTPUT.bmap is written too: never replace a user's file without -X.
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    && !overwrite
                    && bmap_path(path).exists() =>
            {
                return Err(BuildError::OutputExists {
                    path: bmap_path(path),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(bad(format!("cannot inspect: {e}"))),
        };
        let name = path
            .file_name()
            .ok_or_else(|| bad("has no file name".into()))?;
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !parent.is_dir() {
            return Err(bad(format!(
                "its directory {} does not exist",
                parent.display()
            )));
        }
        if nix::unistd::access(&parent, nix::unistd::AccessFlags::W_OK).is_err() {
            return Err(bad(format!(
                "its directory {} is not writable",
                parent.display()
            )));
        }
        let work_name = format!(
            ".{}.image-creator-{}.partial",
            name.to_string_lossy(),
            std::process::id()
        );
        Ok(Output {
            path: path.to_path_buf(),
            kind: OutputKind::File { existed },
            work_path: parent.join(work_name),
        })
    }

    pub fn is_device(&self) -> bool {
        self.kind == OutputKind::Device
    }
}

/// Removes the temporary output on failure; renames it over OUTPUT on success.
pub struct Guard {
    out: Output,
    keep: bool,
    created: bool,
    committed: bool,
}

impl Guard {
    pub fn new(out: Output, keep: bool) -> Self {
        Self {
            out,
            keep,
            created: false,
            committed: false,
        }
    }

    /// Call once the work file exists: from then on it is ours to remove.
    pub fn created(&mut self) {
        self.created = true;
    }

    pub fn output(&self) -> &Output {
        &self.out
    }

    pub fn commit(mut self) -> Result<(), BuildError> {
        if let OutputKind::File { .. } = self.out.kind {
            // The bmap first: an old OUTPUT.bmap must never sit next to a new OUTPUT.
            let (work_bmap, bmap) = (bmap_path(&self.out.work_path), bmap_path(&self.out.path));
            if work_bmap.exists() {
                std::fs::rename(&work_bmap, &bmap)
                    .map_err(super::io_err("renaming the bmap to", &bmap))?;
            }
            std::fs::rename(&self.out.work_path, &self.out.path).map_err(super::io_err(
                "renaming the finished image to",
                &self.out.path,
            ))?;
        }
        self.committed = true;
        Ok(())
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.committed || !self.created {
            return;
        }
        let OutputKind::File { existed } = self.out.kind else {
            return;
        };
        if !self.keep {
            if let Err(e) = std::fs::remove_file(&self.out.work_path) {
                tracing::warn!("could not remove {}: {e}", self.out.work_path.display());
            }
        } else if !existed {
            // -K: keep the partial image where the user expects it.
            let _ = std::fs::rename(&self.out.work_path, &self.out.path);
            tracing::warn!("kept partial image {}", self.out.path.display());
        } else {
            // Never clobber the pre-existing OUTPUT with a failed build: keep the partial beside it.
            tracing::warn!("kept partial image {}", self.out.work_path.display());
        }
    }
}

/// Size of a block device from sysfs (readable without opening the device, so `--check` needs no root).
pub fn device_size(path: &Path) -> Result<u64, BuildError> {
    let bad = |message: String| BuildError::Output {
        path: path.to_path_buf(),
        message,
    };
    let canonical = std::fs::canonicalize(path).map_err(|e| bad(format!("cannot resolve: {e}")))?;
    let name = canonical
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let sectors = std::fs::read_to_string(Path::new("/sys/class/block").join(&name).join("size"))
        .map_err(|e| bad(format!("cannot read its size from sysfs: {e}")))?;
    let sectors: u64 = sectors
        .trim()
        .parse()
        .map_err(|_| bad(format!("unexpected sysfs size `{}`", sectors.trim())))?;
    Ok(sectors * 512)
}
