//! ext4 through e2fsprogs (mke2fs, debugfs, e2fsck) driven as subprocesses, on a filesystem that
//! lives at a byte offset inside a regular file or a block device. No mount, no loop device.
//!
//! Facts this module relies on (checked with e2fsprogs 1.47.0, pinned by the tests):
//! - `mke2fs -E offset=N TARGET SIZEk` writes only `[N, N+SIZE)`: bytes before N and after N+SIZE are
//!   untouched; a shorter regular file is extended to exactly N+SIZE, a longer one keeps its length.
//! - mke2fs asks "Proceed anyway?" only when stdin is a terminal; we pass `-F` and a null stdin so it
//!   can never wait.
//! - e2fsck, debugfs and dumpe2fs take `IMAGE?offset=N`, splitting at the *first* `?`: an image path
//!   that itself contains `?` is reached through a symlink (see [`run::DeviceSpec`]).
//! - debugfs exits 0 even when a command fails: errors are recognised on its stderr.
//! - `mke2fs -d` copies the uid/gid of the source files but not the mode or owner of the source
//!   root (the fs root gets `root_owner=0:0`, mode 0755).

mod debugfs;
mod mkfs;
mod overhead;
mod run;
pub mod superblock;
#[cfg(test)]
mod tests;

pub use mkfs::Mkfs;
pub use overhead::metadata_overhead;

use crate::{Classify, ErrorClass};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// ext4 block size we always create (the base image's p3 uses 4 KiB blocks too).
pub const BLOCK_SIZE: u64 = 4096;
/// Inode size we always create (256: room for nanosecond and post-2038 timestamps).
pub const INODE_SIZE: u64 = 256;
/// Longest ext4 volume label, in bytes.
pub const MAX_LABEL_BYTES: usize = 16;
/// Oldest mke2fs with both `-d` and `-E offset=`.
pub const MIN_VERSION: Version = Version {
    major: 1,
    minor: 43,
    patch: 0,
};
const PACKAGE: &str = "e2fsprogs";

#[derive(Debug, thiserror::Error)]
pub enum Ext4Error {
    #[error("{tool} not found in PATH, /sbin or /usr/sbin: install the Debian package {package}")]
    MissingTool {
        tool: &'static str,
        package: &'static str,
    },
    #[error("{} is version {found}; `mke2fs -d` and `-E offset=` need {MIN_VERSION} or newer (Debian package {PACKAGE})", tool.display())]
    ToolTooOld { tool: PathBuf, found: String },
    #[error("cannot tell the version of {} from `{output}`", tool.display())]
    UnknownVersion { tool: PathBuf, output: String },
    #[error("invalid ext4 size {size} bytes: must be a non-zero multiple of {BLOCK_SIZE}")]
    BadSize { size: u64 },
    #[error("invalid ext4 offset {offset}: must be a multiple of 512")]
    BadOffset { offset: u64 },
    #[error(
        "invalid inode ratio {ratio} bytes per inode: must be between {BLOCK_SIZE} and 67108864"
    )]
    BadInodeRatio { ratio: u64 },
    #[error("invalid reserved percentage {pct}: must be at most 50")]
    BadReserved { pct: u8 },
    #[error("the ext4 would end at byte {end} but {} holds only {device_size} bytes", target.display())]
    DoesNotFit {
        target: PathBuf,
        end: u64,
        device_size: u64,
    },
    #[error("ext4 label {label:?} is longer than {MAX_LABEL_BYTES} bytes")]
    BadLabel { label: String },
    #[error("could not start `{command}`")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}):\n{output}")]
    Failed {
        command: String,
        status: String,
        output: String,
    },
    #[error("`{command}` reported errors:\n{stderr}")]
    DebugfsErrors { command: String, stderr: String },
    #[error("e2fsck found problems in the ext4 at offset {offset} of {}:\n{output}", image.display())]
    FsckFailed {
        image: PathBuf,
        offset: u64,
        output: String,
    },
    #[error("cannot read `{field}` from debugfs output for {path}:\n{output}")]
    Parse {
        path: String,
        field: &'static str,
        output: String,
    },
    #[error("extraction target {} is not an empty directory", path.display())]
    DestNotEmpty { path: PathBuf },
    #[error("I/O error on {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cancelled while running {tool}")]
    Cancelled { tool: &'static str },
}

