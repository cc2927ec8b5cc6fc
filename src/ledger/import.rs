//! An import file read as a stream, twice: once to check every record (the first bad one
//! refuses the whole file, naming its line, before any ledger is opened), once to hand the
//! records to the ledger in batches. Memory stays that of one batch whatever the file's
//! size (a 100 MB CodeCarbon log was 3.6 GB resident when read whole). Formats are known by
//! their content: CodeCarbon's `emissions.csv` (a run's later rows supersede its earlier
//! ones, as CodeCarbon appends them), decompute's own CSV, JSON lines of ledger records, or
//! one `run --json` report.

use super::RunRecord;
use crate::csvdata::{self, Records};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// Records handed to the ledger at once.
pub const BATCH: usize = 1000;

/// What kind of file it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    CodeCarbon,
    DecomputeCsv,
    JsonLines,
    /// One `run --json` report (a single JSON document over many lines).
    Report,
}

/// What the checking pass found.
#[derive(Debug, Default)]
pub struct Checked {
    pub records: usize,
    /// CodeCarbon rows superseded by a later row of the same run.
    pub superseded: usize,
    /// CodeCarbon: the line of each run's last row (the one imported).
    last_line: HashMap<String, usize>,
}

/// An import file, its format recognised.
pub struct ImportFile {
    path: PathBuf,
    /// The name shown in messages (control characters escaped).
    pub name: String,
    pub format: Format,
}

fn open(path: &Path, name: &str) -> Result<BufReader<std::fs::File>, String> {
    crate::infile::open_regular(path, crate::infile::BULK_LIMIT)
        .map(|f| BufReader::with_capacity(1 << 16, f))
        .map_err(|e| format!("{e}; give the file `decompute ledger export` wrote ({name})"))
}

impl ImportFile {
    /// Opens `path` and recognises its format from its first bytes.
    pub fn open(path: &Path) -> Result<ImportFile, String> {
        let name = crate::term::escape(&path.display().to_string());
        let mut r = open(path, &name)?;
        let mut first = String::new();
        loop {
            first.clear();
            match r.read_line(&mut first) {
                Ok(0) => break,
                Ok(_) if first.trim_start_matches('\u{feff}').trim().is_empty() => continue,
                Ok(_) => break,
                Err(_) => return Err(format!("{name} is not UTF-8 text")),
            }
        }
        let first = first.trim_start_matches('\u{feff}').trim();
        let format = if first.starts_with('{') {
            // A record per line, or one pretty-printed report whose first line is `{`.
            if serde_json::from_str::<serde_json::Value>(first).is_ok() {
                Format::JsonLines
            } else {
                Format::Report
            }
        } else {
            let header = csvdata::split_header(first);
            if super::codecarbon::is_codecarbon(&header) {
                Format::CodeCarbon
            } else if super::csv::is_decompute(&header) {
                Format::DecomputeCsv
            } else if first.is_empty() {
                Format::JsonLines
            } else {
                return Err(format!("{name}: neither JSON lines nor a CSV decompute knows (its header has no run_id/emissions/energy_consumed of CodeCarbon's emissions.csv, nor decompute's decompute_version); nothing was imported"));
            }
        };
        Ok(ImportFile {
            path: path.to_path_buf(),
            name,
            format,
        })
    }

