//! `files[]`: per-entry rules, `to` normalisation and the checks across entries.

use std::collections::HashMap;
use std::path::PathBuf;

use super::error::{ConfigError, KeyPath, Locator};
use super::load::{checksum, decode_base64};
use super::model::{FileEntry, FileSource, Via};
use super::raw::RawFile;

/// Where `write_config: true` puts the config text (seed location).
pub(super) const WRITTEN_CONFIG: &str = "/data/conf/image.yaml";

/// Collapses `.`, `..` and repeated slashes without touching the filesystem (the host's
/// symlinks mean nothing inside the image) and checks the result is inside `/data`.
/// Returns the normalised path and the part relative to `/data`.
pub(super) fn normalise_to(to: &str) -> Result<(String, PathBuf), String> {
    if !to.starts_with('/') {
        return Err(format!(
            "`{to}` is not absolute; expected a path under /data like `/data/contents/file`"
        ));
    }
    if to.contains('\0') {
        return Err("contains a NUL character".to_string());
    }
    let mut parts: Vec<&str> = Vec::new();
    for component in to.split('/') {
        match component {
            "" | "." => {}
            // Like the kernel, `..` at the root stays at the root.
            ".." => {
                parts.pop();
            }
            name => parts.push(name),
        }
    }
    let normal = format!("/{}", parts.join("/"));
    if parts.first() != Some(&"data") {
        if normal == to {
            return Err(format!("`{to}` is outside /data"));
        }
        return Err(format!("`{to}` resolves to `{normal}`, outside /data"));
    }
    if parts.len() == 1 {
        return Err(format!(
            "`{to}` is /data itself; give a path inside it like `/data/contents/file`"
        ));
    }
    if let Some(long) = parts.iter().find(|p| p.len() > 255) {
        return Err(format!(
            "`{long}` is longer than 255 bytes, ext4's limit for a name"
        ));
    }
    Ok((normal, parts[1..].iter().collect()))
}

fn entry(index: usize, raw: RawFile, loc: &Locator) -> Result<FileEntry, ConfigError> {
    let path = KeyPath::root().key("files").index(index);
    let (to, rel) = normalise_to(&raw.to).map_err(|m| loc.invalid(&path.key("to"), m))?;
    let via = raw.via.map(|v| v.0).unwrap_or_default();
    let source = match (raw.url, raw.content) {
        (None, None) => {
            return Err(loc.invalid(&path, "needs `url` (to download) or `content` (text)"));
        }
        (Some(_), Some(content)) => {
            // The seed: "[content] replaces `url` if present". Keep that, but say so.
            tracing::warn!(
                "{}:{}: {path}: both `url` and `content` are set; using `content`",
                loc.origin,
                loc.mark(&path, false)
            );
            FileSource::Content(content)
        }
        (Some(url), None) => {
            if url.trim().is_empty() {
                return Err(loc.invalid(&path.key("url"), "must not be empty"));
            }
            FileSource::Url(url)
        }
        (None, Some(content)) => FileSource::Content(content),
    };
    match (&source, via) {
        (FileSource::Content(_), v) if v.is_archive() => {
            return Err(loc.invalid(
                &path.key("via"),
                format!(
                    "`{}` expands an archive downloaded from `url`; this entry has `content`",
                    v.name()
                ),
            ));
        }
        (FileSource::Url(_), Via::Base64) => {
            return Err(loc.invalid(
                &path.key("via"),
                "`base64` decodes `content`; this entry has `url`",
            ));
        }
        (FileSource::Content(text), Via::Base64) => {
            if let Err(e) = decode_base64(text) {
                return Err(loc.invalid(&path.key("content"), base64_problem(&e)));
            }
        }
        _ => {}
    }
    let checksum = match (raw.checksum, &source) {
        (None, _) => None,
        (Some(_), FileSource::Content(_)) => {
            return Err(loc.invalid(
                &path.key("checksum"),
                "checksums verify downloads (`url`); this entry has `content`",
            ));
        }
        (Some(c), FileSource::Url(_)) => Some(checksum(c, &path.key("checksum"), loc)?),
    };
    Ok(FileEntry {
        index,
        to,
        rel,
        source,
        via,
        size: raw.size.map(|s| s.0),
        checksum,
    })
}

