//! A pure tracker: events in, snapshot out. Time is a parameter so speed and ETA are unit-testable.

use std::time::{Duration, Instant};

use super::{Device, Event, JobId, Outcome, Phase, Step, TaskKind};

#[derive(Debug, Clone, PartialEq)]
pub struct TaskState {
    pub id: u64,
    pub kind: TaskKind,
    pub label: String,
    /// The job (card) the task works for.
    pub job: Option<JobId>,
    pub total: Option<u64>,
    pub done: u64,
    /// Smoothed units per second.
    pub speed: f64,
    pub finished: Option<bool>,
    started: Instant,
    last: Option<(Instant, u64)>,
}

impl TaskState {
    /// Remaining time at the current speed, when both total and speed are known.
    pub fn eta(&self) -> Option<Duration> {
        let total = self.total?;
        if self.speed <= 0.0 || self.done >= total {
            return None;
        }
        Some(Duration::from_secs_f64(
            (total - self.done) as f64 / self.speed,
        ))
    }

    pub fn elapsed(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.started)
    }
}

/// One job (one card): its device, where it is, how it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct JobState {
    pub id: JobId,
    pub device: Device,
    pub work: String,
    pub phase: Option<Phase>,
    /// The build step, for a build straight onto the card.
    pub step: Option<(Step, String)>,
    pub outcome: Option<Outcome>,
    pub started: Instant,
    pub finished: Option<Instant>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub step: Option<Step>,
    pub step_label: String,
    /// Tasks in start order; finished ones stay so renderers can summarise them.
    pub tasks: Vec<TaskState>,
    pub warnings: Vec<String>,
    /// Jobs in start order.
    pub jobs: Vec<JobState>,
}

impl Snapshot {
    pub fn job(&self, id: JobId) -> Option<&JobState> {
        self.jobs.iter().find(|j| j.id == id)
    }

    /// The task a job is counting its bytes with now: its newest unfinished one, else its newest.
    pub fn job_task(&self, id: JobId) -> Option<&TaskState> {
        let mut of_job = self.tasks.iter().rev().filter(|t| t.job == Some(id));
        let newest = of_job.clone().next();
        of_job.find(|t| t.finished.is_none()).or(newest)
    }
}

#[derive(Debug, Default)]
pub struct Tracker {
    snapshot: Snapshot,
}

/// Weight of the newest sample in the speed average: smooth enough for bursty networks, quick to follow a
/// real change of rate.
const ALPHA: f64 = 0.3;

impl Tracker {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// Drops a job and its tasks (a station forgets a card once it is pulled out, so memory stays flat
    /// over days of duplication).
    pub fn forget_job(&mut self, id: JobId) {
        self.snapshot.jobs.retain(|j| j.id != id);
        self.snapshot.tasks.retain(|t| t.job != Some(id));
    }

