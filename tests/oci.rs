//! OCI images through the real binary: pulled from Debian's docker-registry on loopback (images pushed with
//! skopeo), embedded as the docker-archive the device loads, cached, sized, checked.

mod support;

use std::path::Path;

use support::fixtures::*;
use support::registry::{platform, push, simple_layers, ImageSpec, TestRegistry};

use image_creator::oci::LayerCompression;

fn multi_arch(reg: &TestRegistry) -> support::registry::PushedImage {
    push(
        reg,
        &ImageSpec {
            repo: "offspot/hello".into(),
            tag: "1.0".into(),
            platforms: vec![
                (platform("linux/arm64/v8"), simple_layers(3, "arm64")),
                (platform("linux/amd64"), simple_layers(2, "amd64")),
            ],
            compression: LayerCompression::Gzip,
        },
    )
}

fn config(dir: &Path, ident: &str, extra: &str) -> std::path::PathBuf {
    demo_config(
        dir,
        &format!(
            "oci_images:\n  - {ident}\noffspot:\n  containers:\n    services:\n      hello:\n        image: {ident}\n\
             \x20       ports: [\"80:80\"]\n{extra}"
        ),
    )
}

/// `[0].RepoTags[0]` as the device's loader reads it (plain tar, member named exactly manifest.json).
fn loader_tag(tar: &Path) -> String {
    python(&format!(
        "import json, tarfile\nt = tarfile.open({:?}, 'r:')\nprint(json.load(t.extractfile('manifest.json'))[0]['RepoTags'][0])",
        tar.display().to_string()
    ))
    .trim()
    .to_string()
}

#[test]
fn pulled_image_is_embedded_as_the_device_loads_it_and_cached() {
    let reg = TestRegistry::start();
    let pushed = multi_arch(&reg);
    let ident = pushed.reference.clone();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &ident, "");
    let cache = dir.path().join("cache");
    let img = dir.path().join("out.img");
    let out = run(&[
        "--cache-dir",
        cache.to_str().unwrap(),
        cfg.to_str().unwrap(),
        img.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        !text(&out).contains("cannot pull it offline"),
        "the compose image was not recognised: {}",
        text(&out)
    );

    let name = format!(
        "{}_offspot_hello_1.0_linuxarm64v8.tar",
        reg.host().replace(':', "")
    );
    let tar = dir.path().join("embedded.tar");
    std::fs::write(
        &tar,
        debugfs_cat(&img, p3_offset(&img), &format!("/images/{name}")),
    )
    .unwrap();
    assert!(
        std::fs::metadata(&tar).unwrap().len() > 0,
        "/images/{name} missing"
    );
    assert_eq!(loader_tag(&tar), ident);
    let inspect = sh(&format!("skopeo inspect docker-archive:{}", tar.display()));
    let inspect: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(inspect["Architecture"], "arm64");
    // Each layer.tar holds the pushed (uncompressed) bytes: its sha256 is the pushed diff_id.
    let arm = pushed.platform("arm64");
    let sums = python(&format!(
        "import hashlib, json, tarfile\nt = tarfile.open({:?}, 'r:')\nm = json.load(t.extractfile('manifest.json'))[0]\n\
         print(' '.join('sha256:' + hashlib.sha256(t.extractfile(l).read()).hexdigest() for l in m['Layers']))",
        tar.display().to_string()
    ));
    assert_eq!(
        sums.split_whitespace().collect::<Vec<_>>(),
        arm.diff_ids.iter().map(String::as_str).collect::<Vec<_>>()
    );

    // Cached: with the registry gone, an offline build embeds the same archive.
    let index = std::fs::read_to_string(cache.join("index.json")).unwrap();
    assert!(
        index.contains("oci_image") && index.contains(&arm.manifest_digest),
        "{index}"
    );
    drop(reg);
    let img2 = dir.path().join("offline.img");
    let out = run(&[
        "--offline",
        "--cache-dir",
        cache.to_str().unwrap(),
        cfg.to_str().unwrap(),
        img2.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        debugfs_cat(&img2, p3_offset(&img2), &format!("/images/{name}"))
            == std::fs::read(&tar).unwrap()
    );
}

#[test]
fn check_reports_missing_tags_and_platforms_with_exit_4() {
    let reg = TestRegistry::start();
    let pushed = multi_arch(&reg);
    let amd_only = push(
        &reg,
        &ImageSpec {
            repo: "offspot/amd-only".into(),
            tag: "2".into(),
            platforms: vec![(platform("linux/amd64"), simple_layers(1, "amd"))],
            compression: LayerCompression::Gzip,
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("out.img");

    let cfg = config(dir.path(), &pushed.reference, "");
    let out = run(&["--check", cfg.to_str().unwrap(), img.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));

    let unknown = pushed.reference.replace(":1.0", ":9.9");
    let cfg = config(dir.path(), &unknown, "");
    let out = run(&["--check", cfg.to_str().unwrap(), img.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains("9.9"), "{}", text(&out));

    let cfg = config(dir.path(), &amd_only.reference, "");
    let out = run(&["--check", cfg.to_str().unwrap(), img.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(
        text(&out).contains("linux/amd64"),
        "available platforms not listed: {}",
        text(&out)
    );
    assert!(!img.exists());
}

#[test]
fn oci_sizes_output_is_a_valid_oci_images_list() {
    let reg = TestRegistry::start();
    let pushed = multi_arch(&reg);
    let out = run(&["oci-sizes", &pushed.reference]);
    assert!(out.status.success(), "{}", text(&out));
    let yaml = String::from_utf8(out.stdout).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Pasted into a config, it builds.
    let cfg = demo_config(dir.path(), &yaml);
    let img = dir.path().join("out.img");
    let out = run(&[cfg.to_str().unwrap(), img.to_str().unwrap()]);
    assert!(out.status.success(), "{yaml}\n{}", text(&out));
    let checked = python(&format!(
        "import yaml\nd = yaml.safe_load('''{yaml}''')\ni = d['oci_images'][0]\n\
         print(i['ident'], i['filesize'] > 0, i['fullsize'] > 0)"
    ));
    assert_eq!(checked.trim(), format!("{} True True", pushed.reference));
}

#[test]
fn declared_sizes_far_from_the_real_ones_are_warned_about() {
    let reg = TestRegistry::start();
    let pushed = multi_arch(&reg);
    let dir = tempfile::tempdir().unwrap();
    let cfg = demo_config(
        dir.path(),
        &format!(
            "oci_images:\n  - ident: {}\n    filesize: 10\n    fullsize: 10\n",
            pushed.reference
        ),
    );
    let img = dir.path().join("out.img");
    let out = run(&[cfg.to_str().unwrap(), img.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let warnings = warnings(&out);
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("oci_images[0].filesize")),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("oci_images[0].fullsize")),
        "{warnings:?}"
    );
}

/// A prebuilt docker-archive given by `url:` gets the same check as a pulled image.
#[test]
fn declared_sizes_of_a_url_archive_are_checked_too() {
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("app.tar");
    docker_archive(&tar, "example.org/app:1.0");
    let cfg = demo_config(
        dir.path(),
        &format!(
            "oci_images:\n  - ident: example.org/app:1.0\n    url: file://{}\n    filesize: 10\n    fullsize: 10\n",
            tar.display()
        ),
    );
    let img = dir.path().join("out.img");
    let out = run(&[cfg.to_str().unwrap(), img.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let warnings = warnings(&out);
    for what in ["oci_images[0].filesize", "oci_images[0].fullsize"] {
        assert!(
            warnings.iter().any(|w| w.contains(what)),
            "{what}: {warnings:?}"
        );
    }
}
