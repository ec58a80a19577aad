//! One authenticated request at a time: the 401 challenge dance (Bearer token or Basic) and a
//! per-repository cache of the `Authorization` value.

use super::retry::{send_failure, Failed};
use super::Registry;
use crate::net::retry::{retry_after, retryable_status};
use crate::oci::auth::{auth_env_name, Credentials, Found};
use crate::oci::error::OciError;
use crate::oci::Reference;
use base64::Engine;
use reqwest::header::{self, HeaderMap};
use reqwest::{Response, StatusCode};

/// A token reply is a small JSON document.
const TOKEN_LIMIT: u64 = 1 << 20;

/// A `WWW-Authenticate` challenge: scheme and parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Challenge {
    pub scheme: String,
    pub params: Vec<(String, String)>,
}

impl Challenge {
    pub fn param(&self, k: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str())
    }
}

/// Parses `Bearer realm="…",service="…",scope="a,b"` (quoted values may hold commas).
pub(super) fn parse_challenge(v: &str) -> Option<Challenge> {
    let v = v.trim();
    let (scheme, mut rest) = match v.split_once(char::is_whitespace) {
        Some((s, r)) => (s, r.trim_start()),
        None => (v, ""),
    };
    if scheme.is_empty() {
        return None;
    }
    let mut params = Vec::new();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let key = key.trim().trim_start_matches(',').trim().to_string();
        let after = after.trim_start();
        let (value, tail) = if let Some(q) = after.strip_prefix('"') {
            let mut val = String::new();
            let mut chars = q.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            val.push(n);
                        }
                    }
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => val.push(c),
                }
            }
            (val, &q[end?..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        params.push((key, value));
        rest = tail.trim_start().trim_start_matches(',').trim_start();
    }
    Some(Challenge {
        scheme: scheme.to_string(),
        params,
    })
}

