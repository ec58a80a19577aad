//! Image references (`[registry/]repository[:tag][@digest]`) per the distribution spec grammar, with
//! Docker Hub defaults.
//!
//! Canonical form (what `RepoTags[0]` of an exported image becomes, see [`Reference::canonical`]):
//! - Docker Hub images are written fully qualified, `docker.io/<repository>:<tag>` (`nginx` →
//!   `docker.io/library/nginx:latest`). The engine on the device (moby) normalises both the archive's
//!   `RepoTags` and the compose `image:` string the same way, so `nginx`, `library/nginx` and
//!   `docker.io/library/nginx:latest` all name the same image there.
//! - Other registries keep the user's spelling (`ghcr.io/offspot/kiwix-serve:3.8.1` stays exactly that),
//!   with `:latest` appended when neither a tag nor a digest was given, as the engine does.
//! - With a tag and a digest, the tag wins: the engine refuses to tag an image with a digest reference.
//!   A digest-only reference stays `name@digest` (it cannot become a tag; the caller must decide).

use super::error::OciError;
use regex::Regex;
use std::net::IpAddr;
use std::sync::OnceLock;

/// How Docker Hub is stored in [`Reference::registry`].
pub const DOCKER_HUB: &str = "index.docker.io";
/// Docker Hub's API endpoint.
const DOCKER_HUB_API: &str = "registry-1.docker.io";
/// Docker Hub as written in canonical references.
const DOCKER_HUB_NAME: &str = "docker.io";
/// The distribution spec caps the name (registry + repository) at 255 characters.
const MAX_NAME: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// `index.docker.io` for Docker Hub, else the host (with `:port`) as written.
    pub registry: String,
    /// `library/nginx`, `offspot/kiwix-serve`, nested paths allowed.
    pub repository: String,
    /// `latest` when the input had neither a tag nor a digest.
    pub tag: Option<String>,
    /// `algorithm:hex`, e.g. `sha256:…`.
    pub digest: Option<String>,
}

fn re(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    // The patterns are constants checked by the unit tests, so building them cannot fail at run time.
    cell.get_or_init(|| Regex::new(pattern).unwrap_or_else(|e| panic!("bad regex {pattern}: {e}")))
}

fn path_component_re() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    re(&R, r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
}

fn tag_re() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    re(&R, r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
}

fn host_re() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    re(
        &R,
        r"^(?:(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])(?:\.(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]))*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$",
    )
}

fn bad(input: &str, reason: impl Into<String>) -> OciError {
    OciError::BadReference {
        input: input.to_string(),
        reason: reason.into(),
    }
}

/// Checks `algo:hex`. Only digests we can verify while downloading are accepted.
pub(crate) fn check_digest(d: &str) -> Result<(), String> {
    let (algo, hex) = d
        .split_once(':')
        .ok_or_else(|| format!("digest {d:?} is not algorithm:hex"))?;
    let len = match algo {
        "sha256" => 64,
        "sha512" => 128,
        _ => return Err(format!("unsupported digest algorithm {algo:?}")),
    };
    if hex.len() != len || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(format!("{algo} digest needs {len} lowercase hex digits"));
    }
    Ok(())
}

