//! Archive tests: fixtures are built in a temp dir with the tar/zip crates, or with python3's
//! `tarfile`/`zipfile` when raw hostile headers are easier to write there.

mod decoders;
mod hostile;
mod tar_cases;
mod zip_cases;

use super::*;
use crate::progress::Event;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

/// Runs a python3 script with arguments; panics with its stderr on failure.
fn python(script: &str, args: &[&str]) {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn expand_quiet(
    archive: &Path,
    via: Via,
    dest: &Path,
    limit: Option<u64>,
) -> Result<Expanded, ArchiveError> {
    expand(
        archive,
        via,
        dest,
        limit,
        "t",
        &Progress::silent(),
        &CancellationToken::new(),
    )
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// Every path under `root`, relative, sorted (to compare trees and spot stray files).
fn tree(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(root).unwrap().display().to_string());
            if fs::symlink_metadata(&p).unwrap().is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

/// Asserts a `BadInput` refusal that names the archive and the member.
fn assert_refused(r: Result<Expanded, ArchiveError>, archive: &Path, member: &str) -> String {
    let e = r.expect_err("hostile archive must be refused");
    let msg = e.to_string();
    assert_eq!(e.class(), ErrorClass::BadInput, "{msg}");
    let file = archive.file_name().unwrap().to_string_lossy();
    assert!(msg.contains(&*file), "{msg} should name {file}");
    assert!(msg.contains(member), "{msg} should name {member}");
    msg
}

#[test]
fn progress_reports_one_extract_task_to_the_archive_size() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tar_cases::good_tar(tmp.path(), Compression::Gzip);
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let progress = Progress::new(move |e| sink.lock().unwrap().push(e.clone()));
    let dest = tmp.path().join("out");
    expand(
        &archive,
        Via::Gztar,
        &dest,
        None,
        "/data/site",
        &progress,
        &CancellationToken::new(),
    )
    .unwrap();
    let size = fs::metadata(&archive).unwrap().len();
    let events = events.lock().unwrap();
    let started: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::TaskStarted { kind, total, .. } => Some((*kind, *total)),
            _ => None,
        })
        .collect();
    assert_eq!(started, vec![(TaskKind::Extract, Some(size))]);
    let last_done = events.iter().rev().find_map(|e| match e {
        Event::TaskProgress { done, .. } => Some(*done),
        _ => None,
    });
    assert_eq!(last_done, Some(size));
    assert!(matches!(
        events.last(),
        Some(Event::TaskFinished { ok: true, .. })
    ));
}

#[test]
fn cancel_stops_expansion() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("big.tar");
    let data = vec![7u8; 4 << 20];
    let mut b = ::tar::Builder::new(fs::File::create(&archive).unwrap());
    for i in 0..4 {
        let mut h = ::tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, format!("f{i}"), &data[..]).unwrap();
    }
    b.into_inner().unwrap();
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    // CancellationToken as soon as the first progress report arrives, i.e. mid-expansion.
    let progress = Progress::new(move |e| {
        if matches!(e, Event::TaskProgress { .. }) {
            trigger.cancel();
        }
    });
    let dest = tmp.path().join("out");
    let e = expand(&archive, Via::Tar, &dest, None, "t", &progress, &cancel).unwrap_err();
    assert!(matches!(e, ArchiveError::Cancelled { .. }), "{e}");
    assert_eq!(e.class(), ErrorClass::Failure);
    assert!(e.to_string().contains("cancelled"));
    assert!(!dest.join("f3").exists());
}

#[test]
fn not_an_archive_via_is_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("x");
    fs::write(&f, b"x").unwrap();
    let e = expanded_size(&f, Via::Direct, &CancellationToken::new()).unwrap_err();
    assert_eq!(e.class(), ErrorClass::BadInput);
}

#[test]
fn truncated_archive_is_a_failure_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let good = tar_cases::good_tar(tmp.path(), Compression::Xz);
    let bytes = fs::read(&good).unwrap();
    let cut = tmp.path().join("cut.tar.xz");
    fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = expand_quiet(&cut, Via::Xztar, &tmp.path().join("o"), None).unwrap_err();
    assert_eq!(e.class(), ErrorClass::Failure, "{e}");
    assert!(e.to_string().contains("cut.tar.xz"), "{e}");

    let zip = zip_cases::good_zip(tmp.path());
    let bytes = fs::read(&zip).unwrap();
    let cutzip = tmp.path().join("cut.zip");
    fs::write(&cutzip, &bytes[..bytes.len() - 30]).unwrap();
    let e = expand_quiet(&cutzip, Via::Zip, &tmp.path().join("z"), None).unwrap_err();
    assert_eq!(e.class(), ErrorClass::Failure, "{e}");
    assert!(e.to_string().contains("cut.zip"), "{e}");
}

#[test]
fn expands_over_existing_content_and_keeps_it() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tar_cases::good_tar(tmp.path(), Compression::None);
    let dest = tmp.path().join("out");
    fs::create_dir_all(dest.join("top")).unwrap();
    fs::write(dest.join("keep.txt"), b"mine").unwrap();
    fs::write(
        dest.join("top/exec.sh"),
        b"old content, longer than the new one",
    )
    .unwrap();
    expand_quiet(&archive, Via::Tar, &dest, None).unwrap();
    assert_eq!(fs::read(dest.join("keep.txt")).unwrap(), b"mine");
    assert_eq!(fs::read(dest.join("top/exec.sh")).unwrap(), tar_cases::EXEC);
}

fn paths(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}
