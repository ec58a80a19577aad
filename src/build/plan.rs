//! Plan: resolve the base, learn every size (config, HEAD, stat, the base's own partition table), compute
//! the image size, check free space per filesystem. `--check` stops after this and writes nothing.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::output::{Output, OutputKind};
use super::size::{ext4_min, formula_min, round_up, Usage, BLOCK, INODE_RATIO};
use super::sourcing::{self, Origin, Remote};
use super::{BuildError, Env};
use crate::archive::{self, Compression};
use crate::config::{Algo, Checksum, ChecksumKind, Config, FileSource, OutputSize, Via};
use crate::disk::ext4::metadata_overhead;
use crate::disk::{free_space, BaseLayout};
use crate::fetch::Source;
use crate::progress::TaskKind;
use crate::units::format_size;

const OFFICIAL: &str = "https://drive.offspot.it/base";

/// The base image as the plan resolved it.
#[derive(Debug, Clone)]
pub struct BaseRef {
    pub remote: Remote,
    pub compression: Compression,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub base: BaseRef,
    pub layout: BaseLayout,
    /// Decoded base image size (end of its p3).
    pub base_size: u64,
    /// Bytes before the data partition's content (config `root_size`, else the base's p3 offset).
    pub root_size: u64,
    /// Σ declared/learned content sizes (the formula's `raw`).
    pub raw: u64,
    /// Remote inputs of `files[]` by index.
    pub files: HashMap<usize, Remote>,
    /// Remote inputs of `oci_images[]` by index (prebuilt docker-archives given by `url`).
    pub oci: HashMap<usize, Remote>,
    /// `oci_images[]` pulled from their registry (or found in the cache).
    pub images: Vec<super::images::Pullable>,
    /// Planned image size (file) or used size of the device.
    pub image_size: u64,
    pub device_size: Option<u64>,
    /// Where the run's temporary files go (not created by the plan).
    pub work_parent: PathBuf,
}

/// `^\d\.\d\.\d[a-z0-9\-._]*$` → an official release (reference/base-image.md).
pub fn is_version(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 5
        && b[0].is_ascii_digit()
        && b[1] == b'.'
        && b[2].is_ascii_digit()
        && b[3] == b'.'
        && b[4].is_ascii_digit()
        && b[5..]
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"-._".contains(c))
}

pub fn resolve_base(config: &Config, base_dir: Option<&Path>) -> Result<BaseRef, BuildError> {
    let src = config.base.source.trim();
    let (source, default_checksum) = if is_version(src) {
        // .img.xz exists since 1.1.0 and is ~4× smaller to download; md5 files sit beside both.
        let ext = if src.starts_with("1.0.") {
            "img"
        } else {
            "img.xz"
        };
        let url = format!("{OFFICIAL}/offspot-base-arm64-{src}.{ext}");
        let md5 = Checksum {
            algo: Algo::Md5,
            value: format!("{url}.md5"),
            kind: ChecksumKind::Url,
        };
        (Source::parse(&url, None)?, Some(md5))
    } else {
        (Source::parse(src, base_dir)?, None)
    };
    let compression = Compression::from_name(&source.display());
    let checksum = config.base.checksum.clone().or(default_checksum);
    Ok(BaseRef {
        remote: Remote::new("base".into(), source, checksum),
        compression,
    })
}

/// The `files[]` and `oci_images[]` inputs that come from a URL or path, by config index.
#[allow(clippy::type_complexity)]
pub(crate) fn remotes_of(
    config: &Config,
    base_dir: Option<&Path>,
) -> Result<(HashMap<usize, Remote>, HashMap<usize, Remote>), BuildError> {
    let mut files = HashMap::new();
    for f in &config.files {
        if let FileSource::Url(url) = &f.source {
            let source = Source::parse(url, base_dir)?;
            let key = format!("files[{}]", f.index);
            files.insert(f.index, Remote::new(key, source, f.checksum.clone()));
        }
    }
    let mut oci = HashMap::new();
    for img in &config.oci_images {
        // Entries without `url` are pulled from their registry: see `images`.
        if let Some(url) = &img.url {
            let source = Source::parse(url, base_dir)?;
            let key = format!("oci_images[{}]", img.index);
            oci.insert(img.index, Remote::new(key, source, None));
        }
    }
    Ok((files, oci))
}

