//! Writer tests: fixtures are real layer tars, compressed, with a config carrying correct
//! diff_ids; outputs are checked with skopeo and with Python's tarfile as the device reads them.

use super::*;
// sha2 directly, as an independent judge of crate::digest.
use crate::oci::image::Platform;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::process::Command;

pub(super) const TAG: &str = "ghcr.io/offspot/test-image:1.2.3";

/// A layer tar holding `files`.
pub(super) fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

pub(super) fn sha(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

fn compress(data: &[u8], c: LayerCompression) -> Vec<u8> {
    match c {
        LayerCompression::None => data.to_vec(),
        LayerCompression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        LayerCompression::Zstd => zstd::encode_all(data, 3).unwrap(),
    }
}

pub(super) fn config_for(diff_ids: &[String]) -> Vec<u8> {
    // Not serde-ordered on purpose: the member must be these exact bytes.
    format!(
        "{{\"os\":\"linux\",\"architecture\":\"arm64\",\"variant\":\"v8\",\
         \"config\":{{\"Cmd\":[\"/bin/sh\"]}},\"created\":\"2024-01-01T00:00:00Z\",\
         \"rootfs\":{{\"type\":\"layers\",\"diff_ids\":{}}},\"history\":[{{\"created_by\":\"t\"}}]}}",
        serde_json::to_string(diff_ids).unwrap()
    )
    .into_bytes()
}

/// Writes each (uncompressed layer, compression) as a blob in `dir` and returns the image.
pub(super) fn image(dir: &Path, layers: &[(Vec<u8>, LayerCompression)]) -> PulledImage {
    let mut blobs = Vec::new();
    for (i, (raw, c)) in layers.iter().enumerate() {
        let data = compress(raw, *c);
        let path = dir.join(format!("blob{i}"));
        std::fs::write(&path, &data).unwrap();
        blobs.push(LayerBlob {
            path,
            digest: sha(&data),
            media_type: "application/vnd.oci.image.layer.v1.tar".into(),
            compression: *c,
            size: data.len() as u64,
        });
    }
    let diff_ids: Vec<String> = layers.iter().map(|(raw, _)| sha(raw)).collect();
    let config = config_for(&diff_ids);
    PulledImage {
        reference: TAG.into(),
        platform: Platform::arm64(),
        manifest_digest: sha(b"manifest"),
        config_digest: sha(&config),
        config,
        layers: blobs,
    }
}

fn python(script: &str, args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Reads the archive as the device's loader does, and dumps every member.
fn loader_view(path: &Path, dir: &Path) -> serde_json::Value {
    let script = r#"
import sys, tarfile, json, hashlib
t = tarfile.open(sys.argv[1])
m = json.load(t.extractfile('manifest.json'))
members = {}
for i in t.getmembers():
    d = t.extractfile(i).read() if i.isfile() else b''
    open(sys.argv[2] + '/' + hashlib.sha256(i.name.encode()).hexdigest(), 'wb').write(d)
    members[i.name] = [i.type.decode(), i.mode, i.uid, i.gid, i.mtime, i.size, hashlib.sha256(d).hexdigest()]
print(json.dumps({'tag': m[0]['RepoTags'][0], 'manifest': m, 'members': members,
                  'names': [i.name for i in t.getmembers()]}))
"#;
    let out = python(script, &[path.to_str().unwrap(), dir.to_str().unwrap()]);
    serde_json::from_str(&out).unwrap()
}

/// `skopeo inspect docker-archive:PATH:TAG`: skopeo looks the image up by its RepoTag.
fn skopeo_inspect(path: &Path, tag: &str) -> serde_json::Value {
    let out = Command::new("skopeo")
        .arg("inspect")
        .arg(format!("docker-archive:{}:{tag}", path.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo inspect: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

pub(super) fn export_and_check(layers: Vec<(Vec<u8>, LayerCompression)>) {
    let tmp = tempfile::tempdir().unwrap();
    let img = image(tmp.path(), &layers);
    let out = tmp.path().join("out.tar");
    let exported = write_docker_archive(
        &img,
        TAG,
        &out,
        &Progress::silent(),
        &CancellationToken::new(),
    )
    .unwrap();
    assert_eq!(exported.tar_size, std::fs::metadata(&out).unwrap().len());
    let raw_total: u64 = layers.iter().map(|(r, _)| r.len() as u64).sum();
    assert_eq!(exported.unpacked_size, raw_total);

    let insp = skopeo_inspect(&out, TAG);
    assert_eq!(insp["Architecture"], "arm64");
    assert_eq!(insp["Os"], "linux");
    assert_eq!(insp["Name"], "ghcr.io/offspot/test-image", "{insp}");
    let want: Vec<String> = layers.iter().map(|(r, _)| sha(r)).collect();
    assert_eq!(insp["Layers"], serde_json::json!(want));
    // A tag the archive does not hold is not found: skopeo really matched our RepoTag.
    let other = Command::new("skopeo")
        .arg("inspect")
        .arg(format!(
            "docker-archive:{}:ghcr.io/offspot/test-image:9",
            out.display()
        ))
        .output()
        .unwrap();
    assert!(!other.status.success());

    let dump = tempfile::tempdir().unwrap();
    let view = loader_view(&out, dump.path());
    assert_eq!(view["tag"], TAG);
    let diff_ids: Vec<String> = layers.iter().map(|(r, _)| sha(r)).collect();
    let ids = layer_ids(&diff_ids);
    let config_name = format!("{}.json", &img.config_digest[7..]);
    let want_layers: Vec<String> = ids.iter().map(|i| format!("{i}/layer.tar")).collect();
    assert_eq!(
        view["manifest"],
        serde_json::json!([{"Config": config_name, "RepoTags": [TAG], "Layers": want_layers}])
    );
    let members = view["members"].as_object().unwrap();
    let content_sha = |name: &str| members[name][6].as_str().unwrap().to_string();
    for (i, (raw, _)) in layers.iter().enumerate() {
        let name = format!("{}/layer.tar", ids[i]);
        assert_eq!(format!("sha256:{}", content_sha(&name)), sha(raw), "{name}");
        assert_eq!(members[&name][5], raw.len() as u64);
        let dumped = dump
            .path()
            .join(hex::encode(Sha256::digest(name.as_bytes())));
        assert_eq!(std::fs::read(dumped).unwrap(), *raw, "{name} bytes");
        assert_eq!(
            content_sha(&format!("{}/VERSION", ids[i])),
            hex::encode(Sha256::digest(b"1.0"))
        );
    }
    assert_eq!(content_sha(&config_name), img.config_digest[7..]);
    let repositories: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            dump.path()
                .join(hex::encode(Sha256::digest(b"repositories"))),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        repositories,
        serde_json::json!({"ghcr.io/offspot/test-image": {"1.2.3": ids.last().unwrap()}})
    );
    // Reproducible, plain members: no `./`, owned by root, mtime 0, 0644 files / 0755 dirs.
    for (name, m) in members {
        assert!(!name.starts_with("./") && !name.starts_with('/'), "{name}");
        let dir = m[0] == "5";
        assert!(dir || m[0] == "0", "{name}: type {}", m[0]);
        assert_eq!(m[1], if dir { 0o755 } else { 0o644 }, "{name}");
        assert_eq!(
            (&m[2], &m[3], &m[4]),
            (&0.into(), &0.into(), &0.into()),
            "{name}"
        );
    }
    // The same image exported twice gives the same bytes.
    let again = tmp.path().join("again.tar");
    write_docker_archive(
        &img,
        TAG,
        &again,
        &Progress::silent(),
        &CancellationToken::new(),
    )
    .unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&again).unwrap());

    let info = inspect_docker_archive(&out).unwrap();
    assert_eq!(
        info,
        ArchiveInfo {
            repo_tag: Some(TAG.into()),
            tar_size: exported.tar_size,
            unpacked_size: raw_total,
            layers: layers.len(),
        }
    );
}

#[test]
fn one_gzip_layer() {
    export_and_check(vec![(
        layer_tar(&[("etc/hostname", b"hotspot\n")]),
        LayerCompression::Gzip,
    )]);
}

#[test]
fn three_layers_gzip_zstd_uncompressed() {
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    export_and_check(vec![
        (
            layer_tar(&[("bin/a", b"a"), ("bin/b", &big)]),
            LayerCompression::Gzip,
        ),
        (
            layer_tar(&[("usr/c", &big[..1000])]),
            LayerCompression::Zstd,
        ),
        (layer_tar(&[("data/d", b"d\n")]), LayerCompression::None),
    ]);
}

#[test]
fn layer_ids_follow_the_rule() {
    let d1 = sha(b"one");
    let d2 = sha(b"two");
    let ids = layer_ids(&[&d1, &d2]);
    let first = hex::encode(Sha256::digest(format!("\n{d1}\n")));
    let second = hex::encode(Sha256::digest(format!("{first}\n{d2}\n")));
    assert_eq!(ids, vec![first, second]);
}

#[test]
fn diff_id_mismatch_fails_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let good = layer_tar(&[("a", b"a")]);
    let other = layer_tar(&[("b", b"b")]);
    let mut img = image(
        tmp.path(),
        &[
            (good.clone(), LayerCompression::Gzip),
            (good, LayerCompression::Zstd),
        ],
    );
    // The second blob now holds other content than the config promises.
    std::fs::write(
        &img.layers[1].path,
        zstd::encode_all(&other[..], 3).unwrap(),
    )
    .unwrap();
    img.layers[1].size = std::fs::metadata(&img.layers[1].path).unwrap().len();
    let out = tmp.path().join("out.tar");
    let err = write_docker_archive(
        &img,
        TAG,
        &out,
        &Progress::silent(),
        &CancellationToken::new(),
    )
    .unwrap_err();
    assert!(
        matches!(err, ExportError::DiffIdMismatch { index: 1, .. }),
        "{err}"
    );
    assert_eq!(err.class(), ErrorClass::Failure);
    assert!(err.to_string().contains(&img.layers[1].digest), "{err}");
    assert!(!out.exists());
}

#[test]
fn corrupt_blob_and_bad_config_fail() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = layer_tar(&[("a", b"a")]);
    let mut img = image(tmp.path(), &[(raw, LayerCompression::Gzip)]);
    let out = tmp.path().join("out.tar");
    std::fs::write(&img.layers[0].path, b"\x1f\x8bnot really gzip").unwrap();
    let err = write_docker_archive(
        &img,
        TAG,
        &out,
        &Progress::silent(),
        &CancellationToken::new(),
    )
    .unwrap_err();
    assert!(matches!(err, ExportError::Decode { .. }), "{err}");
    assert!(!out.exists());

    img.config = b"{\"rootfs\":{\"diff_ids\":[]}}".to_vec();
    img.config_digest = sha(&img.config);
    let err = write_docker_archive(
        &img,
        TAG,
        &out,
        &Progress::silent(),
        &CancellationToken::new(),
    )
    .unwrap_err();
    assert!(matches!(err, ExportError::BadImage { .. }), "{err}");
    img.config_digest = sha(b"something else");
    let err = write_docker_archive(
        &img,
        TAG,
        &out,
        &Progress::silent(),
        &CancellationToken::new(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("config blob is"), "{err}");
    assert!(!out.exists());
}

#[test]
fn existing_output_is_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let img = image(
        tmp.path(),
        &[(layer_tar(&[("a", b"a")]), LayerCompression::None)],
    );
    let out = tmp.path().join("out.tar");
    std::fs::write(&out, b"precious").unwrap();
    let err = write_docker_archive(
        &img,
        TAG,
        &out,
        &Progress::silent(),
        &CancellationToken::new(),
    )
    .unwrap_err();
    assert!(matches!(err, ExportError::Io { .. }), "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
}

#[test]
fn digest_or_untagged_repo_tags_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let img = image(
        tmp.path(),
        &[(layer_tar(&[("a", b"a")]), LayerCompression::None)],
    );
    for bad in [
        "ghcr.io/offspot/x@sha256:0000",
        "ghcr.io/offspot/x:1@sha256:0000",
        "localhost:5000/x",
        "x:",
        "x:-bad",
    ] {
        let out = tmp.path().join("out.tar");
        let err = write_docker_archive(
            &img,
            bad,
            &out,
            &Progress::silent(),
            &CancellationToken::new(),
        )
        .unwrap_err();
        assert_eq!(err.class(), ErrorClass::BadInput, "{bad}: {err}");
        assert!(!out.exists());
    }
    assert_eq!(
        split_repo_tag("localhost:5000/a/b:v1").unwrap(),
        ("localhost:5000/a/b", "v1")
    );
}

