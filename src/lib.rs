//! image-creator: build and duplicate Offspot / Kiwix Hotspot SD-card images without root.
//!
//! # Architecture
//!
//! The library is the engine; the binary (`src/main.rs`, `src/cmd/`) owns everything that talks to a person or
//! the process: clap types, the one tokio runtime, the one signal handler, prompts, tables. The engine never
//! prints, reads stdin, builds a runtime or installs a signal handler: it emits [`progress::Event`]s and
//! `tracing` logs, takes a [`tokio::runtime::Handle`] where it waits on async work, and takes a
//! [`CancellationToken`] (hierarchical: a daemon's shutdown → a slot → a job).
//!
//! A daemon (the station) drives it like `write` does: gate a device ([`device::gate`]), make a [`job::Job`]
//! (clone an [`flash::Image`], or build a config onto the card), run it on a thread with its own child token,
//! fold the events into a [`progress::Tracker`] and serve its [`progress::Snapshot`].
//!
//! Modules (domain nouns):
//! - [`job`]: one card and one piece of work, its token, its events, its typed report.
//! - [`progress`]: the one event stream and the pure tracker/snapshot renderers read (the terminal and
//!   JSON-lines renderers are the binary's, in `src/cmd/render.rs`).
//! - [`device`]: block devices as write targets: facts (USB port included), the one safety gate, fake-card probe.
//! - [`flash`]: an image prepared once ([`flash::Image`]) and the per-device writer ([`flash::write_one`]).
//! - [`build`]: config → image: plan → fetch → stage → assemble → finish; `--reuse` of cached builds.
//! - [`config`]: YAML config → typed, validated [`config::Config`] and the offspot rules.
//! - [`fetch`]: sources (http, https, file, path), concurrent resumable downloads, checksums.
//! - [`net`]: the one retry engine (backoff, `Retry-After`, cancellation) for fetch and the registry client.
//! - [`oci`]: OCI images: registry client, docker-archive writer.
//! - [`archive`]: safe tar/zip expansion and stream decompressors.
//! - [`disk`]: output target, sparse copy, MBR, FAT, ext4 via e2fsprogs, bmap, demo base generator.
//! - [`cache`]: download and built-image cache (portable index, policy, eviction, locking).
//! - [`digest`], [`yaml`], [`units`], [`calendar`]: hashes, the YAML node/1.1 layer, sizes and durations, dates.

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
