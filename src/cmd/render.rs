//! Renderers: indicatif bars on a terminal, one JSON object per line otherwise.
//! Both are plain event sinks (`Fn(&Event)`), plugged into [`Progress::new`](image_creator::progress::Progress::new).

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

use indicatif::{
    HumanBytes, HumanDuration, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle,
};

use image_creator::progress::{Event, JobId, Level, Outcome, Step, TaskKind, TaskState, Tracker};

/// JSON lines on stdout: each event serialised with `elapsed_ms` since the renderer started.
pub struct JsonLines {
    start: Instant,
    out: Mutex<Box<dyn Write + Send>>,
}

impl JsonLines {
    pub fn stdout() -> Self {
        Self::to(Box::new(std::io::stdout()))
    }

    pub fn to(out: Box<dyn Write + Send>) -> Self {
        Self {
            start: Instant::now(),
            out: Mutex::new(out),
        }
    }

    pub fn render(&self, event: &Event) {
        self.line(serde_json::to_value(event).unwrap_or_default());
    }

    /// Writes any JSON object (the final summary or error) with the same framing as events.
    pub fn line(&self, mut value: serde_json::Value) {
        if let Some(obj) = value.as_object_mut() {
            obj.insert(
                "elapsed_ms".into(),
                (self.start.elapsed().as_millis() as u64).into(),
            );
        }
        if let Ok(mut out) = self.out.lock() {
            // A closed stdout (consumer went away) must not abort the build: ignore write errors.
            let _ = writeln!(out, "{value}");
            let _ = out.flush();
        }
    }
}

/// Human output: step lines, a bar per task, a line per job, warnings. Speeds and ETAs come from the
/// [`Tracker`]'s snapshot, the same numbers the station's page shows.
pub struct Terminal {
    multi: MultiProgress,
    state: Mutex<TermState>,
}

#[derive(Default)]
struct TermState {
    tracker: Tracker,
    bars: HashMap<u64, ProgressBar>,
}

impl Default for Terminal {
    fn default() -> Self {
        Self::new()
    }
}

impl Terminal {
    pub fn new() -> Self {
        Self {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stdout()),
            state: Mutex::new(TermState::default()),
        }
    }

    fn println(&self, line: String) {
        let _ = self.multi.println(line);
    }

    pub fn render(&self, event: &Event) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let now = Instant::now();
        state.tracker.apply(now, event);
        let TermState { tracker, bars } = &mut *state;
        let snap = tracker.snapshot();
        let device_of = |job: Option<JobId>| {
            job.and_then(|j| snap.job(j))
                .map(|j| j.device.path.display().to_string())
        };
        match event {
            Event::StepStarted { step, label, job } => match device_of(*job) {
                Some(dev) => self.println(format!("  {dev}: {}: {label}", step_name(*step))),
                None => self.println(format!("==> {}: {label}", step_name(*step))),
            },
            Event::StepFinished { .. } | Event::JobPhase { .. } => {}
            Event::TaskStarted { id, .. } => {
                if let Some(task) = snap.tasks.iter().find(|t| t.id == *id) {
                    let bar = self.multi.add(new_bar(task));
                    update_bar(&bar, task);
                    bars.insert(*id, bar);
                }
            }
            Event::TaskProgress { id, .. } | Event::TaskTotal { id, .. } => {
                if let (Some(bar), Some(task)) =
                    (bars.get(id), snap.tasks.iter().find(|t| t.id == *id))
                {
                    if matches!(event, Event::TaskTotal { .. }) {
                        bar.set_style(bar_style(task.kind, true));
                    }
                    update_bar(bar, task);
                }
            }
            Event::TaskFinished { id, ok } => {
                if let Some(bar) = bars.remove(id) {
                    bar.finish_and_clear();
                    self.multi.remove(&bar);
                }
                if let Some(task) = snap.tasks.iter().find(|t| t.id == *id) {
                    let mark = if *ok { "ok" } else { "FAILED" };
                    let amount = if task.kind == TaskKind::Check {
                        task.done.to_string()
                    } else {
                        HumanBytes(task.done).to_string()
                    };
                    self.println(format!(
                        "  - {}: {mark} ({amount}, {:.1}s)",
                        task.label,
                        task.elapsed(now).as_secs_f64()
                    ));
                }
            }
            Event::Message {
                level: Level::Warn,
                text,
            } => self.println(format!("  ! warning: {text}")),
            Event::Message {
                level: Level::Info,
                text,
            } => self.println(format!("  {text}")),
            Event::JobStarted { device, work, .. } => {
                let label = device.label.as_deref().unwrap_or("");
                self.println(format!(
                    "==> {} {label} ({}, {}): {work}",
                    device.path.display(),
                    image_creator::units::format_decimal(device.size),
                    device.bus
                ));
            }
            Event::JobFinished { job, outcome } => {
                let dev = device_of(Some(*job)).unwrap_or_default();
                let line = match outcome {
                    Outcome::Done { .. } => format!("  {dev}: done"),
                    Outcome::Interrupted => format!("  {dev}: interrupted"),
                    Outcome::Failed { error, .. } => format!("  {dev}: FAILED: {error}"),
                };
                self.println(line);
            }
        }
    }
}

