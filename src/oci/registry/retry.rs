//! Retry policy for registry requests (exponential backoff, `Retry-After`), cancellation, and how
//! transport failures are classified. Same rules as `crate::fetch`, whose helpers are private to it.

use crate::fetch::FetchSettings;
use crate::oci::error::OciError;
use crate::CancellationToken;
use reqwest::header::{self, HeaderMap};
use reqwest::StatusCode;
use std::future::Future;
use std::time::Duration;

/// How often a wait checks for cancellation: `CancellationToken` is a plain flag with no wake-up.
const CANCEL_POLL: Duration = Duration::from_millis(50);

/// What to do after a failed attempt. Boxed: `OciError` is large and this travels in every `Result`.
#[derive(Debug)]
pub(super) enum Failed {
    Retry {
        err: Box<OciError>,
        after: Option<Duration>,
    },
    Fatal(Box<OciError>),
}

impl From<OciError> for Failed {
    fn from(e: OciError) -> Self {
        Failed::Fatal(Box::new(e))
    }
}

/// Counts consecutive failures of one operation and sleeps between attempts (exponential backoff,
/// `Retry-After` honoured, both capped by `max_delay`).
pub(super) struct Retrier<'a> {
    settings: &'a FetchSettings,
    failures: u32,
}

impl<'a> Retrier<'a> {
    pub fn new(settings: &'a FetchSettings) -> Self {
        Self {
            settings,
            failures: 0,
        }
    }

    /// Bytes moved since the last failure: a flaky link that makes progress gets a fresh budget.
    pub fn progressed(&mut self) {
        self.failures = 0;
    }

    pub async fn after(
        &mut self,
        failed: Failed,
        cancel: &CancellationToken,
        what: &str,
    ) -> Result<(), OciError> {
        let (err, after) = match failed {
            Failed::Fatal(e) => return Err(*e),
            Failed::Retry { err, after } => (err, after),
        };
        self.failures += 1;
        if self.failures > self.settings.retries {
            return Err(*err);
        }
        let shift = (self.failures - 1).min(20);
        let delay = after
            .unwrap_or_else(|| self.settings.backoff.saturating_mul(1u32 << shift))
            .min(self.settings.max_delay);
        tracing::debug!(
            delay_ms = delay.as_millis() as u64,
            "retrying {what} after: {err} (attempt {}/{})",
            self.failures,
            self.settings.retries
        );
        race(cancel, what, tokio::time::sleep(delay)).await
    }
}

/// Runs `fut`, giving up as soon as `cancel` is set.
pub(super) async fn race<F: Future>(
    cancel: &CancellationToken,
    what: &str,
    fut: F,
) -> Result<F::Output, OciError> {
    let cancelled = || OciError::Cancelled {
        reference: what.to_string(),
    };
    if cancel.is_cancelled() {
        return Err(cancelled());
    }
    tokio::pin!(fut);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + CANCEL_POLL, CANCEL_POLL);
    loop {
        tokio::select! {
            out = &mut fut => return Ok(out),
            _ = tick.tick() => if cancel.is_cancelled() { return Err(cancelled()) },
        }
    }
}

pub(super) fn retryable_status(s: StatusCode) -> bool {
    s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS || s == StatusCode::REQUEST_TIMEOUT
}

pub(super) fn retry_after(h: &HeaderMap) -> Option<Duration> {
    h.get(header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// A transport error: connection failures say the registry is down, the rest interrupted a transfer.
pub(super) fn send_failure(registry: &str, url: &str, cause: reqwest::Error) -> Failed {
    let err = if cause.is_connect() {
        OciError::RegistryDown {
            registry: registry.to_string(),
            url: url.to_string(),
            cause,
        }
    } else {
        OciError::Transfer {
            url: url.to_string(),
            done: 0,
            cause,
        }
    };
    Failed::Retry {
        err: Box::new(err),
        after: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        for c in [500u16, 502, 503, 408, 429] {
            assert!(retryable_status(StatusCode::from_u16(c).unwrap()), "{c}");
        }
        for c in [400u16, 401, 403, 404, 416] {
            assert!(!retryable_status(StatusCode::from_u16(c).unwrap()), "{c}");
        }
    }

    #[tokio::test]
    async fn retrier_budget_progress_and_fatal() {
        let settings = FetchSettings {
            retries: 2,
            backoff: Duration::from_millis(1),
            ..FetchSettings::default()
        };
        let cancel = CancellationToken::new();
        let retry = || Failed::Retry {
            err: Box::new(OciError::Cancelled {
                reference: "r".into(),
            }),
            after: None,
        };
        let mut r = Retrier::new(&settings);
        assert!(r.after(retry(), &cancel, "x").await.is_ok());
        assert!(r.after(retry(), &cancel, "x").await.is_ok());
        assert!(r.after(retry(), &cancel, "x").await.is_err());
        r.progressed();
        assert!(r.after(retry(), &cancel, "x").await.is_ok());
        let fatal = Failed::from(OciError::Cancelled {
            reference: "r".into(),
        });
        assert!(r.after(fatal, &cancel, "x").await.is_err());
        cancel.cancel();
        let slow = Failed::Retry {
            err: Box::new(OciError::Cancelled {
                reference: "r".into(),
            }),
            after: Some(Duration::from_secs(30)),
        };
        let mut r = Retrier::new(&settings);
        let t = std::time::Instant::now();
        assert!(r.after(slow, &cancel, "x").await.is_err());
        assert!(t.elapsed() < Duration::from_secs(1));
    }
}
