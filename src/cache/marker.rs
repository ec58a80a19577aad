//! A cache knows it is a cache: `CACHEDIR.TAG` (the Cache Directory Tagging convention, which backup tools
//! also honour) is written when a cache is created, and a non-empty folder without it is refused — the
//! tidying at open removes files the index does not list, which in a user's folder would be their files.

use std::fs;
use std::io::ErrorKind;
use std::path::Path;

use super::index::{self, INDEX_FILE};
use super::CacheError;

pub const TAG_FILE: &str = "CACHEDIR.TAG";
const SIGNATURE: &str = "Signature: 8a477f597d28d172789f06886806bc55";

/// Checks that `dir` is a cache, or may become one: tagged; missing or empty (it is created and tagged
/// unless `read_only`); or holding a valid index from a version that did not tag (it is tagged now).
pub fn claim(dir: &Path, read_only: bool) -> Result<(), CacheError> {
    let tag = dir.join(TAG_FILE);
    if fs::read_to_string(&tag).is_ok_and(|t| t.starts_with(SIGNATURE)) {
        return Ok(());
    }
    let empty = match fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) if e.kind() == ErrorKind::NotFound => true,
        Err(cause) => return Err(CacheError::io(dir, "cannot list directory", cause)),
    };
    let ours = !empty && matches!(index::read_index(&dir.join(INDEX_FILE)), Ok(Some(_)));
    if !empty && !ours {
        return Err(CacheError::NotACache {
            dir: dir.to_path_buf(),
        });
    }
    if read_only {
        return Ok(());
    }
    fs::create_dir_all(dir)
        .map_err(|cause| CacheError::io(dir, "cannot create directory", cause))?;
    let text = format!(
        "{SIGNATURE}\n# This file is a cache directory tag created by image-creator.\n# Its files can be \
         re-downloaded; see https://bford.info/cachedir/\n"
    );
    fs::write(&tag, text).map_err(|cause| CacheError::io(&tag, "cannot write", cause))
}
