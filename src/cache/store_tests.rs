use super::*;
// sha2 directly, as an independent judge of crate::digest.
use crate::cache::index::INDEX_VERSION;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

pub(super) fn sha_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Inserts `data` under `key` the way a download would.
pub(super) fn put(store: &Store, key: &str, data: &[u8], now: u64) -> IndexEntry {
    let mut ins = store.begin_insert().unwrap();
    ins.write_all(data).unwrap();
    store
        .commit(
            ins,
            EntryKind::File,
            key,
            &sha_hex(data),
            Freshness::default(),
            now,
        )
        .unwrap()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Index parses, and every entry's file exists with the recorded size and sha256.
pub(super) fn assert_consistent(dir: &Path) -> Index {
    let text = fs::read_to_string(dir.join(INDEX_FILE)).unwrap();
    let idx: Index = serde_json::from_str(&text).unwrap();
    for e in &idx.entries {
        let bytes = fs::read(dir.join(DATA_DIR).join(&e.id))
            .unwrap_or_else(|err| panic!("{}: {err}", e.id));
        assert_eq!(bytes.len() as u64, e.size, "{}", e.id);
        assert_eq!(sha_hex(&bytes), e.sha256, "{}", e.id);
    }
    idx
}

#[test]
fn open_creates_the_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cache");
    let store = Store::open(&dir).unwrap();
    assert_eq!(store.dir(), dir);
    assert_eq!(
        names(&dir),
        [".lock", "CACHEDIR.TAG", "data", "index.json", "tmp"]
    );
    let idx = assert_consistent(&dir);
    assert_eq!(idx.version, INDEX_VERSION);
    assert!(idx.entries.is_empty());
    assert!(store.entries().unwrap().is_empty());
}

#[test]
fn insert_lookup_touch_and_check() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let key = "https://example.org/files/a:b.zim";
    assert!(store.lookup(key).unwrap().is_none());
    let e = put(&store, key, b"hello", 100);
    assert_eq!((e.size, e.added, e.last_used, e.uses), (5, 100, 100, 0));
    assert_eq!(store.path_of(&e), tmp.path().join("data").join(&e.id));
    assert_eq!(fs::read(store.path_of(&e)).unwrap(), b"hello");
    assert_eq!(store.lookup(key).unwrap(), Some(e.clone()));
    assert!(names(&tmp.path().join("tmp")).is_empty(), "temp file left");

    store.touch(&e.id, 200).unwrap();
    store.touch(&e.id, 300).unwrap();
    let fresh = Freshness {
        etag: Some("\"v1\"".into()),
        ..Default::default()
    };
    store.set_checked(&e.id, fresh.clone(), 400).unwrap();
    store.touch("no-such-id", 500).unwrap(); // evicted meanwhile: no error
    let got = store.lookup(key).unwrap().unwrap();
    assert_eq!((got.last_used, got.uses, got.checked), (300, 2, 400));
    assert_eq!(got.freshness, fresh);
    // Reopening keeps it all.
    let again = Store::open(tmp.path()).unwrap();
    assert_eq!(again.lookup(key).unwrap(), Some(got));
}

#[test]
fn new_version_of_a_key_replaces_the_old_file() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let key = "http://x/a.zim";
    let old = put(&store, key, b"old", 1);
    store.touch(&old.id, 2).unwrap();
    let new = put(&store, key, b"newer", 3);
    assert_ne!(old.id, new.id);
    assert!(!store.path_of(&old).exists(), "old file kept");
    assert_eq!(new.uses, 1, "uses carried over to the new version");
    assert_eq!(store.entries().unwrap(), vec![new.clone()]);
    // Same content again: same id, still one entry and one file.
    let same = put(&store, key, b"newer", 4);
    assert_eq!(same.id, new.id);
    assert_eq!(store.entries().unwrap().len(), 1);
    assert_eq!(names(&tmp.path().join("data")), [new.id.as_str()]);
    assert_consistent(tmp.path());
}

#[test]
fn verify_detects_and_drops_damaged_entries() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let good = put(&store, "http://x/good", b"good bytes", 1);
    let bad = put(&store, "http://x/bad", b"bad bytes!", 1);
    let gone = put(&store, "http://x/gone", b"gone", 1);
    assert!(store.verify(&good).unwrap());
    // Same length, different bytes: only the hash can tell.
    fs::write(store.path_of(&bad), b"BAD bytes!").unwrap();
    fs::remove_file(store.path_of(&gone)).unwrap();
    assert!(!store.verify(&bad).unwrap());
    assert!(!store.verify(&gone).unwrap());
    assert!(!store.path_of(&bad).exists());
    let ids: Vec<_> = store.entries().unwrap().into_iter().map(|e| e.id).collect();
    assert_eq!(ids, [good.id]);
}

