//! Fetch over a faulty HTTP server: resume, retries, errors, stalls, cancellation.

mod support;

use image_creator::config::Algo;
use image_creator::fetch::{Expect, Fetcher, Source};
use image_creator::progress::{Progress, TaskKind};
use image_creator::{CancellationToken, Classify, ErrorClass};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::fetch_kit::*;
use support::http_server::{Fault, TestServer};

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
    assert!(
        e.to_string().contains("expected 6 bytes") && e.to_string().contains("got 5"),
        "{e}"
    );
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
    let cancel = CancellationToken::new();
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

/// Texts and prefixes take the caller's token too (they used to make their own, which never fired).
#[tokio::test]
async fn cancel_stops_a_stalled_text_and_prefix() {
    let srv = TestServer::start();
    srv.add("/t", data(100_000, 3));
    let mut st = settings();
    st.read_timeout = Duration::from_secs(30);
    let f = Fetcher::new(st).unwrap();
    let src = Source::parse(&srv.url("/t"), None).unwrap();
    for prefix in [false, true] {
        srv.fault(
            "/t",
            Fault::Stall {
                after: 10,
                times: 1,
            },
        );
        let cancel = CancellationToken::new();
        let c2 = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            c2.cancel();
        });
        let t = Instant::now();
        let e = if prefix {
            f.fetch_prefix(&src, 50_000, &cancel).await.unwrap_err()
        } else {
            f.fetch_text(&src, &cancel).await.unwrap_err()
        };
        assert!(e.is_cancelled(), "{e}");
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}
