//! Creating the filesystem (`mke2fs -d`) and giving every inode to root (`debugfs sif`).

use super::run::{self, DeviceSpec, Opts};
use super::{io_err, Ext4Error, Tools, BLOCK_SIZE, INODE_SIZE, MAX_LABEL_BYTES};
use crate::progress::{Progress, TaskKind};
use crate::CancellationToken;
use std::collections::HashSet;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// mke2fs settings used instead of the host's /etc/mke2fs.conf, so the filesystem (features, block
/// and inode size) does not depend on the distribution building the image and
/// [`super::metadata_overhead`] stays exact. Features are those of Debian 12's ext4 defaults, all
/// understood by e2fsprogs >= 1.43 and by the device's kernel and fsck. Every size class stanza
/// exists so mke2fs does not warn about a missing one.
const MKE2FS_CONF: &str = "[defaults]
\tbase_features = sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr
\tdefault_mntopts = acl,user_xattr
\tenable_periodic_fsck = 0
\tblocksize = 4096
\tinode_size = 256
\tinode_ratio = 65536

[fs_types]
\text4 = {
\t\tfeatures = has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize
\t}
\tfloppy = {
\t\tblocksize = 4096
\t}
\tsmall = {
\t\tblocksize = 4096
\t}
\tdefault = {
\t\tblocksize = 4096
\t}
\tbig = {
\t\tblocksize = 4096
\t}
\thuge = {
\t\tblocksize = 4096
\t}
";

/// One `mke2fs` run.
#[derive(Debug, Clone)]
pub struct Mkfs<'a> {
    /// Regular file or block device holding the filesystem.
    pub target: &'a Path,
    /// Byte offset of the filesystem in `target` (a partition start).
    pub offset: u64,
    /// Filesystem size in bytes, a multiple of 4096.
    pub size: u64,
    pub label: &'a str,
    /// Bytes per inode (`-i`), e.g. 65536.
    pub inode_ratio: u64,
    /// Blocks reserved for root, in percent (`-m`).
    pub reserved_pct: u8,
    /// Tree copied into the new filesystem (`-d`).
    pub source_dir: Option<&'a Path>,
    /// Total bytes under `source_dir`: the progress total.
    pub source_bytes: u64,
}

impl Mkfs<'_> {
    fn validate(&self) -> Result<(), Ext4Error> {
        if self.size == 0 || self.size % BLOCK_SIZE != 0 {
            return Err(Ext4Error::BadSize { size: self.size });
        }
        if self.offset % 512 != 0 {
            return Err(Ext4Error::BadOffset {
                offset: self.offset,
            });
        }
        if !(BLOCK_SIZE..=64 << 20).contains(&self.inode_ratio) {
            return Err(Ext4Error::BadInodeRatio {
                ratio: self.inode_ratio,
            });
        }
        if self.reserved_pct > 50 {
            return Err(Ext4Error::BadReserved {
                pct: self.reserved_pct,
            });
        }
        if self.label.len() > MAX_LABEL_BYTES {
            return Err(Ext4Error::BadLabel {
                label: self.label.to_string(),
            });
        }
        Ok(())
    }

    /// A block device cannot grow: refuse before mke2fs writes part of a filesystem that cannot
    /// fit (it would fail only at the end, leaving a half-written card). A regular file is
    /// extended by mke2fs to exactly `offset + size`.
    fn check_fits(&self) -> Result<(), Ext4Error> {
        use std::io::{Seek, SeekFrom};
        use std::os::unix::fs::FileTypeExt;
        let is_block =
            std::fs::metadata(self.target).is_ok_and(|m| m.file_type().is_block_device());
        if !is_block {
            return Ok(());
        }
        let device_size = std::fs::File::open(self.target)
            .and_then(|mut f| f.seek(SeekFrom::End(0)))
            .map_err(io_err(self.target))?;
        let end = self.offset.saturating_add(self.size);
        if end > device_size {
            return Err(Ext4Error::DoesNotFit {
                target: self.target.to_path_buf(),
                end,
                device_size,
            });
        }
        Ok(())
    }
}

impl Tools {
    /// The mke2fs command line for `m`, reading its settings from `conf` (see [`MKE2FS_CONF`]).
    pub(super) fn mkfs_command(&self, m: &Mkfs, conf: &Path) -> Command {
        let mut cmd = Command::new(&self.mke2fs);
        cmd.env("MKE2FS_CONFIG", conf)
            .args(["-t", "ext4", "-F", "-q"])
            .args(["-b", &BLOCK_SIZE.to_string(), "-I", &INODE_SIZE.to_string()])
            .arg("-L")
            .arg(m.label)
            .args(["-m", &m.reserved_pct.to_string()])
            .args(["-i", &m.inode_ratio.to_string()])
            // nodiscard: on a file, discard punches holes and on a card it may be slow or unsupported;
            // the region is fully described by the new metadata anyway.
            .arg("-E")
            .arg(format!("offset={},nodiscard,root_owner=0:0", m.offset));
        if let Some(dir) = m.source_dir {
            cmd.arg("-d").arg(dir);
        }
        cmd.arg(super::arg_path(m.target))
            .arg(format!("{}k", m.size / 1024));
        cmd
    }

