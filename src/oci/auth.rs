//! Registry credentials. Secrets are never logged: [`Credentials`]' `Debug` hides them.
//!
//! Lookup for a registry host, first match wins:
//! 1. `IMAGE_CREATOR_REGISTRY_TOKEN_<HOST>=<token>`: a registry bearer token, sent as is;
//! 2. `IMAGE_CREATOR_REGISTRY_AUTH_<HOST>=<user>:<password>` (split at the first `:`);
//! 3. Docker's `config.json` (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`), `auths`
//!    entry for the host (keys may carry a scheme and a path, e.g. `https://index.docker.io/v1/`):
//!    `auth` (base64 `user:password`) or `username`/`password`; `identitytoken` (an OAuth refresh
//!    token, what `docker login` stores for some registries); `registrytoken` (bearer token).
//!    Credential helpers (`credsStore`, `credHelpers`) are not run.
//! 4. otherwise anonymous.
//!
//! `<HOST>` is the registry host with port, upper-cased, every other character than A-Z and 0-9
//! replaced by `_`: `ghcr.io` → `GHCR_IO`, `127.0.0.1:5000` → `127_0_0_1_5000`. Docker Hub is `DOCKER_IO`
//! whichever of its names the reference used.

use base64::Engine;
use std::path::{Path, PathBuf};

pub const ENV_AUTH_PREFIX: &str = "IMAGE_CREATOR_REGISTRY_AUTH_";
pub const ENV_TOKEN_PREFIX: &str = "IMAGE_CREATOR_REGISTRY_TOKEN_";

#[derive(Clone, PartialEq, Eq, Default)]
pub enum Credentials {
    #[default]
    Anonymous,
    Basic {
        user: String,
        pass: String,
    },
    /// A registry token sent as `Authorization: Bearer …` without a token exchange.
    Bearer(String),
    /// An OAuth2 refresh token (Docker's `identitytoken`), exchanged at the token realm.
    IdentityToken(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { user, .. } => write!(f, "Basic {{ user: {user:?}, pass: *** }}"),
            Credentials::Bearer(_) => f.write_str("Bearer(***)"),
            Credentials::IdentityToken(_) => f.write_str("IdentityToken(***)"),
        }
    }
}

impl Credentials {
    pub fn is_anonymous(&self) -> bool {
        matches!(self, Credentials::Anonymous)
    }
}

/// Credentials and where they came from (for error messages; never the secret itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub credentials: Credentials,
    pub origin: String,
}

fn is_hub(host: &str) -> bool {
    matches!(
        host,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    )
}

/// `ghcr.io` → `GHCR_IO`; Docker Hub → `DOCKER_IO`.
pub fn env_suffix(host: &str) -> String {
    let host = if is_hub(host) { "docker.io" } else { host };
    host.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// The variable a user sets to give `user:password` for `host`.
pub fn auth_env_name(host: &str) -> String {
    format!("{ENV_AUTH_PREFIX}{}", env_suffix(host))
}

/// Credentials for a registry host from the environment and Docker's config.
pub fn credentials_for(host: &str) -> Credentials {
    lookup(host).credentials
}

/// [`credentials_for`] with the origin of the credentials.
pub fn lookup(host: &str) -> Found {
    let env = |k: &str| std::env::var(k).ok();
    lookup_with(host, &env, docker_config_path().as_deref())
}

fn docker_config_path() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(d).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker").join("config.json"))
}

/// The lookup with its inputs made explicit, so tests need not touch the process environment.
pub fn lookup_with(
    host: &str,
    env: &dyn Fn(&str) -> Option<String>,
    docker_config: Option<&Path>,
) -> Found {
    let suffix = env_suffix(host);
    let token_var = format!("{ENV_TOKEN_PREFIX}{suffix}");
    if let Some(t) = env(&token_var).filter(|t| !t.is_empty()) {
        return Found {
            credentials: Credentials::Bearer(t),
            origin: token_var,
        };
    }
    let auth_var = format!("{ENV_AUTH_PREFIX}{suffix}");
    if let Some(v) = env(&auth_var).filter(|v| !v.is_empty()) {
        match v.split_once(':') {
            Some((user, pass)) => {
                return Found {
                    credentials: Credentials::Basic {
                        user: user.to_string(),
                        pass: pass.to_string(),
                    },
                    origin: auth_var,
                }
            }
            None => tracing::warn!("{auth_var} is not user:password; ignored"),
        }
    }
    if let Some(path) = docker_config {
        if let Some(credentials) = from_docker_config(host, path) {
            return Found {
                credentials,
                origin: path.display().to_string(),
            };
        }
    }
    Found {
        credentials: Credentials::Anonymous,
        origin: "none".into(),
    }
}

/// The host part of an `auths` key: `https://index.docker.io/v1/` → `index.docker.io`.
fn key_host(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    k.split('/').next().unwrap_or(k)
}

