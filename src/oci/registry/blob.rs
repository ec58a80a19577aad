//! Blob downloads: streamed to a `<hex>.<unique>.part` file while hashing, resumed with `Range` after a
//! drop, renamed to `<hex>` only once size and digest match. A manifest may name one blob several times
//! (schema-1 conversions repeat their empty layer): [`distinct`] picks each blob once.

use super::retry::Failed;
use super::Registry;
use crate::digest::{Algo, Hasher};
use crate::net::retry::{race, Retrier};
use crate::oci::error::OciError;
use crate::oci::Reference;
use crate::progress::{Progress, TaskKind};
use crate::CancellationToken;
use futures_util::StreamExt;
use reqwest::StatusCode;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::AsyncWriteExt;

/// A hasher for the algorithm an OCI digest (`algo:hex`) names; `None` for one we cannot verify.
fn hasher_for(digest: &str) -> Option<Hasher> {
    Algo::of_oci_digest(digest).map(Hasher::new)
}

/// The file a blob is stored as: the hex part of its (already validated) digest.
pub fn file_name(digest: &str) -> &str {
    digest.split_once(':').map_or(digest, |(_, h)| h)
}

/// A temp path next to `dest` that no other download uses, even of the same blob in this or another
/// process: two transfers sharing one `.part` file truncate each other's data, and the first rename
/// leaves the second with nothing to rename.
fn part_path(dest: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut p = dest.as_os_str().to_owned();
    p.push(format!(".{}-{n}.part", std::process::id()));
    PathBuf::from(p)
}

/// The index of each blob's first entry in `layers` ((digest, media type, size), manifest order), so
/// that each blob is downloaded once however often the manifest names it. One digest with two sizes
/// is a broken manifest: no download could match both.
pub fn distinct(reference: &str, layers: &[(String, String, u64)]) -> Result<Vec<usize>, OciError> {
    let mut seen: HashMap<&str, u64> = HashMap::new();
    let mut first = Vec::new();
    for (i, (digest, _, size)) in layers.iter().enumerate() {
        match seen.get(digest.as_str()) {
            None => {
                seen.insert(digest, *size);
                first.push(i);
            }
            Some(known) if known == size => {}
            Some(known) => {
                return Err(OciError::Protocol {
                    url: reference.to_string(),
                    what: format!(
                        "the manifest gives layer {digest} sizes {known} and {size} (entry {})",
                        i + 1
                    ),
                })
            }
        }
    }
    Ok(first)
}

fn unsupported(digest: &str) -> OciError {
    OciError::Protocol {
        url: digest.to_string(),
        what: "unsupported digest algorithm".into(),
    }
}

/// Checks an in-memory blob against its descriptor.
pub fn verify(digest: &str, size: u64, body: &[u8]) -> Result<(), OciError> {
    if body.len() as u64 != size {
        return Err(OciError::SizeMismatch {
            blob: digest.to_string(),
            expected: size,
            actual: body.len() as u64,
        });
    }
    let mut h = hasher_for(digest).ok_or_else(|| unsupported(digest))?;
    h.update(body);
    let actual = h.finish_prefixed();
    if actual != digest {
        return Err(OciError::DigestMismatch {
            blob: digest.to_string(),
            expected: digest.to_string(),
            actual,
        });
    }
    Ok(())
}

/// Writes `data` to `path` through a `.part` file and a rename, so a crash never leaves a short blob.
pub async fn write_whole(path: &Path, data: &[u8]) -> Result<(), OciError> {
    let part = part_path(path);
    let werr = |cause| OciError::Write {
        path: part.clone(),
        cause,
    };
    tokio::fs::write(&part, data).await.map_err(werr)?;
    tokio::fs::rename(&part, path)
        .await
        .map_err(|cause| OciError::Write {
            path: path.to_path_buf(),
            cause,
        })
}

/// Whether `path` already holds the blob (from an earlier, interrupted pull).
async fn already_there(path: &Path, digest: &str, size: u64) -> Result<bool, OciError> {
    match tokio::fs::metadata(path).await {
        Ok(m) if m.is_file() && m.len() == size => {}
        _ => return Ok(false),
    }
    let path = path.to_path_buf();
    let digest = digest.to_string();
    // Hashing a large layer is CPU work: keep it off the async workers.
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut h = hasher_for(&digest).ok_or_else(|| unsupported(&digest))?;
        let rerr = |cause| OciError::Read {
            path: path.clone(),
            cause,
        };
        let mut f = std::fs::File::open(&path).map_err(rerr)?;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = f.read(&mut buf).map_err(rerr)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        Ok(h.finish_prefixed() == digest)
    })
    .await
    .unwrap_or(Ok(false))
}

