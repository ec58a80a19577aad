//! An image whose manifest names the same layer twice, as schema-1 conversions do with their empty
//! layers, pulled through the real binary from Debian's docker-registry on loopback (pushed with skopeo).
//! Two downloads of the one blob used to race on one temp path and fail about half the runs, so the
//! image is built and sized several times in a row.

mod support;

use std::path::Path;

use support::fixtures::*;
use support::registry::{platform, push, simple_layers, ImageSpec, PushedImage, TestRegistry};

use image_creator::oci::{LayerCompression, Platform, Reference, Registry};
use image_creator::progress::{Event, Progress, TaskKind};
use image_creator::CancellationToken;
use std::sync::{Arc, Mutex};

/// Runs in a row: one failure in two runs before the fix, so 10 successes leave it a 1/1024 chance.
const RUNS: usize = 10;

/// Layers: a, empty, b, empty, empty. The empty tar repeats with one digest, like the
/// `throwaway` layers of a schema-1 image converted to schema 2.
fn repeated_layer_image(reg: &TestRegistry) -> PushedImage {
    let mut distinct = simple_layers(2, "repeated").into_iter();
    let (a, b) = (distinct.next().unwrap(), distinct.next().unwrap());
    let pushed = push(
        reg,
        &ImageSpec {
            repo: "offspot/repeated".into(),
            tag: "1.0".into(),
            platforms: vec![(
                platform("linux/arm64/v8"),
                vec![a, vec![], b, vec![], vec![]],
            )],
            compression: LayerCompression::Gzip,
        },
    );
    let layers = &pushed.platform("arm64").layers;
    assert_eq!(layers.len(), 5, "the registry kept every layer entry");
    assert_eq!(layers[1].0, layers[3].0, "the empty layer is one blob");
    assert_eq!(layers[1].0, layers[4].0, "the empty layer is one blob");
    pushed
}

fn config(dir: &Path, ident: &str) -> std::path::PathBuf {
    demo_config(
        dir,
        &format!(
            "oci_images:\n  - {ident}\noffspot:\n  containers:\n    services:\n      hello:\n        image: {ident}\n\
             \x20       ports: [\"80:80\"]\n"
        ),
    )
}

/// The archive as the device's loader and skopeo read it: every layer listed in manifest order,
/// each named member present, each holding the pushed diff_id's bytes.
fn judge_archive(tar: &Path, pushed: &PushedImage) {
    let arm = pushed.platform("arm64");
    let sums = python(&format!(
        "import hashlib, json, tarfile\nt = tarfile.open({:?}, 'r:')\nm = json.load(t.extractfile('manifest.json'))[0]\n\
         names = set(t.getnames())\nmissing = [l for l in m['Layers'] if l not in names]\nassert not missing, missing\n\
         print(' '.join('sha256:' + hashlib.sha256(t.extractfile(l).read()).hexdigest() for l in m['Layers']))",
        tar.display().to_string()
    ));
    assert_eq!(
        sums.split_whitespace().collect::<Vec<_>>(),
        arm.diff_ids.iter().map(String::as_str).collect::<Vec<_>>(),
        "manifest.json's Layers, in order, are the config's diff_ids"
    );
    let inspect = sh(&format!("skopeo inspect docker-archive:{}", tar.display()));
    let inspect: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(inspect["Architecture"], "arm64");
    assert_eq!(
        inspect["Layers"].as_array().map(Vec::len),
        Some(arm.diff_ids.len()),
        "skopeo sees every layer: {inspect}"
    );
}

#[test]
fn a_repeated_layer_builds_every_time_and_the_archive_keeps_each_entry() {
    let reg = TestRegistry::start();
    let pushed = repeated_layer_image(&reg);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &pushed.reference);
    let name = format!(
        "{}_offspot_repeated_1.0_linuxarm64v8.tar",
        reg.host().replace(':', "")
    );
    let mut failures = Vec::new();
    for run_no in 0..RUNS {
        let img = dir.path().join(format!("out{run_no}.img"));
        // No cache: every build pulls the image again. Sequential downloads (`-T 1`) raced too: the
        // layers of one image are fetched in parallel whatever the setting.
        let threads = if run_no % 2 == 0 { "0" } else { "1" };
        let out = run(&["-T", threads, cfg.to_str().unwrap(), img.to_str().unwrap()]);
        if !out.status.success() {
            failures.push(format!("build {run_no}: {}", text(&out)));
            continue;
        }
        if run_no == 0 {
            let tar = dir.path().join("embedded.tar");
            std::fs::write(
                &tar,
                debugfs_cat(&img, p3_offset(&img), &format!("/images/{name}")),
            )
            .unwrap();
            judge_archive(&tar, &pushed);
        }
        let _ = std::fs::remove_file(&img);
    }
    assert!(
        failures.is_empty(),
        "{} of {RUNS} builds failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn a_repeated_layer_is_sized_every_time() {
    let reg = TestRegistry::start();
    let pushed = repeated_layer_image(&reg);
    let mut failures = Vec::new();
    let mut lines = Vec::new();
    for run_no in 0..RUNS {
        let out = run(&["oci-sizes", &pushed.reference]);
        if out.status.success() {
            lines.push(String::from_utf8_lossy(&out.stdout).to_string());
        } else {
            failures.push(format!("oci-sizes {run_no}: {}", text(&out)));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {RUNS} runs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    lines.dedup();
    assert_eq!(lines.len(), 1, "the same sizes each time: {lines:?}");
}

/// Through the library: every manifest entry comes back in order, the repeats share the one file,
/// each blob is one download task, and no temp file is left.
#[test]
fn a_repeated_layer_is_pulled_once_and_listed_each_time() {
    let reg = TestRegistry::start();
    let pushed = repeated_layer_image(&reg);
    let arm = pushed.platform("arm64");
    let r = Reference::parse(&pushed.reference).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = events.clone();
    let progress = Progress::new(move |e: &Event| ev.lock().unwrap().push(e.clone()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let pulled = rt
        .block_on(Registry::new(vec![]).unwrap().pull(
            &r,
            &Platform::arm64(),
            dir.path(),
            &progress,
            &CancellationToken::new(),
        ))
        .unwrap();
    let got: Vec<(&str, u64)> = pulled
        .layers
        .iter()
        .map(|l| (l.digest.as_str(), l.size))
        .collect();
    let want: Vec<(&str, u64)> = arm
        .layers
        .iter()
        .map(|(d, _, s)| (d.as_str(), *s))
        .collect();
    assert_eq!(got, want);
    assert_eq!(pulled.layers[1].path, pulled.layers[3].path);
    assert_eq!(pulled.layers[1].path, pulled.layers[4].path);
    let downloads = events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| {
            matches!(e, Event::TaskStarted { kind: TaskKind::Download, label, .. } if label.contains(" layer "))
        })
        .count();
    assert_eq!(downloads, 3, "one download per distinct blob");
    let mut files: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|f| f.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut want: Vec<String> = arm
        .layers
        .iter()
        .map(|(d, _, _)| d[7..].to_string())
        .chain([arm.config_digest[7..].to_string()])
        .collect();
    want.sort();
    want.dedup();
    assert_eq!(files, want, "only the verified blobs, no temp file");
}
