//! Fetch, copy the base, stage, re-create p3 with mke2fs, write offspot.yaml, commit the output.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::output::{Guard, Output};
use super::plan::{choose_size, Plan};
use super::size::{ext4_min, formula_min, BLOCK, INODE_RATIO};
use super::stage;
use super::{io_err, BuildError, BuildReport, Env};
use crate::archive;
use crate::config::Config;
use crate::disk::ext4::{metadata_overhead, Mkfs, Tools};
use crate::disk::{fat, with_p3_size, BaseLayout, Target};
use crate::progress::{Progress, Step, TaskKind};
use crate::CancellationToken;

pub fn run(
    config: &Config,
    raw_text: &str,
    plan: &Plan,
    out: Output,
    env: &Env,
) -> Result<BuildReport, BuildError> {
    let tools = Tools::find()?;
    let work = WorkDir::create(
        env.opts.build_dir.as_deref(),
        &plan.work_parent,
        env.opts.keep,
    )?;
    let result = run_in(config, raw_text, plan, out, env, &tools, &work);
    work.finish(result.is_ok());
    result
}

fn run_in(
    config: &Config,
    raw_text: &str,
    plan: &Plan,
    out: Output,
    env: &Env,
    tools: &Tools,
    work: &WorkDir,
) -> Result<BuildReport, BuildError> {
    let Env {
        opts,
        progress,
        cancel,
        ..
    } = *env;
    let (base_path, fetched) =
        super::gather::gather(config, plan, &work.path.join("downloads"), env)?;
    let unpacked = fetched.unpacked;

    // Assemble, part 1: the whole base into the target (decoded on the fly, zero runs left as holes).
    progress.step(
        Step::Assemble,
        format!("Copying the base image into {}", out.path.display()),
    );
    let mut guard = Guard::new(out, opts.keep);
    let mut target = match guard.output().is_device() {
        true => Target::open_device(&guard.output().work_path)?,
        false => {
            let t = Target::create_file(&guard.output().work_path)?;
            guard.created();
            t
        }
    };
    let (sector0, layout) = copy_base(&base_path, plan, &mut target, progress, cancel)?;
    let p3_offset = layout.data_offset();

    // Stage: the base's own data partition content, then the config's content.
    progress.step(Step::Stage, "Staging the data partition");
    let staging = work.path.join("staging");
    std::fs::create_dir_all(&staging).map_err(io_err("creating", &staging))?;
    target.sync()?;
    tools.extract(&guard.output().work_path, p3_offset, &staging)?;
    stage::stage_all(
        config,
        raw_text,
        &fetched,
        &opts.platform,
        &staging,
        progress,
        cancel,
    )?;
    stage::warn_compose_gaps(config, &staging, progress);
    let (usage, plain_bytes) = stage::usage(&staging)?;
    progress.step_done(Step::Stage);

    // Final size from what was really staged.
    // The device unpacks every image next to its tar at first boot: that room must exist too.
    let on_device = super::size::Usage {
        bytes: usage.bytes + unpacked,
        ..usage
    };
    let p3_min = ext4_min(on_device, |s| metadata_overhead(s, INODE_RATIO));
    let min = formula_min(plan.base_size, plan.root_size, plan.raw).max(p3_offset + p3_min);
    let image_size = choose_size(
        config,
        min,
        plan.device_size,
        opts.max_size,
        &guard.output().path,
    )?;
    let p3_sectors = (image_size - p3_offset) / 512;
    let fs_size = (image_size - p3_offset) / BLOCK * BLOCK;

    progress.step(Step::Assemble, "Writing the data partition");
    if !guard.output().is_device() {
        target.discard_from(p3_offset)?;
        target.set_len(image_size)?;
    }
    target.write_at(0, &with_p3_size(&sector0, p3_sectors)?)?;
    target.sync()?;
    let target_path = guard.output().work_path.clone();
    // mke2fs opens the device exclusively: release ours meanwhile.
    let is_device = guard.output().is_device();
    drop(target);
    let mkfs = Mkfs {
        target: &target_path,
        offset: p3_offset,
        size: fs_size,
        label: "data",
        inode_ratio: INODE_RATIO,
        reserved_pct: 1,
        source_dir: Some(&staging),
        source_bytes: plain_bytes,
    };
    tools.mkfs(&mkfs, progress, cancel)?;
    tools.chown_root(&target_path, p3_offset, &staging)?;

    let target = if is_device {
        Target::open_device(&target_path)?
    } else {
        Target::reopen_file(&target_path)?
    };
    if let Some(offspot) = &config.offspot {
        let p1 = &layout.parts[0];
        fat::write_root_file(
            &target.file,
            p1.start * 512,
            p1.sectors * 512,
            "offspot.yaml",
            offspot.to_yaml().as_bytes(),
        )?;
    }
    target.sync()?;
    drop(target);
    if !is_device {
        // OUTPUT.bmap (bmaptool format): `image-creator write` and `bmaptool copy` flash only mapped ranges.
        crate::disk::bmap::write_for(&target_path, &guard.output().path, progress, cancel)?;
    }
    progress.step_done(Step::Assemble);

    progress.step(Step::Finish, "Finishing");
    let output = guard.output().path.clone();
    guard.commit()?;
    progress.step_done(Step::Finish);
    let mut lines = plan.describe();
    lines.push(format!(
        "staged {} files/dirs, {}",
        usage.inodes,
        crate::units::format_size(plain_bytes)
    ));
    Ok(BuildReport {
        output,
        check_only: false,
        image_size,
        data_size: image_size - p3_offset,
        lines,
    })
}