fn new_bar(task: &TaskState) -> ProgressBar {
    let bar = match task.total {
        Some(total) => ProgressBar::new(total),
        None => ProgressBar::new_spinner(),
    };
    bar.with_style(bar_style(task.kind, task.total.is_some()))
        .with_prefix(format!("{:8} {}", kind_name(task.kind), task.label))
}

/// Position, length and the tracker's speed and ETA (in the message, which ends the line).
fn update_bar(bar: &ProgressBar, task: &TaskState) {
    if let Some(total) = task.total {
        bar.set_length(total);
    }
    bar.set_position(task.done);
    if task.kind == TaskKind::Check {
        return;
    }
    let mut msg = String::new();
    if task.speed > 0.0 {
        msg = format!("{}/s", HumanBytes(task.speed as u64));
    }
    if let Some(eta) = task.eta() {
        msg.push_str(&format!(" ETA {}", HumanDuration(eta)));
    }
    bar.set_message(msg);
}

fn bar_style(kind: TaskKind, with_total: bool) -> ProgressStyle {
    let template = match (kind, with_total) {
        (TaskKind::Check, true) => "  {prefix:40!} [{bar:25}] {pos}/{len}",
        (_, true) => "  {prefix:40!} [{bar:25}] {bytes:>10}/{total_bytes:10} {msg}",
        (_, false) => "  {prefix:40!} {spinner} {bytes:>10} {msg}",
    };
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

fn step_name(step: Step) -> &'static str {
    match step {
        Step::Load => "load",
        Step::Plan => "plan",
        Step::Fetch => "fetch",
        Step::Stage => "stage",
        Step::Assemble => "assemble",
        Step::Finish => "finish",
    }
}

fn kind_name(kind: TaskKind) -> &'static str {
    match kind {
        TaskKind::Download => "download",
        TaskKind::Decode => "decode",
        TaskKind::Extract => "extract",
        TaskKind::Copy => "copy",
        TaskKind::Mke2fs => "mke2fs",
        TaskKind::Check => "check",
        TaskKind::Write => "write",
        TaskKind::Verify => "verify",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image_creator::progress::{Device, Phase};
    use std::sync::Arc;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Pins the JSON-lines format: consumers (scripts, the station) parse these field names.
    #[test]
    fn json_lines_format_is_pinned() {
        let buf = Buf::default();
        let json = JsonLines::to(Box::new(buf.clone()));
        let events = [
            Event::StepStarted {
                step: Step::Fetch,
                label: "Downloading 2 sources".into(),
                job: None,
            },
            Event::TaskStarted {
                job: None,
                id: 3,
                kind: TaskKind::Download,
                label: "base.img.xz".into(),
                total: Some(1024),
            },
            Event::TaskProgress { id: 3, done: 512 },
            Event::TaskTotal { id: 3, total: 2048 },
            Event::TaskFinished { id: 3, ok: true },
            Event::Message {
                level: Level::Warn,
                text: "declared size off by 20%".into(),
            },
            Event::StepFinished { step: Step::Fetch },
            Event::JobStarted {
                job: 7,
                device: Device {
                    path: "/dev/sdb".into(),
                    label: Some("SanDisk Ultra".into()),
                    serial: None,
                    size: 31_914_983_424,
                    bus: "usb".into(),
                    port: Some("1-1.2".into()),
                },
                work: "hotspot.img".into(),
            },
            Event::JobPhase {
                job: 7,
                phase: Phase::Writing,
            },
            Event::TaskStarted {
                job: Some(7),
                id: 4,
                kind: TaskKind::Write,
                label: "/dev/sdb writing".into(),
                total: Some(4096),
            },
            Event::JobFinished {
                job: 7,
                outcome: Outcome::Failed {
                    class: image_creator::ErrorClass::Failure,
                    error: "/dev/sdb: write at offset 0 failed".into(),
                },
            },
            Event::JobFinished {
                job: 8,
                outcome: Outcome::Interrupted,
            },
        ];
        for e in &events {
            json.render(e);
        }
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let stripped: Vec<String> = text
            .lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                assert!(v["elapsed_ms"].is_u64(), "{l}");
                v.as_object_mut().unwrap().remove("elapsed_ms");
                v.to_string()
            })
            .collect();
        let expected = [
            r#"{"event":"step_started","label":"Downloading 2 sources","step":"fetch"}"#,
            r#"{"event":"task_started","id":3,"kind":"download","label":"base.img.xz","total":1024}"#,
            r#"{"done":512,"event":"task_progress","id":3}"#,
            r#"{"event":"task_total","id":3,"total":2048}"#,
            r#"{"event":"task_finished","id":3,"ok":true}"#,
            r#"{"event":"message","level":"warn","text":"declared size off by 20%"}"#,
            r#"{"event":"step_finished","step":"fetch"}"#,
            r#"{"device":{"bus":"usb","label":"SanDisk Ultra","path":"/dev/sdb","port":"1-1.2","size":31914983424},"event":"job_started","job":7,"work":"hotspot.img"}"#,
            r#"{"event":"job_phase","job":7,"phase":"writing"}"#,
            r#"{"event":"task_started","id":4,"job":7,"kind":"write","label":"/dev/sdb writing","total":4096}"#,
            r#"{"event":"job_finished","job":7,"outcome":{"class":"failure","error":"/dev/sdb: write at offset 0 failed","result":"failed"}}"#,
            r#"{"event":"job_finished","job":8,"outcome":{"result":"interrupted"}}"#,
        ];
        assert_eq!(stripped, expected);
    }
}
