//! A manifest that names one layer several times (schema-1 conversions repeat their empty layer):
//! the archive keeps every entry, in order, and the config's diff_ids are untouched.

use super::tests::{export_and_check, image, layer_tar, sha, TAG};
use super::*;

/// a, empty, b, empty, empty: the empty tar has one digest, as in a converted schema-1 image.
fn repeated() -> Vec<(Vec<u8>, LayerCompression)> {
    let empty = layer_tar(&[]);
    vec![
        (layer_tar(&[("a.txt", b"a\n")]), LayerCompression::Gzip),
        (empty.clone(), LayerCompression::Gzip),
        (layer_tar(&[("b.txt", b"b\n")]), LayerCompression::Gzip),
        (empty.clone(), LayerCompression::Gzip),
        (empty, LayerCompression::Gzip),
    ]
}

/// Loader view, skopeo, ids and reproducibility, as for any image.
#[test]
fn every_entry_of_a_repeated_layer_is_kept() {
    export_and_check(repeated());
}

/// As the pull hands it over: the repeated entries share the one downloaded file.
#[test]
fn entries_sharing_one_blob_file_each_get_their_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let layers = repeated();
    let mut img = image(tmp.path(), &layers);
    let shared = img.layers[1].path.clone();
    for i in [3, 4] {
        assert_eq!(img.layers[i].digest, img.layers[1].digest);
        std::fs::remove_file(&img.layers[i].path).unwrap();
        img.layers[i].path = shared.clone();
    }
    let config = img.config.clone();
    let out = tmp.path().join("out.tar");
    let exported = write_docker_archive(
        &img,
        TAG,
        &out,
        &Progress::silent(),
        &CancellationToken::new(),
    )
    .unwrap();
    let raw_total: u64 = layers.iter().map(|(r, _)| r.len() as u64).sum();
    assert_eq!(exported.unpacked_size, raw_total);
    let info = inspect_docker_archive(&out).unwrap();
    assert_eq!((info.layers, info.unpacked_size), (5, raw_total));

    let mut archive = tar::Archive::new(File::open(&out).unwrap());
    let mut members: std::collections::HashMap<String, Vec<u8>> = Default::default();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        members.insert(name, data);
    }
    let manifest: serde_json::Value = serde_json::from_slice(&members["manifest.json"]).unwrap();
    let listed: Vec<&str> = manifest[0]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert_eq!(listed.len(), layers.len(), "{manifest}");
    for (name, (raw, _)) in listed.iter().zip(&layers) {
        let data = members
            .get(*name)
            .unwrap_or_else(|| panic!("{name} listed but absent"));
        assert_eq!(sha(data), sha(raw), "{name}");
    }
    // The config is copied byte for byte: its diff_ids still list the repeated layer each time.
    let config_name = manifest[0]["Config"].as_str().unwrap();
    assert_eq!(members[config_name], config);
    let diff_ids: Vec<String> = layers.iter().map(|(r, _)| sha(r)).collect();
    let parsed: serde_json::Value = serde_json::from_slice(&config).unwrap();
    assert_eq!(parsed["rootfs"]["diff_ids"], serde_json::json!(diff_ids));
}
