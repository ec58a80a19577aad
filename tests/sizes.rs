//! The plan's size (`--check`) against the real image: never smaller, at most 2 % larger, on the demo and
//! on a config with a few hundred MiB of content; `--max-size` at the real size passes.

mod support;

use std::path::Path;

use support::fixtures::*;
use support::http_server::TestServer;

/// The planned size in bytes, from `--check`'s "would be N.NNMiB".
fn planned(cfg: &Path, out: &Path, extra: &[&str]) -> u64 {
    let mut args = vec!["-C"];
    args.extend_from_slice(extra);
    args.extend([cfg.to_str().unwrap(), out.to_str().unwrap()]);
    let o = run(&args);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    let at = t.find("would be ").expect("a planned size") + "would be ".len();
    let mib: f64 = t[at..].split("MiB").next().unwrap().parse().unwrap();
    (mib * (1u64 << 20) as f64) as u64
}

fn check(cfg: &Path, dir: &Path) {
    let out = dir.join("out.img");
    let plan = planned(cfg, &out, &[]);
    let o = run(&[cfg.to_str().unwrap(), out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let real = std::fs::metadata(&out).unwrap().len();
    // Progress names what the user knows: OUTPUT, not the temporary file it is finished under.
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let label = v["label"].as_str().unwrap_or_default();
        assert!(!label.contains(".partial"), "a temporary name in {line}");
    }
    // The plan prints MiB with two decimals: allow that rounding.
    assert!(plan + 10_486 >= real, "planned {plan} < real {real}");
    assert!(
        plan as f64 <= real as f64 * 1.02,
        "planned {plan} is more than 2 % over the real {real}"
    );
    // An image that fits its limit is not refused by the plan.
    let max = format!("{real}");
    let o = run(&[
        "-X",
        "--max-size",
        &max,
        cfg.to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "--max-size {max}: {}", text(&o));
}

#[test]
fn the_demo_is_planned_at_its_real_size() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = demo_config(
        dir.path(),
        "files:\n  - to: /data/hello.txt\n    content: hello\n",
    );
    check(&cfg, dir.path());
}

#[test]
fn a_large_config_is_planned_within_two_percent() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = String::from("files:\n");
    for i in 0..3 {
        let f = dir.path().join(format!("part{i}.bin"));
        sh(&format!("head -c 100M /dev/urandom > {}", f.display()));
        files.push_str(&format!(
            "  - url: file://{}\n    to: /data/contents/part{i}.bin\n",
            f.display()
        ));
    }
    let cfg = demo_config(dir.path(), &files);
    check(&cfg, dir.path());
}

/// A remote `.xz` base (multi-block, like the official ones) is read through range requests: its index and
/// the one block holding the data partition's superblock — and nothing else is downloaded by `--check`.
#[test]
fn a_remote_base_is_planned_at_its_real_size() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start();
    server.add_file("/base.img.xz", demo_base_xz());
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        format!(
            "base: {}\nfiles:\n  - to: /data/hello.txt\n    content: hello\n",
            server.url("/base.img.xz")
        ),
    )
    .unwrap();
    let plan = planned(&cfg, &dir.path().join("x.img"), &[]);
    let ranges: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET")
        .collect();
    assert!(
        ranges.iter().all(|r| r.range.is_some()),
        "--check downloaded the base: {ranges:?}"
    );
    check(&cfg, dir.path());
    assert!(plan <= 80 << 20, "planned {plan}");
}
