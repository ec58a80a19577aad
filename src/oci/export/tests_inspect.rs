//! Reader and naming tests: archives made by skopeo, hostile or foreign layouts, file names.

use super::tests::{config_for, image, layer_tar, sha, TAG};
use super::*;
use crate::oci::image::Platform;
use std::process::Command;

/// Writes an OCI layout for `layers` (gzip) and has skopeo turn it into a docker-archive.
fn skopeo_archive(dir: &Path, layers: &[Vec<u8>], tag: Option<&str>) -> PathBuf {
    let oci = dir.join("oci");
    let blobs = oci.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |data: &[u8]| {
        let d = sha(data);
        std::fs::write(blobs.join(&d[7..]), data).unwrap();
        d
    };
    let mut descs = Vec::new();
    for raw in layers {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut e, raw).unwrap();
        let gz = e.finish().unwrap();
        descs.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": put(&gz), "size": gz.len()}));
    }
    let diff_ids: Vec<String> = layers.iter().map(|l| sha(l)).collect();
    let config = config_for(&diff_ids);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": put(&config), "size": config.len()},
        "layers": descs,
    })
    .to_string();
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": put(manifest.as_bytes()), "size": manifest.len()}]});
    std::fs::write(oci.join("index.json"), index.to_string()).unwrap();
    std::fs::write(oci.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let out = dir.join("skopeo.tar");
    let dest = match tag {
        Some(t) => format!("docker-archive:{}:{t}", out.display()),
        None => format!("docker-archive:{}", out.display()),
    };
    let status = Command::new("skopeo")
        .args(["copy", "-q", &format!("oci:{}", oci.display()), &dest])
        .status()
        .unwrap();
    assert!(status.success());
    out
}

#[test]
fn inspects_a_skopeo_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let layers = vec![
        layer_tar(&[("a", &[1u8; 5000])]),
        layer_tar(&[("b", b"b"), ("c", &[3u8; 70_000])]),
    ];
    let out = skopeo_archive(tmp.path(), &layers, Some(TAG));
    let info = inspect_docker_archive(&out).unwrap();
    assert_eq!(
        info,
        ArchiveInfo {
            repo_tag: Some(TAG.into()),
            tar_size: std::fs::metadata(&out).unwrap().len(),
            unpacked_size: layers.iter().map(|l| l.len() as u64).sum(),
            layers: 2,
        }
    );
}

#[test]
fn untagged_skopeo_archive_has_no_repo_tag() {
    let tmp = tempfile::tempdir().unwrap();
    let layers = vec![layer_tar(&[("a", b"a")])];
    let out = skopeo_archive(tmp.path(), &layers, None);
    let info = inspect_docker_archive(&out).unwrap();
    assert_eq!(info.repo_tag, None);
    assert_eq!(info.layers, 1);
    assert_eq!(info.unpacked_size, layers[0].len() as u64);
}

/// Our layout and skopeo's differ only in naming (layer ids, where the data sits); both carry
/// the same config and the same layer contents, which is all the engine keeps.
#[test]
fn same_content_as_skopeo() {
    let tmp = tempfile::tempdir().unwrap();
    let raws = vec![layer_tar(&[("x", b"x")]), layer_tar(&[("y", &[9u8; 3000])])];
    let theirs = skopeo_archive(tmp.path(), &raws, Some(TAG));
    let img = image(
        tmp.path(),
        &[
            (raws[0].clone(), LayerCompression::Gzip),
            (raws[1].clone(), LayerCompression::Zstd),
        ],
    );
    let ours = tmp.path().join("ours.tar");
    write_docker_archive(
        &img,
        TAG,
        &ours,
        &Progress::silent(),
        &CancellationToken::new(),
    )
    .unwrap();
    let script = r#"
import sys, tarfile, json, hashlib, posixpath
def view(p):
    t = tarfile.open(p)
    m = json.load(t.extractfile('manifest.json'))[0]
    def data(name):
        i = t.getmember(name)
        while i.issym():
            i = t.getmember(posixpath.normpath(posixpath.join(posixpath.dirname(i.name), i.linkname)))
        return t.extractfile(i).read()
    return [m['Config'], m['RepoTags'], hashlib.sha256(data(m['Config'])).hexdigest(),
            [hashlib.sha256(data(l)).hexdigest() for l in m['Layers']]]
print(json.dumps([view(sys.argv[1]), view(sys.argv[2])]))
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(&ours)
        .arg(&theirs)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0], v[1]);
    assert_eq!(v[0][3][1], sha(&raws[1])[7..]);
}

