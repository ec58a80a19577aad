//! A job: one card and one piece of work on it — clone a prepared image, or build a config straight onto
//! it — with its own cancellation token, reporting through the one event stream (`JobStarted`, phases,
//! tasks, `JobFinished`) and returning a typed [`JobReport`]. `write` is N jobs on one image; the station
//! starts one as each card arrives. Devices are gated before a job exists ([`crate::device`]).

use std::path::Path;
use std::sync::Arc;

use crate::build::{self, BuildError, BuildOptions, BuildReport};
use crate::device::{self, DeviceError, Facts};
use crate::flash::{self, DeviceReport, FlashError, Image};
use crate::progress::{Device, Event, JobId, Outcome, Phase, Progress, TaskKind};
use crate::{CancellationToken, Chain, Classify, ErrorClass};

/// What a job writes.
#[derive(Debug, Clone)]
pub enum Work {
    /// Flash a prepared image (shared by every job writing it).
    Clone(Arc<Image>),
    /// Build a config straight onto the card (no intermediate image); `output` is set to the card.
    Build(Box<BuildOptions>),
}

impl Work {
    fn describe(&self) -> String {
        match self {
            Work::Clone(image) => image.origin().display().to_string(),
            Work::Build(opts) => format!("build of {}", opts.config_src),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Job {
    pub id: JobId,
    /// The gated device.
    pub device: Facts,
    pub work: Work,
    /// How a clone is written (chunk, verify, discard).
    pub flash: flash::Options,
    /// Check the card's real capacity first (fake cards).
    pub probe: bool,
}

#[derive(Debug)]
pub struct JobReport {
    pub id: JobId,
    pub device: Facts,
    pub result: Result<Done, JobError>,
}

impl JobReport {
    /// The outcome as the event stream carries it.
    pub fn outcome(&self) -> Outcome {
        match &self.result {
            Ok(Done::Cloned(r)) => Outcome::Done {
                written: r.written,
                verified: r.verified,
                write_secs: r.write_secs,
                verify_secs: r.verify_secs,
            },
            Ok(Done::Built(r)) => Outcome::Done {
                written: r.image_size,
                verified: 0,
                write_secs: 0.0,
                verify_secs: 0.0,
            },
            Err(JobError::Interrupted { .. }) => Outcome::Interrupted,
            Err(e) => Outcome::Failed {
                class: e.class(),
                error: Chain(e).to_string(),
            },
        }
    }
}

#[derive(Debug)]
pub enum Done {
    Cloned(DeviceReport),
    Built(BuildReport),
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("{device}: interrupted")]
    Interrupted { device: std::path::PathBuf },
    #[error(transparent)]
    Probe(#[from] DeviceError),
    #[error(transparent)]
    Flash(#[from] FlashError),
    #[error(transparent)]
    Build(#[from] BuildError),
}

impl Classify for JobError {
    fn class(&self) -> ErrorClass {
        match self {
            JobError::Interrupted { .. } => ErrorClass::Failure,
            JobError::Probe(e) => e.class(),
            JobError::Flash(e) => e.class(),
            JobError::Build(e) => e.class(),
        }
    }
}

/// The device as events show it.
pub fn device_info(f: &Facts) -> Device {
    Device {
        path: f.path.clone(),
        label: device::label(f),
        serial: f.serial.clone(),
        size: f.size,
        bus: f.bus.to_string(),
        port: f.port.clone(),
    }
}

/// Runs `job` in the calling thread, start to end. Blocking: a build job waits on `rt` for its downloads,
/// so call it from a plain thread or `spawn_blocking`. Never panics on a failing card: every failure is
/// in the report (and in the `JobFinished` event).
pub fn run(
    job: &Job,
    progress: &Progress,
    cancel: &CancellationToken,
    rt: &tokio::runtime::Handle,
) -> JobReport {
    let p = progress.for_job(job.id);
    p.emit(Event::JobStarted {
        job: job.id,
        device: device_info(&job.device),
        work: job.work.describe(),
    });
    let result = match work(job, &p, cancel, rt) {
        Err(_) if cancel.is_cancelled() => Err(JobError::Interrupted {
            device: job.device.path.clone(),
        }),
        other => other,
    };
    let report = JobReport {
        id: job.id,
        device: job.device.clone(),
        result,
    };
    match &report.result {
        Ok(_) => tracing::info!(device = %job.device.path.display(), "job done"),
        Err(e) => {
            tracing::warn!(device = %job.device.path.display(), error = %Chain(e), "job failed")
        }
    }
    p.emit(Event::JobFinished {
        job: job.id,
        outcome: report.outcome(),
    });
    report
}

fn work(
    job: &Job,
    p: &Progress,
    cancel: &CancellationToken,
    rt: &tokio::runtime::Handle,
) -> Result<Done, JobError> {
    let dev: &Path = &job.device.path;
    if job.probe {
        p.phase(Phase::Probing);
        let task = p.task(
            TaskKind::Check,
            format!("{} probing its real capacity", dev.display()),
            Some(1),
        );
        device::probe_capacity(dev, job.device.size, job.device.logical_block)?;
        task.finish();
    }
    if cancel.is_cancelled() {
        return Err(JobError::Interrupted {
            device: dev.to_path_buf(),
        });
    }
    match &job.work {
        Work::Clone(image) => Ok(Done::Cloned(flash::write_one(
            image, dev, &job.flash, p, cancel,
        )?)),
        Work::Build(opts) => {
            p.phase(Phase::Building);
            let opts = BuildOptions {
                output: dev.to_path_buf(),
                ..(**opts).clone()
            };
            Ok(Done::Built(build::build(&opts, p, cancel, rt)?))
        }
    }
}

/// Runs every job at once, each in its own named thread (a slow or failing card never gates another), and
/// returns their reports in order.
pub fn run_each(
    jobs: &[Job],
    progress: &Progress,
    cancel: &CancellationToken,
    rt: &tokio::runtime::Handle,
) -> Vec<JobReport> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .iter()
            .map(|job| {
                std::thread::Builder::new()
                    .name(format!("job-{}", job.id))
                    .spawn_scoped(scope, move || run(job, progress, cancel, rt))
            })
            .collect();
        handles
            .into_iter()
            .zip(jobs)
            .map(|(spawned, job)| {
                let failed = |reason: String| JobReport {
                    id: job.id,
                    device: job.device.clone(),
                    result: Err(JobError::Flash(FlashError::Thread {
                        device: job.device.path.clone(),
                        reason,
                    })),
                };
                match spawned {
                    Ok(h) => h.join().unwrap_or_else(|_| failed("panicked".into())),
                    Err(e) => failed(e.to_string()),
                }
            })
            .collect()
    })
}
