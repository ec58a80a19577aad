//! Names derived from an image reference: the archive's file name and its `repositories` entry.

use super::ExportError;
use crate::oci::image::Platform;

/// Characters the original's `sanitize_filename` removed (besides control characters).
const REMOVED: &[char] = &[':', '*', '?', '"', '<', '>', '|', '/', '\\'];

/// ext4/VFAT limit for one name component, in bytes.
const MAX_NAME: usize = 255;

/// `name[:tag][@digest]` → (name, tag, digest). The tag's `:` is the last one after the last `/`,
/// so a `host:port/` registry is not mistaken for a tag.
fn parts(reference: &str) -> (&str, Option<&str>, Option<&str>) {
    let (name_tag, digest) = match reference.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (reference, None),
    };
    let slash = name_tag.rfind('/').map_or(0, |i| i + 1);
    match name_tag[slash..].rfind(':') {
        Some(i) => (
            &name_tag[..slash + i],
            Some(&name_tag[slash + i + 1..]),
            digest,
        ),
        None => (name_tag, None, digest),
    }
}

/// File name the original gives an image's archive:
/// `{registry}_{repository-with-/-as-_}_{name}_{tag or digest}_{platform}.tar` with
/// `: * ? " < > | / \` and control characters removed, e.g. `ghcr.io/offspot/kiwix-serve:3.8.1`
/// for linux/arm64/v8 → `ghcr.io_offspot_kiwix-serve_3.8.1_linuxarm64v8.tar`. A digest wins over
/// a tag (it is what identifies the content). The name is cut to 255 bytes, keeping `.tar`.
pub fn archive_file_name(canonical_reference: &str, platform: &Platform) -> String {
    let (name, tag, digest) = parts(canonical_reference);
    let version = digest.or(tag).unwrap_or("latest");
    let raw = format!("{}_{version}_{platform}", name.replace('/', "_"));
    let mut stem: String = raw
        .chars()
        .filter(|c| !REMOVED.contains(c) && !c.is_control())
        .collect();
    let max = MAX_NAME - ".tar".len();
    if stem.len() > max {
        let mut cut = max;
        while !stem.is_char_boundary(cut) {
            cut -= 1;
        }
        stem.truncate(cut);
    }
    format!("{stem}.tar")
}

/// `registry/repo/name:tag` → (`registry/repo/name`, `tag`), refusing what the engine's load
/// cannot tag: no tag, or a digest (`docker load` only creates `name:tag` references and
/// refuses a tag carrying a digest, so the compose's `image:` would never be found).
pub fn split_repo_tag(repo_tag: &str) -> Result<(&str, &str), ExportError> {
    let bad = |reason: &str| ExportError::BadRepoTag {
        repo_tag: repo_tag.to_string(),
        reason: reason.to_string(),
    };
    let (name, tag, digest) = parts(repo_tag);
    if digest.is_some() {
        return Err(bad(
            "a digest cannot be a RepoTag (the engine only loads name:tag); use name:tag",
        ));
    }
    let tag = tag.ok_or_else(|| bad("no tag (expected registry/repository/name:tag)"))?;
    let tag_ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        && !tag.starts_with(['.', '-']);
    if !tag_ok {
        return Err(bad(
            "invalid tag (1-128 of [A-Za-z0-9_.-], not starting with . or -)",
        ));
    }
    if name.is_empty() || name.starts_with('/') || name.ends_with('/') || name.contains("//") {
        return Err(bad("invalid repository name"));
    }
    Ok((name, tag))
}
