//! Hostile archives: escapes by path, symlink, write-through, hard link, special files.
//! Each must be refused as `BadInput` naming the archive and the member, writing nothing outside.

use super::zip_cases::py_zip;
use super::*;

/// Writes a tar with python's tarfile (which writes names as given). Members are JSON objects:
/// name, type (file|dir|sym|hard|chr|fifo), data, link.
const PY_TAR: &str = r#"
import io, json, sys, tarfile
types = {'file': tarfile.REGTYPE, 'dir': tarfile.DIRTYPE, 'sym': tarfile.SYMTYPE,
         'hard': tarfile.LNKTYPE, 'chr': tarfile.CHRTYPE, 'fifo': tarfile.FIFOTYPE}
with tarfile.open(sys.argv[1], 'w', format=tarfile.GNU_FORMAT) as t:
    for m in json.loads(sys.argv[2]):
        ti = tarfile.TarInfo(m['name'])
        ti.type = types[m['type']]
        ti.mode = 0o644
        ti.linkname = m.get('link', '')
        data = m.get('data', '').encode()
        ti.size = len(data) if m['type'] == 'file' else 0
        if m['type'] == 'chr':
            ti.devmajor, ti.devminor = 1, 3
        t.addfile(ti, io.BytesIO(data) if ti.size else None)
"#;

/// A temp root with `work/` (holding the archive and `dest`) and an `outside/` directory that
/// must stay untouched.
struct Scene {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    dest: PathBuf,
    outside: PathBuf,
}

impl Scene {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let dest = root.join("work/dest");
        let outside = root.join("outside");
        fs::create_dir_all(&dest).unwrap();
        fs::create_dir_all(root.join("archives")).unwrap();
        fs::create_dir_all(&outside).unwrap();
        Self {
            _tmp: tmp,
            root,
            dest,
            outside,
        }
    }

    fn tar(&self, name: &str, members: &str) -> PathBuf {
        let p = self.root.join("archives").join(name);
        python(PY_TAR, &[p.to_str().unwrap(), members]);
        p
    }

    fn zip(&self, name: &str, members: &str) -> PathBuf {
        let p = self.root.join("archives").join(name);
        py_zip(&p, members, "null");
        p
    }

    /// Refused, naming archive and member; nothing appeared outside `dest`.
    fn refused(&self, archive: &Path, via: Via, member: &str) -> String {
        let msg = assert_refused(
            expand_quiet(archive, via, &self.dest, None),
            archive,
            member,
        );
        assert_eq!(
            tree(&self.outside),
            Vec::<String>::new(),
            "wrote outside: {msg}"
        );
        assert_eq!(
            tree(&self.root.join("work")),
            tree_under_dest(&self.root),
            "wrote next to dest: {msg}"
        );
        msg
    }
}

/// What `work/` should hold: `dest` and what is below it, nothing else.
fn tree_under_dest(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = tree(&root.join("work/dest"))
        .into_iter()
        .map(|p| format!("dest/{p}"))
        .collect();
    v.push("dest".into());
    v.sort();
    v
}

#[test]
fn tar_dotdot_member() {
    let s = Scene::new();
    let a = s.tar("dotdot.tar", r#"[{"name":"ok.txt","type":"file","data":"x"},{"name":"../evil","type":"file","data":"x"}]"#);
    s.refused(&a, Via::Tar, "../evil");
    let a = s.tar(
        "dotdot2.tar",
        r#"[{"name":"a/../../evil","type":"file","data":"x"}]"#,
    );
    s.refused(&a, Via::Tar, "a/../../evil");
}

#[test]
fn tar_absolute_member() {
    let s = Scene::new();
    let abs = s.outside.join("abs");
    let members = format!(
        r#"[{{"name":"{}","type":"file","data":"x"}}]"#,
        abs.display()
    );
    let a = s.tar("abs.tar", &members);
    let msg = s.refused(&a, Via::Tar, "abs");
    assert!(msg.contains("absolute"), "{msg}");
}

#[test]
fn tar_symlink_escape() {
    let s = Scene::new();
    let a = s.tar(
        "esc.tar",
        r#"[{"name":"sub/link","type":"sym","link":"../../etc"}]"#,
    );
    s.refused(&a, Via::Tar, "sub/link");
    // `..` after a name: `d/l1` is itself a link to `..`, so `d/l1/..` would leave dest.
    let a = s.tar(
        "chain.tar",
        r#"[{"name":"d","type":"dir"},{"name":"d/l1","type":"sym","link":".."},
            {"name":"l2","type":"sym","link":"d/l1/.."}]"#,
    );
    s.refused(&a, Via::Tar, "l2");
}