impl Plan {
    pub(crate) async fn make(
        config: &Config,
        base_dir: Option<&Path>,
        out: &Output,
        env: &Env<'_>,
    ) -> Result<Plan, BuildError> {
        let Env {
            opts,
            fetcher,
            cache,
            progress,
            ..
        } = *env;
        let mut base = resolve_base(config, base_dir)?;
        if let Source::File(p) = &base.remote.source {
            if same_file(p, &out.path) {
                return Err(BuildError::Output {
                    path: out.path.clone(),
                    message: "is the base image itself".into(),
                });
            }
        }

        let (mut files, mut oci) = remotes_of(config, base_dir)?;
        let count = 1 + files.len() as u64 + oci.len() as u64;
        let mut task = progress.task(TaskKind::Check, "probing sources", Some(count));
        let images = {
            let mut all: Vec<&mut Remote> = std::iter::once(&mut base.remote)
                .chain(files.values_mut())
                .chain(oci.values_mut())
                .collect();
            let files = sourcing::resolve(
                &mut all,
                fetcher,
                cache,
                opts.offline,
                std::time::SystemTime::now(),
                env.cancel,
            )
            .await;
            let images = super::images::plan_images(config, env).await;
            // Offline, every missing input is listed at once: files and container images together.
            if let (
                Err(BuildError::Offline { missing: a }),
                Err(BuildError::Offline { missing: b }),
            ) = (&files, &images)
            {
                return Err(BuildError::Offline {
                    missing: a.iter().chain(b).cloned().collect(),
                });
            }
            files?;
            images
        }?;
        task.set(count);
        task.finish();

        // The base's partition table tells its real size and root size, without downloading it all.
        let head_source = base
            .remote
            .local_path(cache)
            .map(Source::File)
            .unwrap_or(base.remote.source.clone());
        let head = fetcher
            .fetch_prefix(&head_source, head_bytes(base.compression), env.cancel)
            .await?;
        let sector0 = decode_sector0(&head, base.compression, &base.remote.source)?;
        let image_len = if base.compression == Compression::None {
            base.remote.download_size
        } else {
            None
        };
        let layout = parse_layout(&sector0, image_len, &base.remote.source)?;
        let p3 = &layout.parts[2];
        let base_size = (p3.start + p3.sectors) * 512;
        let root_size = config.base.root_size.unwrap_or(layout.data_offset());

        // Content sizes: declared, else learned (download size; archives without `size` are re-measured
        // after download, when their real expanded size can be read).
        let mut raw = 0u64;
        let mut inodes = 0u64;
        for f in &config.files {
            let learned = match &f.source {
                FileSource::Content(text) if f.via == Via::Base64 => text.len() as u64 * 3 / 4,
                FileSource::Content(text) => text.len() as u64,
                FileSource::Url(_) => files
                    .get(&f.index)
                    .and_then(|r| r.download_size)
                    .unwrap_or(0),
            };
            let size = f.size.unwrap_or(learned);
            if f.size.is_none() && learned == 0 && matches!(f.source, FileSource::Url(_)) {
                progress.warn(format!(
                    "files[{}]: size unknown (no Content-Length); not counted in the plan",
                    f.index
                ));
            }
            raw += size;
            inodes += 1;
        }
        for img in &config.oci_images {
            // Not declared and pulled: the compressed download is the best guess before pulling; the
            // real sizes are measured after export (and the image re-checked then).
            let pulled = images
                .iter()
                .find(|p| p.index == img.index)
                .map(|p| p.download)
                .filter(|d| *d > 0);
            if let (Some(d), true) = (pulled, img.filesize.is_none() || img.fullsize.is_none()) {
                raw += img.filesize.unwrap_or(d) + img.fullsize.unwrap_or(d.saturating_mul(3));
                inodes += 1;
                continue;
            }
            let filesize = img
                .filesize
                .or_else(|| oci.get(&img.index).and_then(|r| r.download_size))
                .unwrap_or(0);
            raw += filesize + img.fullsize.unwrap_or(filesize);
            inodes += 1;
        }
        if config.write_config {
            raw += 4096;
        }
        // The base's own data partition is staged again: count what it uses, not its size (the demo's
        // 16 MiB partition holds a few KiB). A base that cannot be read that way (a server ignoring
        // `Range`, a single-block .xz) is counted whole, which only overestimates.
        let base_data = match base.remote.local_path(cache) {
            Some(path) => base_used(&path, base.compression, layout.data_offset()),
            None if base.compression == Compression::Xz => {
                remote_base_used(
                    fetcher,
                    &base.remote,
                    &head,
                    layout.data_offset(),
                    env.cancel,
                )
                .await
            }
            None => None,
        }
        .map_or(p3.sectors * 512, |used| used.min(p3.sectors * 512));
        let min = formula_min(base_size, root_size, raw).max(
            layout.data_offset()
                + ext4_min(
                    Usage {
                        bytes: round_up(raw, BLOCK) + base_data,
                        inodes,
                    },
                    |s| metadata_overhead(s, INODE_RATIO),
                ),
        );
        let device_size = match out.kind {
            OutputKind::Device => Some(super::output::device_size(&out.path)?),
            OutputKind::File { .. } => None,
        };
        let image_size = choose_size(config, min, device_size, opts.max_size, &out.path)?;
        if let OutputSize::Bytes(n) = config.output.size {
            if let Some(gb) = super::size::nominal_card_size(n) {
                progress.warn(format!(
                    "output.size {}: the nominal size of a \"{gb} GB\" card, which many such cards do not hold \
                     (README: card sizes); an image this size may not fit — leave a margin",
                    format_size(n)
                ));
            }
        }

        // With a cache, the build dir defaults to inside it: downloads are then adopted into the cache by
        // rename and hardlinked into the staging tree, never copied.
        let work_parent = match (&opts.build_dir, cache) {
            (Some(dir), _) => dir.clone(),
            (None, Some(c)) => c.dir().join("build"),
            (None, None) => std::env::temp_dir(),
        };
        let plan = Plan {
            base,
            layout,
            base_size,
            root_size,
            raw,
            files,
            oci,
            images,
            image_size,
            device_size,
            work_parent,
        };
        plan.check_free_space(config, out)?;
        Ok(plan)
    }

