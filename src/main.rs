//! Thin binary: parse the command line, set up logging and rendering, dispatch, map errors to exit codes.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use image_creator::cli::{Cli, Command};
use image_creator::progress::{JsonLines, Progress, Terminal};
use image_creator::{build, disk, Classify, ErrorClass};

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
    init_tracing(cli.debug);
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

    let result: Result<String, Box<dyn ClassifiedError>> = match cli.command {
        Some(Command::MakeDemoBase {
            output,
            p1_start,
            p3_type,
        }) => disk::demo::run_cli(&output, p1_start, &p3_type)
            .map_err(|e| Box::new(e) as Box<dyn ClassifiedError>),
        Some(Command::OciSizes { items, oci }) => {
            build::oci_sizes(&items, oci, &progress).map_err(|e| Box::new(e) as _)
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
        }) => image_creator::write::run_cli(
            image, devices, no_verify, discard, force, yes, probe, &chunk, &progress,
        )
        .map_err(|e| Box::new(e) as _),
        Some(Command::Cache(cmd)) => {
            build::run_cache_command(cmd, &progress).map_err(|e| Box::new(e) as _)
        }
        None => build::run_cli(cli.build, &progress)
            .map(|r| r.summary())
            .map_err(|e| Box::new(e) as _),
    };
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

trait ClassifiedError: std::error::Error + Classify {}
impl<T: std::error::Error + Classify> ClassifiedError for T {}

fn init_tracing(debug: bool) {
    let default = if debug {
        "image_creator=debug,info"
    } else {
        "warn"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("IMAGE_CREATOR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(debug)
        .init();
}
