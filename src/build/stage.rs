//! Staging: a directory tree mirroring the data partition. It receives the base's own p3 content, then
//! every `files[]` entry in config order (later entries win), OCI archives and `conf/image.yaml`.
//! Downloads are hardlinked in (the build dir holds both), copied only across filesystems.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use super::size::{round_up, Usage, BLOCK};
use super::{io_err, BuildError};
use crate::archive;
use crate::config::{Config, FileSource, Via};
use crate::oci::{archive_file_name, inspect_docker_archive, Platform};
use crate::progress::{Progress, TaskKind};
use crate::CancellationToken;

/// Local paths of fetched inputs, by config index.
#[derive(Debug, Default)]
pub struct Fetched {
    pub files: HashMap<usize, PathBuf>,
    /// docker-archives by `oci_images[]` index, with the `RepoTags[0]` they must carry.
    pub oci: HashMap<usize, (PathBuf, String)>,
    /// Σ unpacked sizes of the pulled images: room the device needs to load them at first boot.
    pub unpacked: u64,
}

pub fn stage_all(
    config: &Config,
    raw_text: &str,
    fetched: &Fetched,
    platform: &Platform,
    staging: &Path,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<(), BuildError> {
    for f in &config.files {
        if cancel.is_cancelled() {
            return Err(BuildError::Cancelled);
        }
        let key = format!("files[{}]", f.index);
        let dest = prepare_dest(staging, &f.rel, &key, f.via.is_archive())?;
        match (&f.source, f.via) {
            (FileSource::Content(text), Via::Base64) => {
                let bytes =
                    crate::config::decode_base64(text).map_err(|e| BuildError::Content {
                        key: key.clone(),
                        message: format!("invalid base64: {e}"),
                    })?;
                std::fs::write(&dest, bytes).map_err(io_err("writing", &dest))?;
            }
            (FileSource::Content(text), _) => {
                std::fs::write(&dest, text).map_err(io_err("writing", &dest))?
            }
            (FileSource::Url(_), via) => {
                let src = fetched
                    .files
                    .get(&f.index)
                    .ok_or_else(|| BuildError::Content {
                        key: key.clone(),
                        message: "was not fetched".into(),
                    })?;
                if via.is_archive() {
                    let limit = f.size.or_else(|| crate::disk::free_space(staging).ok());
                    // Named by where it lands, as the config says (the source may be a cache file).
                    archive::expand(src, via, &dest, limit, &f.to, progress, cancel)?;
                } else {
                    link_or_copy(src, &dest, &f.to, progress, cancel)?;
                }
            }
        }
    }
    for img in &config.oci_images {
        let Some((src, tag)) = fetched.oci.get(&img.index) else {
            continue;
        };
        let key = format!("oci_images[{}]", img.index);
        check_docker_archive(src, tag, &key)?;
        let rel = PathBuf::from("images").join(archive_file_name(tag, platform));
        let dest = prepare_dest(staging, &rel, &key, false)?;
        link_or_copy(
            src,
            &dest,
            &format!("/data/{}", rel.display()),
            progress,
            cancel,
        )?;
    }
    if config.write_config {
        let dest = prepare_dest(staging, Path::new("conf/image.yaml"), "write_config", false)?;
        std::fs::write(&dest, raw_text).map_err(io_err("writing", &dest))?;
    }
    Ok(())
}

/// The device loader reads `manifest.json` (exact member name) and loads `[0].RepoTags[0]`: check both now
/// rather than ship a card whose services never start.
fn check_docker_archive(path: &Path, tag: &str, key: &str) -> Result<(), BuildError> {
    let info = inspect_docker_archive(path)?;
    match info.repo_tag {
        Some(t) if t == tag => Ok(()),
        other => Err(BuildError::Content {
            key: key.to_string(),
            message: format!(
                "docker-archive is tagged `{}`, expected `{tag}`",
                other.unwrap_or_default()
            ),
        }),
    }
}

/// Warns about what the compose needs but the card will not have: images neither embedded nor shipped by
/// the base (the device cannot pull them offline) and bind-mount sources missing from /data.
pub fn warn_compose_gaps(config: &Config, staging: &Path, progress: &Progress) {
    let Some(offspot) = &config.offspot else {
        return;
    };
    let mut tags: HashSet<String> = HashSet::new();
    if let Ok(entries) = std::fs::read_dir(staging.join("images")) {
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().ends_with(".tar") {
                if let Ok(Some(tag)) = inspect_docker_archive(&entry.path()).map(|i| i.repo_tag) {
                    tags.insert(normalized(&tag));
                }
            }
        }
    }
    for image in offspot.images() {
        if !tags.contains(&normalized(&image)) {
            progress.warn(format!(
                "offspot.containers uses image `{image}`, which is not in the image's /data/images: \
                 the device cannot pull it offline"
            ));
        }
    }
    for source in offspot.bind_sources() {
        match source.strip_prefix("/data/") {
            Some(rel) if staging.join(rel).exists() => {}
            Some(_) => progress.warn(format!(
                "bind mount source {source} is not in the image's /data"
            )),
            None if source == "/data" => {}
            None => progress.warn(format!(
                "bind mount source {source} is outside /data, which the image fills"
            )),
        }
    }
}

