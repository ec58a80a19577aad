//! Docker-archive (`docker save` legacy layout) writer and reader.
//!
//! The device's loader is strict (see reference/base-image.md): an uncompressed tar whose member
//! named exactly `manifest.json` gives `[0].RepoTags[0]`, with one uncompressed `<id>/layer.tar`
//! per layer. Layers are decompressed straight into the tar, so memory does not grow with the
//! image.

mod inspect;
mod name;
mod tar_out;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_inspect;
#[cfg(test)]
mod tests_repeated;

pub use inspect::{inspect_docker_archive, ArchiveInfo};
pub use name::{archive_file_name, split_repo_tag};

use super::image::{LayerBlob, LayerCompression, PulledImage};
use crate::archive::{decoder, ArchiveError, Compression};
use crate::digest::{Algo, Hasher};
use crate::progress::{Progress, TaskKind};
use crate::{CancellationToken, Classify, ErrorClass};
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tar_out::TarOut;

/// What [`write_docker_archive`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exported {
    pub path: PathBuf,
    /// Size of the tar (the config's `filesize`).
    pub tar_size: u64,
    /// Σ uncompressed layer sizes (the config's `fullsize`).
    pub unpacked_size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{}: cannot {op}", path.display())]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    /// The pulled image is inconsistent (config not JSON, wrong diff_ids count, bad digest).
    #[error("image {reference}: {reason}")]
    BadImage { reference: String, reason: String },
    #[error(
        "image {reference}: layer {index} ({blob}) decompresses to {actual}, but the config's \
         diff_id is {expected}"
    )]
    DiffIdMismatch {
        reference: String,
        index: usize,
        blob: String,
        expected: String,
        actual: String,
    },
    #[error("{}: cannot decompress layer {digest} ({compression})", path.display())]
    Decode {
        path: PathBuf,
        digest: String,
        compression: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{}: cannot start the layer decoder", path.display())]
    Decoder {
        path: PathBuf,
        #[source]
        source: ArchiveError,
    },
    /// The engine's `docker load` only tags `name:tag` references.
    #[error("RepoTag {repo_tag:?}: {reason}")]
    BadRepoTag { repo_tag: String, reason: String },
    #[error("{}: cancelled", path.display())]
    Cancelled { path: PathBuf },
    /// Not something the device's loader would accept as a docker-archive.
    #[error("{}: not a usable docker-archive: {reason}", path.display())]
    BadArchive { path: PathBuf, reason: String },
    #[error("{}: not a readable tar", path.display())]
    BadTar {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl Classify for ExportError {
    fn class(&self) -> ErrorClass {
        match self {
            ExportError::BadRepoTag { .. }
            | ExportError::BadArchive { .. }
            | ExportError::BadTar { .. } => ErrorClass::BadInput,
            // A pulled image that does not match its own digests is a corrupt download, not
            // something the user wrote wrong.
            ExportError::Io { .. }
            | ExportError::BadImage { .. }
            | ExportError::DiffIdMismatch { .. }
            | ExportError::Decode { .. }
            | ExportError::Decoder { .. }
            | ExportError::Cancelled { .. } => ErrorClass::Failure,
        }
    }
}

/// `sha256:<64 lower-case hex>` → the hex part.
fn sha256_hex(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))).then_some(hex)
}

/// Legacy layer id: `sha256_hex(parent_id + "\n" + diff_id + "\n")`, parent "" for the first.
///
/// The engine recomputes its own ids from the config's diff_ids on load, so these only need to
/// be stable and distinct. Building them from the *uncompressed* digest (not the blob's, as the
/// original did) makes them depend only on the content, whatever the registry's compression.
pub fn layer_ids<S: AsRef<str>>(diff_ids: &[S]) -> Vec<String> {
    let mut parent = String::new();
    diff_ids
        .iter()
        .map(|d| {
            let id = crate::digest::sha256_hex(format!("{parent}\n{}\n", d.as_ref()).as_bytes());
            parent.clone_from(&id);
            id
        })
        .collect()
}

/// The parts of the config the archive needs.
struct ConfigInfo {
    value: serde_json::Map<String, serde_json::Value>,
    diff_ids: Vec<String>,
}

