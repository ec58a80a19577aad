//! A small real HTTP/1.1 server on loopback with per-path fault injection, for integration tests.
//!
//! Hand-written over `std::net` so tests control every byte: partial bodies, missing lengths, ignored
//! ranges, stalls. One thread accepts; each connection gets its own thread and one request
//! (`Connection: close`). Files added with [`TestServer::add_file`] are streamed from disk.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Every resource reports this Last-Modified (validators only need to be stable per version).
pub const LAST_MODIFIED: &str = "Mon, 01 Jan 2024 00:00:00 GMT";

/// A misbehaviour for one path. Counted faults (`times`) apply to that many matching requests, then
/// stop; the others stay until [`TestServer::clear_faults`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// GET: announce the full length, send only `bytes` bytes of the body, then close.
    DropAfter { bytes: u64, times: u32 },
    /// GET and HEAD: answer `code` with a short text body.
    Status { code: u16, times: u32 },
    /// GET and HEAD: answer 429 with `Retry-After: 1`.
    RetryAfter429 { times: u32 },
    /// Answer 200 with the whole body whatever the `Range` header says.
    IgnoreRange,
    /// No `Content-Length`: the body ends when the connection closes.
    NoContentLength,
    /// HEAD → 405 Method Not Allowed.
    NoHead,
    /// GET: send `after` bytes, then go silent (connection open) until the server stops or 30 s pass.
    Stall { after: u64, times: u32 },
}

/// One logged request and the status it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub range: Option<String>,
    pub if_range: Option<String>,
    pub status: u16,
}

#[derive(Clone)]
enum Body {
    Bytes(Arc<Vec<u8>>),
    File(PathBuf),
}

#[derive(Clone)]
struct Route {
    body: Body,
    etag: String,
}

#[derive(Default)]
struct State {
    routes: HashMap<String, Route>,
    faults: HashMap<String, Vec<Fault>>,
    log: Vec<Request>,
    version: u64,
}

