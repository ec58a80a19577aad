//! Hand-made images as an OCI layout: reproducible tar layers, config with `rootfs.diff_ids`, manifests
//! and an index.

use image_creator::oci::{LayerCompression, Platform};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Files of one layer: (path inside the image, contents).
pub type LayerFiles = Vec<(String, Vec<u8>)>;

pub struct ImageSpec {
    pub repo: String,
    pub tag: String,
    /// One image per platform; several make an index (pushed with `skopeo copy --all`).
    pub platforms: Vec<(Platform, Vec<LayerFiles>)>,
    pub compression: LayerCompression,
}

pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// A reproducible tar of `files` (fixed owner, mode and mtime).
pub fn layer_tar(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, data.as_slice())
            .expect("append to layer tar");
    }
    b.into_inner().expect("finish layer tar")
}

pub fn compress(data: &[u8], c: LayerCompression) -> Vec<u8> {
    match c {
        LayerCompression::None => data.to_vec(),
        LayerCompression::Gzip => {
            // GzEncoder writes mtime 0 and no file name: reproducible.
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).expect("gzip");
            e.finish().expect("gzip")
        }
        LayerCompression::Zstd => zstd::encode_all(data, 3).expect("zstd"),
    }
}

fn layer_media_type(c: LayerCompression) -> &'static str {
    match c {
        LayerCompression::None => "application/vnd.oci.image.layer.v1.tar",
        LayerCompression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
        LayerCompression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
    }
}

fn put_blob(layout: &Path, data: &[u8]) -> (String, u64) {
    let d = sha256(data);
    let path = layout.join("blobs/sha256").join(&d[7..]);
    std::fs::write(path, data).expect("write layout blob");
    (d, data.len() as u64)
}

fn platform_json(p: &Platform) -> serde_json::Value {
    let mut v = serde_json::json!({"os": p.os, "architecture": p.architecture});
    if let Some(var) = &p.variant {
        v["variant"] = var.clone().into();
    }
    v
}

/// Writes the OCI layout for `spec` under `layout`.
pub fn build_layout(spec: &ImageSpec, layout: &Path) {
    std::fs::create_dir_all(layout.join("blobs/sha256")).expect("layout dirs");
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("oci-layout");
    let mut descs = Vec::new();
    for (platform, layers) in &spec.platforms {
        let mut diff_ids = Vec::new();
        let mut layer_descs = Vec::new();
        for files in layers {
            let tar = layer_tar(files);
            diff_ids.push(sha256(&tar));
            let (d, size) = put_blob(layout, &compress(&tar, spec.compression));
            layer_descs.push(serde_json::json!({
                "mediaType": layer_media_type(spec.compression), "digest": d, "size": size
            }));
        }
        let mut config = platform_json(platform);
        config["config"] = serde_json::json!({"Cmd": ["/bin/true"]});
        config["rootfs"] = serde_json::json!({"type": "layers", "diff_ids": diff_ids});
        config["history"] = (0..layers.len())
            .map(|i| serde_json::json!({"created_by": format!("layer {i}")}))
            .collect::<Vec<_>>()
            .into();
        let (cd, csize) = put_blob(layout, config.to_string().as_bytes());
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": csize},
            "layers": layer_descs,
        });
        let (md, msize) = put_blob(layout, manifest.to_string().as_bytes());
        descs.push(serde_json::json!({
            "mediaType": OCI_MANIFEST, "digest": md, "size": msize, "platform": platform_json(platform)
        }));
    }
    let ref_name = serde_json::json!({"org.opencontainers.image.ref.name": spec.tag});
    let top = if descs.len() == 1 {
        let mut d = descs.remove(0);
        d["annotations"] = ref_name;
        d
    } else {
        let index =
            serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descs});
        let (id, isize) = put_blob(layout, index.to_string().as_bytes());
        serde_json::json!({"mediaType": OCI_INDEX, "digest": id, "size": isize, "annotations": ref_name})
    };
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [top]});
    std::fs::write(layout.join("index.json"), index.to_string()).expect("index.json");
}

/// A platform by name: `linux/arm64/v8` style.
pub fn platform(s: &str) -> Platform {
    let mut it = s.split('/');
    Platform {
        os: it.next().unwrap_or_default().into(),
        architecture: it.next().unwrap_or_default().into(),
        variant: it.next().map(Into::into),
    }
}

/// `n` layers, each with one distinct file.
pub fn simple_layers(n: usize, tag: &str) -> Vec<LayerFiles> {
    (0..n)
        .map(|i| {
            vec![(
                format!("layer{i}/file.txt"),
                format!("{tag} layer {i}\n").repeat(100).into_bytes(),
            )]
        })
        .collect()
}
