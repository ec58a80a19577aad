//! image-creator: build and duplicate Offspot / Kiwix Hotspot SD-card images without root.
//!
//! Modules (domain nouns; the engine never prints, it emits [`progress::Event`]s and `tracing` logs):
//! - [`config`]: YAML config → typed, validated [`config::Config`]; size/duration strings; offspot rules.
//! - [`net`]: what the network clients share: timeouts, the retry engine (backoff, cancellation).
//! - [`fetch`]: sources (http, https, file, path), concurrent resumable downloads, checksums.
//! - [`digest`]: checksum algorithms, one incremental hasher, declared checksum values.
//! - [`archive`]: safe tar/zip expansion and stream decompressors.
//! - [`device`]: block devices as write targets: facts, safety checks, fake-capacity probe.
//! - [`disk`]: output target, MBR, FAT, ext4 via e2fsprogs, demo base generator.
//! - [`flash`]: the writer engine: one image to many devices in parallel, O_DIRECT, verified.
//! - [`build`]: the pipeline plan → fetch → stage → assemble → finish.
//! - [`progress`]: events, a pure tracker, terminal renderers (bars or JSON lines).
//! - [`cache`]: download cache (portable index, policy, eviction, locking).
//! - [`oci`]: OCI images: registry client, docker-archive writer.
//! - [`yaml`]: schema-free YAML: marked node tree, guarding prescan, PyYAML (YAML 1.1) resolution.
//! - [`calendar`]: UTC dates without a date crate.
//! - [`job`]: one card and one piece of work (clone an image, or build onto it): the unit `write` and the
//!   station run, with its own cancellation, events and typed report.

pub mod archive;
pub mod build;
pub mod cache;
pub mod calendar;
pub mod config;
pub mod device;
pub mod digest;
pub mod disk;
pub mod fetch;
pub mod flash;
pub mod job;
pub mod net;
pub mod oci;
pub mod progress;
#[cfg(test)]
mod testutil;
pub mod units;
pub mod yaml;

/// What kind of failure an error is; the binary maps it to the documented exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Exit 1: any other failure (I/O error, tool failed, verification failed).
    Failure,
    /// Exit 2: a required tool or permission is missing (mke2fs, access to a device).
    MissingRequirement,
    /// Exit 3: bad input (config, options, sizes that cannot fit, OUTPUT exists without -X).
    BadInput,
    /// Exit 4: a source is unreachable (404, DNS, connection refused, OCI image missing).
    Unreachable,
}

impl ErrorClass {
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorClass::Failure => 1,
            ErrorClass::MissingRequirement => 2,
            ErrorClass::BadInput => 3,
            ErrorClass::Unreachable => 4,
        }
    }
}

/// Every module error enum implements this so the binary can pick an exit code.
pub trait Classify {
    fn class(&self) -> ErrorClass;
}

/// Cooperative cancellation: hierarchical (daemon shutdown → slot → job, with `child_token()`), checked with
/// `is_cancelled()` at every chunk of blocking work and awaited with `cancelled()` in async code.
pub use tokio_util::sync::CancellationToken;

/// An error with its causes, the one way this crate renders them: `a: b: c` with `{}`, and with `{:#}`
/// one cause per line (`a\n  caused by: b`), as the binary prints a final error.
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'a));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sep = if f.alternate() {
            "\n  caused by: "
        } else {
            ": "
        };
        write!(f, "{}", self.0)?;
        let mut cur = self.0.source();
        while let Some(cause) = cur {
            write!(f, "{sep}{cause}")?;
            cur = cause.source();
        }
        Ok(())
    }
}