impl Reference {
    pub fn parse(s: &str) -> Result<Reference, OciError> {
        if s.is_empty() {
            return Err(bad(s, "empty"));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad(s, "contains whitespace"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                check_digest(d).map_err(|e| bad(s, e))?;
                (r, Some(d.to_string()))
            }
            None => (s, None),
        };
        // A tag is a ':' after the last '/', so `host:5000/repo` is not mistaken for one.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let t = &rest[last_slash + i + 1..];
                if !tag_re().is_match(t) {
                    return Err(bad(
                        s,
                        format!("tag {t:?} must match [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}"),
                    ));
                }
                (&rest[..last_slash + i], Some(t.to_string()))
            }
            None => (rest, None),
        };
        if name.is_empty() {
            return Err(bad(s, "no repository name"));
        }
        if name.len() > MAX_NAME {
            return Err(bad(s, format!("name longer than {MAX_NAME} characters")));
        }
        // Docker's rule: the first component is a registry when it looks like a host (a dot, a port,
        // `localhost`) or has upper case, which a repository component cannot have.
        let (domain, path) = match name.split_once('/') {
            Some((first, path))
                if first.contains(['.', ':'])
                    || first == "localhost"
                    || first.chars().any(|c| c.is_ascii_uppercase()) =>
            {
                (Some(first), path)
            }
            _ => (None, name),
        };
        if let Some(d) = domain {
            if !host_re().is_match(d) {
                return Err(bad(s, format!("registry {d:?} is not a valid host[:port]")));
            }
        }
        for comp in path.split('/') {
            if !path_component_re().is_match(comp) {
                return Err(bad(
                    s,
                    format!(
                        "repository component {comp:?} must be lowercase letters and digits, \
                         separated by '.', '_', '__' or '-'"
                    ),
                ));
            }
        }
        let hub = match domain {
            None => true,
            Some(d) => matches!(d, "docker.io" | "index.docker.io" | "registry-1.docker.io"),
        };
        let (registry, repository) = if hub {
            let repo = if path.contains('/') {
                path.to_string()
            } else {
                format!("library/{path}")
            };
            (DOCKER_HUB.to_string(), repo)
        } else {
            (domain.unwrap_or_default().to_string(), path.to_string())
        };
        let tag = match (tag, &digest) {
            (None, None) => Some("latest".to_string()),
            (t, _) => t,
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    pub fn is_docker_hub(&self) -> bool {
        self.registry == DOCKER_HUB
    }

    /// `registry/repository` with Docker Hub written `docker.io`.
    pub fn name(&self) -> String {
        let reg = if self.is_docker_hub() {
            DOCKER_HUB_NAME
        } else {
            &self.registry
        };
        format!("{reg}/{}", self.repository)
    }

    /// What `RepoTags[0]` becomes; see the module documentation for the rule.
    pub fn canonical(&self) -> String {
        match (&self.tag, &self.digest) {
            (Some(t), _) => format!("{}:{t}", self.name()),
            (None, Some(d)) => format!("{}@{d}", self.name()),
            (None, None) => format!("{}:latest", self.name()),
        }
    }

    /// Host (and port) to send API requests to.
    pub fn api_host(&self) -> String {
        if self.is_docker_hub() {
            DOCKER_HUB_API.to_string()
        } else {
            self.registry.clone()
        }
    }

    /// Loopback registries are spoken to in plain HTTP, as Docker does.
    pub fn is_loopback(&self) -> bool {
        host_is_loopback(&self.registry)
    }

    /// The manifest to ask for: the digest when pinned, else the tag.
    pub fn manifest_ref(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }
}