#[test]
fn remove_reports_bytes_freed() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let a = put(&store, "http://x/a", &[1; 1000], 1);
    let b = put(&store, "http://x/b", &[2; 24], 1);
    let c = put(&store, "http://x/c", &[3; 7], 1);
    let freed = store
        .remove(&[a.id.clone(), c.id.clone(), "unknown".into()])
        .unwrap();
    assert_eq!(freed, 1007);
    assert_eq!(names(&tmp.path().join("data")), [b.id.as_str()]);
    assert_eq!(store.remove(&[a.id]).unwrap(), 0);
    assert_eq!(store.entries().unwrap(), vec![b]);
}

#[test]
fn abandoned_insert_removes_its_temp_file() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let mut ins = store.begin_insert().unwrap();
    ins.write_all(b"partial").unwrap();
    assert!(ins.path.starts_with(tmp.path().join("tmp")));
    assert!(ins.path.exists());
    let path = ins.path.clone();
    drop(ins);
    assert!(!path.exists());
    assert!(store.entries().unwrap().is_empty());
}

#[test]
fn bad_digest_is_refused_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let ins = store.begin_insert().unwrap();
    let err = store
        .commit(ins, EntryKind::File, "k", "xyz", Freshness::default(), 1)
        .unwrap_err();
    assert!(matches!(err, CacheError::BadDigest { .. }), "{err}");
    assert!(names(&tmp.path().join("tmp")).is_empty());
    assert!(names(&tmp.path().join("data")).is_empty());
}

#[test]
fn open_removes_orphans_and_drops_entries_without_files() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let kept = put(&store, "http://x/kept", b"kept", 1);
    let lost = put(&store, "http://x/lost", b"lost", 1);
    let short = put(&store, "http://x/short", b"truncated copy", 1);
    fs::remove_file(store.path_of(&lost)).unwrap();
    fs::write(store.path_of(&short), b"trunc").unwrap(); // an interrupted copy of the stick
                                                         // An orphan of ours goes; a stranger's file (not an entry name) is never ours to delete.
    fs::write(
        tmp.path().join("data/0123456789abcdef-01234567-orphan.zim"),
        b"who am I",
    )
    .unwrap();
    fs::write(tmp.path().join("data/thesis.odt"), b"mine").unwrap();
    fs::write(tmp.path().join("index.json.tmp"), b"{half").unwrap();
    assert!(store.lookup("http://x/lost").unwrap().is_none());
    assert!(store.lookup("http://x/short").unwrap().is_none());

    let store = Store::open(tmp.path()).unwrap();
    assert_eq!(store.entries().unwrap(), vec![kept.clone()]);
    let mut want = vec![kept.id.clone(), "thesis.odt".to_string()];
    want.sort();
    assert_eq!(names(&tmp.path().join("data")), want);
    assert!(!tmp.path().join("index.json.tmp").exists());
}

#[test]
fn symlinked_entries_are_not_served() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("c")).unwrap();
    let e = put(&store, "http://x/a", b"abc", 1);
    // A foreign stick whose data file links elsewhere (same size, so only the link type tells).
    let outside = tmp.path().join("outside");
    fs::write(&outside, b"xyz").unwrap();
    fs::remove_file(store.path_of(&e)).unwrap();
    std::os::unix::fs::symlink(&outside, store.path_of(&e)).unwrap();
    assert!(store.lookup("http://x/a").unwrap().is_none());
    let store = Store::open(store.dir()).unwrap();
    assert!(store.entries().unwrap().is_empty());
    assert!(
        fs::symlink_metadata(store.path_of(&e)).is_err(),
        "link kept"
    );
    assert_eq!(fs::read(&outside).unwrap(), b"xyz", "target touched");
}

#[test]
fn data_files_without_an_index_are_orphans() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    put(&store, "http://x/a", b"a", 1);
    fs::remove_file(tmp.path().join(INDEX_FILE)).unwrap();
    let store = Store::open(tmp.path()).unwrap();
    assert!(store.entries().unwrap().is_empty());
    assert!(names(&tmp.path().join("data")).is_empty());
}

#[test]
fn corrupt_index_is_an_error_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let e = put(&store, "http://x/a", b"a", 1);
    let index = tmp.path().join(INDEX_FILE);
    fs::write(&index, b"{\"version\": 1, \"entries\": [").unwrap();
    for err in [
        Store::open(tmp.path()).unwrap_err(),
        Store::open_read_only(tmp.path()).unwrap_err(),
        store.lookup("http://x/a").unwrap_err(),
    ] {
        assert!(matches!(err, CacheError::CorruptIndex { .. }), "{err}");
        assert!(err.to_string().contains(&*index.to_string_lossy()), "{err}");
        assert_eq!(err.class(), ErrorClass::Failure);
    }
    // Nothing was discarded: fixing the index by hand gets the cache back.
    assert!(store.path_of(&e).exists());
}

#[test]
fn io_errors_name_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a-file");
    fs::write(&file, b"").unwrap();
    let err = Store::open(&file.join("cache")).unwrap_err();
    assert!(matches!(err, CacheError::Io { .. }), "{err}");
    assert!(err.to_string().contains("a-file/cache"), "{err}");
    assert_eq!(err.class(), ErrorClass::Failure);
}

