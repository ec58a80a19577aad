//! Logging, binary side. Warnings are for the operator, so they travel the progress stream (a bar-safe
//! line on a terminal, a JSON `message` otherwise) rather than as raw log lines interleaved with it;
//! `-D` adds the full debug log on stderr, without colour escapes unless stderr is a terminal.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::sync::OnceLock;

use image_creator::progress::Progress;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Where warnings go once the renderer exists (before that, to stderr).
static SINK: OnceLock<Progress> = OnceLock::new();

pub fn init(debug: bool) {
    let default = if debug {
        "image_creator=debug,info"
    } else {
        "warn"
    };
    let filter =
        EnvFilter::try_from_env("IMAGE_CREATOR_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let log = debug.then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(true)
    });
    let warnings = (!debug).then_some(Warnings);
    tracing_subscriber::registry()
        .with(filter)
        .with(log)
        .with(warnings)
        .init();
}

/// From now on, warnings are progress messages.
pub fn warnings_to(progress: &Progress) {
    let _ = SINK.set(progress.clone());
}

struct Warnings;

impl<S: Subscriber> Layer<S> for Warnings {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if *event.metadata().level() > Level::WARN {
            return;
        }
        let mut text = Text::default();
        event.record(&mut text);
        match SINK.get() {
            Some(p) => p.warn(text.0),
            None => eprintln!("warning: {}", text.0),
        }
    }
}

/// `message key=value …`, as a person reads it.
#[derive(Default)]
struct Text(String);

impl Visit for Text {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let rest = std::mem::take(&mut self.0);
            let _ = write!(self.0, "{value:?}{rest}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            let rest = std::mem::take(&mut self.0);
            let _ = write!(self.0, "{value}{rest}");
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}
