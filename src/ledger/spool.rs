//! Runs measured but not recorded: when the ledger cannot be reached or refuses a run (no
//! connection slot left, the network, a full disk), the run's whole record is kept in a spool
//! under the state directory (`$XDG_STATE_HOME/decompute/spool/<ledger>/<run id>.json`,
//! private, written whole through the one file-writing helper) and delivered by the next
//! decompute command on this host that opens the same ledger. A measurement is never only a
//! warning. Delivery imports the record (idempotent: a run the ledger already has, or has
//! only as `running`, is completed, never doubled) and removes the file only once the ledger
//! took it.

use super::{Ledger, Location, RunRecord};
use std::path::{Path, PathBuf};

/// The spool of this host: `<state dir>/spool`.
pub fn dir() -> Option<PathBuf> {
    crate::host::state_dir().map(|d| d.join("spool"))
}

/// The folder of one ledger's spooled runs: a stable name derived from the ledger as shown
/// (a URL without its password), so a password never reaches a file name.
fn folder(spool: &Path, loc: &Location) -> PathBuf {
    // FNV-1a, 64 bits: stable across builds and platforms (std's hasher is not).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in loc.shown().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    spool.join(format!("{h:016x}"))
}

/// Why a run could not be spooled.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("no state directory (HOME and XDG_STATE_HOME are unset)")]
    NoStateDir,
    #[error("cannot create the spool {dir}: {error}")]
    Create { dir: String, error: std::io::Error },
    #[error("cannot write the spooled run: {0}")]
    Write(String),
}

/// Keeps `record` in this host's spool for the ledger at `loc`; returns its file.
pub fn keep(loc: &Location, record: &RunRecord) -> Result<PathBuf, SpoolError> {
    put(&dir().ok_or(SpoolError::NoStateDir)?, loc, record)
}

/// Delivers this host's spool for the ledger at `loc` (see [`deliver`]).
pub fn deliver_here(loc: &Location, ledger: &mut dyn Ledger) -> Delivered {
    match dir() {
        Some(d) => deliver(&d, loc, ledger),
        None => Delivered::default(),
    }
}

/// Keeps `record`, meant for the ledger at `loc`, in the spool `spool`; returns its file.
pub fn put(spool: &Path, loc: &Location, record: &RunRecord) -> Result<PathBuf, SpoolError> {
    let d = folder(spool, loc);
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&d)
            .map_err(|error| SpoolError::Create {
                dir: d.display().to_string(),
                error,
            })?;
    }
    let file = d.join(format!("{}.json", record.identity.id));
    let text = serde_json::to_string(record).map_err(|e| SpoolError::Write(e.to_string()))?;
    crate::outfile::write(&file, text.as_bytes()).map_err(|e| SpoolError::Write(e.to_string()))?;
    Ok(file)
}

/// What a delivery did.
#[derive(Debug, Default, PartialEq)]
pub struct Delivered {
    /// Runs the ledger took (added or completed).
    pub runs: usize,
    /// Files left in the spool, with why, in words.
    pub left: Vec<String>,
}

/// Delivers the runs spooled for the ledger at `loc` into `ledger`, oldest first; a file the
/// ledger takes is removed, one it refuses stays (and is said).
pub fn deliver(spool: &Path, loc: &Location, ledger: &mut dyn Ledger) -> Delivered {
    let d = folder(spool, loc);
    let mut out = Delivered::default();
    let Ok(entries) = std::fs::read_dir(&d) else {
        return out;
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    for f in files {
        let shown = f.display().to_string();
        let record = crate::infile::read_text(&f, crate::infile::BULK_LIMIT)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<RunRecord>(&t).map_err(|e| e.to_string()))
            .and_then(|mut r| r.validate().map(|()| r));
        let result = record.and_then(|r| ledger.import(&[r]).map_err(|e| format!("{e:#}")));
        match result {
            Ok(_) => {
                out.runs += 1;
                let _ = std::fs::remove_file(&f);
            }
            Err(e) => out.left.push(format!("{shown}: {e}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::factors::Origin;
    use crate::ledger::sqlite::SqliteLedger;
    use crate::ledger::{Filter, Target};

    fn record(id: &str) -> RunRecord {
        let mut r = crate::render::snapshot::real_record();
        r.identity.id = id.into();
        r
    }

    #[test]
    fn a_spooled_run_is_delivered_once_to_its_own_ledger() {
        let d = tempfile::tempdir().unwrap();
        let spool = d.path().join("spool");
        let path = d.path().join("l.sqlite");
        let loc = Location {
            target: Target::Sqlite(path.clone()),
            origin: Origin::Default,
        };
        let other = Location {
            target: Target::Sqlite(d.path().join("other.sqlite")),
            origin: Origin::Default,
        };
        let f = put(&spool, &loc, &record("01SPOOLED")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(f.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        let mut l = SqliteLedger::open(&path).unwrap();
        assert_eq!(
            deliver(&spool, &other, &mut l).runs,
            0,
            "another ledger's spool"
        );
        let got = deliver(&spool, &loc, &mut l);
        assert_eq!(
            got,
            Delivered {
                runs: 1,
                left: vec![]
            }
        );
        assert!(!f.exists(), "delivered, removed");
        assert_eq!(l.list(&Filter::default()).unwrap().len(), 1);
        // A second spooling of the same run (a retry) does not double it.
        put(&spool, &loc, &record("01SPOOLED")).unwrap();
        assert_eq!(deliver(&spool, &loc, &mut l).runs, 1);
        assert_eq!(l.list(&Filter::default()).unwrap().len(), 1);
        // A file that is not a record stays, said.
        let bad = folder(&spool, &loc).join("bad.json");
        std::fs::write(&bad, "{").unwrap();
        let got = deliver(&spool, &loc, &mut l);
        assert_eq!(got.runs, 0);
        assert!(got.left[0].contains("bad.json"), "{got:?}");
        assert!(bad.exists());
    }
}
