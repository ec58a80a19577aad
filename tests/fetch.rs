//! The fetcher against a real (fault-injecting) HTTP server on loopback.

mod support;

use image_creator::config::{Algo, Checksum, ChecksumKind};
use image_creator::fetch::{Downloaded, Expect, FetchError, FetchSettings, Fetcher, Job, Source};
use image_creator::progress::{Event, Progress, TaskKind};
use image_creator::{Cancel, Classify, ErrorClass};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::http_server::{Fault, TestServer};

fn settings() -> FetchSettings {
    FetchSettings {
        retries: 3,
        backoff: Duration::from_millis(10),
        max_delay: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(2),
    }
}

fn fetcher() -> Fetcher {
    Fetcher::new(settings()).unwrap()
}

/// Deterministic, non-repeating-looking bytes (a simple LCG).
fn data(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (x >> 16) as u8
        })
        .collect()
}

/// Reference digest computed by python3 (hashlib / zlib), independent of the code under test.
fn py_digest(algo: Algo, file: &Path) -> String {
    let expr = match algo {
        Algo::Adler32 => "'%08x' % zlib.adler32(d)".to_string(),
        a => format!(
            "hashlib.new('{}', d).hexdigest()",
            a.name().replace('-', "")
        ),
    };
    let script =
        format!("import hashlib, sys, zlib\nd = open(sys.argv[1], 'rb').read()\nprint({expr})");
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(file)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn py_digest_bytes(algo: Algo, bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("blob");
    std::fs::write(&f, bytes).unwrap();
    py_digest(algo, &f)
}

fn digest(algo: Algo, value: &str) -> Option<Checksum> {
    Some(Checksum {
        algo,
        value: value.to_string(),
        kind: ChecksumKind::Digest,
    })
}

fn part(dest: &Path) -> PathBuf {
    PathBuf::from(format!("{}.part", dest.display()))
}

async fn get(
    f: &Fetcher,
    url: &str,
    dest: &Path,
    expect: Expect,
) -> Result<Downloaded, FetchError> {
    let src = Source::parse(url, None).unwrap();
    let mut task = Progress::silent().task(TaskKind::Download, url, None);
    f.download(&src, dest, &expect, &mut task, &Cancel::new())
        .await
}

fn assert_gone(dest: &Path) {
    assert!(!dest.exists(), "{} left behind", dest.display());
    assert!(!part(dest).exists(), "{} left behind", part(dest).display());
}

#[tokio::test]
async fn dropped_connection_resumes_with_range() {
    let srv = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    // A file on disk, served by streaming, several MiB so it spans many chunks.
    let body = data(3 << 20, 1);
    let src_file = dir.path().join("src.bin");
    std::fs::write(&src_file, &body).unwrap();
    srv.add_file("/big.bin", &src_file);
    srv.fault(
        "/big.bin",
        Fault::DropAfter {
            bytes: 1_000_000,
            times: 2,
        },
    );

    let dest = dir.path().join("out.bin");
    let d = get(&fetcher(), &srv.url("big.bin"), &dest, Expect::default())
        .await
        .unwrap();
    assert_eq!(d.path, dest);
    assert_eq!(d.size, body.len() as u64);
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    assert_eq!(d.sha256, py_digest(Algo::Sha256, &src_file));
    assert!(!part(&dest).exists());

    let reqs = srv.requests_for("/big.bin");
    assert_eq!(reqs.len(), 3, "{reqs:?}");
    assert_eq!(reqs[0].range, None);
    assert_eq!(reqs[0].status, 200);
    assert_eq!(reqs[1].range.as_deref(), Some("bytes=1000000-"));
    assert_eq!(reqs[1].if_range, srv.etag("/big.bin"));
    assert_eq!(reqs[1].status, 206);
    assert_eq!(reqs[2].range.as_deref(), Some("bytes=2000000-"));
    assert_eq!(reqs[2].status, 206);
}

#[tokio::test]
async fn server_ignoring_range_restarts_from_zero() {
    let srv = TestServer::start();
    let body = data(500_000, 2);
    srv.add("/f", body.clone());
    srv.fault("/f", Fault::IgnoreRange);
    srv.fault(
        "/f",
        Fault::DropAfter {
            bytes: 200_000,
            times: 1,
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f");
    let d = get(&fetcher(), &srv.url("/f"), &dest, Expect::default())
        .await
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    assert_eq!(d.sha256, py_digest_bytes(Algo::Sha256, &body));
    let reqs = srv.requests_for("/f");
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[1].range.as_deref(), Some("bytes=200000-"));
    assert_eq!(
        reqs[1].status, 200,
        "the server answered the range with the whole body"
    );
}

#[tokio::test]
async fn changed_resource_is_restarted_not_spliced() {
    // Resuming with If-Range: the content changes between attempts (new ETag), so the server sends
    // the whole new body (200) and the result must be the new body only.
    let srv = TestServer::start();
    srv.add("/f", data(300_000, 3));
    srv.fault(
        "/f",
        Fault::DropAfter {
            bytes: 100_000,
            times: 1,
        },
    );
    let new_body = data(250_000, 4);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f");
    let srv = Arc::new(srv);
    let (s2, nb) = (srv.clone(), new_body.clone());
    // Swap the body as soon as the first (dropped) request is logged.
    let swapper = std::thread::spawn(move || {
        let until = Instant::now() + Duration::from_secs(5);
        while s2.requests_for("/f").is_empty() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(1));
        }
        s2.add("/f", nb);
    });
    let mut st = settings();
    st.backoff = Duration::from_millis(200);
    let f = Fetcher::new(st).unwrap();
    let d = get(&f, &srv.url("/f"), &dest, Expect::default())
        .await
        .unwrap();
    swapper.join().unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), new_body);
    assert_eq!(d.size, new_body.len() as u64);
    let reqs = srv.requests_for("/f");
    assert_eq!(reqs.len(), 2);
    assert!(reqs[1].if_range.is_some());
    assert_eq!(reqs[1].status, 200);
}

