//! Running e2fsprogs: null stdin, bounded capture of stdout/stderr on reader threads (a chatty child
//! can neither block on a full pipe nor make our memory grow), periodic ticks, and cancellation.

use super::{io_err, Ext4Error};
use crate::CancellationToken;
use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

/// Longest stderr (and, unless asked otherwise, stdout) we keep for error messages.
pub(super) const KEEP: usize = 64 * 1024;
/// How often a running child is checked for cancellation and progress.
const TICK: Duration = Duration::from_millis(200);

pub(super) struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    /// Kept stderr lines (those not dropped by the filter), at most [`KEEP`] bytes.
    pub stderr: String,
    pub command: String,
}

impl Output {
    /// stdout and stderr together, for error messages.
    pub fn text(&self) -> String {
        let mut s = String::from_utf8_lossy(&self.stdout).trim_end().to_string();
        if !self.stderr.trim().is_empty() {
            if !s.is_empty() {
                s.push('\n');
            }
            s.push_str(self.stderr.trim_end());
        }
        s
    }

    pub fn failed(self) -> Ext4Error {
        Ext4Error::Failed {
            status: self.status.to_string(),
            output: self.text(),
            command: self.command,
        }
    }
}

pub(super) struct Opts<'a> {
    pub tool: &'static str,
    /// Bytes of stdout to keep; the rest is read and dropped.
    pub stdout_limit: usize,
    /// Says which stderr lines to ignore (banners, expected warnings); called on every line in
    /// order, so it may keep state (a message about a file name containing LF spans lines).
    pub drop_line: Box<dyn FnMut(&str) -> bool + Send + 'a>,
    pub cancel: Option<&'a CancellationToken>,
}

impl<'a> Opts<'a> {
    pub fn new(tool: &'static str) -> Self {
        Opts {
            tool,
            stdout_limit: KEEP,
            drop_line: Box::new(|_| false),
            cancel: None,
        }
    }
}

/// Runs `cmd` to completion. `tick(pid)` is called about every 200 ms while the child runs (only
/// when a cancel token is given, otherwise the child is simply waited for).
pub(super) fn run(
    mut cmd: Command,
    opts: Opts<'_>,
    mut tick: impl FnMut(u32),
) -> Result<Output, Ext4Error> {
    let command = command_line(&cmd);
    tracing::debug!(%command, "running");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| Ext4Error::Spawn {
        command: command.clone(),
        source,
    })?;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    std::thread::scope(|scope| {
        let out_reader = scope.spawn(move || stdout.map(|s| read_bounded(s, opts.stdout_limit)));
        let drop_line = opts.drop_line;
        let err_reader = scope.spawn(move || stderr.map(|s| read_lines(s, drop_line)));
        let waited = match opts.cancel {
            None => child.wait().map(Some),
            Some(cancel) => wait_or_cancel(&mut child, cancel, &mut tick),
        };
        let stdout = out_reader.join().ok().flatten().unwrap_or_default();
        let stderr = err_reader.join().ok().flatten().unwrap_or_default();
        match waited {
            Ok(Some(status)) => Ok(Output {
                status,
                stdout,
                stderr,
                command,
            }),
            Ok(None) => Err(Ext4Error::Cancelled { tool: opts.tool }),
            Err(source) => Err(Ext4Error::Spawn { command, source }),
        }
    })
}

/// `Ok(None)` when cancelled (the child is killed and reaped).
fn wait_or_cancel(
    child: &mut std::process::Child,
    cancel: &CancellationToken,
    tick: &mut impl FnMut(u32),
) -> std::io::Result<Option<ExitStatus>> {
    // Short first sleeps: most debugfs runs take milliseconds and should not pay a whole tick.
    let mut sleep = Duration::from_millis(5);
    loop {
        if cancel.is_cancelled() {
            // SIGKILL: mke2fs has no useful cleanup and the partial filesystem is discarded anyway.
            let _ = child.kill();
            child.wait()?;
            return Ok(None);
        }
        tick(child.id());
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        std::thread::sleep(sleep);
        sleep = (sleep * 2).min(TICK);
    }
}

fn read_bounded(mut r: impl Read, limit: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let room = limit.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    kept
}

fn read_lines(r: impl Read, mut drop_line: impl FnMut(&str) -> bool) -> String {
    let mut kept = String::new();
    let mut truncated = false;
    let mut reader = BufReader::new(r);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                if text.trim().is_empty() || drop_line(text.trim_end()) {
                    continue;
                }
                if kept.len() + text.len() <= KEEP {
                    kept.push_str(&text);
                } else {
                    truncated = true;
                }
            }
        }
    }
    if truncated {
        kept.push_str("… (more output cut)\n");
    }
    kept
}

/// The command as a shell line, for error messages and logs.
pub(super) fn command_line(cmd: &Command) -> String {
    let mut parts: Vec<String> = cmd
        .get_envs()
        .filter_map(|(k, v)| v.map(|v| format!("{}={}", k.to_string_lossy(), shell_quote(v))))
        .collect();
    parts.push(shell_quote(cmd.get_program()));
    parts.extend(cmd.get_args().map(shell_quote));
    parts.join(" ")
}

fn shell_quote(s: &OsStr) -> String {
    let s = s.to_string_lossy();
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:=,+@%".contains(c));
    if plain {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Bytes the process has read so far (`rchar` of `/proc/PID/io`): the progress of `mke2fs -d`,
/// which reports nothing itself while it copies the source tree.
pub(super) fn read_rchar(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("rchar:"))
        .and_then(|v| v.trim().parse().ok())
}

/// `IMAGE?offset=N` as e2fsck/debugfs/dumpe2fs read it. libext2fs splits the name at the first
/// `?`, so an image whose path contains `?` is reached through a symlink in a private temporary
/// directory, kept alive as long as this value.
pub(crate) struct DeviceSpec {
    spec: OsString,
    _link_dir: Option<tempfile::TempDir>,
}

impl DeviceSpec {
    pub fn new(image: &Path, offset: u64) -> Result<DeviceSpec, Ext4Error> {
        let (base, link_dir) = if image.as_os_str().as_encoded_bytes().contains(&b'?') {
            let dir = tempfile::Builder::new()
                .prefix("ext4-img")
                .tempdir()
                .map_err(io_err(&std::env::temp_dir()))?;
            let target = std::path::absolute(image).map_err(io_err(image))?;
            let link = dir.path().join("image");
            std::os::unix::fs::symlink(&target, &link).map_err(io_err(&link))?;
            (link, Some(dir))
        } else {
            (PathBuf::from(super::arg_path(image)), None)
        };
        let mut spec = base.into_os_string();
        spec.push(format!("?offset={offset}"));
        Ok(DeviceSpec {
            spec,
            _link_dir: link_dir,
        })
    }

    pub fn as_os_str(&self) -> &OsStr {
        &self.spec
    }
}
