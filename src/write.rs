//! `image-creator write IMAGE DEVICE...`: one image to many cards at once. The image is decompressed once
//! (xz, zstd, gzip) into a sparse temporary file; its mapped ranges come from `IMAGE.bmap` or SEEK_DATA.
//! Every device is checked before any byte is written anywhere; then the flash engine writes and verifies
//! each device in its own thread, and each device gets its own result.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::archive::{self, Compression};
use crate::device::{self, Facts, Policy, Refusal};
use crate::disk::bmap::{bmap_path, Bmap};
use crate::disk::sparse;
use crate::flash::{self, DeviceEvent, Options, Phase, Source};
use crate::progress::{Progress, Task, TaskKind};
use crate::{CancellationToken, Classify, ErrorClass};

#[derive(Debug, Clone)]
pub struct WriteOptions {
    pub image: PathBuf,
    pub devices: Vec<PathBuf>,
    pub verify: bool,
    pub discard: bool,
    /// Allow devices that are not removable / USB / MMC.
    pub force: bool,
    /// Skip the interactive confirmation.
    pub yes: bool,
    /// Fake-capacity probe before writing.
    pub probe: bool,
    /// Bytes per write.
    pub chunk: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{image}: {message}")]
    Image { image: PathBuf, message: String },
    #[error("refusing to write, nothing was written:\n{}", .0.join("\n"))]
    Refused(Vec<String>),
    #[error("cancelled")]
    Cancelled,
    #[error("not confirmed: nothing was written (pass --yes to skip the question)")]
    NotConfirmed,
    #[error("{failed} of {total} devices failed:\n{}", .lines.join("\n"))]
    SomeFailed {
        failed: usize,
        total: usize,
        lines: Vec<String>,
    },
    #[error(transparent)]
    Device(#[from] device::DeviceError),
    #[error(transparent)]
    Flash(#[from] flash::FlashError),
    #[error(transparent)]
    Bmap(#[from] crate::disk::bmap::BmapError),
    #[error(transparent)]
    Archive(#[from] crate::archive::ArchiveError),
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Classify for WriteError {
    fn class(&self) -> ErrorClass {
        match self {
            WriteError::Image { .. } | WriteError::Refused(_) | WriteError::NotConfirmed => {
                ErrorClass::BadInput
            }
            WriteError::Device(e) => e.class(),
            WriteError::Flash(e) => e.class(),
            WriteError::Bmap(e) => e.class(),
            WriteError::Archive(e) => e.class(),
            WriteError::SomeFailed { .. } | WriteError::Io { .. } | WriteError::Cancelled => {
                ErrorClass::Failure
            }
        }
    }
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> WriteError {
    let path = path.to_path_buf();
    move |source| WriteError::Io {
        action,
        path,
        source,
    }
}

/// The raw image to write and its mapped ranges; a decompressed copy lives as long as this value.
struct Prepared {
    raw: PathBuf,
    size: u64,
    ranges: Vec<(u64, u64)>,
    _temp: Option<tempfile::TempDir>,
}

fn prepare(
    image: &Path,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<Prepared, WriteError> {
    let mut head = [0u8; 6];
    let n = std::fs::File::open(image)
        .and_then(|mut f| f.read(&mut head))
        .map_err(io("reading", image))?;
    let compression = Compression::sniff(&head[..n]);
    if compression == Compression::None {
        let size = std::fs::metadata(image)
            .map_err(io("reading", image))?
            .len();
        let ranges = match bmap_beside(image, size)? {
            Some(ranges) => ranges,
            None => flash::mapped_ranges(image)?,
        };
        return Ok(Prepared {
            raw: image.to_path_buf(),
            size,
            ranges,
            _temp: None,
        });
    }
    // Decompressed once for every device, into a sparse file (zero blocks as holes, to spare the temporary
    // disk). Which ranges reach the card is a separate question: a bmap beside the image says; without
    // one, everything, because a zero block of the image may be one that must be written (a FAT table, an
    // inode table, the resize inode's blocks in the data partition: e2fsck finds the card's old bytes
    // there otherwise). Only the image's creator knows its holes (disk::sparse).
    let temp = tempfile::Builder::new()
        .prefix("image-creator-write-")
        .tempdir()
        .map_err(io(
            "creating a temporary directory in",
            &std::env::temp_dir(),
        ))?;
    let raw = temp.path().join("image.img");
    let input = std::fs::File::open(image).map_err(io("opening", image))?;
    let total = input.metadata().map(|m| m.len()).ok();
    let mut task = progress.task(
        TaskKind::Decode,
        format!("decompressing {}", image.display()),
        total,
    );
    let counting = Counting {
        inner: std::io::BufReader::with_capacity(1 << 20, input),
        task: &mut task,
    };
    let mut reader = archive::decoder(compression, counting, 0)?;
    let out = std::fs::File::create(&raw).map_err(io("creating", &raw))?;
    // The bar counts compressed bytes (the Counting reader); this task only satisfies the copy's API.
    let mut decoded = Progress::silent().task(TaskKind::Decode, "", None);
    let size =
        sparse::copy(&mut reader, &out, None, 0, &mut decoded, cancel).map_err(|e| match e {
            sparse::SparseError::Cancelled => WriteError::Cancelled,
            sparse::SparseError::Read { source } => io("decompressing", image)(source),
            other => WriteError::Image {
                image: raw.clone(),
                message: crate::Chain(&other).to_string(),
            },
        })?;
    out.set_len(size).map_err(io("writing", &raw))?;
    drop(out);
    drop(reader);
    task.finish();
    let ranges = bmap_beside(image, size)?.unwrap_or_else(|| vec![(0, size)]);
    Ok(Prepared {
        raw,
        size,
        ranges,
        _temp: Some(temp),
    })
}

/// Where a bmap for `image` may be: `IMAGE.bmap`, and for a compressed image also the name without its
/// compression suffix plus `.bmap` (`x.img.xz` → `x.img.bmap`), as bmaptool looks for it.
fn bmap_candidates(image: &Path) -> Vec<PathBuf> {
    let mut out = vec![bmap_path(image)];
    if let Some(ext) = image.extension().and_then(|e| e.to_str()) {
        if ["xz", "zst", "gz", "bz2"].contains(&ext) {
            out.push(bmap_path(&image.with_extension("")));
        }
    }
    out
}

/// The byte ranges of the first bmap found beside `image`, checked against the (decoded) image size.
fn bmap_beside(image: &Path, size: u64) -> Result<Option<Vec<(u64, u64)>>, WriteError> {
    let Some(path) = bmap_candidates(image).into_iter().find(|p| p.is_file()) else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(&path).map_err(io("reading", &path))?;
    let bmap = Bmap::parse(&text, &path.display().to_string())?;
    if bmap.image_size != size {
        return Err(WriteError::Image {
            image: image.to_path_buf(),
            message: format!(
                "its bmap {} describes {} bytes, the image has {size}",
                path.display(),
                bmap.image_size
            ),
        });
    }
    Ok(Some(bmap.byte_ranges()))
}

/// Counts compressed bytes read, for the decompression bar.
struct Counting<'a, R> {
    inner: R,
    task: &'a mut Task,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.task.advance(n as u64);
        Ok(n)
    }
}

/// Every device's facts, or all refusals at once (nothing is written unless every device is fine).
fn check_devices(opts: &WriteOptions, image_size: u64) -> Result<Vec<Facts>, WriteError> {
    let system = device::system_disks()?;
    let image_disk = device::disk_of_file(&opts.image)?;
    let mut policy = Policy::new(&opts.image, image_size);
    policy.allow_non_removable = opts.force;
    let mut facts = Vec::new();
    let mut refusals = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for dev in &opts.devices {
        let f = match device::facts(dev) {
            Ok(f) => f,
            Err(e) => {
                refusals.push(format!("  {}: {e}", dev.display()));
                continue;
            }
        };
        if !seen.insert(f.name.clone()) {
            refusals.push(format!("  {}: given twice", dev.display()));
            continue;
        }
        let why: Vec<Refusal> = device::check(&f, &policy, &system, image_disk.as_deref());
        for r in why {
            refusals.push(format!("  {}: {r}", dev.display()));
        }
        facts.push(f);
    }
    if refusals.is_empty() {
        Ok(facts)
    } else {
        Err(WriteError::Refused(refusals))
    }
}

/// `confirm` is asked once every device passed the checks (unless `opts.yes`); `false` stops before any
/// byte is written.
pub fn run(
    opts: &WriteOptions,
    confirm: &mut dyn FnMut(&[Facts]) -> bool,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<String, WriteError> {
    if opts.devices.is_empty() {
        return Err(WriteError::Image {
            image: opts.image.clone(),
            message: "no device given".into(),
        });
    }
    // Devices are checked against the image's size before anything else happens (decompressing a large
    // .xz first would make a wrong device name expensive to learn about). For a compressed image the size is
    // known only once decoded: the check is repeated then.
    std::fs::metadata(&opts.image).map_err(io("reading", &opts.image))?;
    check_devices(opts, 0)?;
    let prepared = prepare(&opts.image, progress, cancel)?;
    let facts = check_devices(opts, prepared.size)?;
    if !opts.yes && !confirm(&facts) {
        return Err(WriteError::NotConfirmed);
    }
    if opts.probe {
        let mut task = progress.task(
            TaskKind::Check,
            "probing real capacities",
            Some(facts.len() as u64),
        );
        for f in &facts {
            device::probe_capacity(&f.path, f.size, f.logical_block)?;
            task.advance(1);
        }
        task.finish();
    }
    let source = Source::new(&prepared.raw, prepared.ranges.clone(), prepared.size)?;
    let flash_opts = Options {
        chunk: opts.chunk,
        verify: opts.verify,
        discard: opts.discard,
    };
    let mapped: u64 = prepared.ranges.iter().map(|r| r.1).sum();
    // One bar per device and phase; the engine calls back from its threads.
    let tasks: Mutex<Vec<Option<(Phase, Task)>>> =
        Mutex::new((0..facts.len()).map(|_| None).collect());
    let events = |e: DeviceEvent| {
        let Ok(mut tasks) = tasks.lock() else { return };
        match e {
            DeviceEvent::Progress {
                dev,
                phase,
                done,
                total,
            } => {
                let slot = &mut tasks[dev];
                if slot.as_ref().is_none_or(|(p, _)| *p != phase) {
                    let kind = if phase == Phase::Verifying {
                        TaskKind::Verify
                    } else {
                        TaskKind::Write
                    };
                    let label = format!("{} {}", facts[dev].path.display(), phase_name(phase));
                    if let Some((_, t)) = slot.take() {
                        t.finish();
                    }
                    *slot = Some((phase, progress.task(kind, label, Some(total))));
                }
                if let Some((_, t)) = slot.as_mut() {
                    t.set(done);
                }
            }
            DeviceEvent::Finished { dev, result } => {
                if let Some((_, t)) = tasks[dev].take() {
                    if result.is_ok() {
                        t.finish();
                    }
                }
            }
            DeviceEvent::Phase { .. } => {}
        }
    };
    let paths: Vec<PathBuf> = facts.iter().map(|f| f.path.clone()).collect();
    let results = flash::write_all(&source, &paths, &flash_opts, &events, cancel);
    let mut lines = vec![format!(
        "{:<16} {:>6} {:>10} {:>10} {:>10}  {}",
        "device", "result", "written", "write", "verify", ""
    )];
    let mut failed = 0;
    for (f, r) in facts.iter().zip(&results) {
        match r {
            Ok(rep) => lines.push(format!(
                "{:<16} {:>6} {:>10} {:>7.1} MB/s {:>7}  {}",
                f.path.display(),
                "ok",
                crate::config::size::format_size(rep.written),
                rep.written as f64 / 1e6 / rep.write_secs.max(1e-9),
                if opts.verify {
                    format!(
                        "{:.1} MB/s",
                        rep.verified as f64 / 1e6 / rep.verify_secs.max(1e-9)
                    )
                } else {
                    "skipped".into()
                },
                // describe() starts with the path, already in the first column.
                device::describe(f)
                    .trim_start_matches(&*f.path.to_string_lossy())
                    .trim_start()
            )),
            Err(e) => {
                failed += 1;
                lines.push(format!("{:<16} {:>6}  {e}", f.path.display(), "FAILED"));
            }
        }
    }
    if failed > 0 {
        return Err(WriteError::SomeFailed {
            failed,
            total: facts.len(),
            lines,
        });
    }
    let mut summary = format!(
        "{} written to {} device(s): {} mapped of {}",
        opts.image.display(),
        facts.len(),
        crate::config::size::format_size(mapped),
        crate::config::size::format_size(prepared.size)
    );
    for l in lines {
        summary.push_str("\n  ");
        summary.push_str(&l);
    }
    Ok(summary)
}

fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::Opening => "opening",
        Phase::Discarding => "discarding",
        Phase::Writing => "writing",
        Phase::Syncing => "syncing",
        Phase::Verifying => "verifying",
        Phase::Done => "done",
        Phase::Failed => "failed",
    }
}