#[tokio::test]
async fn server_errors_are_retried() {
    let srv = TestServer::start();
    srv.add("/f", b"hello".to_vec());
    srv.fault(
        "/f",
        Fault::Status {
            code: 500,
            times: 2,
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f");
    get(&fetcher(), &srv.url("/f"), &dest, Expect::default())
        .await
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), b"hello");
    let statuses: Vec<u16> = srv.requests_for("/f").iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 500, 200]);
}

#[tokio::test]
async fn persistent_server_error_gives_up_after_retries() {
    let srv = TestServer::start();
    srv.add("/f", b"hello".to_vec());
    srv.fault(
        "/f",
        Fault::Status {
            code: 503,
            times: 100,
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f");
    let e = get(&fetcher(), &srv.url("/f"), &dest, Expect::default())
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Unreachable);
    assert!(e.to_string().contains("503"), "{e}");
    // First attempt + 3 retries.
    assert_eq!(srv.requests_for("/f").len(), 4);
    assert_gone(&dest);
}

#[tokio::test]
async fn too_many_requests_honours_retry_after() {
    let srv = TestServer::start();
    srv.add("/f", b"rate limited".to_vec());
    srv.fault("/f", Fault::RetryAfter429 { times: 1 });
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f");
    let t = Instant::now();
    get(&fetcher(), &srv.url("/f"), &dest, Expect::default())
        .await
        .unwrap();
    // The server asked for 1 s; our own backoff is 10 ms.
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(std::fs::read(&dest).unwrap(), b"rate limited");
    let statuses: Vec<u16> = srv.requests_for("/f").iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 200]);
}

#[tokio::test]
async fn not_found_is_unreachable_at_once() {
    let srv = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f");
    let url = srv.url("/missing.zim");
    let e = get(&fetcher(), &url, &dest, Expect::default())
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Unreachable);
    let msg = e.to_string();
    assert!(msg.contains(&url) && msg.contains("404"), "{msg}");
    assert_eq!(
        srv.requests_for("/missing.zim").len(),
        1,
        "4xx is not retried"
    );
    assert_gone(&dest);
}

#[tokio::test]
async fn connection_refused_is_unreachable() {
    let srv = TestServer::start();
    let url = srv.url("/x");
    drop(srv);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("x");
    let e = get(&fetcher(), &url, &dest, Expect::default())
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Unreachable, "{e}");
    assert!(e.to_string().contains(&url), "{e}");
    assert_gone(&dest);
}

#[tokio::test]
async fn wrong_digest_fails_and_cleans_up() {
    let srv = TestServer::start();
    srv.add("/f", b"content".to_vec());
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f");
    let url = srv.url("/f");
    let wrong = "0".repeat(64);
    let e = get(
        &fetcher(),
        &url,
        &dest,
        Expect {
            checksum: digest(Algo::Sha256, &wrong),
            size: None,
        },
    )
    .await
    .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Failure);
    let msg = e.to_string();
    let actual = py_digest_bytes(Algo::Sha256, b"content");
    assert!(
        msg.contains(&url) && msg.contains(&wrong) && msg.contains(&actual),
        "{msg}"
    );
    assert_gone(&dest);
}

