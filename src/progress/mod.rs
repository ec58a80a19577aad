//! Progress: one event stream for everything long. The engine never prints: work emits [`Event`]s through
//! a [`Progress`] handle — build steps, byte-counted tasks (downloads, copies, a card being written), and
//! the life of a job (one card: started with its device, phases, finished with a typed [`Outcome`]). A pure
//! [`Tracker`] folds them into a [`Snapshot`] (speeds, ETAs, jobs and their devices), which every
//! renderer reads: the binary's terminal bars and JSON lines (`src/cmd/render.rs`), the station's web page next.
//! Counters are absolute (bytes done so far), so a dropped or coalesced event loses nothing.

mod job;
mod tracker;

pub use job::{Device, JobId, Outcome, Phase};
pub use tracker::{JobState, Snapshot, TaskState, Tracker};

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Top-level steps of a build, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Load,
    Plan,
    Fetch,
    Stage,
    Assemble,
    Finish,
}

/// What a task does; renderers pick a bar style from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    Download,
    Decode,
    Extract,
    Copy,
    Mke2fs,
    Check,
    Write,
    Verify,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    StepStarted {
        step: Step,
        label: String,
        /// The job (card) this step belongs to, for a build straight onto a card.
        #[serde(skip_serializing_if = "Option::is_none")]
        job: Option<JobId>,
    },
    StepFinished {
        step: Step,
    },
    /// `total` in units (bytes) when known.
    TaskStarted {
        id: u64,
        kind: TaskKind,
        label: String,
        total: Option<u64>,
        /// The job (card) this task belongs to; task ids are unique across jobs.
        #[serde(skip_serializing_if = "Option::is_none")]
        job: Option<JobId>,
    },
    TaskProgress {
        id: u64,
        done: u64,
    },
    /// The total became known after the start (a download learning its Content-Length).
    TaskTotal {
        id: u64,
        total: u64,
    },
    TaskFinished {
        id: u64,
        ok: bool,
    },
    /// A notable message for the user (warnings such as a declared size far from the real one).
    Message {
        level: Level,
        text: String,
    },
    /// A job began on a device: `work` says what is written (the image, or the config built onto it).
    JobStarted {
        job: JobId,
        device: Device,
        work: String,
    },
    /// The job entered a phase; its bytes are counted by the tasks it starts.
    JobPhase {
        job: JobId,
        phase: Phase,
    },
    JobFinished {
        job: JobId,
        outcome: Outcome,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Info,
    Warn,
}

type SinkFn = dyn Fn(&Event) + Send + Sync;

/// Cheap, cloneable handle through which the engine emits events. A handle made by [`Progress::for_job`]
/// tags the steps and tasks it starts with the job, so one stream carries many cards at once.
#[derive(Clone)]
pub struct Progress {
    sink: Arc<SinkFn>,
    next_id: Arc<AtomicU64>,
    job: Option<JobId>,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress")
    }
}

impl Progress {
    pub fn new(sink: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        Self {
            sink: Arc::new(sink),
            next_id: Arc::new(AtomicU64::new(1)),
            job: None,
        }
    }

    /// The same stream, with what is started through the returned handle attributed to `job`.
    pub fn for_job(&self, job: JobId) -> Progress {
        Progress {
            job: Some(job),
            ..self.clone()
        }
    }

    pub fn job(&self) -> Option<JobId> {
        self.job
    }

    /// The job of this handle entered `phase` (nothing is emitted on a handle without a job).
    pub fn phase(&self, phase: Phase) {
        if let Some(job) = self.job {
            self.emit(Event::JobPhase { job, phase });
        }
    }

    /// A handle that drops every event (library users and tests that do not care).
    pub fn silent() -> Self {
        Self::new(|_| {})
    }

    pub fn emit(&self, event: Event) {
        (self.sink)(&event);
    }

    pub fn step(&self, step: Step, label: impl Into<String>) {
        self.emit(Event::StepStarted {
            step,
            label: label.into(),
            job: self.job,
        });
    }

    pub fn step_done(&self, step: Step) {
        self.emit(Event::StepFinished { step });
    }

    pub fn warn(&self, text: impl Into<String>) {
        let text = text.into();
        tracing::debug!("warning: {text}");
        self.emit(Event::Message {
            level: Level::Warn,
            text,
        });
    }

    pub fn info(&self, text: impl Into<String>) {
        self.emit(Event::Message {
            level: Level::Info,
            text: text.into(),
        });
    }

    /// Starts a task; the returned [`Task`] throttles progress events at the source
    /// and reports `TaskFinished{ok:false}` if dropped without [`Task::finish`].
    pub fn task(&self, kind: TaskKind, label: impl Into<String>, total: Option<u64>) -> Task {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.emit(Event::TaskStarted {
            id,
            kind,
            label: label.into(),
            total,
            job: self.job,
        });
        Task {
            progress: self.clone(),
            id,
            done: 0,
            total,
            emitted: None,
            last_emit: None,
            finished: false,
        }
    }
}

/// One long-running unit of work. `advance`/`set` are cheap; events go out at most every 100 ms.
pub struct Task {
    progress: Progress,
    id: u64,
    done: u64,
    total: Option<u64>,
    /// Last `done` sent, so the final event is not a duplicate.
    emitted: Option<u64>,
    last_emit: Option<Instant>,
    finished: bool,
}

const THROTTLE: Duration = Duration::from_millis(100);

impl Task {
    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn done(&self) -> u64 {
        self.done
    }

    pub fn advance(&mut self, n: u64) {
        self.set(self.done + n);
    }

    pub fn set(&mut self, done: u64) {
        self.done = done;
        let now = Instant::now();
        if self
            .last_emit
            .is_none_or(|t| now.duration_since(t) >= THROTTLE)
        {
            self.last_emit = Some(now);
            self.emitted = Some(done);
            self.progress
                .emit(Event::TaskProgress { id: self.id, done });
        }
    }

    pub fn set_total(&mut self, total: u64) {
        if self.total != Some(total) {
            self.total = Some(total);
            self.progress.emit(Event::TaskTotal { id: self.id, total });
        }
    }

    pub fn finish(mut self) {
        self.end(true);
    }

    fn end(&mut self, ok: bool) {
        if !self.finished {
            self.finished = true;
            if self.emitted != Some(self.done) {
                self.progress.emit(Event::TaskProgress {
                    id: self.id,
                    done: self.done,
                });
            }
            self.progress.emit(Event::TaskFinished { id: self.id, ok });
        }
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        self.end(false);
    }
}
