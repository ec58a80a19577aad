//! Advisory locks (`flock`) that let two builds, or a build and a daemon, share one cache.
//!
//! - `CACHE_DIR/.lock`: exclusive while reading-modifying-writing the index (and while moving a
//!   finished download into `data/`), shared while only reading it. Held for milliseconds, never
//!   during a download.
//! - Each in-flight temp file in `CACHE_DIR/tmp/` is flock'ed by its writer, so a cleaner can tell a
//!   live insert from one left by a killed process: the kernel drops a lock when its holder dies.
//!
//! `flock` (not `fcntl` locks) because its locks belong to the open file description: two `Store`s
//! in one process (two threads) exclude each other just like two processes do, and closing an
//! unrelated descriptor of the same file does not drop the lock. It works on vfat/exFAT too, being
//! implemented by the kernel's VFS rather than by the filesystem.

use super::store::CacheError;
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// Name of the lock file inside the cache directory.
pub const LOCK_FILE: &str = ".lock";

/// A held lock on `CACHE_DIR/.lock`; released on drop.
#[derive(Debug)]
pub struct CacheLock {
    _lock: Flock<File>,
}

impl CacheLock {
    /// Blocks until this process holds the cache exclusively. Creates the lock file if missing.
    pub fn exclusive(dir: &Path) -> Result<CacheLock, CacheError> {
        Self::acquire(dir, FlockArg::LockExclusive)
    }

    /// Blocks until no one holds the cache exclusively (other readers may hold it too).
    pub fn shared(dir: &Path) -> Result<CacheLock, CacheError> {
        Self::acquire(dir, FlockArg::LockShared)
    }

    /// A shared lock for a read-only store, which must not create anything: `None` when the lock
    /// file does not exist (then no writer ever used this cache, and index renames are atomic
    /// anyway) or cannot be opened (a read-only medium with odd permissions).
    pub(crate) fn shared_if_present(dir: &Path) -> Result<Option<CacheLock>, CacheError> {
        let path = dir.join(LOCK_FILE);
        match File::open(&path) {
            Ok(file) => Ok(Some(CacheLock {
                _lock: lock_blocking(file, FlockArg::LockShared, &path)?,
            })),
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::PermissionDenied) => {
                Ok(None)
            }
            Err(cause) => Err(CacheError::io(&path, "cannot open the cache lock", cause)),
        }
    }

    fn acquire(dir: &Path, arg: FlockArg) -> Result<CacheLock, CacheError> {
        let path = lock_path(dir);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|cause| CacheError::io(&path, "cannot open the cache lock", cause))?;
        Ok(CacheLock {
            _lock: lock_blocking(file, arg, &path)?,
        })
    }
}

pub(crate) fn lock_path(dir: &Path) -> PathBuf {
    dir.join(LOCK_FILE)
}

/// `flock` that waits, retrying when a signal interrupts the wait.
pub(crate) fn lock_blocking(
    mut file: File,
    arg: FlockArg,
    path: &Path,
) -> Result<Flock<File>, CacheError> {
    loop {
        match Flock::lock(file, arg) {
            Ok(lock) => return Ok(lock),
            Err((f, Errno::EINTR)) => file = f,
            Err((_, errno)) => {
                return Err(CacheError::io(
                    path,
                    "cannot lock",
                    std::io::Error::from(errno),
                ))
            }
        }
    }
}

/// Non-blocking exclusive `flock`: `Ok(None)` when someone else holds a lock on the file.
pub(crate) fn try_lock_exclusive(
    mut file: File,
    path: &Path,
) -> Result<Option<Flock<File>>, CacheError> {
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(Some(lock)),
            Err((f, Errno::EINTR)) => file = f,
            Err((_, Errno::EWOULDBLOCK)) => return Ok(None),
            Err((_, errno)) => {
                return Err(CacheError::io(
                    path,
                    "cannot lock",
                    std::io::Error::from(errno),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn exclusive_excludes_exclusive_and_shared() {
        let dir = tempfile::tempdir().unwrap();
        let held = CacheLock::exclusive(dir.path()).unwrap();
        let path = lock_path(dir.path());
        // A second open file description cannot take the lock while it is held.
        assert!(try_lock_exclusive(File::open(&path).unwrap(), &path)
            .unwrap()
            .is_none());

        let got = Arc::new(AtomicBool::new(false));
        let (d, g) = (dir.path().to_owned(), got.clone());
        let t = std::thread::spawn(move || {
            let _l = CacheLock::shared(&d).unwrap();
            g.store(true, Ordering::SeqCst);
        });
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            !got.load(Ordering::SeqCst),
            "shared lock taken under an exclusive one"
        );
        drop(held);
        t.join().unwrap();
        assert!(got.load(Ordering::SeqCst));
        assert!(try_lock_exclusive(File::open(&path).unwrap(), &path)
            .unwrap()
            .is_some());
    }

    #[test]
    fn shared_locks_coexist_but_block_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let a = CacheLock::shared(dir.path()).unwrap();
        let b = CacheLock::shared(dir.path()).unwrap();
        let path = lock_path(dir.path());
        assert!(try_lock_exclusive(File::open(&path).unwrap(), &path)
            .unwrap()
            .is_none());
        drop(a);
        assert!(try_lock_exclusive(File::open(&path).unwrap(), &path)
            .unwrap()
            .is_none());
        drop(b);
        assert!(try_lock_exclusive(File::open(&path).unwrap(), &path)
            .unwrap()
            .is_some());
    }

    #[test]
    fn read_only_lock_never_creates_the_file() {
        let dir = tempfile::tempdir().unwrap();
        assert!(CacheLock::shared_if_present(dir.path()).unwrap().is_none());
        assert!(!lock_path(dir.path()).exists());
        drop(CacheLock::exclusive(dir.path()).unwrap());
        let l = CacheLock::shared_if_present(dir.path()).unwrap();
        assert!(l.is_some());
        let path = lock_path(dir.path());
        assert!(try_lock_exclusive(File::open(&path).unwrap(), &path)
            .unwrap()
            .is_none());
    }

    #[test]
    fn lock_error_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no/such/dir");
        let err = CacheLock::exclusive(&missing).unwrap_err();
        assert!(err.to_string().contains("no/such/dir/.lock"), "{err}");
    }
}