#[tokio::test]
async fn checksum_from_url() {
    let srv = TestServer::start();
    let body = data(70_000, 5);
    srv.add("/img.xz", body.clone());
    // md5sum format, upper-case digest: comparison is case-insensitive.
    let md5 = py_digest_bytes(Algo::Md5, &body);
    srv.add(
        "/img.xz.md5",
        format!("{}  img.xz\n", md5.to_uppercase()).into_bytes(),
    );
    srv.add(
        "/bad.md5",
        b"0123456789abcdef0123456789abcdef  img.xz\n".to_vec(),
    );
    srv.fault(
        "/img.xz.md5",
        Fault::Status {
            code: 502,
            times: 1,
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let checksum = |path: &str| {
        Some(Checksum {
            algo: Algo::Md5,
            value: srv.url(path),
            kind: ChecksumKind::Url,
        })
    };

    let ok = dir.path().join("ok");
    let d = get(
        &fetcher(),
        &srv.url("/img.xz"),
        &ok,
        Expect {
            checksum: checksum("/img.xz.md5"),
            size: Some(body.len() as u64),
        },
    )
    .await
    .unwrap();
    assert_eq!(d.size, body.len() as u64);
    assert_eq!(srv.requests_for("/img.xz.md5").len(), 2, "502 retried");

    let bad = dir.path().join("bad");
    let e = get(
        &fetcher(),
        &srv.url("/img.xz"),
        &bad,
        Expect {
            checksum: checksum("/bad.md5"),
            size: None,
        },
    )
    .await
    .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Failure);
    let msg = e.to_string();
    assert!(msg.contains(&srv.url("/img.xz")), "{msg}");
    assert!(
        msg.contains("0123456789abcdef0123456789abcdef") && msg.contains(&md5),
        "{msg}"
    );
    assert_gone(&bad);

    // A checksum URL that does not exist: unreachable, naming it.
    let e = get(
        &fetcher(),
        &srv.url("/img.xz"),
        &bad,
        Expect {
            checksum: checksum("/nope.md5"),
            size: None,
        },
    )
    .await
    .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Unreachable);
    assert!(format!("{e:?}").contains("nope.md5"), "{e:?}");
    assert_gone(&bad);
}

#[tokio::test]
async fn every_algorithm_verifies() {
    let srv = TestServer::start();
    let body = data(123_457, 6);
    srv.add("/f", body.clone());
    let dir = tempfile::tempdir().unwrap();
    let all = [
        Algo::Sha1,
        Algo::Sha224,
        Algo::Sha256,
        Algo::Sha384,
        Algo::Sha512,
        Algo::Md5,
        Algo::Adler32,
    ];
    for algo in all {
        let want = py_digest_bytes(algo, &body);
        let dest = dir.path().join(algo.name());
        get(
            &fetcher(),
            &srv.url("/f"),
            &dest,
            Expect {
                checksum: digest(algo, &want),
                size: Some(body.len() as u64),
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", algo.name()));
        // One flipped digit must fail.
        let mut bad = want.clone().into_bytes();
        bad[0] = if bad[0] == b'0' { b'1' } else { b'0' };
        let bad = String::from_utf8(bad).unwrap();
        let dest2 = dir.path().join(format!("{}-bad", algo.name()));
        let e = get(
            &fetcher(),
            &srv.url("/f"),
            &dest2,
            Expect {
                checksum: digest(algo, &bad),
                size: None,
            },
        )
        .await
        .unwrap_err();
        assert!(
            matches!(e, FetchError::ChecksumMismatch { .. }),
            "{}",
            algo.name()
        );
        assert_gone(&dest2);
    }
}

#[tokio::test]
async fn size_mismatch_fails() {
    let srv = TestServer::start();
    srv.add("/f", b"12345".to_vec());
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f");
    let e = get(
        &fetcher(),
        &srv.url("/f"),
        &dest,
        Expect {
            checksum: None,
            size: Some(6),
        },
    )
    .await
    .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Failure);
    assert!(e.to_string().contains("expected 6 bytes, got 5"), "{e}");
    assert_gone(&dest);
}

#[tokio::test]
async fn missing_length_still_downloads() {
    let srv = TestServer::start();
    let body = data(40_000, 7);
    srv.add("/f", body.clone());
    srv.fault("/f", Fault::NoContentLength);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f");
    let d = get(&fetcher(), &srv.url("/f"), &dest, Expect::default())
        .await
        .unwrap();
    assert_eq!(d.size, body.len() as u64);
    assert_eq!(std::fs::read(&dest).unwrap(), body);
}

#[tokio::test]
async fn stall_is_retried_and_resumed() {
    let srv = TestServer::start();
    let body = data(200_000, 8);
    srv.add("/f", body.clone());
    srv.fault(
        "/f",
        Fault::Stall {
            after: 50_000,
            times: 1,
        },
    );
    let mut st = settings();
    st.read_timeout = Duration::from_millis(300);
    let f = Fetcher::new(st).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f");
    get(&f, &srv.url("/f"), &dest, Expect::default())
        .await
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    let reqs = srv.requests_for("/f");
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[1].range.as_deref(), Some("bytes=50000-"));
}

