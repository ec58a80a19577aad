//! The device is the judge of `offspot:`: the program that reads `offspot.yaml` on the device
//! (`offspot-runtime-config-fromfile`, from `offspot-config` on PyPI) is installed from PyPI
//! in two virtualenvs — 2.7.1 (pinned by 1.4.x base images) and 2.10.5 (the newest) — and
//! its real validation path (`tests/support/offspot_judge.py`) gives its verdict on every
//! value of a corpus. Our verdict (the library's config parser) must be the same. Where the
//! two versions disagree ours must be the stricter one: a config must work on both devices.
//! A few values are accepted by the device but applied wrongly (a string `hide: "false"`
//! hides the network): those we refuse on purpose, each with its reason in the corpus.

#[path = "support/offspot_corpus.rs"]
mod corpus;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use corpus::CORPUS;

const VERSIONS: [&str; 2] = ["2.7.1", "2.10.5"];

/// The venv with `offspot-config==version`, created once under the target dir and reused.
/// No network, no python3-venv: the test fails, saying what is missing.
fn venv(version: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("offspot-config-venvs");
    let dir = root.join(version);
    let ready = dir.join(".ready");
    if ready.exists() {
        return dir;
    }
    std::fs::create_dir_all(&root).unwrap();
    // Built aside and renamed into place, so an interrupted install is never taken as ready.
    let tmp = root.join(format!("{version}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let run = |cmd: &mut Command, what: &str| {
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
        assert!(
            out.status.success(),
            "{what} failed ({}): the device-verdict test needs python3 with venv \
             (Debian: python3-venv, see .ci/deps.sh) and PyPI access\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&tmp),
        "python3 -m venv",
    );
    run(
        Command::new(tmp.join("bin/pip")).args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            &format!("offspot-config=={version}"),
        ]),
        &format!("pip install offspot-config=={version}"),
    );
    std::fs::write(tmp.join(".ready"), version).unwrap();
    // Scripts in a venv name its interpreter by absolute path: keep the path by renaming the
    // whole tree only if nobody else finished first (then ours is dropped).
    if std::fs::rename(&tmp, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    assert!(ready.exists(), "venv for {version} not ready at {dir:?}");
    dir
}

#[derive(serde::Deserialize, Debug)]
struct Verdict {
    ok: bool,
    why: String,
}

/// The device's verdicts on `texts` (each a whole `offspot.yaml`).
fn device(version: &str, texts: &[String]) -> Vec<Verdict> {
    let python = venv(version).join("bin/python");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/offspot_judge.py");
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input = serde_json::to_vec(texts).unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the judge for offspot-config {version} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verdicts: Vec<Verdict> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(verdicts.len(), texts.len());
    verdicts
}

/// A config around the `offspot:` block, and our verdict on it: the emitted `offspot.yaml`
/// if we accept, the message if we refuse.
fn ours(block: &str) -> Result<String, String> {
    let indented: String = block.lines().map(|l| format!("  {l}\n")).collect();
    let text = format!("base: 1.4.2\noffspot:\n{indented}");
    match image_creator::config::parse(&text, "corpus.yaml") {
        Ok(config) => Ok(config.offspot.map(|o| o.to_yaml()).unwrap_or_default()),
        Err(e) => Err(e.to_string()),
    }
}

#[test]
fn our_verdict_on_offspot_yaml_is_the_devices() {
    assert!(CORPUS.len() >= 60);
    let texts: Vec<String> = CORPUS.iter().map(|c| c.yaml.to_string()).collect();
    let judged: Vec<Vec<Verdict>> = VERSIONS.iter().map(|v| device(v, &texts)).collect();
    let mine: Vec<Result<String, String>> = CORPUS.iter().map(|c| ours(c.yaml)).collect();

    let mut wrong = Vec::new();
    for (i, case) in CORPUS.iter().enumerate() {
        let v = [&judged[0][i], &judged[1][i]];
        let device_ok = v[0].ok && v[1].ok;
        let expected = device_ok && case.misapplied.is_none();
        if let Some(why) = case.misapplied {
            // Refused on purpose: the claim that the device accepts it must stay true.
            if !device_ok {
                wrong.push(format!(
                    "{:?}: marked as misapplied ({why}) but a device refuses it",
                    case.yaml
                ));
            }
        }
        if mine[i].is_ok() != expected {
            wrong.push(format!(
                "{:?}: we {}, device 2.7.1 {} ({}), 2.10.5 {} ({}){}",
                case.yaml,
                match &mine[i] {
                    Ok(_) => "accept".to_string(),
                    Err(e) => format!("refuse: {e}"),
                },
                if v[0].ok { "accepts" } else { "refuses" },
                v[0].why,
                if v[1].ok { "accepts" } else { "refuses" },
                v[1].why,
                case.misapplied
                    .map(|w| format!(" — we must refuse: {w}"))
                    .unwrap_or_default(),
            ));
        }
    }

    // What we write for an accepted block must be accepted too (it is what the device reads).
    let emitted: Vec<(usize, String)> = mine
        .iter()
        .enumerate()
        .filter_map(|(i, m)| m.as_ref().ok().map(|y| (i, y.clone())))
        .collect();
    let emitted_texts: Vec<String> = emitted.iter().map(|(_, y)| y.clone()).collect();
    for version in VERSIONS {
        for ((i, yaml), verdict) in emitted.iter().zip(device(version, &emitted_texts)) {
            if !verdict.ok {
                wrong.push(format!(
                    "{:?}: we accept it, but offspot-config {version} refuses what we write:\n{yaml}({})",
                    CORPUS[*i].yaml, verdict.why
                ));
            }
        }
    }

    for (version, verdicts) in VERSIONS.iter().zip(&judged) {
        let accepted = verdicts.iter().filter(|v| v.ok).count();
        println!(
            "offspot-config {version}: {accepted} accepted, {} refused of {}",
            verdicts.len() - accepted,
            verdicts.len()
        );
    }
    let accepted = mine.iter().filter(|m| m.is_ok()).count();
    println!(
        "image-creator: {accepted} accepted, {} refused",
        mine.len() - accepted
    );
    assert!(
        wrong.is_empty(),
        "{} disagreement(s) with the device:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