fn from_docker_config(host: &str, path: &Path) -> Option<Credentials> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) => {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!("cannot read {}: {e}", path.display());
            }
            return None;
        }
    };
    let doc: serde_json::Value = match serde_json::from_slice(&text) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!("{} is not valid JSON: {e}", path.display());
            return None;
        }
    };
    let auths = doc.get("auths")?.as_object()?;
    let entry = auths.iter().find_map(|(k, v)| {
        let kh = key_host(k);
        (kh == host || (is_hub(host) && is_hub(kh))).then_some(v)
    })?;
    let s = |k: &str| {
        entry
            .get(k)
            .and_then(|v| v.as_str())
            .filter(|v| !v.is_empty())
    };
    if let Some(t) = s("identitytoken") {
        return Some(Credentials::IdentityToken(t.to_string()));
    }
    if let Some(t) = s("registrytoken") {
        return Some(Credentials::Bearer(t.to_string()));
    }
    if let Some(a) = s("auth") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(a.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok());
        match decoded.as_deref().and_then(|d| d.split_once(':')) {
            Some((user, pass)) => {
                return Some(Credentials::Basic {
                    user: user.to_string(),
                    pass: pass.to_string(),
                })
            }
            None => tracing::warn!(
                "{}: auths entry for {host} is not base64 user:password; ignored",
                path.display()
            ),
        }
    }
    match (s("username"), s("password")) {
        (Some(user), Some(pass)) => Some(Credentials::Basic {
            user: user.to_string(),
            pass: pass.to_string(),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    fn basic(u: &str, p: &str) -> Credentials {
        Credentials::Basic {
            user: u.into(),
            pass: p.into(),
        }
    }

    #[test]
    fn env_names() {
        assert_eq!(
            auth_env_name("ghcr.io"),
            "IMAGE_CREATOR_REGISTRY_AUTH_GHCR_IO"
        );
        assert_eq!(env_suffix("127.0.0.1:5000"), "127_0_0_1_5000");
        assert_eq!(env_suffix("index.docker.io"), "DOCKER_IO");
        assert_eq!(env_suffix("registry-1.docker.io"), "DOCKER_IO");
    }

    #[test]
    fn env_wins_and_splits_at_first_colon() {
        let env = env_of(&[("IMAGE_CREATOR_REGISTRY_AUTH_GHCR_IO", "bob:pa:ss")]);
        let f = lookup_with("ghcr.io", &env, None);
        assert_eq!(f.credentials, basic("bob", "pa:ss"));
        assert_eq!(f.origin, "IMAGE_CREATOR_REGISTRY_AUTH_GHCR_IO");
        let env = env_of(&[
            ("IMAGE_CREATOR_REGISTRY_AUTH_GHCR_IO", "bob:x"),
            ("IMAGE_CREATOR_REGISTRY_TOKEN_GHCR_IO", "tok"),
        ]);
        assert_eq!(
            lookup_with("ghcr.io", &env, None).credentials,
            Credentials::Bearer("tok".into())
        );
        // Another host's variables do not leak.
        assert!(lookup_with("quay.io", &env, None)
            .credentials
            .is_anonymous());
        // Malformed value is ignored.
        let env = env_of(&[("IMAGE_CREATOR_REGISTRY_AUTH_GHCR_IO", "nocolon")]);
        assert!(lookup_with("ghcr.io", &env, None)
            .credentials
            .is_anonymous());
    }

    #[test]
    fn docker_config() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let doc = serde_json::json!({
            "auths": {
                "https://index.docker.io/v1/": {"auth": b64("hubuser:hubpass")},
                "ghcr.io": {"username": "gh", "password": "ghp"},
                "http://127.0.0.1:5000": {"auth": b64("loc:al")},
                "quay.io": {"identitytoken": "refresh"},
                "bad.example": {"auth": "!!!"}
            },
            "credsStore": "desktop"
        });
        std::fs::write(&path, doc.to_string()).unwrap();
        let none = env_of(&[]);
        let get = |h: &str| lookup_with(h, &none, Some(&path)).credentials;
        assert_eq!(get("index.docker.io"), basic("hubuser", "hubpass"));
        assert_eq!(get("ghcr.io"), basic("gh", "ghp"));
        assert_eq!(get("127.0.0.1:5000"), basic("loc", "al"));
        assert_eq!(get("quay.io"), Credentials::IdentityToken("refresh".into()));
        assert!(get("bad.example").is_anonymous());
        assert!(get("127.0.0.1:5001").is_anonymous());
        assert_eq!(
            lookup_with("ghcr.io", &none, Some(&path)).origin,
            path.display().to_string()
        );
        // Missing or broken files mean anonymous, not an error.
        assert!(
            lookup_with("ghcr.io", &none, Some(&dir.path().join("nope")))
                .credentials
                .is_anonymous()
        );
        std::fs::write(&path, "{not json").unwrap();
        assert!(get("ghcr.io").is_anonymous());
    }

    #[test]
    fn debug_hides_secrets() {
        let s = format!(
            "{:?} {:?} {:?}",
            basic("u", "s3cret"),
            Credentials::Bearer("t0ken".into()),
            Credentials::IdentityToken("r3fresh".into())
        );
        assert!(
            !s.contains("s3cret") && !s.contains("t0ken") && !s.contains("r3fresh"),
            "{s}"
        );
        assert!(s.contains("\"u\""));
    }
}
