//! A real OCI registry (Debian's `docker-registry`) on loopback, and hand-made images pushed to it with
//! `skopeo` from an OCI layout built here: reproducible tar layers (gzip, zstd or none), a config with
//! the right `rootfs.diff_ids` and os/arch, one manifest per platform, an index when there are several.

mod layout;
mod token_front;

// Each test crate that includes `support` uses a different part of these.
#[allow(unused_imports)]
pub use layout::*;
#[allow(unused_imports)]
pub use token_front::{token_front, TokenFront};

use image_creator::oci::{LayerCompression, Platform};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

pub struct TestRegistry {
    child: Child,
    // Kept for its lifetime: the config, htpasswd, log and storage live in it.
    #[allow(dead_code)]
    dir: tempfile::TempDir,
    storage: PathBuf,
    port: u16,
    creds: Option<(String, String)>,
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

/// A loopback port with nothing listening (for "registry down" tests).
pub fn dead_port() -> u16 {
    free_port()
}

impl TestRegistry {
    pub fn start() -> TestRegistry {
        Self::start_inner(None)
    }

    pub fn start_with_basic_auth(user: &str, pass: &str) -> TestRegistry {
        Self::start_inner(Some((user.to_string(), pass.to_string())))
    }

    fn start_inner(creds: Option<(String, String)>) -> TestRegistry {
        // The port is picked then released: another process may grab it first, so try a few times.
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("tempdir");
            let storage = dir.path().join("storage");
            std::fs::create_dir_all(&storage).expect("storage dir");
            let mut auth = String::new();
            if let Some((u, p)) = &creds {
                let out = Command::new("htpasswd")
                    .args(["-Bbn", u, p])
                    .output()
                    .expect("run htpasswd (apt-get install apache2-utils)");
                assert!(out.status.success(), "htpasswd failed");
                let path = dir.path().join("htpasswd");
                std::fs::write(&path, &out.stdout).expect("write htpasswd");
                auth = format!(
                    "auth: {{htpasswd: {{realm: test, path: {}}}}}\n",
                    path.display()
                );
            }
            let port = free_port();
            let config = dir.path().join("reg.yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog: {{level: error, accesslog: {{disabled: true}}}}\n\
                     storage: {{filesystem: {{rootdirectory: {}}}, delete: {{enabled: true}}}}\n\
                     http: {{addr: 127.0.0.1:{port}}}\n{auth}",
                    storage.display()
                ),
            )
            .expect("write registry config");
            let log = std::fs::File::create(dir.path().join("registry.log")).expect("log file");
            let child = Command::new("docker-registry")
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("dup log"))
                .stderr(log)
                .spawn()
                .expect("run docker-registry (apt-get install docker-registry)");
            let mut reg = TestRegistry {
                child,
                dir,
                storage,
                port,
                creds: creds.clone(),
            };
            if reg.wait_ready() {
                return reg;
            }
            // Dropping `reg` kills the child.
        }
        panic!("docker-registry did not start");
    }

    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok((status, _, _)) = http_get(&self.host(), "/v2/", None, None) {
                if status == 200 || status == 401 {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The registry's storage root (`docker/registry/v2/blobs/sha256/xx/<hex>/data`).
    pub fn storage(&self) -> &Path {
        &self.storage
    }

    /// Where the registry keeps the blob with `digest` (`sha256:<hex>`).
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.storage()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    pub fn credentials(&self) -> Option<(String, String)> {
        self.creds.clone()
    }

    /// GET `path` from the registry (with its credentials): (status, body).
    pub fn get(&self, path: &str) -> (u16, Vec<u8>) {
        let (s, _, b) = http_get(&self.host(), path, Some(ACCEPT), self.creds.as_ref())
            .expect("GET from the test registry");
        (s, b)
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.0 GET (no chunked replies) with optional Basic credentials: (status, head, body).
pub fn http_get(
    host: &str,
    path: &str,
    accept: Option<&str>,
    creds: Option<&(String, String)>,
) -> std::io::Result<(u16, String, Vec<u8>)> {
    use base64::Engine;
    let mut s = TcpStream::connect(host)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut req = format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n");
    if let Some(a) = accept {
        req.push_str(&format!("Accept: {a}\r\n"));
    }
    if let Some((u, p)) = creds {
        let b = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        req.push_str(&format!("Authorization: Basic {b}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status"))?;
    Ok((status, head, raw[split + 4..].to_vec()))
}

/// How to push.
#[derive(Debug, Clone, Copy, Default)]
pub struct PushOptions {
    /// Convert to Docker v2 schema 2 media types (single-platform, gzip layers only).
    pub docker_format: bool,
}

/// What the registry holds after a push, read back from it.
#[derive(Debug, Clone)]
pub struct PushedImage {
    /// `127.0.0.1:PORT/repo:tag`.
    pub reference: String,
    /// Digest of the index when there are several platforms.
    pub index_digest: Option<String>,
    pub platforms: Vec<PushedPlatform>,
}

#[derive(Debug, Clone)]
pub struct PushedPlatform {
    pub platform: Platform,
    pub manifest_digest: String,
    pub config_digest: String,
    pub config: Vec<u8>,
    /// (digest, media type, size) of each layer as stored (compressed), in order.
    pub layers: Vec<(String, String, u64)>,
    /// `sha256:` of each uncompressed layer tar (the config's `rootfs.diff_ids`).
    pub diff_ids: Vec<String>,
}

impl PushedImage {
    pub fn platform(&self, arch: &str) -> &PushedPlatform {
        self.platforms
            .iter()
            .find(|p| p.platform.architecture == arch)
            .unwrap_or_else(|| panic!("no {arch} in pushed image"))
    }
}

pub fn push(reg: &TestRegistry, spec: &ImageSpec) -> PushedImage {
    push_with(reg, spec, PushOptions::default())
}

pub fn push_with(reg: &TestRegistry, spec: &ImageSpec, opts: PushOptions) -> PushedImage {
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = tmp.path().join("layout");
    build_layout(spec, &layout);
    let dest = format!("{}/{}:{}", reg.host(), spec.repo, spec.tag);
    let mut cmd = Command::new("skopeo");
    cmd.args([
        "--insecure-policy",
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
    ]);
    if spec.platforms.len() > 1 {
        cmd.arg("--all");
    }
    if opts.docker_format {
        cmd.args(["--format", "v2s2"]);
    } else if spec.compression != LayerCompression::None {
        // Fails loudly if skopeo would rewrite anything.
        cmd.arg("--preserve-digests");
    }
    if let Some((u, p)) = reg.credentials() {
        cmd.arg(format!("--dest-creds={u}:{p}"));
    }
    cmd.arg(format!("oci:{}:{}", layout.display(), spec.tag))
        .arg(format!("docker://{dest}"))
        .env("HOME", tmp.path());
    let out = cmd.output().expect("run skopeo (apt-get install skopeo)");
    assert!(
        out.status.success(),
        "skopeo copy failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    read_back(reg, spec, dest)
}

/// What the registry now serves for the pushed tag.
fn read_back(reg: &TestRegistry, spec: &ImageSpec, reference: String) -> PushedImage {
    let (status, top) = reg.get(&format!("/v2/{}/manifests/{}", spec.repo, spec.tag));
    assert_eq!(status, 200, "pushed manifest not served");
    let top_json: serde_json::Value = serde_json::from_slice(&top).expect("manifest JSON");
    let mut index_digest = None;
    let entries: Vec<(Option<Platform>, String, Vec<u8>)> = match top_json.get("manifests") {
        Some(list) => {
            index_digest = Some(sha256(&top));
            list.as_array()
                .expect("manifests array")
                .iter()
                .map(|d| {
                    let digest = d["digest"].as_str().expect("digest").to_string();
                    let p = &d["platform"];
                    let platform = Platform {
                        os: p["os"].as_str().unwrap_or_default().into(),
                        architecture: p["architecture"].as_str().unwrap_or_default().into(),
                        variant: p["variant"].as_str().map(Into::into),
                    };
                    let (s, body) = reg.get(&format!("/v2/{}/manifests/{digest}", spec.repo));
                    assert_eq!(s, 200);
                    (Some(platform), digest, body)
                })
                .collect()
        }
        None => vec![(None, sha256(&top), top)],
    };
    let platforms = entries
        .into_iter()
        .enumerate()
        .map(|(i, (platform, manifest_digest, body))| {
            let m: serde_json::Value = serde_json::from_slice(&body).expect("manifest JSON");
            let config_digest = m["config"]["digest"].as_str().expect("config").to_string();
            let (s, config) = reg.get(&format!("/v2/{}/blobs/{config_digest}", spec.repo));
            assert_eq!(s, 200);
            let cj: serde_json::Value = serde_json::from_slice(&config).expect("config JSON");
            let diff_ids = cj["rootfs"]["diff_ids"]
                .as_array()
                .expect("diff_ids")
                .iter()
                .map(|d| d.as_str().expect("diff id").to_string())
                .collect();
            let layers = m["layers"]
                .as_array()
                .expect("layers")
                .iter()
                .map(|l| {
                    (
                        l["digest"].as_str().expect("digest").to_string(),
                        l["mediaType"].as_str().expect("mediaType").to_string(),
                        l["size"].as_u64().expect("size"),
                    )
                })
                .collect();
            PushedPlatform {
                platform: platform.unwrap_or_else(|| spec.platforms[i].0.clone()),
                manifest_digest,
                config_digest,
                config,
                layers,
                diff_ids,
            }
        })
        .collect();
    PushedImage {
        reference,
        index_digest,
        platforms,
    }
}