struct Shared {
    stop: AtomicBool,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking handler thread must not take the whole test suite down with a poisoned lock.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub struct TestServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Listens on `127.0.0.1` on a random free port.
    pub fn start() -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            state: Mutex::new(State::default()),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("test-http".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if s.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let s = s.clone();
                    let _ = std::thread::Builder::new()
                        .name("test-http-conn".into())
                        .spawn(move || handle(conn, &s));
                }
            })
            .expect("spawn server thread");
        TestServer {
            addr,
            shared,
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/path` (a leading `/` on `path` is optional).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, normalize(path))
    }

    /// Serves `body` at `path` (replacing any previous content, with a new ETag).
    pub fn add(&self, path: &str, body: Vec<u8>) {
        self.insert(path, Body::Bytes(Arc::new(body)));
    }

    /// Serves the file at `file`, streamed from disk on every request.
    pub fn add_file(&self, path: &str, file: &Path) {
        self.insert(path, Body::File(file.to_path_buf()));
    }

    fn insert(&self, path: &str, body: Body) {
        let mut st = self.shared.lock();
        st.version += 1;
        let etag = format!("\"v{}\"", st.version);
        st.routes.insert(normalize(path), Route { body, etag });
    }

    pub fn remove(&self, path: &str) {
        self.shared.lock().routes.remove(&normalize(path));
    }

    /// The ETag currently served for `path`.
    pub fn etag(&self, path: &str) -> Option<String> {
        self.shared
            .lock()
            .routes
            .get(&normalize(path))
            .map(|r| r.etag.clone())
    }

    /// Adds a fault for `path` (several may be active; counted ones are used up in order).
    pub fn fault(&self, path: &str, fault: Fault) {
        self.shared
            .lock()
            .faults
            .entry(normalize(path))
            .or_default()
            .push(fault);
    }

    pub fn clear_faults(&self, path: &str) {
        self.shared.lock().faults.remove(&normalize(path));
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.lock().log.clone()
    }

    /// The requests for one path.
    pub fn requests_for(&self, path: &str) -> Vec<Request> {
        let p = normalize(path);
        self.requests()
            .into_iter()
            .filter(|r| r.path == p)
            .collect()
    }

    pub fn stop(self) {}

    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the thread sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn normalize(path: &str) -> String {
    let p = path.split(['?', '#']).next().unwrap_or("");
    if p.starts_with('/') {
        p.to_string()
    } else {
        format!("/{p}")
    }
}

/// What to send, decided under the lock, written after it is released.
struct Plan {
    status: u16,
    headers: Vec<(String, String)>,
    body: Payload,
    /// Body bytes to send before closing (fault), `None` = all.
    cut: Option<u64>,
    stall: bool,
}

enum Payload {
    None,
    Text(String),
    Slice { body: Body, start: u64, len: u64 },
}

fn handle(mut conn: TcpStream, shared: &Shared) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let Some((method, path, headers)) = read_head(&conn) else {
        return;
    };
    let plan = decide(shared, &method, &path, &headers);
    let _ = send(&mut conn, &method, plan, shared);
    let _ = conn.shutdown(Shutdown::Both);
}

type Head = (String, String, HashMap<String, String>);

fn read_head(conn: &TcpStream) -> Option<Head> {
    let mut r = BufReader::new(conn.try_clone().ok()?);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = HashMap::new();
    loop {
        line.clear();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    Some((method, normalize(&target), headers))
}

/// Uses up one counted fault matching `pick`, returning its payload.
fn take_counted(faults: &mut [Fault], pick: impl Fn(&Fault) -> Option<u64>) -> Option<u64> {
    for f in faults.iter_mut() {
        let Some(value) = pick(f) else { continue };
        let times = match f {
            Fault::DropAfter { times, .. }
            | Fault::Status { times, .. }
            | Fault::RetryAfter429 { times }
            | Fault::Stall { times, .. } => times,
            _ => continue,
        };
        if *times > 0 {
            *times -= 1;
            return Some(value);
        }
    }
    None
}

fn text(status: u16, msg: &str) -> Plan {
    Plan {
        status,
        headers: Vec::new(),
        body: Payload::Text(format!("{msg}\n")),
        cut: None,
        stall: false,
    }
}

fn decide(shared: &Shared, method: &str, path: &str, h: &HashMap<String, String>) -> Plan {
    let mut st = shared.lock();
    let plan = plan_for(&mut st, method, path, h);
    st.log.push(Request {
        method: method.to_string(),
        path: path.to_string(),
        range: h.get("range").cloned(),
        if_range: h.get("if-range").cloned(),
        status: plan.status,
    });
    plan
}

fn plan_for(st: &mut State, method: &str, path: &str, h: &HashMap<String, String>) -> Plan {
    let is_head = method == "HEAD";
    if !is_head && method != "GET" {
        return text(501, "not implemented");
    }
    let route = st.routes.get(path).cloned();
    let faults = st.faults.entry(path.to_string()).or_default();
    let has = |f: &Fault| faults.contains(f);
    if is_head && has(&Fault::NoHead) {
        return text(405, "method not allowed");
    }
    let ignore_range = has(&Fault::IgnoreRange);
    let no_length = has(&Fault::NoContentLength);
    if let Some(code) = take_counted(faults, |f| match f {
        Fault::Status { code, .. } => Some(u64::from(*code)),
        _ => None,
    }) {
        return text(u16::try_from(code).unwrap_or(500), "injected failure");
    }
    if take_counted(faults, |f| {
        matches!(f, Fault::RetryAfter429 { .. }).then_some(0)
    })
    .is_some()
    {
        let mut p = text(429, "slow down");
        p.headers.push(("Retry-After".into(), "1".into()));
        return p;
    }
    let Some(route) = route else {
        return text(404, "not found");
    };
    let len = match &route.body {
        Body::Bytes(b) => b.len() as u64,
        Body::File(f) => match std::fs::metadata(f) {
            Ok(m) => m.len(),
            Err(_) => return text(500, "backing file missing"),
        },
    };
    let mut headers = vec![
        ("ETag".to_string(), route.etag.clone()),
        ("Last-Modified".to_string(), LAST_MODIFIED.to_string()),
        ("Accept-Ranges".to_string(), "bytes".to_string()),
    ];
    // If-Range: the range applies only while the validator still matches.
    let if_range_ok = h
        .get("if-range")
        .is_none_or(|v| *v == route.etag || v == LAST_MODIFIED);
    let range = h
        .get("range")
        .filter(|_| !ignore_range && if_range_ok)
        .and_then(|r| parse_range(r));
    let (status, start, end) = match range {
        Some((s, _)) if s >= len => {
            let mut p = text(416, "range not satisfiable");
            p.headers
                .push(("Content-Range".into(), format!("bytes */{len}")));
            return p;
        }
        Some((s, e)) => {
            let e = e.map_or(len, |e| (e + 1).min(len));
            headers.push((
                "Content-Range".into(),
                format!("bytes {s}-{}/{len}", e.saturating_sub(1)),
            ));
            (206, s, e)
        }
        None => (200, 0, len),
    };
    if !no_length {
        headers.push(("Content-Length".into(), (end - start).to_string()));
    }
    let (mut cut, mut stall) = (None, false);
    if !is_head {
        cut = take_counted(faults, |f| match f {
            Fault::DropAfter { bytes, .. } => Some(*bytes),
            _ => None,
        });
        if cut.is_none() {
            cut = take_counted(faults, |f| match f {
                Fault::Stall { after, .. } => Some(*after),
                _ => None,
            });
            stall = cut.is_some();
        }
    }
    Plan {
        status,
        headers,
        body: if is_head {
            Payload::None
        } else {
            Payload::Slice {
                body: route.body,
                start,
                len: end - start,
            }
        },
        cut,
        stall,
    }
}

/// `bytes=N-` or `bytes=N-M` → (N, Some(M)); other forms (suffix, multiple ranges) are ignored.
fn parse_range(v: &str) -> Option<(u64, Option<u64>)> {
    let spec = v.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (s, e) = spec.split_once('-')?;
    let start = s.trim().parse().ok()?;
    let end = match e.trim() {
        "" => None,
        e => Some(e.parse().ok()?),
    };
    Some((start, end))
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        206 => "Partial Content",
        404 => "Not Found",
        405 => "Method Not Allowed",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn send(conn: &mut TcpStream, method: &str, plan: Plan, shared: &Shared) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", plan.status, reason(plan.status));
    for (k, v) in &plan.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Payload::Text(t) = &plan.body {
        head.push_str(&format!(
            "Content-Type: text/plain\r\nContent-Length: {}\r\n",
            t.len()
        ));
    }
    head.push_str("Connection: close\r\n\r\n");
    conn.write_all(head.as_bytes())?;
    if method == "HEAD" {
        return conn.flush();
    }
    match plan.body {
        Payload::None => {}
        Payload::Text(t) => conn.write_all(t.as_bytes())?,
        Payload::Slice { body, start, len } => {
            let n = plan.cut.map_or(len, |c| c.min(len));
            write_slice(conn, &body, start, n)?;
        }
    }
    conn.flush()?;
    if plan.stall {
        let until = Instant::now() + Duration::from_secs(30);
        while Instant::now() < until && !shared.stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(())
}

fn write_slice(conn: &mut TcpStream, body: &Body, start: u64, n: u64) -> std::io::Result<()> {
    match body {
        Body::Bytes(b) => {
            let s = usize::try_from(start).unwrap_or(usize::MAX).min(b.len());
            let e = usize::try_from(start + n)
                .unwrap_or(usize::MAX)
                .min(b.len());
            conn.write_all(&b[s..e])
        }
        Body::File(path) => {
            let mut f = std::fs::File::open(path)?;
            f.seek(SeekFrom::Start(start))?;
            std::io::copy(&mut f.take(n), conn).map(|_| ())
        }
    }
}
