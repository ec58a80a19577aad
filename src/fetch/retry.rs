//! Retry policy (exponential backoff, `Retry-After`), cancellation plumbing and header parsing.

use super::{FetchError, FetchSettings};
use crate::CancellationToken;
use std::future::Future;
use std::time::Duration;

/// How often a wait checks for cancellation: `CancellationToken` is a plain flag with no wake-up.
const CANCEL_POLL: Duration = Duration::from_millis(50);

/// The caller's cancel token plus, inside `download_all`, the batch's own token (set on first failure).
#[derive(Clone, Copy)]
pub(super) struct Stop<'a> {
    pub outer: &'a CancellationToken,
    pub inner: Option<&'a CancellationToken>,
}

impl Stop<'_> {
    pub fn is_stopped(&self) -> bool {
        self.outer.is_cancelled() || self.inner.is_some_and(CancellationToken::is_cancelled)
    }

    pub fn check(&self, url: &str) -> Result<(), FetchError> {
        if self.is_stopped() {
            Err(FetchError::Cancelled {
                url: url.to_string(),
            })
        } else {
            Ok(())
        }
    }

    /// Runs `fut` but gives up (dropping it) as soon as cancellation is requested.
    pub async fn race<F: Future>(&self, url: &str, fut: F) -> Result<F::Output, FetchError> {
        self.check(url)?;
        tokio::pin!(fut);
        // `interval` would tick at once; the first check already happened above.
        let mut tick =
            tokio::time::interval_at(tokio::time::Instant::now() + CANCEL_POLL, CANCEL_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                out = &mut fut => return Ok(out),
                _ = tick.tick() => self.check(url)?,
            }
        }
    }

    pub async fn sleep(&self, url: &str, d: Duration) -> Result<(), FetchError> {
        self.race(url, tokio::time::sleep(d)).await
    }
}

/// What to do after a failed attempt.
#[derive(Debug)]
pub(super) enum Failed {
    /// Transient: try again (after `after` when the server said so).
    Retry {
        err: FetchError,
        after: Option<Duration>,
    },
    /// Permanent: stop now.
    Fatal(FetchError),
}

impl From<FetchError> for Failed {
    fn from(e: FetchError) -> Self {
        Failed::Fatal(e)
    }
}

/// Counts consecutive failures of one transfer and sleeps between attempts.
pub(super) struct Retrier<'a> {
    settings: &'a FetchSettings,
    url: &'a str,
    failures: u32,
}

impl<'a> Retrier<'a> {
    pub fn new(settings: &'a FetchSettings, url: &'a str) -> Self {
        Self {
            settings,
            url,
            failures: 0,
        }
    }

    /// A transfer that moved bytes before failing is making progress: the budget starts over, so a
    /// long download over a flaky link is not abandoned after `retries` drops in total.
    pub fn progressed(&mut self) {
        self.failures = 0;
    }

    /// Returns the error when it is fatal or the retry budget is spent; otherwise waits and returns Ok.
    pub async fn after(&mut self, failed: Failed, stop: &Stop<'_>) -> Result<(), FetchError> {
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
            self.url,
            crate::Chain(&err),
            self.failures,
            self.settings.retries,
        );
        stop.sleep(self.url, delay).await
    }
}

/// `first`, doubled for every earlier failure (failure 1 waits `first`).
pub(super) fn backoff(first: Duration, failures: u32) -> Duration {
    let shift = failures.saturating_sub(1).min(20);
    first.saturating_mul(1u32 << shift)
}

/// Whether an HTTP status is worth retrying: server errors, request timeout, rate limiting.
pub(super) fn retryable_status(code: u16) -> bool {
    code >= 500 || code == 408 || code == 429
}

/// `Retry-After` in delta-seconds; the HTTP-date form falls back to our own backoff.
pub(super) fn parse_retry_after(v: &str) -> Option<Duration> {
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// `Content-Range: bytes START-END/TOTAL` → (start, end, total); TOTAL may be `*`.
pub(super) fn parse_content_range(v: &str) -> Option<(u64, u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((start.trim().parse().ok()?, end.trim().parse().ok()?, total))
}

/// `Content-Range: bytes */TOTAL` (the form sent with 416) → TOTAL.
pub(super) fn parse_unsatisfied_range(v: &str) -> Option<u64> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    rest.strip_prefix("*/")?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn headers() {
        assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(
            parse_content_range("bytes 100-199/200"),
            Some((100, 199, Some(200)))
        );
        assert_eq!(parse_content_range("bytes 0-9/*"), Some((0, 9, None)));
        assert_eq!(parse_content_range("items 0-9/10"), None);
        assert_eq!(parse_unsatisfied_range("bytes */1234"), Some(1234));
        assert_eq!(parse_unsatisfied_range("bytes 0-1/2"), None);
    }

    #[tokio::test]
    async fn retrier_budget_and_fatal() {
        let settings = FetchSettings {
            retries: 2,
            backoff: Duration::from_millis(1),
            ..FetchSettings::default()
        };
        let cancel = CancellationToken::new();
        let stop = Stop {
            outer: &cancel,
            inner: None,
        };
        let mut r = Retrier::new(&settings, "u");
        let retry = || Failed::Retry {
            err: FetchError::ShortBody {
                url: "u".into(),
                done: 1,
                total: 2,
            },
            after: None,
        };
        assert!(r.after(retry(), &stop).await.is_ok());
        assert!(r.after(retry(), &stop).await.is_ok());
        assert!(r.after(retry(), &stop).await.is_err());
        r.progressed();
        assert!(r.after(retry(), &stop).await.is_ok());
        let fatal = Failed::Fatal(FetchError::Cancelled { url: "u".into() });
        assert!(r.after(fatal, &stop).await.is_err());
        cancel.cancel();
        assert!(matches!(
            r.after(retry(), &stop).await,
            Err(FetchError::Cancelled { .. })
        ));
    }
}
