//! The one way decompute writes a file a user named (`--json`, `ledger export --output`,
//! `scale --svg`, `report --html`): like a shell redirection for what is not a regular file
//! (a device or FIFO is written in place; a symlink is followed and the link itself stays),
//! and, for a regular file, an atomic replacement through a temporary file created with
//! `O_EXCL` under an unpredictable name in the target's own directory, so a planted symlink
//! can never redirect the write and a reader never sees half a file. It also refuses to
//! write over the ledger decompute is recording into (same device and inode).

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum OutError {
    #[error("{path} is a directory; give a file path")]
    Directory { path: String },
    #[error("{path}: directory {dir} does not exist; create it or choose another path")]
    NoDir { path: String, dir: String },
    #[error("{path} is the ledger file ({ledger}); writing there would destroy the record of runs; choose another path")]
    IsLedger { path: String, ledger: String },
    #[error("{path}: symlinks loop or nest too deeply; point it at a real file")]
    Loop { path: String },
    #[error("cannot write {path}: {error}")]
    Io { path: String, error: std::io::Error },
}

impl OutError {
    fn io(path: &Path, error: std::io::Error) -> OutError {
        OutError::Io {
            path: path.display().to_string(),
            error,
        }
    }
}

/// Where a write to `path` lands: the path after following symlinks, and whether it is a
/// special file (device, FIFO, socket) to be written in place.
#[derive(Debug, Clone, PartialEq)]
pub enum Landing {
    InPlace(PathBuf),
    Replace(PathBuf),
}

/// Follows `path` through symlinks (also dangling ones, whose target will be created).
pub fn resolve(path: &Path) -> Result<Landing, OutError> {
    let shown = || path.display().to_string();
    let mut p = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = std::fs::read_link(&p).map_err(|e| OutError::io(path, e))?;
                p = match p.parent() {
                    Some(dir) if target.is_relative() => dir.join(target),
                    _ => target,
                };
            }
            Ok(m) if m.is_dir() => return Err(OutError::Directory { path: shown() }),
            Ok(m) if m.is_file() => return Ok(Landing::Replace(p)),
            Ok(_) => return Ok(Landing::InPlace(p)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let dir = parent_of(&p);
                if !dir.is_dir() {
                    return Err(OutError::NoDir {
                        path: shown(),
                        dir: dir.display().to_string(),
                    });
                }
                return Ok(Landing::Replace(p));
            }
            Err(e) => return Err(OutError::io(path, e)),
        }
    }
    Err(OutError::Loop { path: shown() })
}

fn parent_of(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Checks, before any work is done, that `path` can be written and is none of `protected`
/// (the ledger and its WAL files), comparing device and inode so no other name for the same
/// file slips through.
pub fn check(path: &Path, protected: &[PathBuf]) -> Result<(), OutError> {
    let landing = resolve(path)?;
    let target = match &landing {
        Landing::InPlace(p) | Landing::Replace(p) => p,
    };
    if let Ok(m) = std::fs::metadata(target) {
        for l in protected {
            if let Ok(lm) = std::fs::metadata(l) {
                if lm.dev() == m.dev() && lm.ino() == m.ino() {
                    return Err(OutError::IsLedger {
                        path: path.display().to_string(),
                        ledger: l.display().to_string(),
                    });
                }
            }
        }
    }
    Ok(())
}

/// Writes `bytes` to `path` by the rules above.
pub fn write(path: &Path, bytes: &[u8]) -> Result<(), OutError> {
    write_with(path, |w| w.write_all(bytes))
}

/// Writes what `fill` produces to `path` by the rules above. For a regular file nothing is
/// replaced unless `fill` succeeds.
pub fn write_with(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), OutError> {
    match resolve(path)? {
        Landing::InPlace(target) => {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&target)
                .map_err(|e| OutError::io(path, e))?;
            let mut w = std::io::BufWriter::new(f);
            fill(&mut w)
                .and_then(|()| w.flush())
                .map_err(|e| OutError::io(path, e))
        }
        Landing::Replace(target) => replace(path, &target, fill),
    }
}