#[tokio::test]
async fn cancel_stops_a_stalled_download_and_cleans_up() {
    let srv = TestServer::start();
    srv.add("/f", data(100_000, 9));
    srv.fault(
        "/f",
        Fault::Stall {
            after: 10_000,
            times: 1,
        },
    );
    let mut st = settings();
    st.read_timeout = Duration::from_secs(30);
    let f = Fetcher::new(st).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f");
    let cancel = Cancel::new();
    let c2 = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        c2.cancel();
    });
    let src = Source::parse(&srv.url("/f"), None).unwrap();
    let mut task = Progress::silent().task(TaskKind::Download, "f", None);
    let t = Instant::now();
    let e = f
        .download(&src, &dest, &Expect::default(), &mut task, &cancel)
        .await
        .unwrap_err();
    assert!(e.is_cancelled(), "{e}");
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_gone(&dest);
}

#[tokio::test]
async fn probe_falls_back_to_get_when_head_refused() {
    let srv = TestServer::start();
    srv.add("/f", data(4321, 10));
    srv.fault("/f", Fault::NoHead);
    let p = fetcher()
        .probe(&Source::parse(&srv.url("/f"), None).unwrap())
        .await
        .unwrap();
    assert_eq!(p.size, Some(4321));
    assert_eq!(p.etag, srv.etag("/f"));
    assert!(p.last_modified.is_some());
    let reqs = srv.requests_for("/f");
    assert_eq!(
        reqs.iter()
            .map(|r| (r.method.as_str(), r.status))
            .collect::<Vec<_>>(),
        [("HEAD", 405), ("GET", 200)]
    );

    // Plain HEAD works on its own.
    srv.add("/g", vec![0; 99]);
    let p = fetcher()
        .probe(&Source::parse(&srv.url("/g"), None).unwrap())
        .await
        .unwrap();
    assert_eq!(p.size, Some(99));
    assert_eq!(srv.requests_for("/g").len(), 1);

    // Not found: Unreachable.
    let e = fetcher()
        .probe(&Source::parse(&srv.url("/none"), None).unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Unreachable);
}

#[tokio::test]
async fn fetch_text_retries_and_reads_files() {
    let srv = TestServer::start();
    srv.add("/c.yaml", b"base: 1.0\n".to_vec());
    srv.fault("/c.yaml", Fault::DropAfter { bytes: 3, times: 1 });
    srv.fault(
        "/c.yaml",
        Fault::Status {
            code: 503,
            times: 1,
        },
    );
    let f = fetcher();
    let t = f
        .fetch_text(&Source::parse(&srv.url("/c.yaml"), None).unwrap())
        .await
        .unwrap();
    assert_eq!(t, "base: 1.0\n");
    assert_eq!(srv.requests_for("/c.yaml").len(), 3);

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("local.yaml"), "x: y\n").unwrap();
    let src = Source::parse("local.yaml", Some(dir.path())).unwrap();
    assert_eq!(f.fetch_text(&src).await.unwrap(), "x: y\n");
    let e = f
        .fetch_text(&Source::parse("nope.yaml", Some(dir.path())).unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Unreachable);
    assert!(e.to_string().contains("nope.yaml"), "{e}");
}

