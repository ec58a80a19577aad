//! Tests with real processes: the test binary re-executes itself filtered to one `#[ignore]`d
//! "child" test, which does nothing unless the parent passed it a cache directory.

use super::tests::{assert_consistent, put, sha_hex};
use super::*;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

const ENV_DIR: &str = "IMAGE_CREATOR_TEST_CACHE_DIR";
const ENV_TAG: &str = "IMAGE_CREATOR_TEST_CACHE_TAG";
const ENV_COUNT: &str = "IMAGE_CREATOR_TEST_CACHE_COUNT";
const ENV_READY: &str = "IMAGE_CREATOR_TEST_CACHE_READY";

/// A child process killed (SIGKILL) and reaped when dropped, so a failing assertion in the parent
/// never leaves it running (it would hold the harness's stderr open).
struct Kid(Child);

impl Kid {
    fn kill(&mut self) {
        let _ = self.0.kill(); // std sends SIGKILL on Unix
        let _ = self.0.wait();
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn_child(test: &str, envs: &[(&str, String)]) -> Kid {
    // Test names as the harness knows them lack the crate name.
    let module = module_path!()
        .split_once("::")
        .map_or(module_path!(), |(_, m)| m);
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args([
        &format!("{module}::{test}"),
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::inherit());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    Kid(cmd.spawn().unwrap())
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn tmp_files(dir: &Path) -> usize {
    fs::read_dir(dir.join(TMP_DIR)).unwrap().count()
}

/// Child: starts an insert, says so, then writes slowly until killed.
#[test]
#[ignore = "child process of killed_insert_leaves_nothing_servable"]
fn child_slow_writer() {
    let Ok(dir) = std::env::var(ENV_DIR) else {
        return;
    };
    let store = Store::open(Path::new(&dir)).unwrap();
    let mut ins = store.begin_insert().unwrap();
    ins.write_all(b"first chunk").unwrap();
    fs::write(std::env::var(ENV_READY).unwrap(), b"").unwrap();
    // Bounded, in case the parent dies without killing us.
    for _ in 0..3000 {
        ins.write_all(b"more").unwrap();
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Child: inserts `COUNT` own keys and as many versions of a shared key, reading back as it goes.
#[test]
#[ignore = "child process of processes_hammering_one_store"]
fn child_hammer() {
    let Ok(dir) = std::env::var(ENV_DIR) else {
        return;
    };
    let tag = std::env::var(ENV_TAG).unwrap();
    let count: u64 = std::env::var(ENV_COUNT).unwrap().parse().unwrap();
    let store = Store::open_with_grace(Path::new(&dir), Duration::ZERO).unwrap();
    for i in 0..count {
        let own = format!("http://x/{tag}/{i}");
        put(&store, &own, own.repeat(50).as_bytes(), i);
        let e = put(
            &store,
            "http://x/shared",
            format!("{tag} {i}").as_bytes(),
            i,
        );
        store.touch(&e.id, i).unwrap();
        let got = store.lookup(&own).unwrap().unwrap();
        assert_eq!(
            fs::read(store.path_of(&got)).unwrap(),
            own.repeat(50).as_bytes()
        );
        if let Some(s) = store.lookup("http://x/shared").unwrap() {
            // Another process may replace it between lookup and read: then the file is gone,
            // never different bytes under the same name.
            if let Ok(bytes) = fs::read(store.path_of(&s)) {
                assert_eq!(sha_hex(&bytes), s.sha256);
            }
        }
    }
}

#[test]
fn killed_insert_leaves_nothing_servable() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cache");
    let ready = tmp.path().join("ready");
    let mut child = spawn_child(
        "child_slow_writer",
        &[
            (ENV_DIR, dir.display().to_string()),
            (ENV_READY, ready.display().to_string()),
        ],
    );
    wait_for("child insert started", || ready.exists());
    // While the writer lives, not even a zero-grace open removes its temp file.
    Store::open_with_grace(&dir, Duration::ZERO).unwrap();
    assert_eq!(tmp_files(&dir), 1);

    child.kill();
    let store = Store::open(&dir).unwrap();
    assert!(store.entries().unwrap().is_empty());
    assert_eq!(fs::read_dir(dir.join(DATA_DIR)).unwrap().count(), 0);
    // Young, so kept by the default grace; but nothing serves it.
    assert_eq!(tmp_files(&dir), 1);
    // Once old enough (here: no grace), the dead writer's unlocked file goes.
    Store::open_with_grace(&dir, Duration::ZERO).unwrap();
    assert_eq!(tmp_files(&dir), 0);
    assert_consistent(&dir);
}

#[test]
fn processes_hammering_one_store() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    Store::open(&dir).unwrap();
    let count = 15;
    let children: Vec<_> = ["p1", "p2"]
        .iter()
        .map(|tag| {
            spawn_child(
                "child_hammer",
                &[
                    (ENV_DIR, dir.display().to_string()),
                    (ENV_TAG, tag.to_string()),
                    (ENV_COUNT, count.to_string()),
                ],
            )
        })
        .collect();
    // And this process reads (and verifies) meanwhile.
    let store = Store::open(&dir).unwrap();
    for _ in 0..20 {
        for e in store.entries().unwrap() {
            assert!(is_ok_or_replaced(&store, &e));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    for mut c in children {
        assert!(c.0.wait().unwrap().success(), "a hammering child failed");
    }
    let idx = assert_consistent(&dir);
    assert_eq!(idx.entries.len(), 2 * count + 1);
    assert_eq!(
        fs::read_dir(dir.join(DATA_DIR)).unwrap().count(),
        idx.entries.len()
    );
    assert_eq!(tmp_files(&dir), 0);
}

/// An entry read from a snapshot either still verifies, or was replaced/removed meanwhile.
fn is_ok_or_replaced(store: &Store, e: &IndexEntry) -> bool {
    match File::open(store.path_of(e)) {
        Ok(f) => sha256_of(f, &store.path_of(e)).unwrap() == e.sha256,
        Err(err) => err.kind() == ErrorKind::NotFound,
    }
}

#[test]
fn kill_at_random_points_keeps_the_store_valid() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    Store::open(&dir).unwrap();
    // Different delays land the SIGKILL in different phases: writing, fsync, rename, index write.
    for (round, delay_ms) in [7u64, 23, 41].into_iter().enumerate() {
        let mut child = spawn_child(
            "child_hammer",
            &[
                (ENV_DIR, dir.display().to_string()),
                (ENV_TAG, format!("r{round}")),
                (ENV_COUNT, "2000".into()),
            ],
        );
        let before = Store::open_read_only(&dir)
            .unwrap()
            .entries()
            .unwrap()
            .len();
        wait_for("child committed something", || {
            Store::open_read_only(&dir)
                .unwrap()
                .entries()
                .unwrap()
                .len()
                > before
        });
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill();

        let store = Store::open_with_grace(&dir, Duration::ZERO).unwrap();
        assert_consistent(&dir);
        assert_eq!(tmp_files(&dir), 0);
        let entries = store.entries().unwrap();
        assert_eq!(
            fs::read_dir(dir.join(DATA_DIR)).unwrap().count(),
            entries.len(),
            "orphans left after round {round}"
        );
        for e in &entries {
            assert!(store.verify(e).unwrap());
        }
    }
}
