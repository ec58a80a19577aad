//! Local-file sources: stat, read, verify in place (never copied).

use super::{Downloaded, Expect, FetchError, Probe};
use crate::digest::{Algo, Hasher};
use crate::net::retry;
use crate::progress;
use crate::CancellationToken;
use std::path::Path;
use tokio::io::AsyncReadExt;

const CHUNK: usize = 1 << 20;
/// Texts (configs, md5sum files) are small; a cap keeps a wrong path (an image) from filling memory.
pub(super) const TEXT_LIMIT: u64 = 16 << 20;

fn missing(path: &Path, cause: std::io::Error) -> FetchError {
    FetchError::LocalMissing {
        path: path.to_path_buf(),
        cause,
    }
}

fn read_err(path: &Path, cause: std::io::Error) -> FetchError {
    FetchError::LocalRead {
        path: path.to_path_buf(),
        cause,
    }
}

pub(super) async fn probe(path: &Path) -> Result<Probe, FetchError> {
    let meta = tokio::fs::metadata(path)
        .await
        .map_err(|e| missing(path, e))?;
    Ok(Probe {
        size: Some(meta.len()),
        ..Probe::default()
    })
}

pub(super) async fn read_text(path: &Path) -> Result<String, FetchError> {
    let meta = tokio::fs::metadata(path)
        .await
        .map_err(|e| missing(path, e))?;
    if meta.len() > TEXT_LIMIT {
        return Err(FetchError::TooLarge {
            url: path.display().to_string(),
            limit: TEXT_LIMIT,
        });
    }
    let bytes = tokio::fs::read(path).await.map_err(|e| read_err(path, e))?;
    String::from_utf8(bytes).map_err(|_| FetchError::NotText {
        url: path.display().to_string(),
    })
}

/// The first `n` bytes of a local file (fewer if it is shorter).
pub(super) async fn read_range(path: &Path, start: u64, n: u64) -> Result<Vec<u8>, FetchError> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| missing(path, e))?;
    file.seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(|e| read_err(path, e))?;
    let mut out = Vec::new();
    file.take(n)
        .read_to_end(&mut out)
        .await
        .map_err(|e| read_err(path, e))?;
    Ok(out)
}

/// Reads `path` once, computing its SHA-256 and the expected checksum, and checks the size.
pub(super) async fn verify(
    path: &Path,
    expect: &Expect,
    expected: Option<(Algo, String)>,
    task: &mut progress::Task,
    cancel: &CancellationToken,
) -> Result<Downloaded, FetchError> {
    let name = path.display().to_string();
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| missing(path, e))?;
    let mut sha = Hasher::new(Algo::Sha256);
    let mut check = expected.as_ref().map(|(a, _)| Hasher::new(*a));
    let mut buf = vec![0u8; CHUNK];
    let mut size = 0u64;
    loop {
        retry::check(cancel, &name)?;
        let n = file.read(&mut buf).await.map_err(|e| read_err(path, e))?;
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        sha.update(chunk);
        if let Some(h) = check.as_mut() {
            h.update(chunk);
        }
        size += n as u64;
        task.set(size);
    }
    if let Some(want) = expect.size {
        if want != size {
            return Err(FetchError::SizeMismatch {
                url: name,
                expected: want,
                actual: size,
            });
        }
    }
    if let (Some((algo, want)), Some(h)) = (expected, check) {
        let got = h.finish();
        if got != want {
            return Err(FetchError::ChecksumMismatch {
                url: name,
                algo: algo.name(),
                expected: want,
                actual: got,
            });
        }
    }
    Ok(Downloaded {
        path: path.to_path_buf(),
        size,
        sha256: sha.finish(),
    })
}
