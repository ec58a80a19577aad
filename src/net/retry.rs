//! The retry engine: exponential backoff, `Retry-After`, a budget that starts over when a transfer makes
//! progress, and waits that end as soon as the caller's token is cancelled.
//!
//! Generic over the caller's error type so each client keeps its own error enum (with its context) while
//! the rules live here once.

use super::NetSettings;
use crate::CancellationToken;
use reqwest::header::{self, HeaderMap};
use std::future::Future;
use std::time::Duration;

/// An error a retried operation can fail with.
pub trait Retryable: std::error::Error + Sized + 'static {
    /// The error for `what` (a URL or reference) given up because the caller cancelled.
    fn cancelled(what: &str) -> Self;
    fn is_cancelled(&self) -> bool;
}

/// Boxed errors (large enums travel boxed in every `Result`) are retryable like the error itself.
impl<E: Retryable> Retryable for Box<E> {
    fn cancelled(what: &str) -> Self {
        Box::new(E::cancelled(what))
    }

    fn is_cancelled(&self) -> bool {
        (**self).is_cancelled()
    }
}

/// What to do after a failed attempt.
#[derive(Debug)]
pub enum Failed<E> {
    /// Transient: try again (after `after` when the server said so).
    Retry { err: E, after: Option<Duration> },
    /// Permanent: stop now.
    Fatal(E),
}

/// `?` on a plain error inside an attempt makes it permanent.
impl<E> From<E> for Failed<E> {
    fn from(e: E) -> Self {
        Failed::Fatal(e)
    }
}

/// `Err(cancelled(what))` once `cancel` fired: checked between chunks of work.
pub fn check<E: Retryable>(cancel: &CancellationToken, what: &str) -> Result<(), E> {
    if cancel.is_cancelled() {
        Err(E::cancelled(what))
    } else {
        Ok(())
    }
}

/// Runs `fut` but gives up (dropping it) as soon as `cancel` fires; a token cancelled beforehand wins
/// without polling `fut` at all.
pub async fn race<E: Retryable, F: Future>(
    cancel: &CancellationToken,
    what: &str,
    fut: F,
) -> Result<F::Output, E> {
    tokio::select! {
        biased;
        _ = cancel.cancelled() => Err(E::cancelled(what)),
        out = fut => Ok(out),
    }
}

/// Counts consecutive failures of one operation and sleeps between attempts.
pub struct Retrier<'a> {
    settings: &'a NetSettings,
    what: &'a str,
    failures: u32,
}

impl<'a> Retrier<'a> {
    /// `what` names the operation in logs and in the cancellation error.
    pub fn new(settings: &'a NetSettings, what: &'a str) -> Self {
        Self {
            settings,
            what,
            failures: 0,
        }
    }

    /// A transfer that moved bytes before failing is making progress: the budget starts over, so a
    /// long download over a flaky link is not abandoned after `retries` drops in total.
    pub fn progressed(&mut self) {
        self.failures = 0;
    }

    /// Returns the error when it is fatal, a cancellation, or the retry budget is spent; otherwise waits
    /// (backoff or the server's `Retry-After`, capped at `max_delay`) and returns Ok.
    pub async fn after<E: Retryable>(
        &mut self,
        failed: Failed<E>,
        cancel: &CancellationToken,
    ) -> Result<(), E> {
        let (err, after) = match failed {
            Failed::Fatal(e) => return Err(e),
            Failed::Retry { err, after } => (err, after),
        };
        if err.is_cancelled() {
            return Err(err);
        }
        self.failures += 1;
        if self.failures > self.settings.retries {
            return Err(err);
        }
        let delay = after
            .unwrap_or_else(|| backoff(self.settings.backoff, self.failures))
            .min(self.settings.max_delay);
        tracing::debug!(
            delay_ms = delay.as_millis() as u64,
            "retrying {} after {} (attempt {}/{})",
            self.what,
            crate::Chain(&err),
            self.failures,
            self.settings.retries,
        );
        race(cancel, self.what, tokio::time::sleep(delay)).await
    }
}

/// `first`, doubled for every earlier failure (failure 1 waits `first`).
pub fn backoff(first: Duration, failures: u32) -> Duration {
    let shift = failures.saturating_sub(1).min(20);
    first.saturating_mul(1u32 << shift)
}

