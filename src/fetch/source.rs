//! Where an input comes from: an HTTP(S) URL or a local file.

use super::FetchError;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    Http(url::Url),
    File(PathBuf),
}

impl Source {
    /// `http(s)://…`, `file://…` (absolute), or a path; relative paths resolve against `base_dir`
    /// (the config file's folder) when given. Other schemes → `BadInput` naming the string.
    pub fn parse(s: &str, base_dir: Option<&Path>) -> Result<Source, FetchError> {
        let bad = |reason: &'static str| FetchError::BadSource {
            input: s.to_string(),
            reason,
        };
        let trimmed = s.trim();
        if trimmed.is_empty() {
            return Err(bad("empty source"));
        }
        match scheme_of(trimmed) {
            Some(scheme) if scheme == "http" || scheme == "https" => {
                let url = url::Url::parse(trimmed).map_err(|_| bad("invalid URL"))?;
                if url.host_str().is_none_or(str::is_empty) {
                    return Err(bad("URL without a host"));
                }
                Ok(Source::Http(url))
            }
            Some(scheme) if scheme == "file" => {
                let url = url::Url::parse(trimmed).map_err(|_| bad("invalid file:// URL"))?;
                // `to_file_path` refuses hosts other than localhost, which is what `file://relative/x`
                // parses to: a relative file URL has no meaning.
                let path = url
                    .to_file_path()
                    .map_err(|()| bad("file:// URL must hold an absolute path"))?;
                Ok(Source::File(path))
            }
            Some(_) => Err(bad(
                "unsupported scheme (use http://, https://, file:// or a path)",
            )),
            None => {
                let path = Path::new(trimmed);
                if path.is_absolute() {
                    Ok(Source::File(path.to_path_buf()))
                } else if let Some(base) = base_dir {
                    Ok(Source::File(base.join(path)))
                } else {
                    Err(bad("relative path without a base directory"))
                }
            }
        }
    }

    /// Human-readable form for messages: the URL or the path.
    pub fn display(&self) -> String {
        match self {
            Source::Http(url) => url.to_string(),
            Source::File(path) => path.display().to_string(),
        }
    }

    /// The last path segment (file name) when there is one; a default label for progress.
    pub fn file_name(&self) -> Option<String> {
        match self {
            Source::Http(url) => url
                .path_segments()
                .and_then(|mut s| s.next_back())
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            Source::File(path) => path.file_name().map(|n| n.to_string_lossy().into_owned()),
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display())
    }
}

/// The lower-cased scheme when `s` starts with `scheme://`. A bare `name:rest` is a legal file name on
/// Linux, so only the `://` form counts as a URL.
fn scheme_of(s: &str) -> Option<String> {
    let (scheme, _) = s.split_once("://")?;
    let mut chars = scheme.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    (first_ok && rest_ok).then(|| scheme.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Classify, ErrorClass};

    #[test]
    fn http_and_https() {
        let s = Source::parse("https://example.org/a/b.img.xz", None).unwrap();
        assert_eq!(
            s,
            Source::Http(url::Url::parse("https://example.org/a/b.img.xz").unwrap())
        );
        assert_eq!(s.file_name().as_deref(), Some("b.img.xz"));
        assert!(matches!(
            Source::parse("HTTP://example.org/x", None),
            Ok(Source::Http(_))
        ));
    }

    #[test]
    fn paths() {
        assert_eq!(
            Source::parse("/srv/x.zim", None).unwrap(),
            Source::File("/srv/x.zim".into())
        );
        assert_eq!(
            Source::parse("sub/x.zim", Some(Path::new("/etc/conf"))).unwrap(),
            Source::File("/etc/conf/sub/x.zim".into())
        );
        // An absolute path ignores the base.
        assert_eq!(
            Source::parse("/a", Some(Path::new("/b"))).unwrap(),
            Source::File("/a".into())
        );
        // A colon without `://` is a file name.
        assert_eq!(
            Source::parse("a:b", Some(Path::new("/d"))).unwrap(),
            Source::File("/d/a:b".into())
        );
    }

    #[test]
    fn file_urls() {
        assert_eq!(
            Source::parse("file:///tmp/a%20b.txt", None).unwrap(),
            Source::File("/tmp/a b.txt".into())
        );
        let e = Source::parse("file://relative/x", None).unwrap_err();
        assert_eq!(e.class(), ErrorClass::BadInput);
    }

    #[test]
    fn rejected() {
        for bad in [
            "ftp://example.org/x",
            "s3://bucket/k",
            "",
            "rel/x",
            "http://",
        ] {
            let e = Source::parse(bad, None).unwrap_err();
            assert_eq!(e.class(), ErrorClass::BadInput, "{bad}");
            assert!(e.to_string().contains(bad), "{e}");
        }
    }
}
