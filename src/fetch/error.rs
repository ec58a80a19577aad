//! The fetch module's error type.

use crate::{Classify, ErrorClass};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("unsupported source {input:?}: {reason}")]
    BadSource { input: String, reason: &'static str },

    #[error("cannot set up the HTTP client")]
    Client(#[source] reqwest::Error),

    #[error("{url}: HTTP {status}{}", reason_suffix(.reason))]
    Status {
        url: String,
        status: u16,
        reason: Option<&'static str>,
    },

    #[error("{url}: cannot connect")]
    Connect {
        url: String,
        #[source]
        cause: reqwest::Error,
    },

    #[error("{url}: request failed")]
    Request {
        url: String,
        #[source]
        cause: reqwest::Error,
    },

    #[error("{url}: transfer interrupted after {done} bytes")]
    Transfer {
        url: String,
        done: u64,
        #[source]
        cause: reqwest::Error,
    },

    #[error("{url}: connection closed after {done} of {total} bytes")]
    ShortBody { url: String, done: u64, total: u64 },

    #[error("{url}: no data for {:.1}s (after {done} bytes)", .after.as_secs_f64())]
    Stalled {
        url: String,
        done: u64,
        after: Duration,
    },

    #[error("{url}: unexpected reply: {what}")]
    Protocol { url: String, what: String },

    #[error("{url}: larger than the {limit} bytes allowed for a text file")]
    TooLarge { url: String, limit: u64 },

    #[error("{url}: not UTF-8 text")]
    NotText { url: String },

    #[error("{path}: not found or not readable")]
    LocalMissing {
        path: PathBuf,
        #[source]
        cause: std::io::Error,
    },

    #[error("{path}: read error")]
    LocalRead {
        path: PathBuf,
        #[source]
        cause: std::io::Error,
    },

    #[error("{path}: write error")]
    Write {
        path: PathBuf,
        #[source]
        cause: std::io::Error,
    },

    #[error("cannot get the checksum of {url}")]
    ChecksumSource {
        url: String,
        #[source]
        cause: Box<FetchError>,
    },

    #[error("checksum file {url} holds no digest")]
    ChecksumEmpty { url: String },

    #[error("checksum mismatch for {url}: expected {algo} {expected}, got {actual}")]
    ChecksumMismatch {
        url: String,
        algo: &'static str,
        expected: String,
        actual: String,
    },

    #[error(
        "size mismatch for {url}: expected {expected} bytes ({}), got {actual} ({})",
        crate::units::format_size(*expected),
        crate::units::format_size(*actual)
    )]
    SizeMismatch {
        url: String,
        expected: u64,
        actual: u64,
    },

    #[error("download of {url} cancelled")]
    Cancelled { url: String },
}

fn reason_suffix(reason: &Option<&'static str>) -> String {
    reason.map(|r| format!(" {r}")).unwrap_or_default()
}

impl Classify for FetchError {
    fn class(&self) -> ErrorClass {
        use FetchError::*;
        match self {
            BadSource { .. } | TooLarge { .. } | NotText { .. } | ChecksumEmpty { .. } => {
                ErrorClass::BadInput
            }
            // Network trouble that outlived the retries: the source cannot be reached.
            Status { .. }
            | Connect { .. }
            | Request { .. }
            | Transfer { .. }
            | ShortBody { .. }
            | Stalled { .. }
            | LocalMissing { .. } => ErrorClass::Unreachable,
            ChecksumSource { cause, .. } => cause.class(),
            Client(_)
            | Protocol { .. }
            | LocalRead { .. }
            | Write { .. }
            | ChecksumMismatch { .. }
            | SizeMismatch { .. }
            | Cancelled { .. } => ErrorClass::Failure,
        }
    }
}

impl FetchError {
    pub fn is_cancelled(&self) -> bool {
        matches!(self, FetchError::Cancelled { .. })
    }
}

/// The retry engine builds `Cancelled` with the URL when the caller's token fires during a wait.
impl crate::net::retry::Retryable for FetchError {
    fn cancelled(url: &str) -> Self {
        FetchError::Cancelled {
            url: url.to_string(),
        }
    }

    fn is_cancelled(&self) -> bool {
        FetchError::is_cancelled(self)
    }
}