fn read_config(image: &PulledImage) -> Result<(ConfigInfo, String), ExportError> {
    let bad = |reason: String| ExportError::BadImage {
        reference: image.reference.clone(),
        reason,
    };
    let hex = sha256_hex(&image.config_digest).ok_or_else(|| {
        bad(format!(
            "config digest {:?} is not sha256",
            image.config_digest
        ))
    })?;
    let actual = crate::digest::sha256_hex(&image.config);
    if actual != hex {
        return Err(bad(format!(
            "config blob is sha256:{actual}, expected {}",
            image.config_digest
        )));
    }
    let value: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&image.config)
            .map_err(|e| bad(format!("config is not a JSON object: {e}")))?;
    let diff_ids = value
        .get("rootfs")
        .and_then(|r| r.get("diff_ids"))
        .and_then(|d| d.as_array())
        .ok_or_else(|| bad("config has no rootfs.diff_ids list".into()))?
        .iter()
        .map(|d| {
            d.as_str()
                .filter(|s| sha256_hex(s).is_some())
                .map(str::to_string)
                .ok_or_else(|| bad(format!("config diff_id {d} is not a sha256 digest")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if diff_ids.len() != image.layers.len() {
        return Err(bad(format!(
            "config lists {} diff_ids for {} layers",
            diff_ids.len(),
            image.layers.len()
        )));
    }
    Ok((ConfigInfo { value, diff_ids }, hex.to_string()))
}

/// The legacy per-layer `json`. Nothing reads it when `manifest.json` exists, but `docker save`
/// writes one; the top layer's carries the image config minus history and rootfs, like the
/// original's.
fn layer_json(
    config: &serde_json::Map<String, serde_json::Value>,
    id: &str,
    parent: Option<&str>,
    top: bool,
) -> Vec<u8> {
    let mut v = if top {
        let mut v = config.clone();
        v.remove("history");
        v.remove("rootfs");
        v
    } else {
        let mut v = serde_json::Map::new();
        v.insert("created".into(), "1970-01-01T00:00:00Z".into());
        v
    };
    v.insert("id".into(), id.into());
    if let Some(p) = parent {
        v.insert("parent".into(), p.into());
    }
    serde_json::Value::Object(v).to_string().into_bytes()
}

/// Write `image` as a legacy `docker save` archive at `out` (created new; removed on error).
///
/// Members: per layer `<id>/`, `<id>/VERSION`, `<id>/json`, `<id>/layer.tar` (uncompressed), then
/// the config as `<config hex>.json` (byte-exact), `repositories` and last `manifest.json`, so an
/// archive cut short never holds a manifest.
pub fn write_docker_archive(
    image: &PulledImage,
    repo_tag: &str,
    out: &Path,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<Exported, ExportError> {
    let (repo, tag) = split_repo_tag(repo_tag)?;
    let (config, config_hex) = read_config(image)?;
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(out)
        .map_err(|source| ExportError::Io {
            path: out.to_path_buf(),
            op: "create the archive",
            source,
        })?;
    let total: u64 = image.layers.iter().map(|l| l.size).sum();
    let mut task = progress.task(TaskKind::Copy, repo_tag.to_string(), Some(total));
    let w = Writer {
        image,
        out,
        tar: TarOut::new(file),
        cancel,
        task: &mut task,
        base: 0,
    };
    match w.write_all(&config, &config_hex, repo, tag, repo_tag) {
        Ok(exported) => {
            task.finish();
            tracing::debug!(
                archive = %out.display(),
                tar_size = exported.tar_size,
                unpacked_size = exported.unpacked_size,
                "wrote docker-archive"
            );
            Ok(exported)
        }
        Err(e) => {
            // We created it: a partial archive must never reach the image.
            if let Err(rm) = std::fs::remove_file(out) {
                tracing::warn!(path = %out.display(), error = %rm, "cannot remove partial archive");
            }
            Err(e)
        }
    }
}

struct Writer<'a> {
    image: &'a PulledImage,
    out: &'a Path,
    tar: TarOut,
    cancel: &'a CancellationToken,
    task: &'a mut crate::progress::Task,
    /// Compressed bytes of the layers already written (progress of the current one adds to it).
    base: u64,
}

impl<'a> Writer<'a> {
    /// Maps a write error on the output; the closure holds the path, not `self`.
    fn io(&self, op: &'static str) -> impl Fn(io::Error) -> ExportError + 'a {
        let path = self.out;
        move |source| ExportError::Io {
            path: path.to_path_buf(),
            op,
            source,
        }
    }

    fn write_all(
        mut self,
        config: &ConfigInfo,
        config_hex: &str,
        repo: &str,
        tag: &str,
        repo_tag: &str,
    ) -> Result<Exported, ExportError> {
        let ids = layer_ids(&config.diff_ids);
        let mut unpacked = 0u64;
        for (i, layer) in self.image.layers.iter().enumerate() {
            let id = &ids[i];
            let parent = i.checked_sub(1).map(|p| ids[p].as_str());
            let json = layer_json(&config.value, id, parent, i + 1 == ids.len());
            self.tar.dir(id).map_err(self.io("write"))?;
            self.tar
                .file(&format!("{id}/VERSION"), b"1.0")
                .map_err(self.io("write"))?;
            self.tar
                .file(&format!("{id}/json"), &json)
                .map_err(self.io("write"))?;
            unpacked += self.layer(i, layer, id, &config.diff_ids[i])?;
        }
        let config_name = format!("{config_hex}.json");
        self.tar
            .file(&config_name, &self.image.config)
            .map_err(self.io("write"))?;
        if let Some(last) = ids.last() {
            let repositories = serde_json::json!({ repo: { tag: last } });
            self.tar
                .file("repositories", repositories.to_string().as_bytes())
                .map_err(self.io("write"))?;
        }
        let layers: Vec<String> = ids.iter().map(|id| format!("{id}/layer.tar")).collect();
        let manifest = serde_json::json!([{
            "Config": config_name,
            "RepoTags": [repo_tag],
            "Layers": layers,
        }]);
        self.tar
            .file("manifest.json", manifest.to_string().as_bytes())
            .map_err(self.io("write"))?;
        let write_err = self.io("write");
        let tar_size = self.tar.finish().map_err(write_err)?;
        Ok(Exported {
            path: self.out.to_path_buf(),
            tar_size,
            unpacked_size: unpacked,
        })
    }

    /// Streams one layer, decompressed, into `<id>/layer.tar`; returns its uncompressed size.
    fn layer(
        &mut self,
        index: usize,
        layer: &LayerBlob,
        id: &str,
        diff_id: &str,
    ) -> Result<u64, ExportError> {
        let blob = File::open(&layer.path).map_err(|source| ExportError::Io {
            path: layer.path.clone(),
            op: "open the layer blob",
            source,
        })?;
        let read = Arc::new(AtomicU64::new(0));
        let counted = Counted {
            inner: blob,
            read: Arc::clone(&read),
        };
        let compression = match layer.compression {
            LayerCompression::None => Compression::None,
            LayerCompression::Gzip => Compression::Gzip,
            LayerCompression::Zstd => Compression::Zstd,
        };
        let mut dec = decoder(compression, counted, 1).map_err(|source| ExportError::Decoder {
            path: layer.path.clone(),
            source,
        })?;
        let mut member = self
            .tar
            .begin(&format!("{id}/layer.tar"))
            .map_err(self.io("write"))?;
        let mut hasher = Hasher::new(Algo::Sha256);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            if self.cancel.is_cancelled() {
                return Err(ExportError::Cancelled {
                    path: self.out.to_path_buf(),
                });
            }
            let n = match dec.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(ExportError::Decode {
                        path: layer.path.clone(),
                        digest: layer.digest.clone(),
                        compression: compression.name(),
                        source,
                    })
                }
            };
            hasher.update(&buf[..n]);
            self.tar
                .write(&mut member, &buf[..n])
                .map_err(self.io("write"))?;
            self.task.set(self.base + read.load(Ordering::Relaxed));
        }
        let actual = hasher.finish_prefixed();
        if actual != diff_id {
            return Err(ExportError::DiffIdMismatch {
                reference: self.image.reference.clone(),
                index,
                blob: layer.digest.clone(),
                expected: diff_id.to_string(),
                actual,
            });
        }
        let size = member.size();
        self.tar.end(member).map_err(self.io("write"))?;
        self.base += layer.size;
        self.task.set(self.base);
        Ok(size)
    }
}

/// Counts the compressed bytes the decoder pulls, for progress (the decoder owns the reader).
struct Counted<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}