#[test]
fn cancel_stops_and_removes_the_output() {
    let tmp = tempfile::tempdir().unwrap();
    let img = image(
        tmp.path(),
        &[(layer_tar(&[("a", b"a")]), LayerCompression::Gzip)],
    );
    let out = tmp.path().join("out.tar");
    let cancel = CancellationToken::new();
    cancel.cancel();
    let err = write_docker_archive(&img, TAG, &out, &Progress::silent(), &cancel).unwrap_err();
    assert!(matches!(err, ExportError::Cancelled { .. }), "{err}");
    assert!(!out.exists());
}

#[test]
fn progress_counts_compressed_bytes() {
    use std::sync::Mutex;
    let tmp = tempfile::tempdir().unwrap();
    let img = image(
        tmp.path(),
        &[
            (layer_tar(&[("a", &[1u8; 100_000])]), LayerCompression::Gzip),
            (layer_tar(&[("b", &[2u8; 50_000])]), LayerCompression::Zstd),
        ],
    );
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    let progress = Progress::new(move |e| sink.lock().unwrap().push(e.clone()));
    let out = tmp.path().join("out.tar");
    write_docker_archive(&img, TAG, &out, &progress, &CancellationToken::new()).unwrap();
    let total: u64 = img.layers.iter().map(|l| l.size).sum();
    let events = events.lock().unwrap();
    use crate::progress::Event;
    assert!(events.iter().any(|e| matches!(e,
        Event::TaskStarted { kind: TaskKind::Copy, total: Some(t), .. } if *t == total)));
    let last_done = events.iter().rev().find_map(|e| match e {
        Event::TaskProgress { done, .. } => Some(*done),
        _ => None,
    });
    assert_eq!(last_done, Some(total));
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::TaskFinished { ok: true, .. })));
}