/// Removes an unfinished `.part` file however the download ends: error, or the future dropped when a
/// sibling layer failed or the pull was abandoned.
struct PartGuard(Option<PathBuf>);

impl Drop for PartGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// State of one blob transfer across attempts.
struct Transfer {
    file: tokio::fs::File,
    hasher: Hasher,
    done: u64,
}

impl Registry {
    /// Downloads one blob to `dest`, verified; one progress task per blob.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn download_blob(
        &self,
        r: &Reference,
        digest: &str,
        size: u64,
        dest: &Path,
        label: &str,
        progress: &Progress,
        cancel: &CancellationToken,
    ) -> Result<(), OciError> {
        let mut task = progress.task(TaskKind::Download, label, Some(size));
        if already_there(dest, digest, size).await? {
            tracing::debug!("{label}: {digest} already downloaded");
            task.set(size);
            task.finish();
            return Ok(());
        }
        let part = part_path(dest);
        let werr = |cause| OciError::Write {
            path: part.clone(),
            cause,
        };
        let file = tokio::fs::File::create(&part).await.map_err(werr)?;
        let mut guard = PartGuard(Some(part.clone()));
        let mut t = Transfer {
            file,
            hasher: hasher_for(digest).ok_or_else(|| unsupported(digest))?,
            done: 0,
        };
        let url = self.url(r, &format!("blobs/{digest}"));
        let mut retrier = Retrier::new(&self.settings, &url);
        let result = loop {
            let before = t.done;
            let attempt = self.blob_attempt(r, &url, digest, size, &mut t, &part, &mut task);
            let out = match race::<OciError, _>(cancel, label, attempt).await {
                Ok(out) => out,
                Err(e) => break Err(e),
            };
            match out {
                Ok(()) => break Ok(()),
                Err(failed) => {
                    if t.done > before {
                        retrier.progressed();
                    }
                    if let Err(e) = retrier.after(failed, cancel).await {
                        break Err(*e);
                    }
                }
            }
        };
        result?;
        t.file.flush().await.map_err(werr)?;
        drop(t.file);
        let actual = t.hasher.finish_prefixed();
        if actual != digest {
            return Err(OciError::DigestMismatch {
                blob: digest.to_string(),
                expected: digest.to_string(),
                actual,
            });
        }
        tokio::fs::rename(&part, dest)
            .await
            .map_err(|cause| OciError::Write {
                path: dest.to_path_buf(),
                cause,
            })?;
        guard.0 = None;
        task.finish();
        Ok(())
    }

    /// One GET of the blob, from `t.done` on.
    #[allow(clippy::too_many_arguments)]
    async fn blob_attempt(
        &self,
        r: &Reference,
        url: &str,
        digest: &str,
        size: u64,
        t: &mut Transfer,
        part: &Path,
        task: &mut crate::progress::Task,
    ) -> Result<(), Failed> {
        let werr = |cause| {
            Failed::Fatal(Box::new(OciError::Write {
                path: part.to_path_buf(),
                cause,
            }))
        };
        let resp = self.send_once(r, url, None, t.done).await?;
        match resp.status() {
            StatusCode::NOT_FOUND => {
                return Err(Failed::Fatal(Box::new(OciError::BlobUnknown {
                    reference: r.to_string(),
                    blob: digest.to_string(),
                })))
            }
            StatusCode::PARTIAL_CONTENT if t.done > 0 => {
                let start = resp
                    .headers()
                    .get(reqwest::header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(range_start);
                if start != Some(t.done) {
                    return Err(Failed::Fatal(Box::new(OciError::Protocol {
                        url: url.to_string(),
                        what: format!("asked for bytes from {}, got range start {start:?}", t.done),
                    })));
                }
            }
            s if s.is_success() => {
                if t.done > 0 {
                    // The server ignored the range: start over.
                    tracing::debug!("{url}: range ignored, restarting");
                    t.file.set_len(0).await.map_err(werr)?;
                    use tokio::io::AsyncSeekExt;
                    t.file
                        .seek(std::io::SeekFrom::Start(0))
                        .await
                        .map_err(werr)?;
                    t.hasher = hasher_for(digest).ok_or_else(|| unsupported(digest))?;
                    t.done = 0;
                    task.set(0);
                }
            }
            s => {
                return Err(Failed::Fatal(Box::new(OciError::Status {
                    url: url.to_string(),
                    status: s.as_u16(),
                })))
            }
        }
        let stall = self.settings.read_timeout;
        let mut stream = resp.bytes_stream();
        loop {
            let next = tokio::time::timeout(stall, stream.next()).await;
            let chunk = match next {
                Err(_) => {
                    return Err(Failed::Retry {
                        err: Box::new(OciError::Stalled {
                            url: url.to_string(),
                            done: t.done,
                            secs: stall.as_secs(),
                        }),
                        after: None,
                    })
                }
                Ok(None) => break,
                Ok(Some(Err(cause))) => {
                    return Err(Failed::Retry {
                        err: Box::new(OciError::Transfer {
                            url: url.to_string(),
                            done: t.done,
                            cause,
                        }),
                        after: None,
                    })
                }
                Ok(Some(Ok(c))) => c,
            };
            let n = chunk.len() as u64;
            if t.done + n > size {
                return Err(Failed::Fatal(Box::new(OciError::SizeMismatch {
                    blob: digest.to_string(),
                    expected: size,
                    actual: t.done + n,
                })));
            }
            t.file.write_all(&chunk).await.map_err(werr)?;
            t.hasher.update(&chunk);
            t.done += n;
            task.set(t.done);
        }
        if t.done < size {
            return Err(Failed::Retry {
                err: Box::new(OciError::ShortBody {
                    url: url.to_string(),
                    done: t.done,
                    total: size,
                }),
                after: None,
            });
        }
        Ok(())
    }
}

