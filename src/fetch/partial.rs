//! The `.part` file of an HTTP download: written and hashed while streaming, renamed when verified.

use super::{Downloaded, Expect, FetchError};
use crate::digest::{Algo, Hasher};
use std::path::{Path, PathBuf};
use tokio::io::{AsyncWriteExt, BufWriter};

const WRITE_BUFFER: usize = 1 << 20;

/// The `.part` file being written, its hashers and what the server told us about it. Dropping it
/// without [`Partial::finish`] removes the file (failure, cancellation, or a dropped future).
pub(super) struct Partial {
    path: PathBuf,
    file: Option<BufWriter<tokio::fs::File>>,
    pub(super) written: u64,
    pub(super) total: Option<u64>,
    /// Strong ETag or Last-Modified, sent as `If-Range` when resuming.
    pub(super) validator: Option<String>,
    sha: Hasher,
    check: Option<Hasher>,
}

impl Partial {
    pub(super) fn open(path: PathBuf, algo: Option<Algo>) -> Result<Self, FetchError> {
        let file = create(&path)?;
        Ok(Self {
            path,
            file: Some(file),
            written: 0,
            total: None,
            validator: None,
            sha: Hasher::new(Algo::Sha256),
            check: algo.map(Hasher::new),
        })
    }

    fn write_err(&self, cause: std::io::Error) -> FetchError {
        FetchError::Write {
            path: self.path.clone(),
            cause,
        }
    }

    /// Back to zero bytes with fresh hashers. The old writer is dropped unflushed: its buffer is stale.
    pub(super) fn restart(&mut self) -> Result<(), FetchError> {
        self.file = None;
        self.file = Some(create(&self.path)?);
        self.written = 0;
        self.total = None;
        self.validator = None;
        self.sha = Hasher::new(self.sha.algo());
        self.check = self.check.as_ref().map(|h| Hasher::new(h.algo()));
        Ok(())
    }

    pub(super) async fn write(&mut self, chunk: &[u8]) -> Result<(), FetchError> {
        let Some(file) = self.file.as_mut() else {
            return Err(self.write_err(std::io::Error::other("file closed")));
        };
        if let Err(e) = file.write_all(chunk).await {
            return Err(self.write_err(e));
        }
        self.sha.update(chunk);
        if let Some(h) = self.check.as_mut() {
            h.update(chunk);
        }
        self.written += chunk.len() as u64;
        Ok(())
    }

    /// Flushes and syncs, verifies size and checksum, then renames onto `dest`.
    pub(super) async fn finish(
        mut self,
        name: &str,
        dest: &Path,
        expect: &Expect,
        expected: Option<(Algo, String)>,
    ) -> Result<Downloaded, FetchError> {
        if let Some(mut file) = self.file.take() {
            let synced = async {
                file.flush().await?;
                file.get_mut().sync_data().await
            };
            if let Err(e) = synced.await {
                return Err(self.write_err(e));
            }
        }
        if let Some(want) = expect.size.filter(|w| *w != self.written) {
            return Err(FetchError::SizeMismatch {
                url: name.to_string(),
                expected: want,
                actual: self.written,
            });
        }
        let sha = std::mem::replace(&mut self.sha, Hasher::new(Algo::Sha256)).finish();
        if let (Some((algo, want)), Some(h)) = (expected, self.check.take()) {
            let got = h.finish();
            if got != want {
                return Err(FetchError::ChecksumMismatch {
                    url: name.to_string(),
                    algo: algo.name(),
                    expected: want,
                    actual: got,
                });
            }
        }
        if let Err(cause) = tokio::fs::rename(&self.path, dest).await {
            return Err(FetchError::Write {
                path: dest.to_path_buf(),
                cause,
            });
        }
        // Renamed: nothing left for Drop to remove.
        self.path = PathBuf::new();
        Ok(Downloaded {
            path: dest.to_path_buf(),
            size: self.written,
            sha256: sha,
        })
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        self.file = None;
        if !self.path.as_os_str().is_empty() {
            if let Err(e) = std::fs::remove_file(&self.path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!("cannot remove {}: {e}", self.path.display());
                }
            }
        }
    }
}

/// Opened synchronously (it is quick) so that the file exists before anything can drop the future:
/// a pending async create could otherwise land after the cleanup.
fn create(path: &Path) -> Result<BufWriter<tokio::fs::File>, FetchError> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|cause| FetchError::Write {
            path: path.to_path_buf(),
            cause,
        })?;
    Ok(BufWriter::with_capacity(
        WRITE_BUFFER,
        tokio::fs::File::from_std(file),
    ))
}