/// Creates the parents of `rel` inside `staging`, refusing to go through a symlink (the base's own
/// content could otherwise redirect a write outside the staging tree) and making room for the entry.
fn prepare_dest(
    staging: &Path,
    rel: &Path,
    key: &str,
    is_dir: bool,
) -> Result<PathBuf, BuildError> {
    let conflict = |message: String| BuildError::Content {
        key: key.to_string(),
        message,
    };
    let mut cur = staging.to_path_buf();
    let comps: Vec<_> = rel.components().collect();
    for (i, comp) in comps.iter().enumerate() {
        let Component::Normal(name) = comp else {
            return Err(conflict(format!("invalid path {}", rel.display())));
        };
        cur.push(name);
        let last = i + 1 == comps.len();
        match std::fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                if last {
                    std::fs::remove_file(&cur).map_err(io_err("replacing", &cur))?;
                } else {
                    return Err(conflict(format!(
                        "/data/{} is a symlink in the base image",
                        strip(staging, &cur)
                    )));
                }
            }
            Ok(m) if m.is_dir() => {
                if last && !is_dir {
                    return Err(conflict(format!(
                        "/data/{} is a directory",
                        strip(staging, &cur)
                    )));
                }
            }
            Ok(_) => {
                if !last {
                    return Err(conflict(format!(
                        "/data/{} is a file, not a directory",
                        strip(staging, &cur)
                    )));
                }
                // A later entry (or the user) replaces a file of the base or of an earlier entry.
                std::fs::remove_file(&cur).map_err(io_err("replacing", &cur))?;
            }
            Err(_) if last && !is_dir => {}
            Err(_) => std::fs::create_dir(&cur).map_err(io_err("creating", &cur))?,
        }
    }
    Ok(cur)
}

fn strip(staging: &Path, p: &Path) -> String {
    p.strip_prefix(staging).unwrap_or(p).display().to_string()
}

/// Hardlink when possible (no bytes copied); copy with progress across filesystems.
fn link_or_copy(
    src: &Path,
    dest: &Path,
    label: &str,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<(), BuildError> {
    if std::fs::hard_link(src, dest).is_ok() {
        return Ok(());
    }
    let len = std::fs::metadata(src)
        .map_err(io_err("reading", src))?
        .len();
    let mut task = progress.task(TaskKind::Copy, label, Some(len));
    let mut input = std::fs::File::open(src).map_err(io_err("opening", src))?;
    let mut output = std::fs::File::create(dest).map_err(io_err("creating", dest))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        if cancel.is_cancelled() {
            return Err(BuildError::Cancelled);
        }
        let n = input.read(&mut buf).map_err(io_err("reading", src))?;
        if n == 0 {
            break;
        }
        std::io::Write::write_all(&mut output, &buf[..n]).map_err(io_err("writing", dest))?;
        task.advance(n as u64);
    }
    task.finish();
    Ok(())
}

/// Docker's reading of a reference (`nginx:1.25` is `docker.io/library/nginx:1.25`), so a compose `image:`
/// and an archive's `RepoTags[0]` compare as the engine compares them.
fn normalized(reference: &str) -> String {
    crate::oci::Reference::parse(reference)
        .map(|r| r.canonical())
        .unwrap_or_else(|_| reference.to_string())
}

/// What the tree will occupy in ext4: 4 KiB blocks per file (hardlinks once), a block per directory,
/// an inode per entry. `bytes_total` is the plain file bytes (mke2fs progress).
pub fn usage(root: &Path) -> Result<(Usage, u64), BuildError> {
    let mut usage = Usage::default();
    let mut plain = 0u64;
    let mut seen = HashSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        usage.bytes += BLOCK;
        usage.inodes += 1;
        for entry in std::fs::read_dir(&dir).map_err(io_err("reading", &dir))? {
            let entry = entry.map_err(io_err("reading", &dir))?;
            let meta = entry.metadata().map_err(io_err("reading", &entry.path()))?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else if seen.insert((meta.dev(), meta.ino())) {
                usage.inodes += 1;
                if meta.is_file() {
                    usage.bytes += round_up(meta.len(), BLOCK);
                    plain += meta.len();
                } else if meta.file_type().is_symlink() && meta.len() > 59 {
                    usage.bytes += BLOCK;
                }
            }
        }
    }
    Ok((usage, plain))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dest_refuses_symlinked_parents_and_replaces_files() {
        let dir = tempfile::tempdir().unwrap();
        let staging = dir.path();
        std::os::unix::fs::symlink("/tmp", staging.join("evil")).unwrap();
        let err = prepare_dest(staging, Path::new("evil/x"), "files[0]", false).unwrap_err();
        assert!(err.to_string().contains("symlink"), "{err}");
        std::fs::write(staging.join("f"), "old").unwrap();
        let dest = prepare_dest(staging, Path::new("f"), "files[1]", false).unwrap();
        assert!(!dest.exists());
        let err = prepare_dest(staging, Path::new("a/b/c"), "files[2]", false).and_then(|d| {
            std::fs::write(&d, "x").unwrap();
            prepare_dest(staging, Path::new("a/b/c/d"), "files[3]", false)
        });
        assert!(err.unwrap_err().to_string().contains("is a file"));
    }

    #[test]
    fn usage_counts_hardlinks_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), vec![1u8; 5000]).unwrap();
        std::fs::hard_link(dir.path().join("a"), dir.path().join("b")).unwrap();
        let (u, plain) = usage(dir.path()).unwrap();
        assert_eq!(u.bytes, BLOCK + 8192);
        assert_eq!(u.inodes, 2);
        assert_eq!(plain, 5000);
    }
}
