//! HTTP(S): probe, small texts, and resumable streaming downloads.

use super::local::TEXT_LIMIT;
use super::partial::Partial;
use super::range;
use super::{part_path, Downloaded, Expect, FetchError, Fetcher, Probe};
use crate::digest::Algo;
use crate::net::retry::{self, Retrier};
use crate::{progress, CancellationToken};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::header::{self, HeaderMap};
use std::path::Path;
use url::Url;

/// A failed attempt of a fetch: retry it or give up.
type Failed = retry::Failed<FetchError>;

impl Fetcher {
    pub(super) async fn probe_http(
        &self,
        url: &Url,
        cancel: &CancellationToken,
    ) -> Result<Probe, FetchError> {
        let name = url.to_string();
        // One HEAD without retries: any trouble falls through to the GET, which has them.
        match self
            .send(self.client.head(url.clone()), &name, cancel)
            .await
        {
            Ok(resp) if resp.status().is_success() => {
                let p = probe_from(resp.headers());
                if p.size.is_some() {
                    return Ok(p);
                }
                tracing::debug!("HEAD {name}: no length, trying GET");
            }
            Ok(resp) => tracing::debug!("HEAD {name}: HTTP {}, trying GET", resp.status()),
            Err(f) => tracing::debug!("HEAD {name} failed ({f:?}), trying GET"),
        }
        let mut retrier = Retrier::new(&self.settings, &name);
        loop {
            let attempt = async {
                let resp = self
                    .send(self.client.get(url.clone()), &name, cancel)
                    .await?;
                ensure_success(&name, &resp)?;
                // Dropping the response unread closes the connection: only the headers are wanted.
                Ok(probe_from(resp.headers()))
            };
            match attempt.await {
                Ok(p) => return Ok(p),
                Err(f) => retrier.after(f, cancel).await?,
            }
        }
    }

    pub(super) async fn fetch_text_http(
        &self,
        url: &Url,
        cancel: &CancellationToken,
    ) -> Result<String, FetchError> {
        let name = url.to_string();
        let mut retrier = Retrier::new(&self.settings, &name);
        let bytes = loop {
            match self.text_attempt(url, &name, cancel).await {
                Ok(b) => break b,
                Err(f) => retrier.after(f, cancel).await?,
            }
        };
        String::from_utf8(bytes).map_err(|_| FetchError::NotText { url: name })
    }

    /// The first `n` bytes of `url` (fewer if it is shorter), with retries. A server that ignores the
    /// Range header is fine: the rest of its body is never read.
    /// `n` bytes from `start` (fewer at the end); `None` when `start > 0` and the server answers with
    /// the whole body (it ignores `Range`): reading up to `start` would mean downloading it.
    pub(super) async fn range_http(
        &self,
        url: &Url,
        start: u64,
        n: u64,
        cancel: &CancellationToken,
    ) -> Result<Option<Vec<u8>>, FetchError> {
        let name = url.to_string();
        let mut retrier = Retrier::new(&self.settings, &name);
        loop {
            let attempt = async {
                let last = start + n.saturating_sub(1);
                let req = self
                    .client
                    .get(url.clone())
                    .header(header::RANGE, format!("bytes={start}-{last}"));
                let resp = self.send(req, &name, cancel).await?;
                ensure_success(&name, &resp)?;
                if start > 0 && resp.status() != reqwest::StatusCode::PARTIAL_CONTENT {
                    return Ok(None);
                }
                let mut body = resp.bytes_stream();
                let mut out = Vec::new();
                while (out.len() as u64) < n {
                    match self
                        .next_chunk(&mut body, &name, out.len() as u64, cancel)
                        .await?
                    {
                        Some(chunk) => out.extend_from_slice(&chunk),
                        None => break,
                    }
                }
                out.truncate(n as usize);
                Ok(Some(out))
            };
            match attempt.await {
                Ok(bytes) => return Ok(bytes),
                Err(f) => retrier.after(f, cancel).await?,
            }
        }
    }

