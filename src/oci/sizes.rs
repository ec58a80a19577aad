//! The `oci-sizes` helper's output: an `oci_images:` YAML snippet to paste into a config.

use super::export::{archive_file_name, ArchiveInfo};
use super::image::Platform;
use crate::units::format_size;
use crate::yaml::yaml11::implicit_tag;
use std::fmt::Write as _;
use std::path::Path;

/// One `oci_images` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SizeLine {
    pub ident: String,
    /// File name to suggest for `url:` (see [`archive_file_name`]).
    pub url_hint: String,
    /// Size of the docker-archive tar.
    pub filesize: u64,
    /// Σ uncompressed layer sizes.
    pub fullsize: u64,
    /// The ident is a guess (a TAR without RepoTags): the user must fix it.
    pub fixup: bool,
}

impl SizeLine {
    /// The entry for an image pulled (or about to be) from a registry.
    pub fn for_reference(ident: &str, platform: &Platform, filesize: u64, fullsize: u64) -> Self {
        SizeLine {
            ident: ident.to_string(),
            url_hint: archive_file_name(ident, platform),
            filesize,
            fullsize,
            fixup: false,
        }
    }

    /// The entry for a local docker-archive: its RepoTag, else its file stem flagged `!fixup`.
    pub fn for_archive(path: &Path, info: &ArchiveInfo) -> Self {
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (ident, fixup) = match &info.repo_tag {
            Some(tag) => (tag.clone(), false),
            None => (
                path.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                true,
            ),
        };
        SizeLine {
            ident,
            url_hint: file_name,
            filesize: info.tar_size,
            fullsize: info.unpacked_size,
            fixup,
        }
    }
}

/// A scalar that PyYAML (YAML 1.1, the config's and the device's reader) reads back as this
/// exact string: plain when that is unambiguous (references always are), double-quoted otherwise.
fn yaml_str(s: &str) -> String {
    let plain = s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/' | b':' | b'@' | b'+')
        })
        && !s.ends_with(':')
        && implicit_tag(s) == "str";
    if plain {
        s.to_string()
    } else {
        // A JSON string is a valid YAML double-quoted scalar with the same value.
        serde_json::Value::String(s.to_string()).to_string()
    }
}

/// The seed's "Get OCI Images Sizes" snippet (with `ident:`, the schema's key).
pub fn render(lines: &[SizeLine]) -> String {
    if lines.is_empty() {
        return "oci_images: []\n".to_string();
    }
    let mut out = String::from("oci_images:\n");
    for l in lines {
        let fixup = if l.fixup { "  # !fixup" } else { "" };
        // `url_hint` sits in a comment: only a line break could escape it.
        let hint: String = l.url_hint.chars().filter(|c| !c.is_control()).collect();
        let _ = writeln!(out, "  - ident: {}{fixup}", yaml_str(&l.ident));
        let _ = writeln!(out, "    # url: PREFIX/{hint}");
        let _ = writeln!(
            out,
            "    filesize: {}  # {}",
            l.filesize,
            format_size(l.filesize)
        );
        let _ = writeln!(
            out,
            "    fullsize: {}  # {}",
            l.fullsize,
            format_size(l.fullsize)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn line(ident: &str, fixup: bool) -> SizeLine {
        SizeLine {
            ident: ident.into(),
            url_hint: archive_file_name(ident, &Platform::arm64()),
            filesize: 5_980_160,
            fullsize: 5_944_584,
            fixup,
        }
    }

    #[test]
    fn render_matches_the_seed_shape() {
        let got = render(&[line("ghcr.io/offspot/base-httpd:dev", false)]);
        assert_eq!(
            got,
            "oci_images:\n  - ident: ghcr.io/offspot/base-httpd:dev\n    \
             # url: PREFIX/ghcr.io_offspot_base-httpd_dev_linuxarm64v8.tar\n    \
             filesize: 5980160  # 5.70MiB\n    fullsize: 5944584  # 5.67MiB\n"
        );
    }

    #[test]
    fn fixup_is_flagged() {
        let got = render(&[line("caddy-2.6.1-alpine_armv6", true)]);
        assert!(
            got.contains("  - ident: caddy-2.6.1-alpine_armv6  # !fixup\n"),
            "{got}"
        );
    }

    #[test]
    fn tricky_idents_are_quoted() {
        assert_eq!(yaml_str("ghcr.io/a/b:1.0"), "ghcr.io/a/b:1.0");
        assert_eq!(yaml_str("yes"), "\"yes\"");
        assert_eq!(yaml_str("1.0"), "\"1.0\"");
        assert_eq!(yaml_str("12:30"), "\"12:30\"");
        assert_eq!(yaml_str("a b#c"), "\"a b#c\"");
        assert_eq!(yaml_str("foo:"), "\"foo:\"");
        assert_eq!(yaml_str(""), "\"\"");
    }

    /// The snippet must parse back, as PyYAML reads configs, to the values we meant.
    #[test]
    fn render_parses_back_with_pyyaml() {
        let lines = vec![
            line("ghcr.io/offspot/base-httpd:dev", false),
            line("docker.io/library/alpine@sha256:0123", false),
            line("2024-01-01", true),
            line("on", true),
            line("weird name: \"x\" #1", true),
            SizeLine {
                filesize: 0,
                fullsize: 3 << 40,
                ..line("localhost:5000/a/b:1", false)
            },
        ];
        let text = render(&lines);
        let script = "import sys, yaml, json\n\
                      d = yaml.safe_load(sys.stdin.read())\n\
                      print(json.dumps([[e['ident'], e['filesize'], e['fullsize'], sorted(e)] \
                      for e in d['oci_images']]))";
        let out = Command::new("python3")
            .args(["-c", script])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(text.as_bytes())?;
                c.wait_with_output()
            })
            .unwrap();
        assert!(out.status.success(), "{text}");
        let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let want: Vec<serde_json::Value> = lines
            .iter()
            .map(|l| {
                serde_json::json!([
                    l.ident,
                    l.filesize,
                    l.fullsize,
                    ["filesize", "fullsize", "ident"]
                ])
            })
            .collect();
        assert_eq!(got, serde_json::Value::Array(want), "{text}");
    }

    #[test]
    fn empty_list() {
        assert_eq!(render(&[]), "oci_images: []\n");
    }
}