#[test]
fn tar_absolute_symlink_then_write_through() {
    let s = Scene::new();
    let members = format!(
        r#"[{{"name":"a","type":"sym","link":"{}"}},{{"name":"a/x","type":"file","data":"x"}}]"#,
        s.outside.display()
    );
    let a = s.tar("abslink.tar", &members);
    s.refused(&a, Via::Tar, "\"a\"");
}

#[test]
fn tar_symlink_then_write_through() {
    let s = Scene::new();
    let a = s.tar(
        "through.tar",
        r#"[{"name":"a","type":"sym","link":"."},{"name":"a/b","type":"file","data":"x"}]"#,
    );
    let msg = s.refused(&a, Via::Tar, "a/b");
    assert!(msg.contains("symlink"), "{msg}");
}

#[test]
fn existing_symlink_in_dest_is_never_written_through() {
    let s = Scene::new();
    std::os::unix::fs::symlink(&s.outside, s.dest.join("pre")).unwrap();
    let a = s.tar("pre.tar", r#"[{"name":"pre/x","type":"file","data":"x"}]"#);
    s.refused(&a, Via::Tar, "pre/x");

    // A symlink at the member's own name is replaced, not followed.
    let victim = s.outside.join("victim");
    fs::write(&victim, b"untouched").unwrap();
    std::os::unix::fs::symlink(&victim, s.dest.join("v")).unwrap();
    let a = s.tar("v.tar", r#"[{"name":"v","type":"file","data":"new"}]"#);
    expand_quiet(&a, Via::Tar, &s.dest, None).unwrap();
    assert_eq!(fs::read(&victim).unwrap(), b"untouched");
    assert!(fs::symlink_metadata(s.dest.join("v")).unwrap().is_file());
    assert_eq!(fs::read(s.dest.join("v")).unwrap(), b"new");
}

#[test]
fn tar_hardlinks_must_target_extracted_members() {
    let s = Scene::new();
    let a = s.tar(
        "h1.tar",
        r#"[{"name":"h","type":"hard","link":"../../etc/passwd"}]"#,
    );
    s.refused(&a, Via::Tar, "\"h\"");
    let a = s.tar(
        "h2.tar",
        r#"[{"name":"h","type":"hard","link":"/etc/passwd"}]"#,
    );
    s.refused(&a, Via::Tar, "\"h\"");
    // A file already in dest but not from this archive is not a valid target either.
    fs::write(s.dest.join("mine"), b"x").unwrap();
    let a = s.tar("h3.tar", r#"[{"name":"h","type":"hard","link":"mine"}]"#);
    s.refused(&a, Via::Tar, "\"h\"");
}

#[test]
fn tar_special_files_are_refused() {
    let s = Scene::new();
    let a = s.tar("dev.tar", r#"[{"name":"null","type":"chr"}]"#);
    let msg = s.refused(&a, Via::Tar, "null");
    assert!(msg.contains("device"), "{msg}");
    let a = s.tar("fifo.tar", r#"[{"name":"pipe","type":"fifo"}]"#);
    s.refused(&a, Via::Tar, "pipe");
}

#[test]
fn zip_hostile_members() {
    let s = Scene::new();
    let a = s.zip(
        "dotdot.zip",
        r#"[{"name":"../evil","mode":33188,"data":"x"}]"#,
    );
    s.refused(&a, Via::Zip, "../evil");
    let abs = s.outside.join("abs");
    let a = s.zip(
        "abs.zip",
        &format!(
            r#"[{{"name":"{}","mode":33188,"data":"x"}}]"#,
            abs.display()
        ),
    );
    s.refused(&a, Via::Zip, "abs");
    // 41471 = 0o120777: symlinks.
    let a = s.zip(
        "esc.zip",
        r#"[{"name":"d/link","mode":41471,"data":"../../etc"}]"#,
    );
    s.refused(&a, Via::Zip, "d/link");
    let a = s.zip(
        "abslink.zip",
        &format!(
            r#"[{{"name":"a","mode":41471,"data":"{}"}}]"#,
            s.outside.display()
        ),
    );
    s.refused(&a, Via::Zip, "\"a\"");
    let a = s.zip(
        "through.zip",
        r#"[{"name":"a","mode":41471,"data":"."},{"name":"a/b","mode":33188,"data":"x"}]"#,
    );
    s.refused(&a, Via::Zip, "a/b");
    // 8612 = 0o020644: a character device.
    let a = s.zip("dev.zip", r#"[{"name":"null","mode":8612,"data":""}]"#);
    s.refused(&a, Via::Zip, "null");
}