/// `localhost`, 127.0.0.0/8 or ::1, with or without a port.
pub(crate) fn host_is_loopback(host_port: &str) -> bool {
    let host = if let Some(rest) = host_port.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.3.2.1",
            "[::1]:5000",
        ] {
            assert!(host_is_loopback(h), "{h}");
        }
        for h in [
            "ghcr.io",
            "10.0.0.1:5000",
            "[fe80::1]:80",
            "localhost.example.com",
        ] {
            assert!(!host_is_loopback(h), "{h}");
        }
    }

    #[test]
    fn digests() {
        let hex = "a".repeat(64);
        assert!(check_digest(&format!("sha256:{hex}")).is_ok());
        assert!(check_digest(&format!("sha512:{}", "0".repeat(128))).is_ok());
        assert!(check_digest(&format!("sha256:{}", "A".repeat(64))).is_err());
        assert!(check_digest("sha256:abc").is_err());
        assert!(check_digest(&format!("md5:{hex}")).is_err());
        assert!(check_digest(&hex).is_err());
    }

    /// (input, registry, repository, tag, digest, canonical)
    type RefCase<'a> = (
        String,
        &'a str,
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        String,
    );

    #[test]
    fn parse_table() {
        let hex = "0123456789abcdef".repeat(4);
        let dig = format!("sha256:{hex}");
        #[rustfmt::skip]
        let ok: Vec<RefCase> = vec![
            ("nginx".into(), "index.docker.io", "library/nginx", Some("latest"), None, "docker.io/library/nginx:latest".into()),
            ("nginx:1.25".into(), "index.docker.io", "library/nginx", Some("1.25"), None, "docker.io/library/nginx:1.25".into()),
            ("docker.io/library/nginx".into(), "index.docker.io", "library/nginx", Some("latest"), None, "docker.io/library/nginx:latest".into()),
            ("index.docker.io/nginx:x".into(), "index.docker.io", "library/nginx", Some("x"), None, "docker.io/library/nginx:x".into()),
            ("bitnami/redis:7".into(), "index.docker.io", "bitnami/redis", Some("7"), None, "docker.io/bitnami/redis:7".into()),
            ("ghcr.io/offspot/kiwix-serve:3.8.1".into(), "ghcr.io", "offspot/kiwix-serve", Some("3.8.1"), None, "ghcr.io/offspot/kiwix-serve:3.8.1".into()),
            ("ghcr.io/offspot/kiwix-serve".into(), "ghcr.io", "offspot/kiwix-serve", Some("latest"), None, "ghcr.io/offspot/kiwix-serve:latest".into()),
            ("localhost:5000/a/b/c:t_1".into(), "localhost:5000", "a/b/c", Some("t_1"), None, "localhost:5000/a/b/c:t_1".into()),
            ("localhost/app".into(), "localhost", "app", Some("latest"), None, "localhost/app:latest".into()),
            ("127.0.0.1:5000/x__y/z-z.z:T".into(), "127.0.0.1:5000", "x__y/z-z.z", Some("T"), None, "127.0.0.1:5000/x__y/z-z.z:T".into()),
            (format!("ghcr.io/o/i@{dig}"), "ghcr.io", "o/i", None, Some(dig.as_str()), format!("ghcr.io/o/i@{dig}")),
            (format!("ghcr.io/o/i:1.0@{dig}"), "ghcr.io", "o/i", Some("1.0"), Some(dig.as_str()), "ghcr.io/o/i:1.0".into()),
            (format!("alpine@{dig}"), "index.docker.io", "library/alpine", None, Some(dig.as_str()), format!("docker.io/library/alpine@{dig}")),
            ("[::1]:5000/r:t".into(), "[::1]:5000", "r", Some("t"), None, "[::1]:5000/r:t".into()),
            ("Registry/repo".into(), "Registry", "repo", Some("latest"), None, "Registry/repo:latest".into()),
        ];
        for (input, registry, repo, tag, digest, canonical) in ok {
            let r = Reference::parse(&input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.registry, registry, "{input}");
            assert_eq!(r.repository, repo, "{input}");
            assert_eq!(r.tag.as_deref(), tag, "{input}");
            assert_eq!(r.digest.as_deref(), digest, "{input}");
            assert_eq!(r.canonical(), canonical, "{input}");
        }
        let hub = Reference::parse("nginx").unwrap();
        assert_eq!(hub.api_host(), "registry-1.docker.io");
        assert!(!hub.is_loopback());
        let gh = Reference::parse("ghcr.io/offspot/kiwix-serve:3.8.1").unwrap();
        assert_eq!(gh.api_host(), "ghcr.io");
        assert!(Reference::parse("127.0.0.1:5000/a").unwrap().is_loopback());
        assert!(Reference::parse("localhost:5000/a").unwrap().is_loopback());
        assert!(Reference::parse("[::1]:5000/a").unwrap().is_loopback());
        assert!(!Reference::parse("10.1.1.1:5000/a").unwrap().is_loopback());

        let long_tag = format!("r:{}", "a".repeat(129));
        let long_name = format!("a/{}", "b".repeat(260));
        let bad = [
            "",
            "UPPER",
            "ghcr.io/Offspot/x",
            "ghcr.io/o//x",
            "ghcr.io/o/x:",
            "ghcr.io/o/x:-tag",
            "ghcr.io/o/x:t@",
            "ghcr.io/o/x@sha256:abc",
            "ghcr.io/o/x@md5:0123456789abcdef0123456789abcdef",
            "ghcr.io/o/x y",
            "ghcr.io/o/-x",
            "ghcr.io/o/x.",
            "-bad.io/x",
            "ghcr.io:port/x",
            long_tag.as_str(),
            long_name.as_str(),
        ];
        for b in bad {
            let e = Reference::parse(b).expect_err(b);
            assert!(matches!(e, OciError::BadReference { .. }), "{b}: {e}");
            assert_eq!(crate::Classify::class(&e), crate::ErrorClass::BadInput);
            assert_eq!(crate::Classify::class(&e).exit_code(), 3);
        }
    }
}