/// Whether an HTTP status is worth retrying: server errors, request timeout, rate limiting.
pub fn retryable_status(code: u16) -> bool {
    code >= 500 || code == 408 || code == 429
}

/// `Retry-After` in delta-seconds; the HTTP-date form falls back to our own backoff.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The `Retry-After` header of a response, when present in delta-seconds.
pub fn retry_after(h: &HeaderMap) -> Option<Duration> {
    parse_retry_after(h.get(header::RETRY_AFTER)?.to_str().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum TestError {
        #[error("{0}: dropped")]
        Dropped(String),
        #[error("{0}: cancelled")]
        Cancelled(String),
    }

    impl Retryable for TestError {
        fn cancelled(what: &str) -> Self {
            TestError::Cancelled(what.to_string())
        }
        fn is_cancelled(&self) -> bool {
            matches!(self, TestError::Cancelled(_))
        }
    }

    fn retry() -> Failed<TestError> {
        Failed::Retry {
            err: TestError::Dropped("u".into()),
            after: None,
        }
    }

    #[test]
    fn backoff_doubles() {
        let b = Duration::from_millis(500);
        assert_eq!(backoff(b, 1), Duration::from_millis(500));
        assert_eq!(backoff(b, 2), Duration::from_millis(1000));
        assert_eq!(backoff(b, 4), Duration::from_millis(4000));
        // Huge failure counts do not overflow.
        assert!(backoff(b, 1000) >= Duration::from_secs(3600));
    }

    #[test]
    fn statuses() {
        for c in [500, 502, 503, 408, 429] {
            assert!(retryable_status(c), "{c}");
        }
        for c in [400, 401, 403, 404, 410, 416] {
            assert!(!retryable_status(c), "{c}");
        }
    }

    #[test]
    fn retry_after_header() {
        assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
    }

    #[tokio::test]
    async fn retrier_budget_progress_and_fatal() {
        let settings = NetSettings {
            retries: 2,
            backoff: Duration::from_millis(1),
            ..NetSettings::default()
        };
        let cancel = CancellationToken::new();
        let mut r = Retrier::new(&settings, "u");
        assert!(r.after(retry(), &cancel).await.is_ok());
        assert!(r.after(retry(), &cancel).await.is_ok());
        assert!(r.after(retry(), &cancel).await.is_err());
        r.progressed();
        assert!(r.after(retry(), &cancel).await.is_ok());
        let fatal = Failed::from(TestError::Dropped("u".into()));
        assert!(r.after(fatal, &cancel).await.is_err());
        // A cancellation is never retried.
        let cancelled = Failed::Retry {
            err: TestError::cancelled("u"),
            after: None,
        };
        assert!(matches!(
            Retrier::new(&settings, "u").after(cancelled, &cancel).await,
            Err(TestError::Cancelled(_))
        ));
    }

    #[tokio::test]
    async fn cancel_ends_the_wait_at_once() {
        let settings = NetSettings {
            retries: 2,
            ..NetSettings::default()
        };
        let cancel = CancellationToken::new();
        let slow = Failed::Retry {
            err: TestError::Dropped("u".into()),
            after: Some(Duration::from_secs(30)),
        };
        let waker = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            waker.cancel();
        });
        let t = std::time::Instant::now();
        let out = Retrier::new(&settings, "u").after(slow, &cancel).await;
        assert!(matches!(out, Err(TestError::Cancelled(ref w)) if w == "u"));
        assert!(t.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test]
    async fn race_and_check() {
        let cancel = CancellationToken::new();
        assert_eq!(
            race::<TestError, _>(&cancel, "u", async { 5 })
                .await
                .unwrap(),
            5
        );
        assert!(check::<TestError>(&cancel, "u").is_ok());
        // A child token (a batch inside a caller's operation) fires with its parent.
        let child = cancel.child_token();
        cancel.cancel();
        assert!(check::<TestError>(&child, "u").is_err());
        let never = std::future::pending::<()>();
        assert!(matches!(
            race::<TestError, _>(&child, "u", never).await,
            Err(TestError::Cancelled(_))
        ));
    }
}
