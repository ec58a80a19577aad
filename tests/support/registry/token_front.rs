//! A token-auth front (like ghcr.io or Docker Hub) for a test registry.

use std::sync::{Arc, Mutex};

/// A token-auth front for a registry, like ghcr.io or Docker Hub: `/v2/…` needs `Bearer tok-1`, else 401
/// with a Bearer challenge pointing at `/token`, which hands out the token (to `Basic` credentials
/// `want_basic` when set). Logs the token requests' query strings.
pub struct TokenFront {
    pub addr: std::net::SocketAddr,
    pub token_requests: Arc<Mutex<Vec<String>>>,
}

pub fn token_front(backend: String, want_basic: Option<&str>) -> TokenFront {
    use base64::Engine;
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let want = want_basic.map(|b| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(b)
        )
    });
    let token_requests = log.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let (backend, want, log) = (backend.clone(), want.clone(), log.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                let mut auth = None;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        if k.eq_ignore_ascii_case("authorization") {
                            auth = Some(v.trim().to_string());
                        }
                    }
                }
                let (status, extra, body) = if let Some(q) = path.strip_prefix("/token?") {
                    log.lock().unwrap().push(q.to_string());
                    if want.is_some() && auth != want {
                        (401, String::new(), b"{}".to_vec())
                    } else {
                        (200, String::new(), br#"{"token":"tok-1"}"#.to_vec())
                    }
                } else if auth.as_deref() == Some("Bearer tok-1") {
                    let accept = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json";
                    let (s, _, b) = super::http_get(&backend, &path, Some(accept), None).unwrap();
                    (s, String::new(), b)
                } else {
                    let challenge = format!(
                        "WWW-Authenticate: Bearer realm=\"http://{addr}/token\",service=\"front\",scope=\"repository:x:pull\"\r\n"
                    );
                    (401, challenge, b"{}".to_vec())
                };
                let head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(head.as_bytes());
                let _ = conn.write_all(&body);
            });
        }
    });
    TokenFront {
        addr,
        token_requests,
    }
}
