//! A pure tracker: events in, snapshot out. Time is a parameter so speed and ETA are unit-testable.

use std::time::{Duration, Instant};

use super::{Event, Step, TaskKind};

#[derive(Debug, Clone, PartialEq)]
pub struct TaskState {
    pub id: u64,
    pub kind: TaskKind,
    pub label: String,
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

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub step: Option<Step>,
    pub step_label: String,
    /// Tasks in start order; finished ones stay so renderers can summarise them.
    pub tasks: Vec<TaskState>,
    pub warnings: Vec<String>,
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

    pub fn apply(&mut self, now: Instant, event: &Event) {
        let snap = &mut self.snapshot;
        match event {
            Event::StepStarted { step, label } => {
                snap.step = Some(*step);
                snap.step_label = label.clone();
            }
            Event::StepFinished { .. } => {}
            Event::TaskStarted {
                id,
                kind,
                label,
                total,
            } => snap.tasks.push(TaskState {
                id: *id,
                kind: *kind,
                label: label.clone(),
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
}