fn replace(
    shown: &Path,
    target: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), OutError> {
    let dir = parent_of(target);
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let old = std::fs::metadata(target).ok();
    // O_CREAT|O_EXCL, mode 0600, a random name: nobody can pre-plant it.
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(|e| OutError::io(shown, e))?;
    let mode = match &old {
        Some(m) => m.permissions().mode() & 0o7777,
        None => 0o666 & !umask(),
    };
    let result = (|| {
        let mut w = std::io::BufWriter::new(tmp.as_file());
        fill(&mut w)?;
        w.flush()?;
        drop(w);
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))?;
        if let Some(m) = &old {
            // Keep the owner of a file root replaces on someone's behalf; harmless if not root.
            let _ = std::os::unix::fs::fchown(tmp.as_file(), Some(m.uid()), Some(m.gid()));
        }
        tmp.as_file().sync_all()
    })();
    result.map_err(|e| OutError::io(shown, e))?;
    tmp.persist(target)
        .map_err(|e| OutError::io(shown, e.error))?;
    Ok(())
}

/// The process's umask, read without changing it (`Umask:` in /proc/self/status).
fn umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn regular_file_is_replaced_and_keeps_its_mode() {
        let d = tempfile::tempdir().expect("tmp");
        let f = d.path().join("r.json");
        std::fs::write(&f, "old").expect("w");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        write(&f, b"new").expect("write");
        assert_eq!(std::fs::read_to_string(&f).expect("r"), "new");
        let m = std::fs::metadata(&f).expect("m").permissions().mode() & 0o777;
        assert_eq!(m, 0o640);
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(d.path()).expect("ls").count(), 1);
    }

    #[test]
    fn symlink_is_followed_and_stays_a_link() {
        let d = tempfile::tempdir().expect("tmp");
        let real = d.path().join("real.json");
        std::fs::write(&real, "old").expect("w");
        let link = d.path().join("link.json");
        symlink("real.json", &link).expect("ln");
        write(&link, b"new").expect("write");
        assert!(std::fs::symlink_metadata(&link)
            .expect("m")
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read_to_string(&real).expect("r"), "new");
        // A dangling link creates its target.
        let dangling = d.path().join("dangling");
        symlink("made.json", &dangling).expect("ln");
        write(&dangling, b"x").expect("write");
        assert_eq!(
            std::fs::read_to_string(d.path().join("made.json")).expect("r"),
            "x"
        );
        let a = d.path().join("a");
        let b = d.path().join("b");
        symlink(&b, &a).expect("ln");
        symlink(&a, &b).expect("ln");
        assert!(matches!(write(&a, b"x"), Err(OutError::Loop { .. })));
    }

    #[test]
    fn devices_and_fifos_are_written_in_place() {
        write(Path::new("/dev/null"), b"x").expect("dev null");
        let m = std::fs::symlink_metadata("/dev/null").expect("m");
        assert!(!m.is_file(), "/dev/null stays a device");
        let d = tempfile::tempdir().expect("tmp");
        let fifo = d.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).expect("c");
        // SAFETY: mkfifo with a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read_to_string(fifo).expect("read fifo"))
        };
        write(&fifo, b"through").expect("fifo");
        assert_eq!(reader.join().expect("join"), "through");
        assert!(!std::fs::symlink_metadata(&fifo).expect("m").is_file());
    }

    #[test]
    fn refuses_the_ledger_and_missing_directories() {
        let d = tempfile::tempdir().expect("tmp");
        let ledger = d.path().join("ledger.sqlite");
        std::fs::write(&ledger, "db").expect("w");
        let other = d.path().join("other-name");
        std::fs::hard_link(&ledger, &other).expect("hard link");
        let e = check(&other, std::slice::from_ref(&ledger)).expect_err("same inode");
        assert!(e.to_string().contains("ledger"), "{e}");
        assert!(check(&d.path().join("fine.json"), &[ledger]).is_ok());
        let e = check(&d.path().join("no/such/dir/r.json"), &[]).expect_err("no dir");
        assert!(e.to_string().contains("does not exist"), "{e}");
        assert!(matches!(
            check(d.path(), &[]),
            Err(OutError::Directory { .. })
        ));
    }

    #[test]
    fn a_failed_fill_leaves_the_old_file() {
        let d = tempfile::tempdir().expect("tmp");
        let f = d.path().join("keep");
        std::fs::write(&f, "old").expect("w");
        let r = write_with(&f, |_| Err(std::io::Error::other("boom")));
        assert!(r.is_err());
        assert_eq!(std::fs::read_to_string(&f).expect("r"), "old");
        assert_eq!(std::fs::read_dir(d.path()).expect("ls").count(), 1);
    }
}
