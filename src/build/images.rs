//! Container images pulled from their registry for the device's platform, exported as the docker-archive the
//! device's loader reads, and cached as such (key: canonical reference + platform; freshness: the manifest
//! digest, so an offline build finds them without asking the registry).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::{io_err, BuildError, Env};
use crate::cache::{unix, EntryKind, Freshness, IndexEntry, Kind};
use crate::config::Config;
use crate::oci::export::{inspect_docker_archive, write_docker_archive};
use crate::oci::reference::Reference;
use crate::oci::registry::Registry;

/// An `oci_images[]` entry without `url`: to pull, or already in the cache.
#[derive(Debug, Clone)]
pub struct Pullable {
    pub index: usize,
    pub reference: Reference,
    /// `RepoTags[0]` of the archive: what the compose's `image:` must say.
    pub tag: String,
    pub cache_key: String,
    pub origin: ImageOrigin,
    /// Compressed bytes to download (config + layers), when known.
    pub download: u64,
}

#[derive(Debug, Clone)]
pub enum ImageOrigin {
    Cached(IndexEntry),
    Pull { manifest_digest: String },
}

/// The image as it will land in /data/images/, with its real sizes.
#[derive(Debug, Clone)]
pub struct Ready {
    pub index: usize,
    pub path: PathBuf,
    pub tag: String,
    pub tar_size: u64,
    pub unpacked_size: u64,
}

fn registry(env: &Env) -> Result<Registry, BuildError> {
    Ok(Registry::new(env.opts.insecure_registries.clone())?)
}

/// Checks every image exists for the platform (exit 4 otherwise) without downloading layers; offline, looks
/// in the cache only and reports every missing image.
pub async fn plan_images(config: &Config, env: &Env<'_>) -> Result<Vec<Pullable>, BuildError> {
    let platform = &env.opts.platform;
    let mut out = Vec::new();
    let mut missing = Vec::new();
    let reg = if env.opts.offline {
        None
    } else {
        Some(registry(env)?)
    };
    for img in config.oci_images.iter().filter(|i| i.url.is_none()) {
        let reference = Reference::parse(&img.ident)?;
        let tag = repo_tag(&reference, &format!("oci_images[{}].ident", img.index))?;
        let cache_key = format!("{tag}|{platform}");
        let cached = match env.cache {
            Some(c) => c.lookup(Kind::OciImage, &cache_key)?,
            None => None,
        };
        let (origin, download) = match (&reg, cached) {
            (None, Some(entry)) => (ImageOrigin::Cached(entry), 0),
            (None, None) => {
                missing.push(format!(
                    "oci_images[{}]: {} ({platform})",
                    img.index, img.ident
                ));
                continue;
            }
            (Some(reg), cached) => {
                let manifest = reg.resolve(&reference, platform, env.cancel).await?;
                let download =
                    manifest.config_size + manifest.layers.iter().map(|l| l.2).sum::<u64>();
                match cached {
                    Some(e)
                        if e.freshness.digest.as_deref()
                            == Some(manifest.manifest_digest.as_str()) =>
                    {
                        (ImageOrigin::Cached(e), 0)
                    }
                    _ => (
                        ImageOrigin::Pull {
                            manifest_digest: manifest.manifest_digest,
                        },
                        download,
                    ),
                }
            }
        };
        out.push(Pullable {
            index: img.index,
            reference,
            tag,
            cache_key,
            origin,
            download,
        });
    }
    if !missing.is_empty() {
        return Err(BuildError::Offline { missing });
    }
    Ok(out)
}

