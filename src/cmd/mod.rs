//! The binary's side of every command: command-line types, the one tokio runtime, the one signal handler,
//! prompts and summary text. The library never reads stdin, prints, builds a runtime or handles signals.

pub mod build;
pub mod cache;
pub mod cli;
pub mod demo;
pub mod logs;
pub mod oci_sizes;
pub mod render;
pub mod write;

use image_creator::{CancellationToken, Classify, ErrorClass};

/// An error the binary can print and map to an exit code.
pub trait ClassifiedError: std::error::Error + Classify {}
impl<T: std::error::Error + Classify> ClassifiedError for T {}

pub type CmdResult = Result<String, Box<dyn ClassifiedError>>;

/// The one runtime of the process: downloads, registries and (later) the station's server run on it;
/// blocking engine work runs on the main thread or its own threads and waits on it through a handle.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("image-creator-rt")
        .build()
}

/// The one signal handler: the first SIGINT or SIGTERM cancels the returned token (every job stops at its
/// next chunk and cleans up); a second one exits at once, for a user stuck at a prompt or a hung tool.
pub fn cancel_on_signals(rt: &tokio::runtime::Runtime) -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    rt.spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            tracing::warn!(
                "cannot install the signal handler: Ctrl-C will kill without cleaning up"
            );
            return;
        };
        for round in 0..2 {
            tokio::select! {
                _ = int.recv() => {},
                _ = term.recv() => {},
            }
            if round == 0 {
                tracing::warn!("interrupted: cancelling (again to quit at once)");
                cancel.cancel();
            }
        }
        std::process::exit(130);
    });
    token
}

/// Errors of the binary's own steps (runtime start, prompts).
#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
}

impl Classify for CmdError {
    fn class(&self) -> ErrorClass {
        match self {
            CmdError::Runtime(_) => ErrorClass::Failure,
        }
    }
}

/// Boxes any classified error for the dispatcher.
pub fn boxed<E: ClassifiedError + 'static>(e: E) -> Box<dyn ClassifiedError> {
    Box::new(e)
}