    /// Per filesystem: downloads + staging in the build dir, the image's written bytes at the output.
    fn check_free_space(&self, config: &Config, out: &Output) -> Result<(), BuildError> {
        let mut needs: Vec<(PathBuf, u64, String)> = Vec::new();
        // Only what is really downloaded lands in the build dir; cache hits and local files are used in place.
        let remote: u64 = self
            .remotes()
            .filter(|r| matches!(r.origin, Origin::Download { .. }))
            .map(|r| r.download_size.unwrap_or(0))
            .sum();
        let expanded: u64 = config
            .files
            .iter()
            .filter(|f| f.via.is_archive())
            .filter_map(|f| f.size)
            .sum();
        let staging = expanded + self.layout.parts[2].sectors * 512;
        needs.push((
            self.work_parent.clone(),
            remote + staging,
            "downloads and staging".into(),
        ));
        if !out.is_device() {
            let parent = out
                .work_path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("."));
            needs.push((parent, self.root_size + self.raw, "the image".into()));
        }
        // Sum what lands on the same filesystem.
        let mut by_dev: Vec<(u64, PathBuf, u64, Vec<String>)> = Vec::new();
        for (path, bytes, what) in needs {
            let dev = nearest_existing(&path)
                .and_then(|p| std::fs::metadata(p).ok())
                .map(|m| m.dev())
                .unwrap_or(0);
            match by_dev.iter_mut().find(|(d, ..)| *d == dev) {
                Some(entry) => {
                    entry.2 += bytes;
                    entry.3.push(what);
                }
                None => by_dev.push((dev, path, bytes, vec![what])),
            }
        }
        for (_, path, bytes, what) in by_dev {
            let available = free_space(&path)?;
            if bytes > available {
                return Err(BuildError::NoSpace {
                    path,
                    what: what.join(" + "),
                    needed_h: format_size(bytes),
                    available_h: format_size(available),
                });
            }
        }
        Ok(())
    }

    /// The base, then `files[]` and `oci_images[]` inputs.
    pub fn remotes(&self) -> impl Iterator<Item = &Remote> {
        std::iter::once(&self.base.remote)
            .chain(self.files.values())
            .chain(self.oci.values())
    }

    pub fn describe(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "base: {} ({} decoded, root {})",
            self.base.remote.source.display(),
            format_size(self.base_size),
            format_size(self.root_size)
        )];
        let mut remotes: Vec<&Remote> = self.remotes().skip(1).collect();
        remotes.sort_by(|a, b| a.key.cmp(&b.key));
        for r in remotes {
            let size = r
                .download_size
                .map(format_size)
                .unwrap_or_else(|| "size unknown".into());
            let how = match r.origin {
                Origin::Local => "local",
                Origin::Cached(_) => "cached",
                Origin::Download { .. } => "to download",
            };
            lines.push(format!("{}: {} ({size}) {how}", r.key, r.source.display()));
        }
        lines.push(format!("content: {}", format_size(self.raw)));
        lines
    }
}

