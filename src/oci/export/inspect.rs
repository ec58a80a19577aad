//! Reading a docker-archive made by anyone (`docker save`, skopeo, us): tag and sizes.

use super::ExportError;
use crate::archive::Compression;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// What [`inspect_docker_archive`] learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveInfo {
    /// `[0].RepoTags[0]` of `manifest.json`; `None` when the image is untagged.
    pub repo_tag: Option<String>,
    /// Size of the tar file (`filesize`).
    pub tar_size: u64,
    /// Σ sizes of the image's layer tars (`fullsize`).
    pub unpacked_size: u64,
    pub layers: usize,
}

/// A manifest larger than this is not a docker-archive manifest (one image is ~1 KiB).
const MAX_MANIFEST: u64 = 16 << 20;
/// Symlink/hardlink chains longer than this are refused (they would be loops).
const MAX_LINKS: usize = 8;

enum Member {
    File(u64),
    /// Target relative to the member's own directory.
    Symlink(String),
    /// Target relative to the archive root.
    Hardlink(String),
    Other,
}

/// Lexical normalisation of an archive path: no `.`, resolved `..`, no leading `/`.
fn normalize(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

/// Reads a docker-archive's top-level `manifest.json` (exactly that name, as the device's loader
/// does) and the sizes of the first image's layers (symlinked layers, as skopeo and recent
/// `docker save` write them, are followed). The tar is scanned header by header, seeking over
/// the data.
pub fn inspect_docker_archive(path: &Path) -> Result<ArchiveInfo, ExportError> {
    let bad = |reason: String| ExportError::BadArchive {
        path: path.to_path_buf(),
        reason,
    };
    let bad_tar = |source: io::Error| ExportError::BadTar {
        path: path.to_path_buf(),
        source,
    };
    let io_err = |op: &'static str| {
        move |source| ExportError::Io {
            path: path.to_path_buf(),
            op,
            source,
        }
    };
    let mut file = File::open(path).map_err(io_err("open"))?;
    let tar_size = file.metadata().map_err(io_err("read metadata"))?.len();
    let mut head = [0u8; 6];
    let n = read_head(&mut file, &mut head).map_err(io_err("read"))?;
    let compression = Compression::sniff(&head[..n]);
    if compression != Compression::None {
        return Err(bad(format!(
            "{} compressed; the device's loader only reads an uncompressed tar",
            compression.name()
        )));
    }
    let file = File::open(path).map_err(io_err("open"))?;
    let mut archive = tar::Archive::new(file);
    let mut members: HashMap<String, Member> = HashMap::new();
    let mut manifest: Option<Vec<u8>> = None;
    let mut dotted_manifest = false;
    for entry in archive.entries_with_seek().map_err(bad_tar)? {
        let mut entry = entry.map_err(bad_tar)?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let header = entry.header();
        let member = match header.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => Member::File(entry.size()),
            kind @ (tar::EntryType::Symlink | tar::EntryType::Link) => {
                let target = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                if kind == tar::EntryType::Symlink {
                    Member::Symlink(target)
                } else {
                    Member::Hardlink(target)
                }
            }
            _ => Member::Other,
        };
        if raw == "manifest.json" {
            if entry.size() > MAX_MANIFEST {
                return Err(bad(format!("manifest.json is {} bytes", entry.size())));
            }
            let mut data = Vec::new();
            entry
                .by_ref()
                .take(MAX_MANIFEST)
                .read_to_end(&mut data)
                .map_err(bad_tar)?;
            manifest = Some(data);
        } else if normalize(&raw).as_deref() == Some("manifest.json") {
            dotted_manifest = true;
        }
        if let Some(name) = normalize(&raw) {
            members.insert(name, member);
        }
    }
    let manifest = manifest.ok_or_else(|| {
        bad(if dotted_manifest {
            "its manifest is not named exactly `manifest.json` (e.g. `./manifest.json`), which \
             the device's loader does not find"
                .to_string()
        } else {
            "no top-level manifest.json (not a docker-archive; an OCI layout is not accepted)"
                .to_string()
        })
    })?;
    let manifest: serde_json::Value = serde_json::from_slice(&manifest)
        .map_err(|e| bad(format!("manifest.json is not JSON: {e}")))?;
    let first = manifest
        .as_array()
        .and_then(|a| a.first())
        .and_then(|f| f.as_object())
        .ok_or_else(|| bad("manifest.json is not a non-empty list of images".into()))?;
    let repo_tag = match first.get("RepoTags") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Array(tags)) => match tags.first() {
            None => None,
            Some(serde_json::Value::String(t)) => Some(t.clone()),
            Some(other) => return Err(bad(format!("RepoTags[0] is not a string: {other}"))),
        },
        Some(other) => return Err(bad(format!("RepoTags is not a list: {other}"))),
    };
    let layers = first
        .get("Layers")
        .and_then(|l| l.as_array())
        .ok_or_else(|| bad("manifest.json [0] has no Layers list".into()))?;
    let mut unpacked_size = 0u64;
    for layer in layers {
        let name = layer
            .as_str()
            .ok_or_else(|| bad(format!("layer {layer} is not a path")))?;
        let size = resolve(&members, name).map_err(|why| bad(format!("layer {name:?}: {why}")))?;
        unpacked_size += size;
    }
    Ok(ArchiveInfo {
        repo_tag,
        tar_size,
        unpacked_size,
        layers: layers.len(),
    })
}

/// Size of the regular file `name` designates, following links.
fn resolve(members: &HashMap<String, Member>, name: &str) -> Result<u64, String> {
    let mut current = normalize(name).ok_or("escapes the archive")?;
    for _ in 0..=MAX_LINKS {
        current = match members.get(&current) {
            None => return Err(format!("member {current:?} is missing")),
            Some(Member::File(size)) => return Ok(*size),
            Some(Member::Other) => return Err(format!("member {current:?} is not a file")),
            Some(Member::Hardlink(target)) => {
                normalize(target).ok_or("link escapes the archive")?
            }
            Some(Member::Symlink(target)) => {
                let dir = current.rsplit_once('/').map_or("", |(d, _)| d);
                normalize(&format!("{dir}/{target}")).ok_or("link escapes the archive")?
            }
        };
    }
    Err("too many links".into())
}

fn read_head(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