/// Every file and directory under `dir` with its length and modification time.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u64, SystemTime)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        let m = fs::metadata(&d).unwrap();
        out.insert(d.clone(), (m.len(), m.modified().unwrap()));
        if m.is_dir() {
            todo.extend(fs::read_dir(&d).unwrap().map(|e| e.unwrap().path()));
        }
    }
    out
}

#[test]
fn read_only_store_never_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("absent");
    let ro = Store::open_read_only(&missing).unwrap();
    assert!(ro.lookup("k").unwrap().is_none());
    assert!(ro.entries().unwrap().is_empty());
    assert!(!missing.exists());

    let dir = tmp.path().join("cache");
    let rw = Store::open(&dir).unwrap();
    let good = put(&rw, "http://x/good", b"good", 1);
    let bad = put(&rw, "http://x/bad", b"bad!", 1);
    fs::write(rw.path_of(&bad), b"BAD!").unwrap();
    fs::write(dir.join("data/orphan"), b"orphan").unwrap();
    fs::write(dir.join("tmp/old.part"), b"stale").unwrap();
    let before = snapshot(&dir);

    let ro = Store::open_read_only(&dir).unwrap();
    assert_eq!(ro.lookup("http://x/good").unwrap(), Some(good.clone()));
    assert_eq!(ro.entries().unwrap().len(), 2);
    assert!(ro.verify(&good).unwrap());
    assert!(!ro.verify(&bad).unwrap());
    for err in [
        ro.begin_insert().unwrap_err(),
        ro.touch(&good.id, 9).unwrap_err(),
        ro.set_checked(&good.id, Freshness::default(), 9)
            .unwrap_err(),
        ro.remove(std::slice::from_ref(&good.id)).unwrap_err(),
    ] {
        assert!(matches!(err, CacheError::ReadOnly { .. }), "{err}");
    }
    assert_eq!(snapshot(&dir), before);
}

#[test]
fn stale_temp_files_go_unless_locked_or_young() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let tmpdir = tmp.path().join("tmp");
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    let old_file = |name: &str| {
        let p = tmpdir.join(name);
        let f = File::create(&p).unwrap();
        f.set_modified(hour_ago).unwrap();
        p
    };
    let dead = old_file("ins-1-2-3.part");
    let foreign = old_file("notes.txt");
    let young = tmpdir.join("ins-1-2-4.part");
    fs::write(&young, b"").unwrap();
    // A live insert that has been running for an hour: old, but its writer holds the lock.
    let mut live = store.begin_insert().unwrap();
    live.write_all(b"in flight").unwrap();
    live.file().set_modified(hour_ago).unwrap();

    Store::open(tmp.path()).unwrap();
    assert!(!dead.exists(), "abandoned temp file kept");
    assert!(
        foreign.exists(),
        "a file the cache did not make was removed"
    );
    assert!(young.exists(), "young temp file removed");
    assert!(live.path.exists(), "live insert removed");

    // Even with no grace at all, the lock alone protects the live insert.
    Store::open_with_grace(tmp.path(), Duration::ZERO).unwrap();
    assert!(!young.exists());
    assert!(live.path.exists());
    live.write_all(b" and done").unwrap();
    let e = store
        .commit(
            live,
            EntryKind::File,
            "k",
            &sha_hex(b"in flight and done"),
            Freshness::default(),
            1,
        )
        .unwrap();
    assert_eq!(fs::read(store.path_of(&e)).unwrap(), b"in flight and done");
    assert_consistent(tmp.path());
}

#[test]
fn threads_inserting_and_reading_keep_the_index_valid() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    Store::open(&dir).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let dir = dir.clone();
            std::thread::spawn(move || {
                // Each thread opens its own store, as separate processes would.
                let store = Store::open_with_grace(&dir, Duration::ZERO).unwrap();
                for i in 0..25u64 {
                    let own = format!("http://x/t{t}/{i}");
                    put(&store, &own, own.as_bytes(), i);
                    let shared = format!("shared by t{t} at {i}");
                    let e = put(&store, "http://x/shared", shared.as_bytes(), i);
                    store.touch(&e.id, i).unwrap();
                    if let Some(e) = store.lookup(&own).unwrap() {
                        assert_eq!(fs::read(store.path_of(&e)).unwrap(), own.as_bytes());
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let idx = assert_consistent(&dir);
    assert_eq!(idx.entries.len(), 4 * 25 + 1);
    assert_eq!(
        idx.entries
            .iter()
            .filter(|e| e.key == "http://x/shared")
            .count(),
        1
    );
    // No leftovers: exactly one file per entry, no temp files.
    assert_eq!(names(&dir.join("data")).len(), idx.entries.len());
    assert!(names(&dir.join("tmp")).is_empty());
}