    pub fn apply(&mut self, now: Instant, event: &Event) {
        let snap = &mut self.snapshot;
        match event {
            Event::StepStarted {
                step,
                label,
                job: None,
            } => {
                snap.step = Some(*step);
                snap.step_label = label.clone();
            }
            Event::StepStarted {
                step,
                label,
                job: Some(id),
            } => {
                if let Some(job) = snap.jobs.iter_mut().find(|j| j.id == *id) {
                    job.step = Some((*step, label.clone()));
                }
            }
            Event::StepFinished { .. } => {}
            Event::TaskStarted {
                id,
                kind,
                label,
                total,
                job,
            } => snap.tasks.push(TaskState {
                id: *id,
                kind: *kind,
                label: label.clone(),
                job: *job,
                total: *total,
                done: 0,
                speed: 0.0,
                finished: None,
                started: now,
                last: None,
            }),
            Event::TaskProgress { id, done } => {
                if let Some(task) = snap.tasks.iter_mut().find(|t| t.id == *id) {
                    let (t0, d0) = task.last.unwrap_or((task.started, 0));
                    let dt = now.saturating_duration_since(t0).as_secs_f64();
                    if dt > 0.0 && *done >= d0 {
                        let rate = (*done - d0) as f64 / dt;
                        task.speed = if task.last.is_none() {
                            rate
                        } else {
                            ALPHA * rate + (1.0 - ALPHA) * task.speed
                        };
                        task.last = Some((now, *done));
                    }
                    task.done = *done;
                }
            }
            Event::TaskTotal { id, total } => {
                if let Some(task) = snap.tasks.iter_mut().find(|t| t.id == *id) {
                    task.total = Some(*total);
                }
            }
            Event::TaskFinished { id, ok } => {
                if let Some(task) = snap.tasks.iter_mut().find(|t| t.id == *id) {
                    task.finished = Some(*ok);
                }
            }
            Event::Message {
                level: super::Level::Warn,
                text,
            } => snap.warnings.push(text.clone()),
            Event::Message { .. } => {}
            Event::JobStarted { job, device, work } => snap.jobs.push(JobState {
                id: *job,
                device: device.clone(),
                work: work.clone(),
                phase: None,
                step: None,
                outcome: None,
                started: now,
                finished: None,
            }),
            Event::JobPhase { job, phase } => {
                if let Some(j) = snap.jobs.iter_mut().find(|j| j.id == *job) {
                    j.phase = Some(*phase);
                }
            }
            Event::JobFinished { job, outcome } => {
                if let Some(j) = snap.jobs.iter_mut().find(|j| j.id == *job) {
                    j.outcome = Some(outcome.clone());
                    j.finished = Some(now);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(id: u64, total: Option<u64>) -> Event {
        Event::TaskStarted {
            id,
            kind: TaskKind::Download,
            label: format!("t{id}"),
            total,
            job: None,
        }
    }

    #[test]
    fn speed_and_eta_follow_injected_time() {
        let t0 = Instant::now();
        let mut tr = Tracker::new();
        tr.apply(t0, &start(1, Some(1000)));
        tr.apply(
            t0 + Duration::from_secs(1),
            &Event::TaskProgress { id: 1, done: 100 },
        );
        let task = &tr.snapshot().tasks[0];
        assert_eq!(task.speed, 100.0);
        assert_eq!(task.eta(), Some(Duration::from_secs(9)));
        // Rate doubles: the smoothed speed moves towards it without jumping.
        tr.apply(
            t0 + Duration::from_secs(2),
            &Event::TaskProgress { id: 1, done: 300 },
        );
        let speed = tr.snapshot().tasks[0].speed;
        assert!(speed > 100.0 && speed < 200.0, "{speed}");
    }

    #[test]
    fn unknown_total_has_no_eta_and_finish_is_recorded() {
        let t0 = Instant::now();
        let mut tr = Tracker::new();
        tr.apply(t0, &start(7, None));
        tr.apply(
            t0 + Duration::from_millis(500),
            &Event::TaskProgress { id: 7, done: 50 },
        );
        tr.apply(
            t0 + Duration::from_secs(1),
            &Event::TaskFinished { id: 7, ok: false },
        );
        let task = &tr.snapshot().tasks[0];
        assert_eq!(task.eta(), None);
        assert_eq!(task.finished, Some(false));
        assert_eq!(task.speed, 100.0);
    }

    #[test]
    fn steps_and_warnings() {
        let mut tr = Tracker::new();
        let now = Instant::now();
        tr.apply(
            now,
            &Event::StepStarted {
                step: Step::Fetch,
                label: "Downloading".into(),
                job: None,
            },
        );
        tr.apply(
            now,
            &Event::Message {
                level: super::super::Level::Warn,
                text: "careful".into(),
            },
        );
        assert_eq!(tr.snapshot().step, Some(Step::Fetch));
        assert_eq!(tr.snapshot().warnings, vec!["careful".to_string()]);
    }

    #[test]
    fn jobs_follow_their_phases_tasks_and_outcome_and_can_be_forgotten() {
        let t0 = Instant::now();
        let mut tr = Tracker::new();
        let device = Device {
            path: "/dev/sdb".into(),
            size: 32_000_000_000,
            bus: "usb".into(),
            ..Device::default()
        };
        let at = |ms| t0 + Duration::from_millis(ms);
        tr.apply(
            at(0),
            &Event::JobStarted {
                job: 7,
                device: device.clone(),
                work: "x.img".into(),
            },
        );
        tr.apply(
            at(0),
            &Event::JobPhase {
                job: 7,
                phase: Phase::Writing,
            },
        );
        tr.apply(
            at(0),
            &Event::TaskStarted {
                id: 1,
                kind: TaskKind::Write,
                label: "w".into(),
                total: Some(1000),
                job: Some(7),
            },
        );
        tr.apply(at(0), &start(2, None)); // another job's or the run's own task
        tr.apply(at(1000), &Event::TaskProgress { id: 1, done: 250 });
        let snap = tr.snapshot();
        let job = snap.job(7).unwrap();
        assert_eq!(job.device, device);
        assert_eq!(job.phase, Some(Phase::Writing));
        let task = snap.job_task(7).unwrap();
        assert_eq!((task.id, task.done), (1, 250));
        assert_eq!(task.eta(), Some(Duration::from_secs(3)));
        tr.apply(at(1100), &Event::TaskFinished { id: 1, ok: true });
        let outcome = Outcome::Interrupted;
        tr.apply(
            at(1200),
            &Event::JobFinished {
                job: 7,
                outcome: outcome.clone(),
            },
        );
        let job = tr.snapshot().job(7).unwrap();
        assert_eq!(job.outcome, Some(outcome));
        assert_eq!(job.phase, Some(Phase::Writing), "the phase it stopped in");
        assert_eq!(job.finished, Some(at(1200)));
        // The finished task is still the job's task to show.
        assert_eq!(tr.snapshot().job_task(7).unwrap().id, 1);
        tr.forget_job(7);
        assert!(tr.snapshot().jobs.is_empty());
        assert_eq!(tr.snapshot().tasks.len(), 1);
    }
}
