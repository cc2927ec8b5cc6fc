//! Reading the text files users point decompute at (factor tables, policy and config files,
//! forecasts, imports): bounded in size, so `/dev/zero` or a runaway log named by mistake is
//! refused with a message instead of being read forever into memory, and checked for
//! ownership where a file found by searching (not named) would otherwise govern a run.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Largest data, policy or config file decompute reads (the shipped CPU table is 200 KB).
pub const DATA_LIMIT: u64 = 16 << 20;
/// Largest import file (read as a stream, so its size costs time, not memory; a CodeCarbon
/// log of a million rows, about 430 MB, should be split).
pub const BULK_LIMIT: u64 = 256 << 20;
/// Largest grid forecast or signal file, which is parsed whole: a year of 5-minute rows is
/// about 5 MB as CSV and three times that as JSON.
pub const FORECAST_LIMIT: u64 = 32 << 20;

#[derive(Debug, thiserror::Error)]
pub enum InError {
    #[error("cannot read {path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("{path} is larger than {limit} bytes; is it the right file?")]
    TooLarge { path: String, limit: u64 },
    #[error("{path} is not UTF-8 text")]
    NotText { path: String },
    #[error("{path} is {kind}, not a regular file; give a file (for a command's output, save it first or use a cmd: signal)")]
    NotRegular { path: String, kind: &'static str },
}

impl InError {
    /// Whether the file simply does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, InError::Io { error, .. } if error.kind() == std::io::ErrorKind::NotFound)
    }
}

/// Reads at most `limit` bytes of text from `path`.
pub fn read_text(path: &Path, limit: u64) -> Result<String, InError> {
    let shown = || crate::term::escape(&path.display().to_string());
    let f = open_regular(path, limit)?;
    let mut buf = Vec::new();
    f.take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|error| InError::Io {
            path: shown(),
            error,
        })?;
    if buf.len() as u64 > limit {
        return Err(InError::TooLarge {
            path: shown(),
            limit,
        });
    }
    String::from_utf8(buf).map_err(|_| InError::NotText { path: shown() })
}

/// Opens `path` to read as a stream: a regular file (never waiting on a FIFO) of at most
/// `limit` bytes.
pub fn open_regular(path: &Path, limit: u64) -> Result<std::fs::File, InError> {
    // A path is user text: shown with control characters escaped.
    let shown = || crate::term::escape(&path.display().to_string());
    // Opened without blocking (a FIFO with no writer would hang open(2) forever), then
    // refused unless it is a regular file: a FIFO, a device or a socket may never end.
    let f = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
    }
    .map_err(|error| InError::Io {
        path: shown(),
        error,
    })?;
    let ft = f
        .metadata()
        .map_err(|error| InError::Io {
            path: shown(),
            error,
        })?
        .file_type();
    if !ft.is_file() {
        use std::os::unix::fs::FileTypeExt;
        let kind = if ft.is_fifo() {
            "a FIFO (named pipe)"
        } else if ft.is_dir() {
            "a directory"
        } else if ft.is_char_device() || ft.is_block_device() {
            "a device"
        } else if ft.is_socket() {
            "a socket"
        } else {
            "not a plain file"
        };
        return Err(InError::NotRegular {
            path: shown(),
            kind,
        });
    }
    if f.metadata().map(|m| m.len()).unwrap_or(0) > limit {
        return Err(InError::TooLarge {
            path: shown(),
            limit,
        });
    }
    Ok(f)
}

/// Why a file found by searching upward is not trusted, if it is not: the rule git uses for
/// `safe.directory` — it must belong to the current user or root and not be writable by
/// group or others, or anyone who can write it could govern (or break) this user's runs.
pub fn distrust(path: &Path) -> Option<String> {
    let m = std::fs::metadata(path).ok()?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if m.uid() != me && m.uid() != 0 {
        return Some(format!(
            "owned by uid {} (neither you, uid {me}, nor root)",
            m.uid()
        ));
    }
    if m.mode() & 0o022 != 0 {
        return Some(format!(
            "writable by {} (mode {:o})",
            if m.mode() & 0o002 != 0 {
                "anyone"
            } else {
                "its group"
            },
            m.mode() & 0o777
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn bounded_reads() {
        assert!(matches!(
            read_text(Path::new("/dev/zero"), 1024),
            Err(InError::NotRegular {
                kind: "a device",
                ..
            })
        ));
        let d = tempfile::tempdir().expect("tmp");
        // A FIFO with no writer is refused at once, never waited on.
        let fifo = d.path().join("fifo");
        let c = std::ffi::CString::new(fifo.display().to_string()).expect("path");
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(matches!(
            read_text(&fifo, 1024),
            Err(InError::NotRegular { .. })
        ));
        let big = d.path().join("big");
        std::fs::write(&big, vec![b'a'; 2048]).expect("w");
        assert!(matches!(
            read_text(&big, 1024),
            Err(InError::TooLarge { .. })
        ));
        let f = d.path().join("t");
        std::fs::write(&f, "hello").expect("w");
        assert_eq!(read_text(&f, 5).expect("fits"), "hello");
        assert!(read_text(&f, 4).is_err());
        std::fs::write(&f, [0xff, 0xfe]).expect("w");
        assert!(matches!(read_text(&f, 10), Err(InError::NotText { .. })));
        assert!(read_text(&d.path().join("none"), 10)
            .expect_err("absent")
            .is_not_found());
    }

    #[test]
    fn trust_follows_owner_and_mode() {
        let d = tempfile::tempdir().expect("tmp");
        let f = d.path().join("decompute.toml");
        std::fs::write(&f, "").expect("w");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert_eq!(distrust(&f), None);
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o664)).expect("chmod");
        assert!(distrust(&f).expect("group").contains("group"));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o646)).expect("chmod");
        assert!(distrust(&f).expect("world").contains("anyone"));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            std::os::unix::fs::chown(&f, Some(4242), None).expect("chown");
            assert!(distrust(&f).expect("other owner").contains("uid 4242"));
        }
    }
}