    async fn text_attempt(
        &self,
        url: &Url,
        name: &str,
        cancel: &CancellationToken,
    ) -> Result<Vec<u8>, Failed> {
        let resp = self
            .send(self.client.get(url.clone()), name, cancel)
            .await?;
        ensure_success(name, &resp)?;
        let total = header_u64(resp.headers(), header::CONTENT_LENGTH);
        let too_large = || {
            Failed::Fatal(FetchError::TooLarge {
                url: name.to_string(),
                limit: TEXT_LIMIT,
            })
        };
        if total.is_some_and(|t| t > TEXT_LIMIT) {
            return Err(too_large());
        }
        let mut body = resp.bytes_stream();
        let mut out = Vec::new();
        while let Some(chunk) = self
            .next_chunk(&mut body, name, out.len() as u64, cancel)
            .await?
        {
            if out.len() as u64 + chunk.len() as u64 > TEXT_LIMIT {
                return Err(too_large());
            }
            out.extend_from_slice(&chunk);
        }
        check_complete(name, out.len() as u64, total)?;
        Ok(out)
    }

    pub(super) async fn download_http(
        &self,
        url: &Url,
        dest: &Path,
        expect: &Expect,
        expected: Option<(Algo, String)>,
        task: &mut progress::Task,
        cancel: &CancellationToken,
    ) -> Result<Downloaded, FetchError> {
        let name = url.to_string();
        let mut p = Partial::open(part_path(dest), expected.as_ref().map(|(a, _)| *a))?;
        let mut retrier = Retrier::new(&self.settings, &name);
        let mut high_water = 0u64;
        loop {
            let result = self.attempt(url, &name, &mut p, expect, task, cancel).await;
            // Only reaching further than ever before counts as progress: a server that drops at the
            // same offset while ignoring Range must still exhaust the retries.
            if p.written > high_water {
                high_water = p.written;
                retrier.progressed();
            }
            match result {
                Ok(()) => break,
                Err(f) => retrier.after(f, cancel).await?,
            }
        }
        p.finish(&name, dest, expect, expected).await
    }

    /// One GET (with `Range` when resuming) streamed into `p`.
    async fn attempt(
        &self,
        url: &Url,
        name: &str,
        p: &mut Partial,
        expect: &Expect,
        task: &mut progress::Task,
        cancel: &CancellationToken,
    ) -> Result<(), Failed> {
        let mut req = self.client.get(url.clone());
        if p.written > 0 {
            req = req.header(header::RANGE, format!("bytes={}-", p.written));
            if let Some(v) = &p.validator {
                req = req.header(header::IF_RANGE, v.as_str());
            }
        }
        let resp = self.send(req, name, cancel).await?;
        let headers = resp.headers();
        match resp.status().as_u16() {
            200 => {
                if p.written > 0 {
                    tracing::debug!("{name}: range not honoured, restarting from zero");
                    p.restart()?;
                    task.set(0);
                }
                p.total = header_u64(headers, header::CONTENT_LENGTH);
                p.validator = validator(headers);
                // Fail before streaming gigabytes that cannot match.
                if let (Some(want), Some(got)) = (expect.size, p.total) {
                    if want != got {
                        return Err(Failed::Fatal(FetchError::SizeMismatch {
                            url: name.to_string(),
                            expected: want,
                            actual: got,
                        }));
                    }
                }
            }
            206 => {
                let range = header_str(headers, header::CONTENT_RANGE)
                    .and_then(|v| range::parse_content_range(&v));
                match range {
                    Some((start, end, total)) if start == p.written && p.written > 0 => {
                        p.total = total.or(Some(end.saturating_add(1)));
                    }
                    _ => {
                        p.restart()?;
                        task.set(0);
                        return Err(protocol(name, "Content-Range does not continue the file"));
                    }
                }
            }
            416 if p.written > 0 => {
                let total = header_str(headers, header::CONTENT_RANGE)
                    .and_then(|v| range::parse_unsatisfied_range(&v));
                if total == Some(p.written) {
                    // Everything had arrived before the connection dropped.
                    p.total = total;
                    return Ok(());
                }
                p.restart()?;
                task.set(0);
                return Err(protocol(name, "range not satisfiable, restarting"));
            }
            _ => return Err(status_failure(name, &resp)),
        }
        if let Some(total) = p.total {
            task.set_total(total);
        }
        let mut body = resp.bytes_stream();
        while let Some(chunk) = self.next_chunk(&mut body, name, p.written, cancel).await? {
            p.write(&chunk).await?;
            task.set(p.written);
        }
        check_complete(name, p.written, p.total)
    }

