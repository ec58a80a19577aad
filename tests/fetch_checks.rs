//! Fetch: checksums, probes, texts, local files, concurrent batches, source parsing.

mod support;

use image_creator::config::{Algo, Checksum, ChecksumKind};
use image_creator::fetch::{Download, Expect, FetchError, Source};
use image_creator::progress::{Event, Progress, TaskKind};
use image_creator::{CancellationToken, Classify, ErrorClass};
use std::path::Path;
use support::fetch_kit::*;
use support::http_server::{Fault, TestServer};

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
async fn probe_falls_back_to_get_when_head_refused() {
    let srv = TestServer::start();
    srv.add("/f", data(4321, 10));
    srv.fault("/f", Fault::NoHead);
    let p = fetcher()
        .probe(
            &Source::parse(&srv.url("/f"), None).unwrap(),
            &CancellationToken::new(),
        )
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
        .probe(
            &Source::parse(&srv.url("/g"), None).unwrap(),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(p.size, Some(99));
    assert_eq!(srv.requests_for("/g").len(), 1);

    // Not found: Unreachable.
    let e = fetcher()
        .probe(
            &Source::parse(&srv.url("/none"), None).unwrap(),
            &CancellationToken::new(),
        )
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
        .fetch_text(
            &Source::parse(&srv.url("/c.yaml"), None).unwrap(),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(t, "base: 1.0\n");
    assert_eq!(srv.requests_for("/c.yaml").len(), 3);

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("local.yaml"), "x: y\n").unwrap();
    let src = Source::parse("local.yaml", Some(dir.path())).unwrap();
    assert_eq!(
        f.fetch_text(&src, &CancellationToken::new()).await.unwrap(),
        "x: y\n"
    );
    let e = f
        .fetch_text(
            &Source::parse("nope.yaml", Some(dir.path())).unwrap(),
            &CancellationToken::new(),
        )
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
            &CancellationToken::new(),
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
            &CancellationToken::new(),
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
            &CancellationToken::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Unreachable);
    assert!(e.to_string().contains("absent.zim"), "{e}");
    let p = f
        .probe(&Source::File(file.clone()), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(p.size, Some(body.len() as u64));
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
        jobs.push(Download {
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
        .download_all(jobs, 3, &progress, &CancellationToken::new())
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
        jobs.push(Download {
            source: Source::parse(&srv.url(&path), None).unwrap(),
            dest: dir.path().join(format!("f{i}")),
            expect: Expect::default(),
            label: format!("f{i}"),
        });
    }
    let (progress, _) = recorder();
    let e = fetcher()
        .download_all(jobs, 3, &progress, &CancellationToken::new())
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