/// Streams the decoded base into the target; returns its first sector and partition layout.
fn copy_base(
    base: &Path,
    plan: &Plan,
    target: &mut Target,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<([u8; 512], BaseLayout), BuildError> {
    let file = std::fs::File::open(base).map_err(io_err("opening", base))?;
    let mut head = [0u8; 6];
    let mut sniff = std::fs::File::open(base).map_err(io_err("opening", base))?;
    let n = sniff.read(&mut head).map_err(io_err("reading", base))?;
    let compression = archive::Compression::sniff(&head[..n]);
    let mut reader = archive::decoder(
        compression,
        std::io::BufReader::with_capacity(1 << 20, file),
        0,
    )?;
    let mut sector0 = [0u8; 512];
    reader
        .read_exact(&mut sector0)
        .map_err(|e| BuildError::BadBase {
            source_name: plan.base.remote.source.display(),
            message: format!("cannot read its first sector: {e}"),
        })?;
    let layout = super::plan::parse_layout(&sector0, None, &plan.base.remote.source)?;
    let p3 = &layout.parts[2];
    let len = (p3.start + p3.sectors) * 512;
    let mut task = progress.task(TaskKind::Decode, "base image", Some(len));
    let mut chained = std::io::Cursor::new(sector0.to_vec()).chain(reader);
    target
        .copy_from(&mut chained, len, layout.data_offset(), &mut task, cancel)
        .map_err(|e| match e {
            crate::disk::DiskError::SourceTruncated { got, .. } => BuildError::BadBase {
                source_name: plan.base.remote.source.display(),
                message: format!(
                    "truncated: its partition table says {len} bytes ({}), it holds {got} ({})",
                    crate::units::format_size(len),
                    crate::units::format_size(got)
                ),
            },
            // A corrupt compressed base (bad xz/zstd/gzip data) is the user's input, named as such.
            crate::disk::DiskError::SourceRead { source } => BuildError::BadBase {
                source_name: plan.base.remote.source.display(),
                message: format!("cannot decode it: {}", crate::Chain(&source)),
            },
            other => other.into(),
        })?;
    task.finish();
    Ok((sector0, layout))
}

/// The run's own directory for downloads and staging. A user `--build-dir` is created if missing but never
/// removed itself; only this run's sub-directory is.
struct WorkDir {
    path: PathBuf,
    created_parent: Option<PathBuf>,
    keep: bool,
}

impl WorkDir {
    fn create(user_dir: Option<&Path>, parent: &Path, keep: bool) -> Result<WorkDir, BuildError> {
        let created_parent = match user_dir {
            Some(d) if !d.exists() => {
                std::fs::create_dir_all(d).map_err(io_err("creating the build directory", d))?;
                Some(d.to_path_buf())
            }
            Some(_) => None,
            // Our own default place (under $TMPDIR or the cache): make sure it exists.
            None => {
                std::fs::create_dir_all(parent).map_err(io_err("creating", parent))?;
                None
            }
        };
        let dir = tempfile::Builder::new()
            .prefix("image-creator-")
            .tempdir_in(parent)
            .map_err(io_err("creating a work directory in", parent))?;
        Ok(WorkDir {
            path: dir.keep(),
            created_parent,
            keep,
        })
    }

    fn finish(self, ok: bool) {
        if !ok && self.keep {
            tracing::warn!("kept build directory {}", self.path.display());
            return;
        }
        make_removable(&self.path);
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            tracing::warn!("could not remove {}: {e}", self.path.display());
        }
        if let Some(parent) = self.created_parent {
            // Only if empty: we created it, but the user may have put something there since.
            let _ = std::fs::remove_dir(parent);
        }
    }
}

/// Archives may carry read-only directories (0555); an unprivileged remove_dir_all cannot empty them.
/// Only directories inside our own work dir are touched.
fn make_removable(root: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(entry.path());
                }
            }
        }
    }
}
