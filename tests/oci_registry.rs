//! The registry client against a real `docker-registry` on loopback, with images pushed by `skopeo`.

mod support;

use image_creator::net::NetSettings;
use image_creator::oci::{
    Credentials, LayerCompression, OciError, Platform, PulledImage, Reference, Registry,
};
use image_creator::progress::{Event, Progress, TaskKind};
use image_creator::{CancellationToken, Classify, ErrorClass};
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::http_server::{Fault, TestServer};
use support::registry::{
    platform, push, push_with, sha256, simple_layers, token_front, ImageSpec, PushOptions,
    PushedImage, TestRegistry,
};

fn fast() -> NetSettings {
    NetSettings {
        retries: 2,
        backoff: Duration::from_millis(20),
        max_delay: Duration::from_millis(100),
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(5),
    }
}

fn client() -> Registry {
    Registry::with_settings(vec![], fast()).unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn single(repo: &str, p: &str, layers: usize, c: LayerCompression) -> ImageSpec {
    ImageSpec {
        repo: repo.into(),
        tag: "v1".into(),
        platforms: vec![(platform(p), simple_layers(layers, repo))],
        compression: c,
    }
}

fn reference(reg_host: &str, repo: &str, tag: &str) -> Reference {
    Reference::parse(&format!("{reg_host}/{repo}:{tag}")).unwrap()
}

/// Pulls and records the progress events.
fn pull_events(
    registry: &Registry,
    r: &Reference,
    p: &Platform,
    dir: &std::path::Path,
) -> (Result<PulledImage, OciError>, Vec<Event>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = events.clone();
    let progress = Progress::new(move |e: &Event| ev.lock().unwrap().push(e.clone()));
    let out = rt().block_on(registry.pull(r, p, dir, &progress, &CancellationToken::new()));
    let events = events.lock().unwrap().clone();
    (out, events)
}

/// Every layer file is the registry's blob, and decompresses to the config's diff_id.
fn check_pulled(pulled: &PulledImage, pushed: &PushedImage, arch: &str, c: LayerCompression) {
    let pp = pushed.platform(arch);
    assert_eq!(pulled.manifest_digest, pp.manifest_digest);
    assert_eq!(pulled.config_digest, pp.config_digest);
    assert_eq!(pulled.config, pp.config);
    assert_eq!(pulled.layers.len(), pp.layers.len());
    for (i, (blob, (digest, media_type, size))) in pulled.layers.iter().zip(&pp.layers).enumerate()
    {
        assert_eq!(&blob.digest, digest);
        assert_eq!(&blob.media_type, media_type);
        assert_eq!(blob.size, *size);
        assert_eq!(blob.compression, c);
        assert_eq!(
            blob.path.file_name().unwrap().to_str().unwrap(),
            &digest[7..]
        );
        let data = std::fs::read(&blob.path).unwrap();
        assert_eq!(&sha256(&data), digest);
        let mut tar = Vec::new();
        match c {
            LayerCompression::None => tar = data,
            LayerCompression::Gzip => {
                flate2::read::GzDecoder::new(&data[..])
                    .read_to_end(&mut tar)
                    .unwrap();
            }
            LayerCompression::Zstd => tar = zstd::decode_all(&data[..]).unwrap(),
        }
        assert_eq!(sha256(&tar), pp.diff_ids[i], "layer {i} diff_id");
    }
    let config_file = pulled.layers[0]
        .path
        .parent()
        .unwrap()
        .join(&pp.config_digest[7..]);
    assert_eq!(std::fs::read(config_file).unwrap(), pp.config);
}

#[test]
fn resolve_and_pull_multi_arch_index() {
    let reg = TestRegistry::start();
    let spec = ImageSpec {
        repo: "offspot/multi".into(),
        tag: "1.0".into(),
        platforms: vec![
            (platform("linux/amd64"), simple_layers(1, "amd")),
            // No variant in the index entry: must still match linux/arm64/v8.
            (platform("linux/arm64"), simple_layers(2, "arm")),
        ],
        compression: LayerCompression::Gzip,
    };
    let pushed = push(&reg, &spec);
    assert!(pushed.index_digest.is_some());
    let registry = client();
    let r = reference(&reg.host(), "offspot/multi", "1.0");
    let pm = rt()
        .block_on(registry.resolve(&r, &Platform::arm64(), &CancellationToken::new()))
        .unwrap();
    let arm = pushed.platform("arm64");
    assert_eq!(pm.manifest_digest, arm.manifest_digest);
    assert_eq!(pm.config_digest, arm.config_digest);
    assert_eq!(pm.config_size, arm.config.len() as u64);
    assert_eq!(pm.layers, arm.layers);
    assert_eq!(
        pm.available_platforms,
        vec![platform("linux/amd64"), platform("linux/arm64")]
    );
    let amd = rt()
        .block_on(registry.resolve(&r, &platform("linux/amd64"), &CancellationToken::new()))
        .unwrap();
    assert_eq!(
        amd.manifest_digest,
        pushed.platform("amd64").manifest_digest
    );

    // A platform the index lacks: the error lists what is there.
    let e = rt()
        .block_on(registry.resolve(&r, &platform("linux/arm/v7"), &CancellationToken::new()))
        .unwrap_err();
    assert!(matches!(e, OciError::PlatformMissing { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("linux/amd64") && msg.contains("linux/arm64"),
        "{msg}"
    );
    assert_eq!(e.class(), ErrorClass::Unreachable);

    // Pull by the index digest.
    let by_digest = Reference::parse(&format!(
        "{}/offspot/multi@{}",
        reg.host(),
        pushed.index_digest.as_ref().unwrap()
    ))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (pulled, events) = pull_events(&registry, &by_digest, &Platform::arm64(), dir.path());
    let pulled = pulled.unwrap();
    check_pulled(&pulled, &pushed, "arm64", LayerCompression::Gzip);
    assert_eq!(pulled.platform, Platform::arm64());
    // One download task per blob (config + 2 layers), all finished ok.
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
    let finished_ok = events
        .iter()
        .filter(|e| matches!(e, Event::TaskFinished { ok: true, .. }))
        .count();
    assert_eq!((started, finished_ok), (3, 3), "{events:?}");
}

#[test]
fn single_arch_images_are_checked_by_their_config() {
    let reg = TestRegistry::start();
    let arm = push(
        &reg,
        &single("test/arm", "linux/arm64/v8", 1, LayerCompression::Gzip),
    );
    push(
        &reg,
        &single("test/amd", "linux/amd64", 1, LayerCompression::Gzip),
    );
    let registry = client();
    let pm = rt()
        .block_on(registry.resolve(
            &reference(&reg.host(), "test/arm", "v1"),
            &Platform::arm64(),
            &CancellationToken::new(),
        ))
        .unwrap();
    assert_eq!(pm.manifest_digest, arm.platforms[0].manifest_digest);
    assert_eq!(pm.available_platforms, vec![Platform::arm64()]);

    let e = rt()
        .block_on(registry.resolve(
            &reference(&reg.host(), "test/amd", "v1"),
            &Platform::arm64(),
            &CancellationToken::new(),
        ))
        .unwrap_err();
    match &e {
        OciError::PlatformMissing {
            wanted, available, ..
        } => {
            assert_eq!(wanted, &Platform::arm64());
            assert_eq!(available, &vec![platform("linux/amd64")]);
        }
        other => panic!("{other}"),
    }
    assert!(e.to_string().contains("linux/amd64"), "{e}");
    assert!(e.to_string().contains("test/amd"), "{e}");
    assert_eq!(e.class().exit_code(), 4);
}

#[test]
fn pulls_gzip_zstd_three_layers_and_docker_format() {
    let reg = TestRegistry::start();
    let registry = client();
    let cases = [
        ("test/gzip", 1, LayerCompression::Gzip, false),
        ("test/zstd", 2, LayerCompression::Zstd, false),
        ("test/three", 3, LayerCompression::Gzip, false),
        ("test/docker", 2, LayerCompression::Gzip, true),
    ];
    for (repo, n, c, docker) in cases {
        let spec = single(repo, "linux/arm64/v8", n, c);
        let pushed = push_with(
            &reg,
            &spec,
            PushOptions {
                docker_format: docker,
            },
        );
        let dir = tempfile::tempdir().unwrap();
        let r = reference(&reg.host(), repo, "v1");
        let (pulled, _) = pull_events(&registry, &r, &Platform::arm64(), dir.path());
        let pulled = pulled.unwrap_or_else(|e| panic!("{repo}: {e}"));
        assert_eq!(pulled.layers.len(), n, "{repo}");
        assert_eq!(pulled.reference, format!("{}/{repo}:v1", reg.host()));
        check_pulled(&pulled, &pushed, "arm64", c);
        let expected_type = match (docker, c) {
            (true, _) => "application/vnd.docker.image.rootfs.diff.tar.gzip",
            (false, LayerCompression::Zstd) => "application/vnd.oci.image.layer.v1.tar+zstd",
            (false, _) => "application/vnd.oci.image.layer.v1.tar+gzip",
        };
        assert!(
            pulled.layers.iter().all(|l| l.media_type == expected_type),
            "{repo}"
        );
        // Layers come in manifest order (the files differ per layer).
        let digests: Vec<_> = pulled.layers.iter().map(|l| l.digest.clone()).collect();
        let want: Vec<_> = pushed.platforms[0]
            .layers
            .iter()
            .map(|l| l.0.clone())
            .collect();
        assert_eq!(digests, want);
    }
}

#[test]
fn corrupt_blob_is_a_digest_mismatch() {
    let reg = TestRegistry::start();
    let pushed = push(
        &reg,
        &single("test/corrupt", "linux/arm64", 2, LayerCompression::Gzip),
    );
    let r = reference(&reg.host(), "test/corrupt", "v1");
    let earlier = tempfile::tempdir().unwrap();
    let (first, _) = pull_events(&client(), &r, &Platform::arm64(), earlier.path());
    let first = first.unwrap();

    let bad = pushed.platforms[0].layers[1].0.clone();
    let path = reg.blob_path(&bad);
    let mut data = std::fs::read(&path).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0xff;
    std::fs::write(&path, &data).unwrap();

    // Blobs verified by an earlier pull into the same directory are reused, not fetched again.
    let (again, _) = pull_events(&client(), &r, &Platform::arm64(), earlier.path());
    assert_eq!(again.unwrap(), first);

    let dir = tempfile::tempdir().unwrap();
    let (out, events) = pull_events(&client(), &r, &Platform::arm64(), dir.path());
    let e = out.unwrap_err();
    match &e {
        OciError::DigestMismatch {
            blob,
            expected,
            actual,
        } => {
            assert_eq!(blob, &bad);
            assert_eq!(expected, &bad);
            assert_eq!(actual, &sha256(&data));
        }
        other => panic!("{other}"),
    }
    assert!(e.to_string().contains(&bad));
    assert_eq!(e.class(), ErrorClass::Failure);
    // Nothing unverified is left behind under the blob's name.
    assert!(std::fs::read_dir(dir.path()).unwrap().all(|f| !f
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with(&bad[7..])));
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::TaskFinished { ok: false, .. })));
}

