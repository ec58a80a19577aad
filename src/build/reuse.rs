//! `--reuse`: a built image kept in the cache and handed out again while nothing it was made from changed.
//! The station's clone mode builds a config once and flashes it onto every card; an engineer rebuilding
//! an order gets the image in the time of a copy.
//!
//! The key is `built:CONFIG_NAME|DIGEST`, DIGEST covering the config's text, this tool's version, the
//! options that shape the image (platform, `--max-size`) and one freshness token per input: the cached
//! origin's validators (digest, ETag, Last-Modified) for a download or a cached download (else the cached
//! entry's SHA-256), length and mtime for a local file, the manifest digest for a registry image. An input whose freshness is unknown
//! (a server without validators) means no key: an unknown input must never pass for an unchanged one.

use std::fs::File;
use std::os::unix::fs::MetadataExt;

use super::images::ImageOrigin;
use super::output::{Guard, Output};
use super::plan::Plan;
use super::sourcing::Origin;
use super::{io_err, BuildError, BuildReport, Env};
use crate::cache::{Cache, EntryKind, Freshness, IndexEntry, Kind};
use crate::digest::{Algo, Hasher};
use crate::disk::{sparse, Target};
use crate::fetch::Source;
use crate::progress::{Step, TaskKind};

/// The cache key of the image `config_text` builds from `plan`'s inputs, or `None` when some input's
/// freshness is unknown.
pub fn key(config_name: &str, config_text: &str, plan: &Plan, env: &Env) -> Option<String> {
    let mut tokens: Vec<(String, String)> = Vec::new();
    for r in plan.remotes() {
        let token = match (&r.origin, &r.source) {
            // The origin's validators, recorded with the entry when it was downloaded: the same token
            // whether this run downloads the input or finds it cached.
            (Origin::Cached(e), _) => {
                validators(&e.freshness).unwrap_or_else(|| format!("sha256:{}", e.sha256))
            }
            (Origin::Download { freshness, .. }, _) => validators(freshness)?,
            (Origin::Local, Source::File(path)) => {
                let m = std::fs::metadata(path).ok()?;
                format!("file:{}:{}:{}", m.len(), m.mtime(), m.mtime_nsec())
            }
            (Origin::Local, Source::Http(_)) => return None,
        };
        tokens.push((r.key.clone(), token));
    }
    for img in &plan.images {
        let token = match &img.origin {
            ImageOrigin::Cached(e) => format!("sha256:{}", e.sha256),
            ImageOrigin::Pull { manifest_digest } => manifest_digest.clone(),
        };
        tokens.push((format!("oci_images[{}]", img.index), token));
    }
    tokens.sort();
    let mut h = Hasher::new(Algo::Sha256);
    for part in [
        env!("CARGO_PKG_VERSION"),
        config_text,
        &env.opts.platform.to_string(),
        &format!("{:?}", env.opts.max_size),
    ] {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    for (k, t) in &tokens {
        h.update(format!("{k}={t}\n").as_bytes());
    }
    Some(format!("built:{config_name}|{}", h.finish()))
}

/// The strongest validator the origin gave, or `None`.
fn validators(f: &Freshness) -> Option<String> {
    let len = f.length.map_or(String::new(), |l| format!(":{l}"));
    if let Some(d) = &f.digest {
        return Some(format!("digest:{d}{len}"));
    }
    if let Some(e) = &f.etag {
        return Some(format!("etag:{}{len}", e.trim_start_matches("W/")));
    }
    f.last_modified
        .as_ref()
        .map(|m| format!("modified:{m}{len}"))
}

/// The config's file name without extension, for the entry's readable name and its version identity.
pub fn config_name(config_src: &str) -> String {
    let last = config_src
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(config_src);
    let stem = last.split(['?', '#']).next().unwrap_or(last);
    let stem = stem.rsplit_once('.').map_or(stem, |(s, _)| s);
    if stem.is_empty() {
        "config".into()
    } else {
        stem.to_string()
    }
}

/// Copies the cached image `entry` to `out` (checking its SHA-256 on the way), writes its bmap and commits
/// OUTPUT. A corrupt entry is removed from the cache and reported; the caller then builds.
pub fn deliver(
    cache: &Cache,
    entry: &IndexEntry,
    out: Output,
    plan: &Plan,
    env: &Env,
) -> Result<BuildReport, BuildError> {
    let (progress, cancel) = (env.progress, env.cancel);
    let cached = cache.store().path_of(entry);
    progress.step(
        Step::Assemble,
        format!(
            "Copying the built image from the cache into {}",
            out.path.display()
        ),
    );
    let mut guard = Guard::new(out, env.opts.keep);
    // A file OUTPUT only (build() checks): a build onto a card sizes p3 to the card.
    let target = Target::create_file(&guard.output().work_path)?;
    guard.created();
    let file = File::open(&cached).map_err(io_err("opening", &cached))?;
    let mut hasher = Hasher::new(Algo::Sha256);
    let mut task = progress.task(
        TaskKind::Copy,
        format!(
            "{} (cached build)",
            entry
                .key
                .split('|')
                .next()
                .unwrap_or("")
                .trim_start_matches("built:")
        ),
        Some(entry.size),
    );
    // The kept build's own mapping, exactly: its bmap is the original's (disk::sparse).
    sparse::copy_extents(
        &file,
        &target.file,
        entry.size,
        &mut hasher,
        &mut task,
        cancel,
    )
    .map_err(|e| copy_error(&cached, e))?;
    task.finish();
    if hasher.finish() != entry.sha256 {
        let _ = cache.store().remove(std::slice::from_ref(&entry.id));
        return Err(BuildError::Content {
            key: "--reuse".into(),
            message: format!(
                "the cached build {} is corrupt (removed from the cache); build again",
                cached.display()
            ),
        });
    }
    target.sync()?;
    drop(target);
    let out = guard.output();
    crate::disk::bmap::write_for(&out.work_path, &out.path, progress, cancel)?;
    progress.step_done(Step::Assemble);
    progress.step(Step::Finish, "Finishing");
    let output = guard.output().path.clone();
    guard.commit()?;
    progress.step_done(Step::Finish);
    let _ = cache
        .store()
        .touch(&entry.id, crate::cache::unix(std::time::SystemTime::now()));
    let mut lines = plan.describe();
    lines.push(format!("reused the cached build {}", entry.id));
    Ok(BuildReport {
        output,
        check_only: false,
        image_size: entry.size,
        data_size: entry.size.saturating_sub(plan.layout.data_offset()),
        lines,
    })
}

/// Keeps a copy of the image just built at `image` under `key`, when the cache's policy takes built
/// images. Failing to keep it does not fail the build: the image is ready either way.
pub fn keep(cache: &Cache, key: &str, image: &std::path::Path, env: &Env) {
    if !cache.cacheable(Kind::BuiltImage, key) {
        return;
    }
    let result = (|| -> Result<IndexEntry, BuildError> {
        let file = File::open(image).map_err(io_err("opening", image))?;
        let size = file.metadata().map_err(io_err("reading", image))?.len();
        let mut hasher = Hasher::new(Algo::Sha256);
        let ins = cache.store().begin_insert()?;
        let mut task = env.progress.task(
            TaskKind::Copy,
            format!(
                "keeping {} in the cache",
                image.file_name().unwrap_or_default().to_string_lossy()
            ),
            Some(size),
        );
        // Its mapping kept exactly (a FAT cache stick maps everything: denser, still right).
        sparse::copy_extents(&file, ins.file(), size, &mut hasher, &mut task, env.cancel)
            .map_err(|e| copy_error(image, e))?;
        task.finish();
        let sha = hasher.finish();
        let now = crate::cache::unix(std::time::SystemTime::now());
        Ok(cache.store().commit(
            ins,
            EntryKind::BuiltImage,
            key,
            &sha,
            Freshness::default(),
            now,
        )?)
    })();
    match result {
        Ok(e) => {
            env.progress
                .info(format!("cache: kept the build as {}", e.id));
            // An older build of the same config can only come back if every input reverts: it would
            // hold gigabytes for nothing.
            let prefix = key.split('|').next().unwrap_or(key);
            let stale: Vec<String> = cache
                .store()
                .entries()
                .unwrap_or_default()
                .into_iter()
                .filter(|o| {
                    o.kind == EntryKind::BuiltImage
                        && o.key != key
                        && o.key.split('|').next() == Some(prefix)
                })
                .map(|o| o.id)
                .collect();
            if !stale.is_empty() {
                let _ = cache.store().remove(&stale);
            }
        }
        Err(e) => env.progress.warn(format!(
            "cache: the build could not be kept for --reuse: {}",
            crate::Chain(&e)
        )),
    }
}

fn copy_error(path: &std::path::Path, e: sparse::SparseError) -> BuildError {
    match e {
        sparse::SparseError::Cancelled => BuildError::Cancelled,
        e => BuildError::Io {
            action: "copying",
            path: path.to_path_buf(),
            source: std::io::Error::other(e),
        },
    }
}