/// A tar with members named exactly as given (the tar crate's path setters drop `./`).
fn tar_with(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in members {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn refuses_what_the_loader_cannot_read() {
    let tmp = tempfile::tempdir().unwrap();
    let manifest = br#"[{"Config":"c.json","RepoTags":["a/b:1"],"Layers":["l/layer.tar"]}]"#;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "dotted",
            tar_with(&[("./manifest.json", manifest), ("l/layer.tar", b"x")]),
            "not named exactly",
        ),
        (
            "oci",
            tar_with(&[("index.json", b"{}"), ("oci-layout", b"{}")]),
            "no top-level manifest.json",
        ),
        (
            "gzip",
            {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                std::io::Write::write_all(&mut e, &tar_with(&[("manifest.json", manifest)]))
                    .unwrap();
                e.finish().unwrap()
            },
            "gzip compressed",
        ),
        (
            "missing-layer",
            tar_with(&[("manifest.json", manifest)]),
            "member \"l/layer.tar\" is missing",
        ),
        (
            "not-json",
            tar_with(&[("manifest.json", b"{not json")]),
            "not JSON",
        ),
        ("empty", Vec::new(), "no top-level manifest.json"),
    ];
    for (name, data, want) in cases {
        let p = tmp.path().join(format!("{name}.tar"));
        std::fs::write(&p, data).unwrap();
        let err = inspect_docker_archive(&p).unwrap_err();
        assert_eq!(err.class(), ErrorClass::BadInput, "{name}: {err}");
        assert!(err.to_string().contains(want), "{name}: {err}");
    }
    let err = inspect_docker_archive(&tmp.path().join("absent.tar")).unwrap_err();
    assert!(matches!(err, ExportError::Io { .. }), "{err}");
}

#[test]
fn follows_links_but_not_out_of_the_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let add = |b: &mut tar::Builder<Vec<u8>>,
               name: &str,
               kind: tar::EntryType,
               link: &str,
               data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        if !link.is_empty() {
            h.set_link_name(link).unwrap();
        }
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
    };
    let m = br#"[{"Config":"c.json","RepoTags":null,"Layers":["a/layer.tar","b/layer.tar"]}]"#;
    add(&mut b, "manifest.json", tar::EntryType::Regular, "", m);
    add(
        &mut b,
        "blob.tar",
        tar::EntryType::Regular,
        "",
        &[0u8; 1536],
    );
    add(
        &mut b,
        "a/layer.tar",
        tar::EntryType::Symlink,
        "../blob.tar",
        b"",
    );
    add(&mut b, "b/layer.tar", tar::EntryType::Link, "blob.tar", b"");
    let p = tmp.path().join("links.tar");
    std::fs::write(&p, b.into_inner().unwrap()).unwrap();
    let info = inspect_docker_archive(&p).unwrap();
    assert_eq!(
        (info.repo_tag, info.unpacked_size, info.layers),
        (None, 3072, 2)
    );

    let mut b = tar::Builder::new(Vec::new());
    let m = br#"[{"Config":"c.json","RepoTags":["a/b:1"],"Layers":["a/layer.tar"]}]"#;
    add(&mut b, "manifest.json", tar::EntryType::Regular, "", m);
    add(
        &mut b,
        "a/layer.tar",
        tar::EntryType::Symlink,
        "../../etc/passwd",
        b"",
    );
    let p = tmp.path().join("escape.tar");
    std::fs::write(&p, b.into_inner().unwrap()).unwrap();
    let err = inspect_docker_archive(&p).unwrap_err();
    assert!(err.to_string().contains("escapes"), "{err}");

    let mut b = tar::Builder::new(Vec::new());
    add(&mut b, "manifest.json", tar::EntryType::Regular, "", m);
    add(
        &mut b,
        "a/layer.tar",
        tar::EntryType::Symlink,
        "layer.tar",
        b"",
    );
    let p = tmp.path().join("loop.tar");
    std::fs::write(&p, b.into_inner().unwrap()).unwrap();
    let err = inspect_docker_archive(&p).unwrap_err();
    assert!(err.to_string().contains("too many links"), "{err}");
}

#[test]
fn archive_file_names() {
    let arm = Platform::arm64();
    let amd = Platform {
        os: "linux".into(),
        architecture: "amd64".into(),
        variant: None,
    };
    let cases = [
        (
            "ghcr.io/offspot/kiwix-serve:3.8.1",
            &arm,
            "ghcr.io_offspot_kiwix-serve_3.8.1_linuxarm64v8.tar",
        ),
        (
            "ghcr.io/offspot/base-httpd:dev",
            &arm,
            "ghcr.io_offspot_base-httpd_dev_linuxarm64v8.tar",
        ),
        (
            "ghcr.io/offspot/kiwix-serve:3.8.1",
            &amd,
            "ghcr.io_offspot_kiwix-serve_3.8.1_linuxamd64.tar",
        ),
        (
            "index.docker.io/library/alpine:3.18",
            &arm,
            "index.docker.io_library_alpine_3.18_linuxarm64v8.tar",
        ),
        (
            "localhost:5000/a/b/c:v1",
            &arm,
            "localhost5000_a_b_c_v1_linuxarm64v8.tar",
        ),
        ("ghcr.io/o/x", &arm, "ghcr.io_o_x_latest_linuxarm64v8.tar"),
        (
            "ghcr.io/o/x:1@sha256:abcd",
            &arm,
            "ghcr.io_o_x_sha256abcd_linuxarm64v8.tar",
        ),
        (
            "ghcr.io/o/x@sha256:abcd",
            &arm,
            "ghcr.io_o_x_sha256abcd_linuxarm64v8.tar",
        ),
        (
            "ghcr.io/o/we|ird*?<>\"\\:1",
            &arm,
            "ghcr.io_o_weird_1_linuxarm64v8.tar",
        ),
    ];
    for (reference, platform, want) in cases {
        assert_eq!(archive_file_name(reference, platform), want, "{reference}");
    }
    let long = format!("ghcr.io/o/{}:1", "é".repeat(200));
    let name = archive_file_name(&long, &arm);
    assert!(name.len() <= 255 && name.ends_with(".tar"), "{name}");
}
