//! OS junk that archives made on desktops carry (resource forks, thumbnails caches, trash
//! folders). It has no place on a hotspot, so expansion skips it, and anything under it.

use std::path::{Component, Path};

/// Glob patterns (`*` = any run of characters, `?` = one character) matched against each
/// path component.
const PATTERNS: &[&str] = &[
    "__MACOSX",
    "*~",
    ".fuse_hidden*",
    ".directory",
    ".Trash-*",
    ".nfs*",
    ".DS_Store",
    ".AppleDouble",
    ".LSOverride",
    "._*",
    ".DocumentRevisions-V100",
    ".fseventsd",
    ".Spotlight-V100",
    ".TemporaryItems",
    ".Trashes",
    ".VolumeIcon.icns",
    ".com.apple.timemachine.donotpresent",
    ".AppleDB",
    ".AppleDesktop",
    "Network Trash Folder",
    ".apdisk",
    "*.icloud",
    "Thumbs.db",
    "ehthumbs.db",
    "ehthumbs_vista.db",
    "*.stackdump",
    "desktop.ini",
    "Desktop.ini",
    "$RECYCLE.BIN",
    "*.lnk",
];

/// Whether one file name is junk.
pub(super) fn is_junk_name(name: &[u8]) -> bool {
    PATTERNS.iter().any(|p| glob(p.as_bytes(), name))
}

/// Whether a relative member path is junk or lies under a junk directory.
pub(super) fn is_junk_path(rel: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    rel.components().any(|c| match c {
        Component::Normal(n) => is_junk_name(n.as_bytes()),
        _ => false,
    })
}

/// `*` and `?` matching, iterative with single backtracking point (linear for our patterns).
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    // Position of the last `*` in the pattern and the name position it currently absorbs up to.
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == b'?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches() {
        assert!(glob(b"*~", b"notes.txt~"));
        assert!(!glob(b"*~", b"notes.txt"));
        assert!(glob(b"._*", b"._photo.jpg"));
        assert!(glob(b"._*", b"._"));
        assert!(!glob(b"._*", b"_photo"));
        assert!(glob(b"a*b*c", b"aXXbYYc"));
        assert!(!glob(b"a*b*c", b"aXXbYY"));
        assert!(glob(b"a?c", b"abc"));
        assert!(!glob(b"a?c", b"ac"));
        assert!(glob(b"*.lnk", b"shortcut.lnk"));
        assert!(!glob(b"*.lnk", b"shortcut.lnk.txt"));
    }

    #[test]
    fn junk_names_and_paths() {
        for j in [
            "__MACOSX",
            ".DS_Store",
            "Thumbs.db",
            "foo~",
            ".Trash-1000",
            "$RECYCLE.BIN",
            "Network Trash Folder",
            "x.icloud",
            ".nfs0001",
        ] {
            assert!(is_junk_name(j.as_bytes()), "{j} should be junk");
        }
        for ok in [
            "README.md",
            "DS_Store",
            "thumbs.db.bak",
            "index.html",
            "lnk",
        ] {
            assert!(!is_junk_name(ok.as_bytes()), "{ok} should not be junk");
        }
        assert!(is_junk_path(Path::new("__MACOSX/a/._b")));
        assert!(is_junk_path(Path::new("docs/.DS_Store")));
        assert!(is_junk_path(Path::new("a/$RECYCLE.BIN/x/y")));
        assert!(!is_junk_path(Path::new("docs/readme.txt")));
    }
}