/// A ~200 MiB layer goes through with bounded memory: the peak RSS growth must stay far below
/// the layer's size (the writer never holds a layer).
#[test]
fn big_layer_streams_with_bounded_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let raw_path = tmp.path().join("raw.tar");
    // Build the 200 MiB layer tar on disk, not in memory.
    {
        let f = File::create(&raw_path).unwrap();
        let mut b = tar::Builder::new(std::io::BufWriter::new(f));
        let size: u64 = 200 << 20;
        let mut h = tar::Header::new_gnu();
        h.set_size(size);
        h.set_mode(0o644);
        h.set_cksum();
        let data = std::io::repeat(0x5a).take(size);
        b.append_data(&mut h, "big.bin", data).unwrap();
        b.into_inner().unwrap().flush().unwrap();
    }
    let raw_len = std::fs::metadata(&raw_path).unwrap().len();
    let gz_path = tmp.path().join("blob.gz");
    let mut hasher = Sha256::new();
    {
        let mut src = File::open(&raw_path).unwrap();
        let mut enc = flate2::write::GzEncoder::new(
            File::create(&gz_path).unwrap(),
            flate2::Compression::fast(),
        );
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = src.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            enc.write_all(&buf[..n]).unwrap();
        }
        enc.finish().unwrap();
    }
    std::fs::remove_file(&raw_path).unwrap();
    let diff_id = format!("sha256:{}", hex::encode(hasher.finalize()));
    let config = config_for(std::slice::from_ref(&diff_id));
    let img = PulledImage {
        reference: TAG.into(),
        platform: Platform::arm64(),
        manifest_digest: sha(b"m"),
        config_digest: sha(&config),
        config,
        layers: vec![LayerBlob {
            path: gz_path.clone(),
            digest: "sha256:unchecked".into(),
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            compression: LayerCompression::Gzip,
            size: std::fs::metadata(&gz_path).unwrap().len(),
        }],
    };
    let before = peak_rss_kib();
    let out = tmp.path().join("out.tar");
    let exported = write_docker_archive(
        &img,
        TAG,
        &out,
        &Progress::silent(),
        &CancellationToken::new(),
    )
    .unwrap();
    let growth = peak_rss_kib().saturating_sub(before);
    assert_eq!(exported.unpacked_size, raw_len);
    assert!(growth < 64 * 1024, "peak RSS grew by {growth} KiB");
    let info = inspect_docker_archive(&out).unwrap();
    assert_eq!(info.unpacked_size, raw_len);
}

/// Peak resident set of this process (VmHWM), in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}
