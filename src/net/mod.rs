//! What every network client of the crate shares (the file fetcher and the OCI registry client): the
//! timeouts and retry budget, and one retry engine, so both follow the same rules.

pub mod retry;

use std::time::Duration;

/// Timeouts and retry budget of a network client.
#[derive(Debug, Clone)]
pub struct NetSettings {
    /// Attempts after the first one, per transfer; a transfer that made progress gets a fresh budget.
    pub retries: u32,
    /// First delay between attempts; doubles after each failure, capped at `max_delay`.
    pub backoff: Duration,
    /// Cap for the backoff and for a server's `Retry-After`.
    pub max_delay: Duration,
    pub connect_timeout: Duration,
    /// Stall timeout: no response headers or no body bytes for this long is a (retryable) failure.
    pub read_timeout: Duration,
}

impl Default for NetSettings {
    fn default() -> Self {
        Self {
            retries: 5,
            backoff: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(20),
            read_timeout: Duration::from_secs(60),
        }
    }
}
