//! `image-creator write IMAGE DEVICE...`: gate every device, open the image once, ask, then one job per
//! device (the library's `job` module) and a summary table. Prompt and table are the binary's.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use image_creator::device::{self, Eligibility, Facts};
use image_creator::flash::{self, FlashError, Image};
use image_creator::job::{self, Done, Job, JobReport, Work};
use image_creator::progress::Progress;
use image_creator::units::format_size;
use image_creator::{CancellationToken, Chain, Classify, ErrorClass};

use super::{boxed, CmdResult};

pub struct Args {
    pub image: PathBuf,
    pub devices: Vec<PathBuf>,
    pub verify: bool,
    pub discard: bool,
    pub force: bool,
    pub yes: bool,
    pub probe: bool,
    pub chunk: usize,
}

/// How `write` ends when not every card was written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("not confirmed: nothing was written (pass --yes to skip the question)")]
    NotConfirmed,
    #[error("interrupted: nothing was written")]
    Cancelled,
    #[error(
        "interrupted: {failed} of {total} devices hold only part of the image; write them again:\n{table}"
    )]
    Interrupted {
        failed: usize,
        total: usize,
        table: String,
    },
    #[error("{failed} of {total} devices failed:\n{table}")]
    SomeFailed {
        failed: usize,
        total: usize,
        table: String,
        /// The failures' class when they all share one (no permission on any card → 2), else failure.
        class: ErrorClass,
    },
}

impl Classify for WriteError {
    fn class(&self) -> ErrorClass {
        match self {
            WriteError::NotConfirmed => ErrorClass::BadInput,
            WriteError::Cancelled | WriteError::Interrupted { .. } => ErrorClass::Failure,
            WriteError::SomeFailed { class, .. } => *class,
        }
    }
}

pub fn run(
    args: Args,
    progress: &Progress,
    cancel: &CancellationToken,
    rt: &tokio::runtime::Handle,
) -> CmdResult {
    let flash_opts = flash::Options {
        chunk: args.chunk,
        verify: args.verify,
        discard: args.discard,
    };
    flash_opts.validate().map_err(boxed)?;
    // Devices are gated before the image is opened (decompressing a large .xz first would make a wrong
    // device name expensive to learn about), and again once the image's size is known.
    let policy = |size| Eligibility {
        allow_non_removable: args.force,
        ..Eligibility::new(&args.image, size)
    };
    std::fs::metadata(&args.image)
        .map_err(|source| FlashError::Image {
            path: args.image.clone(),
            source,
        })
        .map_err(boxed)?;
    device::gate(&args.devices, &policy(0)).map_err(boxed)?;
    let image = match Image::open(&args.image, progress, cancel) {
        Err(_) if cancel.is_cancelled() => return Err(boxed(WriteError::Cancelled)),
        other => Arc::new(other.map_err(boxed)?),
    };
    let facts = device::gate(&args.devices, &policy(image.image_size())).map_err(boxed)?;
    let what = args.image.display().to_string();
    if !args.yes && !ask(&facts, &what, cancel, rt) {
        return Err(boxed(if cancel.is_cancelled() {
            WriteError::Cancelled
        } else {
            WriteError::NotConfirmed
        }));
    }
    let jobs: Vec<Job> = facts
        .into_iter()
        .enumerate()
        .map(|(i, device)| Job {
            id: i as u64,
            device,
            work: Work::Clone(image.clone()),
            flash: flash_opts.clone(),
            probe: args.probe,
        })
        .collect();
    let reports = job::run_each(&jobs, progress, cancel, rt);
    let table = table(&reports, args.verify);
    let failed = reports.iter().filter(|r| r.result.is_err()).count();
    if failed > 0 && cancel.is_cancelled() {
        return Err(boxed(WriteError::Interrupted {
            failed,
            total: reports.len(),
            table,
        }));
    }
    if failed > 0 {
        let mut classes = reports
            .iter()
            .filter_map(|r| r.result.as_ref().err().map(Classify::class));
        let first = classes.next().unwrap_or(ErrorClass::Failure);
        let class = if classes.all(|c| c == first) {
            first
        } else {
            ErrorClass::Failure
        };
        return Err(boxed(WriteError::SomeFailed {
            failed,
            total: reports.len(),
            table,
            class,
        }));
    }
    Ok(format!(
        "{} written to {} device(s): {} mapped of {}\n{table}",
        args.image.display(),
        reports.len(),
        format_size(image.mapped_bytes()),
        format_size(image.image_size())
    ))
}