/// Picks the image size from `output.size`/`shrink`, the device and `--max-size`.
pub fn choose_size(
    config: &Config,
    min: u64,
    device_size: Option<u64>,
    max_size: Option<u64>,
    output: &Path,
) -> Result<u64, BuildError> {
    let too_small = |what: String, given: u64| BuildError::TooSmall {
        what,
        given,
        given_h: format_size(given),
        needed: min,
        needed_h: format_size(min),
    };
    let requested = match config.output.size {
        OutputSize::Bytes(n) if n < min => return Err(too_small("output.size".into(), n)),
        OutputSize::Bytes(n) => Some(round_up(n, 512)),
        OutputSize::Auto => None,
    };
    let size = match device_size {
        Some(dev) if dev < min => {
            return Err(too_small(format!("device {}", output.display()), dev))
        }
        Some(dev) if requested.is_some_and(|r| r > dev) => {
            return Err(BuildError::TooSmall {
                what: format!("device {}", output.display()),
                given: dev,
                given_h: format_size(dev),
                needed: requested.unwrap_or(min),
                needed_h: format_size(requested.unwrap_or(min)),
            })
        }
        _ if config.output.shrink => min,
        Some(dev) => requested.unwrap_or(dev),
        None => requested.unwrap_or(min),
    };
    if let Some(max) = max_size {
        if size > max {
            return Err(BuildError::MaxSize {
                size,
                size_h: format_size(size),
                max,
                max_h: format_size(max),
            });
        }
    }
    Ok(size)
}

/// Compressed bytes needed to decode the first sector: an xz block header plus a little data.
fn head_bytes(c: Compression) -> u64 {
    match c {
        Compression::None => 512,
        _ => 256 * 1024,
    }
}

fn decode_sector0(head: &[u8], c: Compression, source: &Source) -> Result<Vec<u8>, BuildError> {
    use std::io::Read;
    let bad = |message: String| BuildError::BadBase {
        source_name: source.display(),
        message,
    };
    let mut reader = archive::decoder(c, std::io::Cursor::new(head.to_vec()), 1)?;
    let mut sector = vec![0u8; 512];
    reader.read_exact(&mut sector).map_err(|e| {
        bad(format!(
            "cannot read its first sector ({e}); is it a disk image?"
        ))
    })?;
    Ok(sector)
}

/// The base's partition table, with errors naming the base image.
pub fn parse_layout(
    sector0: &[u8],
    image_len: Option<u64>,
    source: &Source,
) -> Result<BaseLayout, BuildError> {
    BaseLayout::parse(sector0, image_len).map_err(|e| match e {
        crate::disk::DiskError::BadBase { reason } => BuildError::BadBase {
            source_name: source.display(),
            message: reason,
        },
        other => other.into(),
    })
}