/// `bytes START-END/TOTAL` → START.
fn range_start(v: &str) -> Option<u64> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    rest.split('-').next()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    // sha2 directly, as an independent judge of the digest module.
    use sha2::Digest;

    #[test]
    fn verify_blobs() {
        let body = b"hello";
        let d = format!("sha256:{}", hex::encode(sha2::Sha256::digest(body)));
        assert!(verify(&d, 5, body).is_ok());
        assert!(matches!(
            verify(&d, 5, b"hellp"),
            Err(OciError::DigestMismatch { .. })
        ));
        assert!(matches!(
            verify(&d, 6, body),
            Err(OciError::SizeMismatch { .. })
        ));
        let d512 = format!("sha512:{}", hex::encode(sha2::Sha512::digest(body)));
        assert!(verify(&d512, 5, body).is_ok());
        assert_eq!(file_name(&d), &d[7..]);
        assert_eq!(range_start("bytes 100-199/200"), Some(100));
        assert_eq!(range_start("items 1-2/3"), None);
    }

    fn entry(digest: &str, size: u64) -> (String, String, u64) {
        (
            digest.into(),
            "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            size,
        )
    }

    #[test]
    fn each_blob_is_fetched_once_in_manifest_order() {
        let (a, empty, b) = ("sha256:aa", "sha256:ee", "sha256:bb");
        let layers = [
            entry(a, 10),
            entry(empty, 32),
            entry(b, 20),
            entry(empty, 32),
            entry(empty, 32),
        ];
        assert_eq!(distinct("r", &layers).unwrap(), vec![0, 1, 2]);
        assert_eq!(distinct("r", &layers[..1]).unwrap(), vec![0]);
        assert!(distinct("r", &[]).unwrap().is_empty());
        let e = distinct("r", &[entry(a, 10), entry(a, 11)]).unwrap_err();
        assert!(matches!(e, OciError::Protocol { .. }), "{e}");
        assert!(e.to_string().contains("10 and 11"), "{e}");
    }

    #[test]
    fn temp_paths_are_never_shared() {
        let dest = Path::new("/blobs/abc");
        let (one, two) = (part_path(dest), part_path(dest));
        assert_ne!(one, two);
        for p in [&one, &two] {
            let name = p.file_name().unwrap().to_str().unwrap();
            assert!(
                name.starts_with("abc.") && name.ends_with(".part"),
                "{name}"
            );
            assert_eq!(p.parent(), dest.parent());
        }
    }
}