/// One line per device: result, bytes, speeds, what it is. One unit system in the table: binary, as
/// every other size the tool prints (MiB, MiB/s).
fn table(reports: &[JobReport], verify: bool) -> String {
    let mut lines = vec![format!(
        "  {:<16} {:>6} {:>10} {:>12} {:>12}  {}",
        "device", "result", "written", "write", "verify", "card (model, capacity, bus)"
    )];
    let speed = |bytes: u64, secs: f64| {
        format!(
            "{:.1} MiB/s",
            bytes as f64 / (1u64 << 20) as f64 / secs.max(1e-9)
        )
    };
    for r in reports {
        let path = r.device.path.display();
        match &r.result {
            Ok(done) => {
                let (written, write, check) = match done {
                    Done::Cloned(rep) => (
                        rep.written,
                        speed(rep.written, rep.write_secs),
                        if verify {
                            speed(rep.verified, rep.verify_secs)
                        } else {
                            "skipped".into()
                        },
                    ),
                    Done::Built(rep) => (rep.image_size, "-".into(), "-".into()),
                };
                let card = job::device_info(&r.device);
                let what = [
                    card.label.unwrap_or_default(),
                    format_size(card.size),
                    card.bus,
                ]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join("  ");
                lines.push(format!(
                    "  {path:<16} {:>6} {:>10} {write:>12} {check:>12}  {what}",
                    "ok",
                    format_size(written),
                ));
            }
            Err(e) => lines.push(format!("  {path:<16} {:>6}  {}", "FAILED", Chain(e))),
        }
    }
    lines.join("\n")
}

/// Asks on the terminal; `false` without one (scripts must pass --yes) or when cancelled while waiting.
pub fn ask(
    facts: &[Facts],
    what: &str,
    cancel: &CancellationToken,
    rt: &tokio::runtime::Handle,
) -> bool {
    if !std::io::stdin().is_terminal() {
        return false;
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (facts, what) = (facts.to_vec(), what.to_string());
    // A blocked read cannot be interrupted: it runs on its own thread, abandoned if Ctrl-C comes first.
    std::thread::spawn(move || {
        let answer = confirm(
            &facts,
            &what,
            &mut std::io::stdin().lock(),
            &mut std::io::stderr(),
        );
        let _ = tx.send(answer);
    });
    rt.block_on(async {
        tokio::select! {
            answer = rx => answer.unwrap_or(false),
            _ = cancel.cancelled() => false,
        }
    })
}

/// Asks on `output`, reads the answer from `input`: only `yes` goes on.
pub fn confirm(
    facts: &[Facts],
    what: &str,
    input: &mut dyn BufRead,
    output: &mut dyn Write,
) -> bool {
    let _ = writeln!(output, "About to ERASE and write {what} to:");
    for f in facts {
        let _ = writeln!(output, "  {}", device::describe(f));
    }
    let _ = write!(output, "Type yes to continue: ");
    let _ = output.flush();
    let mut answer = String::new();
    input.read_line(&mut answer).is_ok() && answer.trim() == "yes"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_yes_confirms() {
        for (answer, ok) in [
            ("yes\n", true),
            ("y\n", false),
            ("YES please\n", false),
            ("", false),
            ("no\n", false),
        ] {
            let mut out = Vec::new();
            let got = confirm(&[], "x.img", &mut answer.as_bytes(), &mut out);
            assert_eq!(got, ok, "{answer:?}");
            assert!(String::from_utf8(out).unwrap().contains("ERASE"));
        }
    }
}