    /// Sends a request, bounded by the connect + stall timeouts and by cancellation.
    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        name: &str,
        cancel: &CancellationToken,
    ) -> Result<reqwest::Response, Failed> {
        let wait = self.settings.connect_timeout + self.settings.read_timeout;
        match retry::race::<FetchError, _>(cancel, name, tokio::time::timeout(wait, req.send()))
            .await?
        {
            Err(_) => Err(Failed::Retry {
                err: FetchError::Stalled {
                    url: name.to_string(),
                    done: 0,
                    after: wait,
                },
                after: None,
            }),
            Ok(Err(e)) => Err(send_failure(name, e)),
            Ok(Ok(resp)) => Ok(resp),
        }
    }

    /// The next body chunk; `None` at the end. Errors and stalls are retryable.
    async fn next_chunk<S>(
        &self,
        body: &mut S,
        name: &str,
        done: u64,
        cancel: &CancellationToken,
    ) -> Result<Option<Bytes>, Failed>
    where
        S: Stream<Item = reqwest::Result<Bytes>> + Unpin,
    {
        let after = self.settings.read_timeout;
        match retry::race::<FetchError, _>(cancel, name, tokio::time::timeout(after, body.next()))
            .await?
        {
            Err(_) => Err(Failed::Retry {
                err: FetchError::Stalled {
                    url: name.to_string(),
                    done,
                    after,
                },
                after: None,
            }),
            Ok(None) => Ok(None),
            Ok(Some(Ok(chunk))) => Ok(Some(chunk)),
            Ok(Some(Err(cause))) => Err(Failed::Retry {
                err: FetchError::Transfer {
                    url: name.to_string(),
                    done,
                    cause,
                },
                after: None,
            }),
        }
    }
}

fn protocol(name: &str, what: &str) -> Failed {
    Failed::Retry {
        err: FetchError::Protocol {
            url: name.to_string(),
            what: what.to_string(),
        },
        after: None,
    }
}

/// A body shorter than announced is a dropped connection (retryable); a longer one is a broken server.
fn check_complete(name: &str, done: u64, total: Option<u64>) -> Result<(), Failed> {
    match total {
        Some(t) if done < t => Err(Failed::Retry {
            err: FetchError::ShortBody {
                url: name.to_string(),
                done,
                total: t,
            },
            after: None,
        }),
        Some(t) if done > t => Err(Failed::Fatal(FetchError::Protocol {
            url: name.to_string(),
            what: format!("{done} bytes received, {t} announced"),
        })),
        _ => Ok(()),
    }
}

fn send_failure(name: &str, cause: reqwest::Error) -> Failed {
    let url = name.to_string();
    if cause.is_builder() || cause.is_redirect() {
        Failed::Fatal(FetchError::Request { url, cause })
    } else if cause.is_connect() {
        // DNS failures and refused connections included: they are often transient on a field link.
        Failed::Retry {
            err: FetchError::Connect { url, cause },
            after: None,
        }
    } else {
        Failed::Retry {
            err: FetchError::Request { url, cause },
            after: None,
        }
    }
}

fn ensure_success(name: &str, resp: &reqwest::Response) -> Result<(), Failed> {
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(status_failure(name, resp))
    }
}

fn status_failure(name: &str, resp: &reqwest::Response) -> Failed {
    let status = resp.status();
    let err = FetchError::Status {
        url: name.to_string(),
        status: status.as_u16(),
        reason: status.canonical_reason(),
    };
    if retry::retryable_status(status.as_u16()) {
        let after = header_str(resp.headers(), header::RETRY_AFTER)
            .and_then(|v| retry::parse_retry_after(&v));
        Failed::Retry { err, after }
    } else {
        Failed::Fatal(err)
    }
}

fn header_str(h: &HeaderMap, name: impl header::AsHeaderName) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
}

/// Read from the header itself: reqwest's `content_length()` is the body's size hint, which is 0 for
/// a HEAD response.
fn header_u64(h: &HeaderMap, name: impl header::AsHeaderName) -> Option<u64> {
    header_str(h, name).and_then(|v| v.parse().ok())
}

fn probe_from(h: &HeaderMap) -> Probe {
    Probe {
        size: header_u64(h, header::CONTENT_LENGTH),
        etag: header_str(h, header::ETAG),
        last_modified: header_str(h, header::LAST_MODIFIED),
        digest: header_str(h, "digest"),
    }
}

/// `If-Range` needs a strong validator: a weak ETag (`W/"…"`) could resume onto different bytes.
fn validator(h: &HeaderMap) -> Option<String> {
    header_str(h, header::ETAG)
        .filter(|e| !e.starts_with("W/"))
        .or_else(|| header_str(h, header::LAST_MODIFIED))
}
