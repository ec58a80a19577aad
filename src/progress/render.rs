//! Renderers: indicatif bars on a terminal, one JSON object per line otherwise.
//! Both are plain event sinks (`Fn(&Event)`), plugged into [`super::Progress::new`].

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{Event, Level, Step, TaskKind};

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

/// Human output: step lines, a bar per task, warnings.
pub struct Terminal {
    multi: MultiProgress,
    bars: Mutex<HashMap<u64, (ProgressBar, String, Instant, TaskKind)>>,
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
            bars: Mutex::new(HashMap::new()),
        }
    }

    fn println(&self, line: String) {
        let _ = self.multi.println(line);
    }

    pub fn render(&self, event: &Event) {
        let Ok(mut bars) = self.bars.lock() else {
            return;
        };
        match event {
            Event::StepStarted { step, label } => {
                self.println(format!("==> {}: {label}", step_name(*step)))
            }
            Event::StepFinished { .. } => {}
            Event::TaskStarted {
                id,
                kind,
                label,
                total,
            } => {
                let bar = match total {
                    Some(total) if *kind == TaskKind::Check => ProgressBar::new(*total).with_style(
                        ProgressStyle::with_template("  {prefix:8} {msg:30!} [{bar:25}] {pos}/{len}")
                            .unwrap_or_else(|_| ProgressStyle::default_bar())
                            .progress_chars("=> "),
                    ),
                    Some(total) => ProgressBar::new(*total).with_style(bar_style()),
                    None => ProgressBar::new_spinner().with_style(
                        ProgressStyle::with_template("  {prefix:8} {msg:30!} {spinner} {bytes:>10} {binary_bytes_per_sec:>12}")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    ),
                };
                let bar = self.multi.add(bar);
                bar.set_prefix(kind_name(*kind));
                bar.set_message(label.clone());
                bars.insert(*id, (bar, label.clone(), Instant::now(), *kind));
            }
            Event::TaskProgress { id, done } => {
                if let Some((bar, ..)) = bars.get(id) {
                    bar.set_position(*done);
                }
            }
            Event::TaskTotal { id, total } => {
                if let Some((bar, ..)) = bars.get(id) {
                    bar.set_length(*total);
                    bar.set_style(bar_style());
                }
            }
            Event::TaskFinished { id, ok } => {
                if let Some((bar, label, started, kind)) = bars.remove(id) {
                    let done = bar.position();
                    bar.finish_and_clear();
                    self.multi.remove(&bar);
                    let mark = if *ok { "ok" } else { "FAILED" };
                    let amount = if kind == TaskKind::Check {
                        done.to_string()
                    } else {
                        HumanBytes(done).to_string()
                    };
                    self.println(format!(
                        "  - {label}: {mark} ({amount}, {:.1}s)",
                        started.elapsed().as_secs_f64()
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
        }
    }
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "  {prefix:8} {msg:30!} [{bar:25}] {bytes:>10}/{total_bytes:10} {binary_bytes_per_sec:>12} ETA {eta}",
    )
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
            },
            Event::TaskStarted {
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
        ];
        assert_eq!(stripped, expected);
    }
}
