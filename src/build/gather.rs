//! The fetch step: every input becomes a local path. Cache hits are re-hashed first (a corrupt entry is
//! removed and downloaded again, or reported offline); downloads go to the build dir — which lives on the
//! cache's filesystem — and are then adopted into the cache by an atomic rename, so no byte is written twice.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::plan::Plan;
use super::sourcing::{Origin, Remote};
use super::stage::Fetched;
use super::{io_err, BuildError, Env};
use crate::cache::{unix, EntryKind};
use crate::config::Config;
use crate::fetch::{Download, Expect, Source};
use crate::progress::Step;

/// Which input a job or a ready path belongs to.
#[derive(Clone, Copy)]
enum Slot {
    Base,
    File(usize),
    Oci(usize),
}

pub fn gather(
    config: &Config,
    plan: &Plan,
    downloads: &Path,
    env: &Env,
) -> Result<(PathBuf, Fetched), BuildError> {
    let (base, mut fetched) = gather_inputs(
        config,
        &plan.base.remote,
        &plan.files,
        &plan.oci,
        downloads,
        env,
    )?;
    let mut ready = super::images::fetch_images(&plan.images, downloads, env)?;
    // Prebuilt docker-archives (`url:`) are measured like pulled images: their unpacked size is room
    // the device needs at first boot, and their declared sizes are checked the same way.
    for index in plan.oci.keys() {
        if let Some((path, tag)) = fetched.oci.get(index) {
            let info = crate::oci::inspect_docker_archive(path)?;
            ready.push(super::images::Ready {
                index: *index,
                path: path.clone(),
                tag: tag.clone(),
                tar_size: info.tar_size,
                unpacked_size: info.unpacked_size,
            });
        }
    }
    super::images::check_declared(config, &ready, env);
    for r in ready {
        fetched.unpacked += r.unpacked_size;
        fetched.oci.insert(r.index, (r.path, r.tag));
    }
    Ok((base, fetched))
}

/// [`gather`] for any set of inputs (a build's plan, or what `cache prefetch` resolved).
pub fn gather_inputs(
    config: &Config,
    base: &Remote,
    files: &HashMap<usize, Remote>,
    oci: &HashMap<usize, Remote>,
    downloads: &Path,
    env: &Env,
) -> Result<(PathBuf, Fetched), BuildError> {
    let Env {
        opts,
        fetcher,
        cache,
        progress,
        cancel,
        rt,
    } = *env;
    progress.step(Step::Fetch, "Fetching the base image and content");
    std::fs::create_dir_all(downloads).map_err(io_err("creating", downloads))?;
    let now = SystemTime::now();
    let mut slots: Vec<(Slot, &Remote)> = vec![(Slot::Base, base)];
    slots.extend(sorted(files).into_iter().map(|(i, r)| (Slot::File(i), r)));
    slots.extend(sorted(oci).into_iter().map(|(i, r)| (Slot::Oci(i), r)));

    let mut ready: Vec<(Slot, PathBuf)> = Vec::new();
    let mut jobs = Vec::new();
    let mut pending: Vec<(Slot, &Remote)> = Vec::new();
    for (slot, remote) in slots {
        if let (Origin::Cached(entry), Some(c)) = (&remote.origin, cache) {
            if c.store().verify(entry)? {
                c.store().touch(&entry.id, unix(now))?;
                ready.push((slot, c.store().path_of(entry)));
                continue;
            }
            progress.warn(format!(
                "{}: cached copy of {} was corrupt; removed",
                remote.key,
                remote.source.display()
            ));
            if opts.offline {
                return Err(BuildError::CorruptOffline {
                    key: remote.key.clone(),
                    url: remote.source.display(),
                });
            }
        }
        let size = match slot {
            Slot::File(i) => config
                .files
                .iter()
                .find(|f| f.index == i)
                .filter(|f| !f.via.is_archive())
                .and_then(|f| f.size),
            _ => None,
        };
        jobs.push(job(remote, downloads, &stem(slot), size));
        pending.push((slot, remote));
    }
    let results = rt.block_on(fetcher.download_all(jobs, opts.concurrency, progress, cancel))?;
    for ((slot, remote), done) in pending.into_iter().zip(results) {
        let path = match (&remote.origin, &remote.source, cache) {
            (Origin::Download { cache: true, .. }, Source::Http(url), Some(c))
            | (Origin::Cached(_), Source::Http(url), Some(c))
                if c.cacheable(crate::cache::Kind::File, url.as_str()) =>
            {
                let freshness = match &remote.origin {
                    Origin::Download { freshness, .. } => freshness.clone(),
                    _ => Default::default(),
                };
                let entry = c.store().adopt(
                    &done.path,
                    EntryKind::File,
                    url.as_str(),
                    &done.sha256,
                    freshness,
                    unix(now),
                )?;
                c.store().path_of(&entry)
            }
            _ => done.path,
        };
        ready.push((slot, path));
    }
    progress.step_done(Step::Fetch);

    let mut fetched = Fetched::default();
    let mut base = PathBuf::new();
    for (slot, path) in ready {
        match slot {
            Slot::Base => base = path,
            Slot::File(i) => drop(fetched.files.insert(i, path)),
            Slot::Oci(i) => {
                // A prebuilt archive must be tagged as the config's ident says.
                let tag = config
                    .oci_images
                    .iter()
                    .find(|o| o.index == i)
                    .map(|o| o.ident.clone())
                    .unwrap_or_default();
                drop(fetched.oci.insert(i, (path, tag)))
            }
        }
    }
    Ok((base, fetched))
}

fn stem(slot: Slot) -> String {
    match slot {
        Slot::Base => "base".into(),
        Slot::File(i) => format!("file{i}"),
        Slot::Oci(i) => format!("oci{i}"),
    }
}

fn sorted<T>(map: &HashMap<usize, T>) -> Vec<(usize, &T)> {
    let mut v: Vec<_> = map.iter().map(|(k, v)| (*k, v)).collect();
    v.sort_by_key(|(k, _)| *k);
    v
}

fn job(remote: &Remote, dir: &Path, stem: &str, size: Option<u64>) -> Download {
    let display = remote.source.display();
    let name = display.rsplit('/').next().unwrap_or("download");
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    Download {
        source: remote.source.clone(),
        dest: dir.join(format!("{stem}-{safe}")),
        expect: Expect {
            checksum: remote.checksum.clone(),
            size,
        },
        label: name.to_string(),
    }
}