    /// Reads every record in file order, validated, and hands each to `f`; CodeCarbon rows
    /// superseded by a later row of their run are skipped when `checked` says which.
    fn each(
        &self,
        checked: Option<&Checked>,
        mut f: impl FnMut(usize, RunRecord) -> Result<(), String>,
    ) -> Result<(), String> {
        let name = &self.name;
        let refuse =
            |line: usize, e: String| format!("{name}: line {line}: {e}; nothing was imported");
        match self.format {
            Format::Report => {
                let mut text = String::new();
                open(&self.path, name)?
                    .take(crate::infile::DATA_LIMIT + 1)
                    .read_to_string(&mut text)
                    .map_err(|_| format!("{name} is not UTF-8 text"))?;
                let report: crate::report::RunReport =
                    serde_json::from_str(&text).map_err(|e| {
                        format!(
                            "{name}: not a run report nor JSON lines ({e}); nothing was imported"
                        )
                    })?;
                let mut r = RunRecord::from_report(report).map_err(|e| format!("{name}: {e}"))?;
                r.validate()
                    .map_err(|e| format!("{name}: {e}; nothing was imported"))?;
                f(1, r)
            }
            Format::JsonLines => {
                let mut line = 0;
                let mut buf = String::new();
                let mut r = open(&self.path, name)?;
                loop {
                    buf.clear();
                    match r.read_line(&mut buf) {
                        Ok(0) => return Ok(()),
                        Ok(_) => line += 1,
                        Err(_) => return Err(refuse(line + 1, "not UTF-8 text".into())),
                    }
                    let text = buf.trim_start_matches('\u{feff}');
                    if text.trim().is_empty() {
                        continue;
                    }
                    let mut rec: RunRecord = serde_json::from_str(text).map_err(|e| {
                        refuse(line, format!("not a ledger record ({e}); import reads what `decompute ledger export` writes (JSON lines or CSV), a `run --json` report, or CodeCarbon's emissions.csv"))
                    })?;
                    rec.validate().map_err(|e| refuse(line, e))?;
                    f(line, rec)?;
                }
            }
            Format::CodeCarbon | Format::DecomputeCsv => {
                let mut rows = Records::new(name, open(&self.path, name)?);
                let header = csvdata::header(&mut rows).map_err(|e| e.to_string())?;
                let required: &[&str] = if self.format == Format::CodeCarbon {
                    &super::codecarbon::REQUIRED
                } else {
                    &super::csv::REQUIRED
                };
                for c in required {
                    if !header.iter().any(|h| h == c) {
                        return Err(format!("{name}: missing column '{c}' in the header"));
                    }
                }
                for row in rows {
                    let (line, cells) = row.map_err(|e| format!("{e}; nothing was imported"))?;
                    csvdata::fits(name, &header, line, &cells)
                        .map_err(|e| format!("{e}; nothing was imported"))?;
                    let map = header.iter().cloned().zip(cells).collect();
                    let mut rec = if self.format == Format::CodeCarbon {
                        super::codecarbon::record(&map)
                    } else {
                        super::csv::record(map)
                    }
                    .map_err(|e| refuse(line, e))?;
                    if self.format == Format::CodeCarbon {
                        if let Some(c) = checked {
                            if c.last_line.get(&rec.identity.id) != Some(&line) {
                                continue;
                            }
                        }
                    }
                    rec.validate().map_err(|e| refuse(line, e))?;
                    f(line, rec)?;
                }
                Ok(())
            }
        }
    }

    /// The checking pass: every record parsed and validated, none kept.
    pub fn check(&self) -> Result<Checked, String> {
        let mut c = Checked::default();
        let codecarbon = self.format == Format::CodeCarbon;
        self.each(None, |line, r| {
            if codecarbon {
                if c.last_line.insert(r.identity.id, line).is_some() {
                    c.superseded += 1;
                }
            } else {
                c.records += 1;
            }
            Ok(())
        })?;
        if codecarbon {
            c.records = c.last_line.len();
        }
        Ok(c)
    }

    /// The importing pass: the records (each run's last CodeCarbon row) in batches of
    /// [`BATCH`], in file order.
    pub fn batches(
        &self,
        checked: &Checked,
        mut f: impl FnMut(&[RunRecord]) -> Result<(), String>,
    ) -> Result<(), String> {
        let mut batch = Vec::with_capacity(BATCH);
        self.each(Some(checked), |_, r| {
            batch.push(r);
            if batch.len() >= BATCH {
                f(&batch)?;
                batch.clear();
            }
            Ok(())
        })?;
        if !batch.is_empty() {
            f(&batch)?;
        }
        Ok(())
    }
}