#[tokio::test]
async fn local_file_is_verified_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data.zim");
    let body = data(77_777, 11);
    std::fs::write(&file, &body).unwrap();
    let dest = dir.path().join("dest");
    let f = fetcher();
    let src = Source::parse(&format!("file://{}", file.display()), None).unwrap();
    let mut task = Progress::silent().task(TaskKind::Download, "l", None);
    let sha1 = py_digest(Algo::Sha1, &file);
    let d = f
        .download(
            &src,
            &dest,
            &Expect {
                checksum: digest(Algo::Sha1, &sha1),
                size: Some(body.len() as u64),
            },
            &mut task,
            &Cancel::new(),
        )
        .await
        .unwrap();
    assert_eq!(d.path, file, "not copied");
    assert_eq!(d.sha256, py_digest(Algo::Sha256, &file));
    assert!(!dest.exists() && !part(&dest).exists());

    let e = f
        .download(
            &src,
            &dest,
            &Expect {
                checksum: digest(Algo::Sha1, &"f".repeat(40)),
                size: None,
            },
            &mut task,
            &Cancel::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Failure);
    assert!(file.exists(), "a local source is never removed");

    let missing = Source::File(dir.path().join("absent.zim"));
    let e = f
        .download(
            &missing,
            &dest,
            &Expect::default(),
            &mut task,
            &Cancel::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Unreachable);
    assert!(e.to_string().contains("absent.zim"), "{e}");
    let p = f.probe(&Source::File(file.clone())).await.unwrap();
    assert_eq!(p.size, Some(body.len() as u64));
}

fn recorder() -> (Progress, Arc<Mutex<Vec<Event>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let e2 = events.clone();
    let p = Progress::new(move |e| e2.lock().unwrap().push(e.clone()));
    (p, events)
}

#[tokio::test]
async fn download_all_succeeds_in_order() {
    let srv = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut jobs = Vec::new();
    let mut bodies = Vec::new();
    for i in 0..6u32 {
        let body = data(50_000 + i as usize * 1000, 20 + i);
        let path = format!("/f{i}");
        srv.add(&path, body.clone());
        if i == 2 {
            srv.fault(
                &path,
                Fault::DropAfter {
                    bytes: 10_000,
                    times: 1,
                },
            );
        }
        bodies.push(body);
        jobs.push(Job {
            source: Source::parse(&srv.url(&path), None).unwrap(),
            dest: dir.path().join(format!("f{i}")),
            expect: Expect::default(),
            label: format!("f{i}"),
        });
    }
    // The same job twice: one transfer, same result.
    jobs.push(jobs[0].clone());
    let (progress, events) = recorder();
    let out = fetcher()
        .download_all(jobs, 3, &progress, &Cancel::new())
        .await
        .unwrap();
    assert_eq!(out.len(), 7);
    for (i, d) in out.iter().take(6).enumerate() {
        assert_eq!(d.path, dir.path().join(format!("f{i}")));
        assert_eq!(std::fs::read(&d.path).unwrap(), bodies[i]);
    }
    assert_eq!(out[6], out[0]);
    assert_eq!(srv.requests_for("/f0").len(), 1);
    let events = events.lock().unwrap();
    let started = events
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::TaskStarted {
                    kind: TaskKind::Download,
                    ..
                }
            )
        })
        .count();
    let ok = events
        .iter()
        .filter(|e| matches!(e, Event::TaskFinished { ok: true, .. }))
        .count();
    assert_eq!((started, ok), (6, 6));
}

#[tokio::test]
async fn download_all_first_failure_names_the_url() {
    let srv = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut jobs = Vec::new();
    for i in 0..6u32 {
        let path = format!("/f{i}");
        if i != 4 {
            srv.add(&path, data(300_000, 30 + i));
        }
        jobs.push(Job {
            source: Source::parse(&srv.url(&path), None).unwrap(),
            dest: dir.path().join(format!("f{i}")),
            expect: Expect::default(),
            label: format!("f{i}"),
        });
    }
    let (progress, _) = recorder();
    let e = fetcher()
        .download_all(jobs, 3, &progress, &Cancel::new())
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Unreachable);
    assert!(e.to_string().contains(&srv.url("/f4")), "{e}");
    // No half-written file anywhere.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let name = entry.unwrap().file_name();
        assert!(!name.to_string_lossy().ends_with(".part"), "{name:?}");
    }
}

#[test]
fn source_parse_cases() {
    let base = Path::new("/srv/configs");
    assert_eq!(
        Source::parse("zims/wiki.zim", Some(base)).unwrap(),
        Source::File(base.join("zims/wiki.zim"))
    );
    assert_eq!(
        Source::parse("file:///srv/a.img", None).unwrap(),
        Source::File("/srv/a.img".into())
    );
    assert!(matches!(
        Source::parse("https://example.org/a.img.xz", Some(base)).unwrap(),
        Source::Http(_)
    ));
    for bad in ["ftp://example.org/a.img", "relative.img"] {
        let e = Source::parse(bad, None).unwrap_err();
        assert_eq!(e.class(), ErrorClass::BadInput);
        assert!(e.to_string().contains(bad), "{e}");
    }
}