impl Classify for Ext4Error {
    fn class(&self) -> ErrorClass {
        match self {
            Ext4Error::MissingTool { .. }
            | Ext4Error::ToolTooOld { .. }
            | Ext4Error::UnknownVersion { .. } => ErrorClass::MissingRequirement,
            Ext4Error::BadSize { .. }
            | Ext4Error::BadOffset { .. }
            | Ext4Error::BadInodeRatio { .. }
            | Ext4Error::BadReserved { .. }
            | Ext4Error::BadLabel { .. }
            | Ext4Error::DoesNotFit { .. }
            | Ext4Error::DestNotEmpty { .. } => ErrorClass::BadInput,
            Ext4Error::Spawn { .. }
            | Ext4Error::Failed { .. }
            | Ext4Error::DebugfsErrors { .. }
            | Ext4Error::FsckFailed { .. }
            | Ext4Error::Parse { .. }
            | Ext4Error::Io { .. }
            | Ext4Error::Cancelled { .. } => ErrorClass::Failure,
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Ext4Error + '_ {
    move |source| Ext4Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// An e2fsprogs release number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl Version {
    /// Reads `mke2fs 1.47.0 (5-Feb-2023)` (the first line of `mke2fs -V`).
    pub fn parse_banner(text: &str) -> Option<Version> {
        let rest = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("mke2fs "))?;
        let number = rest.split_whitespace().next()?;
        // Distributions append suffixes such as "1.46.5-WIP"; keep the leading digits of each part.
        let mut parts = number.split('.').map(|p| {
            let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u32>().ok()
        });
        let major = parts.next()??;
        let minor = parts.next()??;
        let patch = parts.next().flatten().unwrap_or(0);
        Some(Version {
            major,
            minor,
            patch,
        })
    }
}

/// Resolved e2fsprogs executables.
#[derive(Debug, Clone)]
pub struct Tools {
    mke2fs: PathBuf,
    debugfs: PathBuf,
    e2fsck: PathBuf,
    version: Version,
}

impl Tools {
    /// Finds mke2fs, debugfs and e2fsck in PATH plus /sbin and /usr/sbin (often missing from an
    /// unprivileged user's PATH) and checks that mke2fs is at least [`MIN_VERSION`].
    pub fn find() -> Result<Tools, Ext4Error> {
        let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect())
            .unwrap_or_default();
        dirs.extend(["/sbin", "/usr/sbin"].map(PathBuf::from));
        Self::find_in(&dirs)
    }

    /// [`Tools::find`] over an explicit list of directories.
    pub fn find_in(dirs: &[PathBuf]) -> Result<Tools, Ext4Error> {
        let locate = |tool: &'static str| {
            dirs.iter()
                .map(|d| d.join(tool))
                .find(|p| is_executable(p))
                .ok_or(Ext4Error::MissingTool {
                    tool,
                    package: PACKAGE,
                })
        };
        let mke2fs = locate("mke2fs")?;
        let debugfs = locate("debugfs")?;
        let e2fsck = locate("e2fsck")?;
        let version = mke2fs_version(&mke2fs)?;
        if version < MIN_VERSION {
            return Err(Ext4Error::ToolTooOld {
                tool: mke2fs,
                found: version.to_string(),
            });
        }
        tracing::debug!(mke2fs = %mke2fs.display(), %version, "e2fsprogs found");
        Ok(Tools {
            mke2fs,
            debugfs,
            e2fsck,
            version,
        })
    }

    pub fn version(&self) -> Version {
        self.version
    }
    pub fn mke2fs_path(&self) -> &Path {
        &self.mke2fs
    }
    pub fn debugfs_path(&self) -> &Path {
        &self.debugfs
    }
    pub fn e2fsck_path(&self) -> &Path {
        &self.e2fsck
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn mke2fs_version(mke2fs: &Path) -> Result<Version, Ext4Error> {
    let mut cmd = Command::new(mke2fs);
    cmd.arg("-V");
    let command = run::command_line(&cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| Ext4Error::Spawn { command, source })?;
    // The banner goes to stderr; read both in case a build prints it on stdout.
    let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stdout));
    Version::parse_banner(&text).ok_or_else(|| Ext4Error::UnknownVersion {
        tool: mke2fs.to_path_buf(),
        output: text.trim().to_string(),
    })
}

/// A path given to a tool as a positional argument: a relative path starting with `-` would be
/// read as an option.
fn arg_path(path: &Path) -> OsString {
    if path.is_relative() && path.as_os_str().as_encoded_bytes().starts_with(b"-") {
        Path::new(".").join(path).into_os_string()
    } else {
        path.as_os_str().to_os_string()
    }
}
