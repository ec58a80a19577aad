//! `image-creator write IMAGE DEVICE...`: the prompt and the options; the work is the library's.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use image_creator::device::{self, Facts};
use image_creator::progress::Progress;
use image_creator::write::{self, WriteError, WriteOptions};
use image_creator::CancellationToken;

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

pub fn run(
    args: Args,
    progress: &Progress,
    cancel: &CancellationToken,
    rt: &tokio::runtime::Handle,
) -> CmdResult {
    let opts = WriteOptions {
        image: args.image,
        devices: args.devices,
        verify: args.verify,
        discard: args.discard,
        force: args.force,
        yes: args.yes,
        probe: args.probe,
        chunk: args.chunk,
    };
    let image = opts.image.clone();
    let mut ask = |facts: &[Facts]| ask(facts, &image, cancel, rt);
    let result = write::run(&opts, &mut ask, progress, cancel);
    match result {
        Err(WriteError::NotConfirmed) if cancel.is_cancelled() => Err(boxed(WriteError::Cancelled)),
        other => other.map_err(boxed),
    }
}

/// Asks on the terminal; `false` without one (scripts must pass --yes) or when cancelled while waiting.
fn ask(
    facts: &[Facts],
    image: &Path,
    cancel: &CancellationToken,
    rt: &tokio::runtime::Handle,
) -> bool {
    if !std::io::stdin().is_terminal() {
        return false;
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (facts, image) = (facts.to_vec(), image.to_path_buf());
    // A blocked read cannot be interrupted: it runs on its own thread, abandoned if Ctrl-C comes first.
    std::thread::spawn(move || {
        let answer = confirm(
            &facts,
            &image,
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
    image: &Path,
    input: &mut dyn BufRead,
    output: &mut dyn Write,
) -> bool {
    let _ = writeln!(output, "About to ERASE and write {} to:", image.display());
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
            let got = confirm(&[], Path::new("x.img"), &mut answer.as_bytes(), &mut out);
            assert_eq!(got, ok, "{answer:?}");
            assert!(String::from_utf8(out).unwrap().contains("ERASE"));
        }
    }
}