/// The challenge to answer: Bearer preferred over Basic.
fn pick_challenge(h: &HeaderMap) -> Option<Challenge> {
    let all: Vec<Challenge> = h
        .get_all(header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(parse_challenge)
        .collect();
    all.iter()
        .find(|c| c.scheme.eq_ignore_ascii_case("bearer"))
        .or_else(|| all.iter().find(|c| c.scheme.eq_ignore_ascii_case("basic")))
        .cloned()
}

impl Registry {
    /// `http://` for loopback and configured insecure hosts, else `https://`.
    pub(super) fn url(&self, r: &Reference, tail: &str) -> String {
        let host = r.api_host();
        let plain = r.is_loopback() || self.insecure.iter().any(|h| *h == host || *h == r.registry);
        let scheme = if plain { "http" } else { "https" };
        format!("{scheme}://{host}/v2/{}/{tail}", r.repository)
    }

    fn found(&self, r: &Reference) -> Found {
        match self.overrides.get(&r.registry) {
            Some(c) => Found {
                credentials: c.clone(),
                origin: "the configured credentials".into(),
            },
            None => crate::oci::auth::lookup(&r.registry),
        }
    }

    fn auth_error(&self, r: &Reference, found: &Found) -> OciError {
        let registry = if r.is_docker_hub() {
            "docker.io".to_string()
        } else {
            r.registry.clone()
        };
        if found.credentials.is_anonymous() {
            OciError::AuthRequired {
                registry,
                reference: r.to_string(),
                env: auth_env_name(&r.registry),
            }
        } else {
            OciError::AuthFailed {
                registry,
                reference: r.to_string(),
                origin: found.origin.clone(),
            }
        }
    }

    fn cache_key(r: &Reference) -> (String, String) {
        (r.api_host(), r.repository.clone())
    }

    fn cached_auth(&self, r: &Reference) -> Option<String> {
        let cache = self.auth.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(&Self::cache_key(r)).cloned()
    }

    fn store_auth(&self, r: &Reference, value: String) {
        let mut cache = self.auth.lock().unwrap_or_else(|p| p.into_inner());
        cache.insert(Self::cache_key(r), value);
    }

    async fn send_raw(
        &self,
        r: &Reference,
        url: &str,
        accept: Option<&str>,
        range_from: u64,
        auth: Option<&str>,
    ) -> Result<Response, Failed> {
        let mut req = self.client.get(url);
        if let Some(a) = accept {
            req = req.header(header::ACCEPT, a);
        }
        if range_from > 0 {
            req = req.header(header::RANGE, format!("bytes={range_from}-"));
        }
        if let Some(a) = auth {
            req = req.header(header::AUTHORIZATION, a);
        }
        let wait = self.settings.connect_timeout + self.settings.read_timeout;
        match tokio::time::timeout(wait, req.send()).await {
            Err(_) => Err(Failed::Retry {
                err: Box::new(OciError::Stalled {
                    url: url.to_string(),
                    done: 0,
                    secs: wait.as_secs(),
                }),
                after: None,
            }),
            Ok(Err(e)) => Err(send_failure(&r.api_host(), url, e)),
            Ok(Ok(resp)) => Ok(resp),
        }
    }

    /// One GET with authentication: answers a 401 challenge once, then judges the status. Returns the
    /// response for any status that is neither an auth failure nor worth retrying (the caller knows
    /// what a 404 means for it).
    pub(super) async fn send_once(
        &self,
        r: &Reference,
        url: &str,
        accept: Option<&str>,
        range_from: u64,
    ) -> Result<Response, Failed> {
        let mut auth = self.cached_auth(r);
        let mut found: Option<Found> = None;
        if auth.is_none() {
            // A static token needs no challenge; other credentials wait for one.
            let f = self.found(r);
            if let Credentials::Bearer(t) = &f.credentials {
                auth = Some(format!("Bearer {t}"));
            }
            found = Some(f);
        }
        let mut resp = self
            .send_raw(r, url, accept, range_from, auth.as_deref())
            .await?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            let found = found.unwrap_or_else(|| self.found(r));
            let challenge = pick_challenge(resp.headers());
            let value = self.answer(r, &found, challenge).await?;
            resp = self
                .send_raw(r, url, accept, range_from, Some(&value))
                .await?;
            if !matches!(
                resp.status(),
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
            ) {
                self.store_auth(r, value);
            }
            if resp.status() == StatusCode::UNAUTHORIZED {
                return Err(Failed::Fatal(Box::new(self.auth_error(r, &found))));
            }
        }
        let status = resp.status();
        if status == StatusCode::FORBIDDEN {
            let found = self.found(r);
            return Err(Failed::Fatal(Box::new(self.auth_error(r, &found))));
        }
        if retryable_status(status.as_u16()) {
            return Err(Failed::Retry {
                err: Box::new(OciError::Status {
                    url: url.to_string(),
                    status: status.as_u16(),
                }),
                after: retry_after(resp.headers()),
            });
        }
        Ok(resp)
    }

    /// The `Authorization` value that answers `challenge`.
    async fn answer(
        &self,
        r: &Reference,
        found: &Found,
        challenge: Option<Challenge>,
    ) -> Result<String, Failed> {
        let Some(ch) = challenge else {
            return Err(Failed::Fatal(Box::new(self.auth_error(r, found))));
        };
        if ch.scheme.eq_ignore_ascii_case("basic") {
            return match &found.credentials {
                Credentials::Basic { user, pass } => Ok(basic_value(user, pass)),
                _ => Err(Failed::Fatal(Box::new(self.auth_error(r, found)))),
            };
        }
        if !ch.scheme.eq_ignore_ascii_case("bearer") {
            return Err(Failed::Fatal(Box::new(OciError::Protocol {
                url: r.to_string(),
                what: format!("unsupported authentication scheme {}", ch.scheme),
            })));
        }
        if let Credentials::Bearer(_) = found.credentials {
            // The static token was just refused.
            return Err(Failed::Fatal(Box::new(self.auth_error(r, found))));
        }
        let token = self.fetch_token(r, found, &ch).await?;
        Ok(format!("Bearer {token}"))
    }

    /// `GET realm?service=…&scope=repository:<repo>:pull` (or the OAuth2 refresh-token POST).
    async fn fetch_token(
        &self,
        r: &Reference,
        found: &Found,
        ch: &Challenge,
    ) -> Result<String, Failed> {
        let realm = ch.param("realm").ok_or_else(|| {
            Failed::Fatal(Box::new(OciError::Protocol {
                url: r.to_string(),
                what: "Bearer challenge without a realm".into(),
            }))
        })?;
        let mut url = url::Url::parse(realm).map_err(|e| {
            Failed::Fatal(Box::new(OciError::Protocol {
                url: realm.to_string(),
                what: format!("bad token realm: {e}"),
            }))
        })?;
        let scope = format!("repository:{}:pull", r.repository);
        let service = ch.param("service").map(str::to_string);
        let req = match &found.credentials {
            Credentials::IdentityToken(refresh) => {
                let mut form = url::form_urlencoded::Serializer::new(String::new());
                form.append_pair("grant_type", "refresh_token")
                    .append_pair("refresh_token", refresh)
                    .append_pair("client_id", "image-creator")
                    .append_pair("scope", &scope);
                if let Some(s) = &service {
                    form.append_pair("service", s);
                }
                self.client
                    .post(url.clone())
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(form.finish())
            }
            creds => {
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(s) = &service {
                        q.append_pair("service", s);
                    }
                    q.append_pair("scope", &scope);
                }
                let req = self.client.get(url.clone());
                match creds {
                    Credentials::Basic { user, pass } => req.basic_auth(user, Some(pass)),
                    _ => req,
                }
            }
        };
        let shown = format!(
            "{}://{}{}",
            url.scheme(),
            url.host_str().unwrap_or_default(),
            url.path()
        );
        let wait = self.settings.connect_timeout + self.settings.read_timeout;
        let resp = match tokio::time::timeout(wait, req.send()).await {
            Err(_) => {
                return Err(Failed::Retry {
                    err: Box::new(OciError::Stalled {
                        url: shown,
                        done: 0,
                        secs: wait.as_secs(),
                    }),
                    after: None,
                })
            }
            Ok(Err(e)) => return Err(send_failure(url.host_str().unwrap_or_default(), &shown, e)),
            Ok(Ok(resp)) => resp,
        };
        let status = resp.status();
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            return Err(Failed::Fatal(Box::new(self.auth_error(r, found))));
        }
        if retryable_status(status.as_u16()) {
            return Err(Failed::Retry {
                err: Box::new(OciError::Status {
                    url: shown,
                    status: status.as_u16(),
                }),
                after: retry_after(resp.headers()),
            });
        }
        if !status.is_success() {
            return Err(Failed::Fatal(Box::new(OciError::Status {
                url: shown,
                status: status.as_u16(),
            })));
        }
        let body =
            super::read_limited(resp, &shown, TOKEN_LIMIT, self.settings.read_timeout).await?;
        #[derive(serde::Deserialize)]
        struct TokenReply {
            token: Option<String>,
            access_token: Option<String>,
        }
        let reply: TokenReply = serde_json::from_slice(&body).map_err(|e| {
            Failed::Fatal(Box::new(OciError::Protocol {
                url: shown.clone(),
                what: format!("token reply is not JSON: {e}"),
            }))
        })?;
        reply
            .token
            .or(reply.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                Failed::Fatal(Box::new(OciError::Protocol {
                    url: shown,
                    what: "token reply holds no token".into(),
                }))
            })
    }
}