/// Pulls what is not cached, exports it, adopts it into the cache; verifies cache hits.
pub fn fetch_images(images: &[Pullable], work: &Path, env: &Env) -> Result<Vec<Ready>, BuildError> {
    let mut ready = Vec::new();
    let now = unix(SystemTime::now());
    for img in images {
        let key = format!("oci_images[{}]", img.index);
        if let (ImageOrigin::Cached(entry), Some(c)) = (&img.origin, env.cache) {
            if c.store().verify(entry)? {
                c.store().touch(&entry.id, now)?;
                let path = c.store().path_of(entry);
                let info = inspect_docker_archive(&path)?;
                ready.push(Ready {
                    index: img.index,
                    path,
                    tag: img.tag.clone(),
                    tar_size: info.tar_size,
                    unpacked_size: info.unpacked_size,
                });
                continue;
            }
            env.progress.warn(format!(
                "{key}: cached archive of {} was corrupt; removed",
                img.tag
            ));
            if env.opts.offline {
                return Err(BuildError::CorruptOffline {
                    key,
                    url: img.tag.clone(),
                });
            }
        }
        let blobs = work.join(format!("oci{}-blobs", img.index));
        std::fs::create_dir_all(&blobs).map_err(io_err("creating", &blobs))?;
        let reg = registry(env)?;
        let pulled = env.rt.block_on(reg.pull(
            &img.reference,
            &env.opts.platform,
            &blobs,
            env.progress,
            env.cancel,
        ))?;
        let tar = work.join(format!("oci{}.tar", img.index));
        let exported = write_docker_archive(&pulled, &img.tag, &tar, env.progress, env.cancel)?;
        let _ = std::fs::remove_dir_all(&blobs);
        let mut path = exported.path.clone();
        if let Some(c) = env
            .cache
            .filter(|c| c.cacheable(Kind::OciImage, &img.cache_key))
        {
            let freshness = Freshness {
                digest: Some(pulled.manifest_digest.clone()),
                ..Default::default()
            };
            let file = std::fs::File::open(&path).map_err(io_err("opening", &path))?;
            let sha = crate::cache::store::sha256_of(file, &path)?;
            let entry = c.store().adopt(
                &path,
                EntryKind::OciImage,
                &img.cache_key,
                &sha,
                freshness,
                now,
            )?;
            path = c.store().path_of(&entry);
        }
        ready.push(Ready {
            index: img.index,
            path,
            tag: img.tag.clone(),
            tar_size: exported.tar_size,
            unpacked_size: exported.unpacked_size,
        });
    }
    Ok(ready)
}

/// Warns when a declared size is off by more than 10 % from the real one.
pub fn check_declared(config: &Config, ready: &[Ready], env: &Env) {
    for r in ready {
        let Some(img) = config.oci_images.iter().find(|i| i.index == r.index) else {
            continue;
        };
        for (what, declared, real) in [
            ("filesize", img.filesize, r.tar_size),
            ("fullsize", img.fullsize, r.unpacked_size),
        ] {
            if let Some(d) = declared {
                let off = (d as f64 - real as f64).abs() / (real.max(1) as f64);
                if off > 0.10 {
                    env.progress.warn(format!(
                        "oci_images[{}].{what}: declared {d} bytes ({}), real {real} bytes ({}), {:.0} % off: run `image-creator oci-sizes {}`",
                        r.index,
                        crate::units::format_size(d),
                        crate::units::format_size(real),
                        off * 100.0,
                        img.ident
                    ));
                }
            }
        }
    }
}

/// The `oci_images` entries for images (`ident`) or docker-archive tars, measured for real: images are
/// pulled for `platform` and exported in a temporary directory; tars are read. Render them with
/// [`crate::oci::sizes::render`]. Blocking, like [`super::build`].
pub fn oci_sizes(
    items: &[String],
    platform: &crate::oci::Platform,
    insecure_registries: &[String],
    progress: &crate::progress::Progress,
    cancel: &crate::CancellationToken,
    rt: &tokio::runtime::Handle,
) -> Result<Vec<crate::oci::sizes::SizeLine>, BuildError> {
    use crate::oci::sizes::SizeLine;
    let work = tempfile::Builder::new()
        .prefix("oci-sizes-")
        .tempdir()
        .map_err(io_err(
            "creating a temporary directory in",
            &std::env::temp_dir(),
        ))?;
    let mut lines = Vec::new();
    for (n, item) in items.iter().enumerate() {
        let path = Path::new(item);
        if path.is_file() {
            let info = inspect_docker_archive(path)?;
            lines.push(SizeLine::for_archive(path, &info));
            continue;
        }
        let reference = Reference::parse(item)?;
        let tag = repo_tag(&reference, item)?;
        let reg = Registry::new(insecure_registries.to_vec())?;
        let blobs = work.path().join(format!("blobs{n}"));
        let pulled = rt.block_on(reg.pull(&reference, platform, &blobs, progress, cancel))?;
        let tar = work.path().join(format!("image{n}.tar"));
        let exported = write_docker_archive(&pulled, &tag, &tar, progress, cancel)?;
        lines.push(SizeLine::for_reference(
            item,
            platform,
            exported.tar_size,
            exported.unpacked_size,
        ));
        let _ = std::fs::remove_dir_all(&blobs);
        let _ = std::fs::remove_file(&tar);
    }
    Ok(lines)
}

/// `RepoTags[0]`: the device's engine loads images by tag, so a reference pinned only by digest is refused.
fn repo_tag(reference: &Reference, ident: &str) -> Result<String, BuildError> {
    if reference.tag.is_none() && reference.digest.is_some() {
        return Err(BuildError::Content {
            key: ident.to_string(),
            message: "pin a tag too (name:tag@sha256:…): the device loads images by their tag"
                .into(),
        });
    }
    let canonical = reference.canonical();
    // `name:tag@digest` → `name:tag`: a tag carrying a digest cannot be loaded as a tag.
    Ok(canonical
        .split('@')
        .next()
        .unwrap_or(&canonical)
        .to_string())
}