    /// Creates the ext4 (filled from `m.source_dir` when given). Progress is the number of bytes
    /// mke2fs has read, polled from `/proc/PID/io` since `mke2fs -d` reports nothing itself.
    pub fn mkfs(
        &self,
        m: &Mkfs,
        progress: &Progress,
        cancel: &CancellationToken,
    ) -> Result<(), Ext4Error> {
        m.validate()?;
        m.check_fits()?;
        let mut conf = tempfile::Builder::new()
            .prefix("mke2fs-")
            .suffix(".conf")
            .tempfile()
            .map_err(io_err(&std::env::temp_dir()))?;
        conf.write_all(MKE2FS_CONF.as_bytes())
            .and_then(|_| conf.flush())
            .map_err(io_err(conf.path()))?;
        let cmd = self.mkfs_command(m, conf.path());
        let total = if m.source_dir.is_some() {
            m.source_bytes
        } else {
            0
        };
        let mut task = progress.task(TaskKind::Mke2fs, format!("ext4 '{}'", m.label), Some(total));
        let mut opts = Opts::new("mke2fs");
        opts.cancel = Some(cancel);
        let out = run::run(cmd, opts, |pid| {
            if let Some(read) = run::read_rchar(pid) {
                task.set(read.min(total));
            }
        })?;
        if !out.status.success() {
            return Err(out.failed());
        }
        task.set(total);
        task.finish();
        Ok(())
    }

    /// Gives every inode copied from `source_dir` to root (0:0): `mke2fs -d` copies the source
    /// files' uid/gid, which are the invoking user's when the build runs unprivileged. Issues
    /// `sif` commands through one `debugfs -w` run and skips debugfs when nothing needs changing.
    pub fn chown_root(
        &self,
        target: &Path,
        offset: u64,
        source_dir: &Path,
    ) -> Result<(), Ext4Error> {
        let plan = ChownPlan::scan(source_dir)?;
        if plan.is_empty() {
            return Ok(());
        }
        let device = DeviceSpec::new(target, offset)?;
        if plan.commands > 0 {
            let mut cmd = Command::new(&self.debugfs);
            cmd.arg("-w")
                .arg("-f")
                .arg(plan.file.path())
                .arg(device.as_os_str());
            self.debugfs_checked(cmd, 0)?;
        }
        // A name with CR or LF cannot be written in a command file (debugfs reads it by lines),
        // but a single `-R` request may contain them.
        for request in &plan.one_off {
            let mut cmd = Command::new(&self.debugfs);
            cmd.arg("-w")
                .arg("-R")
                .arg(std::ffi::OsStr::from_bytes(request))
                .arg(device.as_os_str());
            self.debugfs_checked(cmd, 0)?;
        }
        Ok(())
    }
}

/// The `sif` requests [`Tools::chown_root`] needs, written to a temporary command file as the
/// source tree is walked (memory grows with hard-linked files only, never with file sizes).
pub(super) struct ChownPlan {
    file: tempfile::NamedTempFile,
    /// Requests in `file`.
    pub commands: usize,
    /// Requests that must be sent one by one with `-R`.
    pub one_off: Vec<Vec<u8>>,
}

impl ChownPlan {
    pub fn is_empty(&self) -> bool {
        self.commands == 0 && self.one_off.is_empty()
    }

    pub fn scan(source_dir: &Path) -> Result<ChownPlan, Ext4Error> {
        let file = tempfile::Builder::new()
            .prefix("debugfs-sif-")
            .tempfile()
            .map_err(io_err(&std::env::temp_dir()))?;
        let mut out = std::io::BufWriter::new(file.as_file());
        let mut commands = 0;
        let mut one_off = Vec::new();
        // The fs root itself is not walked: mke2fs sets it to root_owner=0:0 and does not copy
        // the source directory's owner or mode.
        let mut stack: Vec<(PathBuf, Vec<u8>)> = vec![(source_dir.to_path_buf(), Vec::new())];
        let mut seen_links: HashSet<(u64, u64)> = HashSet::new();
        while let Some((dir, fs_dir)) = stack.pop() {
            let entries = std::fs::read_dir(&dir).map_err(io_err(&dir))?;
            for entry in entries {
                let entry = entry.map_err(io_err(&dir))?;
                let path = entry.path();
                let meta = std::fs::symlink_metadata(&path).map_err(io_err(&path))?;
                let mut fs_path = fs_dir.clone();
                fs_path.push(b'/');
                fs_path.extend_from_slice(entry.file_name().as_bytes());
                let first_link = meta.is_dir()
                    || meta.nlink() < 2
                    || seen_links.insert((meta.dev(), meta.ino()));
                if first_link {
                    for (field, id) in [("uid", meta.uid()), ("gid", meta.gid())] {
                        if id == 0 {
                            continue;
                        }
                        let request = sif_request(&fs_path, field);
                        if fs_path.iter().any(|&b| b == b'\n' || b == b'\r') {
                            one_off.push(request);
                        } else {
                            out.write_all(&request)
                                .and_then(|_| out.write_all(b"\n"))
                                .map_err(io_err(file.path()))?;
                            commands += 1;
                        }
                    }
                }
                if meta.is_dir() {
                    stack.push((path, fs_path));
                }
            }
        }
        out.flush().map_err(io_err(file.path()))?;
        drop(out);
        Ok(ChownPlan {
            file,
            commands,
            one_off,
        })
    }
}

/// `sif "PATH" FIELD 0`, quoted for debugfs.
fn sif_request(fs_path: &[u8], field: &str) -> Vec<u8> {
    let mut request = b"sif ".to_vec();
    request.extend_from_slice(&super::debugfs::quote(fs_path));
    request.extend_from_slice(format!(" {field} 0").as_bytes());
    request
}