fn nearest_existing(path: &Path) -> Option<PathBuf> {
    let mut p = Some(path);
    while let Some(cur) = p {
        if cur.exists() {
            return Some(cur.to_path_buf());
        }
        p = cur.parent().filter(|q| !q.as_os_str().is_empty());
    }
    Some(PathBuf::from("."))
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// Bytes in use in the data partition (at `offset`) of the base at `path`, from its ext4 superblock. An
/// `.xz` base is read through its index from the block holding the superblock (official bases are
/// multi-block); another compressed base is decoded up to there only when that is cheap (≤ 1 GiB).
fn base_used(path: &Path, compression: Compression, offset: u64) -> Option<u64> {
    use crate::disk::ext4::superblock;
    let at = offset + superblock::OFFSET;
    let mut reader: Box<dyn std::io::Read> = match compression {
        Compression::Xz => match crate::archive::xz_seek::reader_at(path, at).ok()? {
            Some(r) => r,
            None if offset <= 1 << 30 => decode_from_start(path, compression, at)?,
            None => return None,
        },
        Compression::None => decode_from_start(path, compression, at)?,
        _ if offset <= 1 << 30 => decode_from_start(path, compression, at)?,
        _ => return None,
    };
    let mut sb = vec![0u8; superblock::LEN];
    reader.read_exact(&mut sb).ok()?;
    superblock::used_bytes(&sb)
}

/// [`base_used`] for a remote `.xz` base, through range requests: its footer, its index, and the one
/// block holding the superblock (at most 64 MiB: a single-block file would be a whole download).
async fn remote_base_used(
    fetcher: &crate::fetch::Fetcher,
    remote: &Remote,
    head: &[u8],
    offset: u64,
    cancel: &crate::CancellationToken,
) -> Option<u64> {
    use crate::archive::xz_seek;
    use crate::disk::ext4::superblock;
    let (src, len) = (&remote.source, remote.download_size?);
    let at = offset + superblock::OFFSET;
    let footer = fetcher
        .fetch_range(
            src,
            len.checked_sub(xz_seek::FOOTER)?,
            xz_seek::FOOTER,
            cancel,
        )
        .await
        .ok()??;
    let (index_start, index_len) = xz_seek::index_location(len, &footer)?;
    let index = fetcher
        .fetch_range(src, index_start, index_len, cancel)
        .await
        .ok()??;
    let block = xz_seek::locate(&index, index_start, at)?;
    if block.file_len() > 64 << 20 {
        return None;
    }
    let bytes = fetcher
        .fetch_range(src, block.file_offset, block.file_len(), cancel)
        .await
        .ok()??;
    let header = head.get(..xz_seek::HEADER as usize)?;
    let mut reader = xz_seek::decode_block(header, bytes, &block, at).ok()?;
    let mut sb = vec![0u8; superblock::LEN];
    reader.read_exact(&mut sb).ok()?;
    superblock::used_bytes(&sb)
}

/// The decoded base from byte `at` on, skipping what is before (a raw file seeks).
fn decode_from_start(
    path: &Path,
    compression: Compression,
    at: u64,
) -> Option<Box<dyn std::io::Read>> {
    use std::io::{Seek, SeekFrom};
    let mut file = std::fs::File::open(path).ok()?;
    if compression == Compression::None {
        file.seek(SeekFrom::Start(at)).ok()?;
        return Some(Box::new(file));
    }
    let mut reader = crate::archive::decoder(compression, std::io::BufReader::new(file), 0).ok()?;
    std::io::copy(
        &mut std::io::Read::take(&mut reader, at),
        &mut std::io::sink(),
    )
    .ok()?;
    Some(Box::new(reader))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        for v in ["1.4.2", "1.0.0", "1.3.1-rc1", "2.0.0.dev"] {
            assert!(is_version(v), "{v}");
        }
        for v in [
            "1.4",
            "v1.4.2",
            "https://x/1.4.2.img",
            "1.4.2X",
            "./base.img",
        ] {
            assert!(!is_version(v), "{v}");
        }
    }
}