#[test]
fn unknown_tag_or_repo_is_unreachable() {
    let reg = TestRegistry::start();
    push(
        &reg,
        &single("test/known", "linux/arm64", 1, LayerCompression::Gzip),
    );
    let registry = client();
    for (repo, tag, what) in [
        ("test/known", "nope", "tag, digest or repository unknown"),
        // docker-registry says MANIFEST_UNKNOWN for an unknown repository too.
        ("test/unknown", "v1", "not found"),
    ] {
        let r = reference(&reg.host(), repo, tag);
        let e = rt()
            .block_on(registry.resolve(&r, &Platform::arm64(), &CancellationToken::new()))
            .unwrap_err();
        assert!(matches!(e, OciError::ManifestUnknown { .. }), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("{}/{repo}:{tag}", reg.host())),
            "{msg}"
        );
        assert!(msg.contains(what), "{msg}");
        assert_eq!(e.class().exit_code(), 4);
    }
}

#[test]
fn basic_auth_registry() {
    let reg = TestRegistry::start_with_basic_auth("alice", "s3cret");
    let pushed = push(
        &reg,
        &single("private/app", "linux/arm64", 1, LayerCompression::Gzip),
    );
    let r = reference(&reg.host(), "private/app", "v1");
    let anon = client().with_credentials(&reg.host(), Credentials::Anonymous);
    let e = rt()
        .block_on(anon.resolve(&r, &Platform::arm64(), &CancellationToken::new()))
        .unwrap_err();
    assert!(matches!(e, OciError::AuthRequired { .. }), "{e}");
    assert_eq!(e.class(), ErrorClass::MissingRequirement);
    assert_eq!(e.class().exit_code(), 2);
    let port = reg.host().rsplit(':').next().unwrap().to_string();
    assert!(
        e.to_string()
            .contains(&format!("IMAGE_CREATOR_REGISTRY_AUTH_127_0_0_1_{port}")),
        "{e}"
    );

    let wrong = client().with_credentials(
        &reg.host(),
        Credentials::Basic {
            user: "alice".into(),
            pass: "wrong-pass".into(),
        },
    );
    let e = rt()
        .block_on(wrong.resolve(&r, &Platform::arm64(), &CancellationToken::new()))
        .unwrap_err();
    assert!(matches!(e, OciError::AuthFailed { .. }), "{e}");
    assert_eq!(e.class(), ErrorClass::MissingRequirement);
    assert!(!e.to_string().contains("wrong-pass"), "{e}");

    let right = client().with_credentials(
        &reg.host(),
        Credentials::Basic {
            user: "alice".into(),
            pass: "s3cret".into(),
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let (pulled, _) = pull_events(&right, &r, &Platform::arm64(), dir.path());
    check_pulled(&pulled.unwrap(), &pushed, "arm64", LayerCompression::Gzip);
}

#[test]
fn registry_down_is_unreachable() {
    let port = support::registry::dead_port();
    let r = Reference::parse(&format!("127.0.0.1:{port}/test/x:v1")).unwrap();
    let started = std::time::Instant::now();
    let e = rt()
        .block_on(client().resolve(&r, &Platform::arm64(), &CancellationToken::new()))
        .unwrap_err();
    assert!(matches!(e, OciError::RegistryDown { .. }), "{e}");
    assert_eq!(e.class(), ErrorClass::Unreachable);
    assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// A copy of a pushed image served by the fault-injecting test server: 5xx on the manifest and a
/// dropped layer transfer are retried, the layer resumed with `Range`.
#[test]
fn retries_and_resumes_against_a_flaky_server() {
    let reg = TestRegistry::start();
    let spec = ImageSpec {
        repo: "test/flaky".into(),
        tag: "v1".into(),
        platforms: vec![(
            platform("linux/arm64"),
            vec![vec![(
                "big.bin".to_string(),
                (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect(),
            )]],
        )],
        compression: LayerCompression::Zstd,
    };
    let pushed = push(&reg, &spec);
    let pp = &pushed.platforms[0];
    let srv = TestServer::start();
    let (_, manifest) = reg.get("/v2/test/flaky/manifests/v1");
    srv.add("/v2/test/flaky/manifests/v1", manifest);
    let (_, config) = reg.get(&format!("/v2/test/flaky/blobs/{}", pp.config_digest));
    srv.add(
        &format!("/v2/test/flaky/blobs/{}", pp.config_digest),
        config,
    );
    let layer_path = format!("/v2/test/flaky/blobs/{}", pp.layers[0].0);
    let (_, layer) = reg.get(&layer_path);
    assert!(
        layer.len() > 10_000,
        "layer too small to cut: {}",
        layer.len()
    );
    srv.add(&layer_path, layer);
    srv.fault(
        "/v2/test/flaky/manifests/v1",
        Fault::Status {
            code: 503,
            times: 1,
        },
    );
    srv.fault(
        &layer_path,
        Fault::DropAfter {
            bytes: 5000,
            times: 1,
        },
    );
    let r = Reference::parse(&format!("{}/test/flaky:v1", srv.addr())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (pulled, _) = pull_events(&client(), &r, &Platform::arm64(), dir.path());
    check_pulled(&pulled.unwrap(), &pushed, "arm64", LayerCompression::Zstd);
    let layer_reqs = srv.requests_for(&layer_path);
    assert_eq!(layer_reqs.len(), 2, "{layer_reqs:?}");
    assert_eq!(layer_reqs[1].range.as_deref(), Some("bytes=5000-"));
    assert_eq!(layer_reqs[1].status, 206);
    assert_eq!(srv.requests_for("/v2/test/flaky/manifests/v1").len(), 2);
}

#[test]
fn cancelled_pull_stops() {
    let reg = TestRegistry::start();
    push(
        &reg,
        &single("test/cancel", "linux/arm64", 1, LayerCompression::Gzip),
    );
    let cancel = CancellationToken::new();
    cancel.cancel();
    let dir = tempfile::tempdir().unwrap();
    let r = reference(&reg.host(), "test/cancel", "v1");
    let e = rt()
        .block_on(client().pull(
            &r,
            &Platform::arm64(),
            dir.path(),
            &Progress::silent(),
            &cancel,
        ))
        .unwrap_err();
    assert!(e.is_cancelled(), "{e}");
}

#[test]
fn bearer_token_flow() {
    let reg = TestRegistry::start();
    let pushed = push(
        &reg,
        &single("test/tok", "linux/arm64", 2, LayerCompression::Gzip),
    );
    // Anonymous token: one token request serves the manifest, config and layers.
    let front = token_front(reg.host(), None);
    let r = Reference::parse(&format!("{}/test/tok:v1", front.addr)).unwrap();
    let registry = client().with_credentials(&front.addr.to_string(), Credentials::Anonymous);
    let dir = tempfile::tempdir().unwrap();
    let (pulled, _) = pull_events(&registry, &r, &Platform::arm64(), dir.path());
    check_pulled(&pulled.unwrap(), &pushed, "arm64", LayerCompression::Gzip);
    let reqs = front.token_requests.lock().unwrap().clone();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert!(reqs[0].contains("service=front"), "{reqs:?}");
    assert!(
        reqs[0].contains("scope=repository%3Atest%2Ftok%3Apull"),
        "{reqs:?}"
    );

    // A token server that wants credentials.
    let front = token_front(reg.host(), Some("bob:pw"));
    let r = Reference::parse(&format!("{}/test/tok:v1", front.addr)).unwrap();
    let host = front.addr.to_string();
    let e = rt()
        .block_on(
            client()
                .with_credentials(&host, Credentials::Anonymous)
                .resolve(&r, &Platform::arm64(), &CancellationToken::new()),
        )
        .unwrap_err();
    assert!(matches!(e, OciError::AuthRequired { .. }), "{e}");
    let bad = Credentials::Basic {
        user: "bob".into(),
        pass: "nope".into(),
    };
    let e = rt()
        .block_on(client().with_credentials(&host, bad).resolve(
            &r,
            &Platform::arm64(),
            &CancellationToken::new(),
        ))
        .unwrap_err();
    assert!(matches!(e, OciError::AuthFailed { .. }), "{e}");
    let good = Credentials::Basic {
        user: "bob".into(),
        pass: "pw".into(),
    };
    let pm = rt()
        .block_on(client().with_credentials(&host, good).resolve(
            &r,
            &Platform::arm64(),
            &CancellationToken::new(),
        ))
        .unwrap();
    assert_eq!(pm.manifest_digest, pushed.platforms[0].manifest_digest);
}
