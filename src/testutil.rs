//! Guards for tests on real block devices, shared by the unit tests (`crate::testutil`) and the
//! integration tests (`tests/support` includes this file with `#[path]`): a loop device and a mount that are
//! always released, even when the test panics. Standard library only, so both can compile it.

#![allow(dead_code)] // Each test crate uses a different part.

use std::path::Path;
use std::process::Command;

/// An attached loop device (`/dev/loopN`); its partition nodes are dropped and it is detached on drop.
pub struct Loop(pub String);

impl Loop {
    /// `losetup -f --show FILE`.
    pub fn attach(file: &Path) -> Loop {
        Loop::attach_with(file, &[])
    }

    /// With extra `losetup` arguments (`--sector-size 4096`, `--read-only`, `-P`).
    pub fn attach_with(file: &Path, args: &[&str]) -> Loop {
        let out = Command::new("losetup")
            .args(["-f", "--show"])
            .args(args)
            .arg(file)
            .output()
            .expect("losetup runs (util-linux)");
        assert!(
            out.status.success(),
            "losetup {args:?} {}: {} (loop devices need root)",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Loop(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    pub fn path(&self) -> &Path {
        Path::new(&self.0)
    }

    /// Kernel name (`loop3`).
    pub fn name(&self) -> String {
        self.0.trim_start_matches("/dev/").to_string()
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("partx").args(["-d", &self.0]).output();
        let _ = Command::new("losetup").args(["-d", &self.0]).output();
    }
}

/// A mount point, unmounted on drop (mount it first). Declare it after the [`Loop`] it mounts, so it is
/// dropped first.
pub struct Unmount(pub std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).output();
    }
}
