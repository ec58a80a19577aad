//! The vocabulary of jobs in the event stream: which device, which phase, how it ended. Plain data, so the
//! terminal, JSON lines and the station's page all show the same thing.

use serde::Serialize;
use std::path::PathBuf;

use crate::ErrorClass;

/// Identifies one job (one card being written) within a run or a station's lifetime.
pub type JobId = u64;

/// Where a job is. The bytes of each phase are counted by a task of the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Checking the card really holds its advertised capacity (fake cards).
    Probing,
    Opening,
    /// Discarding (TRIM) the ranges the image leaves unwritten.
    Discarding,
    Writing,
    /// Waiting for the card to acknowledge what was written.
    Syncing,
    /// Reading the card back and comparing it with the image.
    Verifying,
    /// Building an image straight onto the card (steps and tasks of the build follow).
    Building,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Probing => "probing",
            Phase::Opening => "opening",
            Phase::Discarding => "discarding",
            Phase::Writing => "writing",
            Phase::Syncing => "syncing",
            Phase::Verifying => "verifying",
            Phase::Building => "building",
        }
    }
}

/// The device a job writes, as a person picks it out: path, label, capacity, bus and physical port.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Device {
    pub path: PathBuf,
    /// Vendor and model, when the device says (`SanDisk Ultra`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// Bytes.
    pub size: u64,
    pub bus: String,
    /// The physical port (station slots are keyed on it), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Outcome {
    /// Everything written (and read back when verifying).
    Done {
        /// Bytes written to the card.
        written: u64,
        /// Bytes read back and found equal (0 without verification).
        verified: u64,
        /// Seconds writing (including the final sync) and verifying.
        write_secs: f64,
        verify_secs: f64,
    },
    /// Stopped by its cancellation token (Ctrl-C, the station's stop button, shutdown). The phase it was
    /// in is the job's last `JobPhase`.
    Interrupted,
    Failed {
        /// What kind of failure (the exit code the CLI would give).
        class: ErrorClass,
        /// The error with its causes, in words.
        error: String,
    },
}

impl Outcome {
    pub fn is_done(&self) -> bool {
        matches!(self, Outcome::Done { .. })
    }
}