fn base64_problem(err: &base64::DecodeError) -> String {
    use base64::DecodeError as E;
    let detail = match err {
        E::InvalidByte(at, byte) | E::InvalidLastSymbol(at, byte) => format!(
            "character `{}` at position {at} (spaces and line breaks not counted)",
            char::from(*byte).escape_default()
        ),
        E::InvalidLength(len) => format!("{len} base64 characters is not a valid length"),
        E::InvalidPadding => "bad `=` padding".to_string(),
    };
    format!("not valid base64 for `via: base64`: {detail}")
}

/// Something written on /data, for the checks across entries.
struct Target<'a> {
    to: &'a str,
    /// Archives are directories: other entries may write inside them.
    is_dir: bool,
    what: String,
    path: KeyPath,
}

pub(super) fn entries(
    raws: Vec<RawFile>,
    write_config: bool,
    loc: &Locator,
) -> Result<Vec<FileEntry>, ConfigError> {
    let mut out = Vec::with_capacity(raws.len());
    for (index, raw) in raws.into_iter().enumerate() {
        out.push(entry(index, raw, loc)?);
    }
    let files = KeyPath::root().key("files");
    let mut targets: Vec<Target> = Vec::with_capacity(out.len() + 1);
    if write_config {
        targets.push(Target {
            to: WRITTEN_CONFIG,
            is_dir: false,
            what: "`write_config: true`".to_string(),
            path: KeyPath::root().key("write_config"),
        });
    }
    targets.extend(out.iter().map(|f| Target {
        to: &f.to,
        is_dir: f.via.is_archive(),
        what: format!("files[{}]", f.index),
        path: files.index(f.index).key("to"),
    }));

    let mut first_by_to: HashMap<&str, usize> = HashMap::new();
    for (i, t) in targets.iter().enumerate() {
        if let Some(&earlier) = first_by_to.get(t.to) {
            return Err(loc.invalid(
                &t.path,
                format!("`{}` is also the target of {}", t.to, targets[earlier].what),
            ));
        }
        first_by_to.insert(t.to, i);
    }
    // A plain file's path cannot also be a directory that another entry writes into.
    for t in &targets {
        let mut ancestor = t.to;
        while let Some((parent, _)) = ancestor.rsplit_once('/') {
            if parent == "/data" || parent.is_empty() {
                break;
            }
            if let Some(&i) = first_by_to.get(parent) {
                let owner = &targets[i];
                if !owner.is_dir {
                    return Err(loc.invalid(
                        &t.path,
                        format!(
                            "`{}` is inside `{parent}`, which {} writes as a file",
                            t.to, owner.what
                        ),
                    ));
                }
            }
            ancestor = parent;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_under_data() {
        let ok = |s: &str| normalise_to(s).unwrap();
        assert_eq!(ok("/data/a/b"), ("/data/a/b".into(), PathBuf::from("a/b")));
        assert_eq!(
            ok("/data/./a//b/"),
            ("/data/a/b".into(), PathBuf::from("a/b"))
        );
        assert_eq!(ok("/data/x/../y"), ("/data/y".into(), PathBuf::from("y")));
        assert_eq!(ok("/../data/y"), ("/data/y".into(), PathBuf::from("y")));
        assert_eq!(ok("/tmp/../data/z"), ("/data/z".into(), PathBuf::from("z")));
        for bad in [
            "/data/../etc/x",
            "/tmp/x",
            "data/x",
            "",
            "/data",
            "/data/",
            "/data/a/../..",
            "/datax/y",
            "/data/a\0b",
        ] {
            assert!(normalise_to(bad).is_err(), "{bad:?}");
        }
        let long = format!("/data/{}", "x".repeat(256));
        assert!(normalise_to(&long).unwrap_err().contains("255"));
        let err = normalise_to("/data/../etc/x").unwrap_err();
        assert!(err.contains("`/etc/x`"), "{err}");
    }
}
