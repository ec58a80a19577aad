//! Thin binary: parse the command line, set up logging, rendering, the runtime and the signal handler,
//! dispatch to `cmd::*`, map errors to exit codes.

mod cmd;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use cmd::cli::{Cli, Command};
use cmd::render::{JsonLines, Terminal};
use image_creator::progress::Progress;
use image_creator::ErrorClass;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // --help and --version are not errors; usage errors are bad input (3), not clap's 2.
            let code = if err.use_stderr() {
                ErrorClass::BadInput.exit_code()
            } else {
                0
            };
            let _ = err.print();
            return ExitCode::from(code as u8);
        }
    };
    cmd::logs::init(cli.debug);
    // oci-sizes prints a YAML snippet meant to be pasted or redirected: keep stdout for it alone.
    let raw_output = matches!(cli.command, Some(Command::OciSizes { .. }));
    let json = !std::io::stdout().is_terminal() && !raw_output;
    let json_out = std::sync::Arc::new(JsonLines::stdout());
    let progress = if raw_output && !std::io::stdout().is_terminal() {
        Progress::silent()
    } else if json {
        let out = json_out.clone();
        Progress::new(move |e| out.render(e))
    } else {
        let term = Terminal::new();
        Progress::new(move |e| term.render(e))
    };

    cmd::logs::warnings_to(&progress);
    let result = dispatch(cli.command, cli.build, &progress);
    match result {
        Ok(summary) => {
            if json {
                json_out
                    .line(serde_json::json!({"event": "finished", "ok": true, "summary": summary}));
            } else {
                println!("{summary}");
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            let code = err.class().exit_code();
            let message = format!("error: {:#}", image_creator::Chain(&*err));
            eprintln!("{message}");
            if cli.debug {
                eprintln!("{err:?}");
            }
            if json {
                json_out.line(serde_json::json!({"event": "finished", "ok": false, "exit_code": code, "error": message}));
            }
            ExitCode::from(code as u8)
        }
    }
}

fn dispatch(
    command: Option<Command>,
    build: cmd::cli::BuildArgs,
    progress: &Progress,
) -> cmd::CmdResult {
    let rt = cmd::runtime().map_err(|e| cmd::boxed(cmd::CmdError::Runtime(e)))?;
    let cancel = cmd::cancel_on_signals(&rt);
    let handle = rt.handle();
    let result = match command {
        Some(Command::MakeDemoBase {
            output,
            p1_start,
            p3_type,
        }) => cmd::demo::run(&output, p1_start, p3_type),
        Some(Command::OciSizes { items, oci }) => {
            cmd::oci_sizes::run(&items, &oci, progress, &cancel, handle)
        }
        Some(Command::Write {
            image,
            devices,
            no_verify,
            discard,
            force,
            yes,
            probe,
            chunk,
        }) => cmd::write::run(
            cmd::write::Args {
                image,
                devices,
                verify: !no_verify,
                discard,
                force,
                yes,
                probe,
                chunk,
            },
            progress,
            &cancel,
            handle,
        ),
        Some(Command::Cache(c)) => cmd::cache::run(c, progress, &cancel, handle),
        None => cmd::build::run(build, progress, &cancel, handle),
    };
    // A prompt's reader thread may still wait on stdin: do not wait for the runtime's blocking work.
    rt.shutdown_background();
    result
}