fn basic_value(user: &str, pass: &str) -> String {
    let raw = format!("{user}:{pass}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull,push""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "Bearer");
        assert_eq!(c.param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c.param("SERVICE"), Some("registry.docker.io"));
        assert_eq!(c.param("scope"), Some("repository:library/nginx:pull,push"));
        let c = parse_challenge(r#"Basic realm="r\"q", charset=UTF-8"#).unwrap();
        assert_eq!(c.scheme, "Basic");
        assert_eq!(c.param("realm"), Some("r\"q"));
        assert_eq!(c.param("charset"), Some("UTF-8"));
        assert_eq!(parse_challenge("Basic").unwrap().params, vec![]);
        assert!(parse_challenge(r#"Bearer realm="unterminated"#).is_none());
    }

    #[test]
    fn bearer_preferred() {
        let mut h = HeaderMap::new();
        h.append(
            header::WWW_AUTHENTICATE,
            "Basic realm=\"x\"".parse().unwrap(),
        );
        h.append(
            header::WWW_AUTHENTICATE,
            "Bearer realm=\"https://t/\"".parse().unwrap(),
        );
        assert_eq!(pick_challenge(&h).unwrap().scheme, "Bearer");
    }

    #[test]
    fn basic_header() {
        assert_eq!(basic_value("user", "pass"), "Basic dXNlcjpwYXNz");
    }
}
