//! `decompute ledger list|show|summary|export|import`: query, total, export and merge the
//! record of runs.

use super::{print_stdout, LedgerArgs};
use crate::ledger::{self, Filter, GroupBy, LedgerError};
use crate::render;
use crate::settings::PolicyChoice;
use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct LedgerCmd {
    #[command(subcommand)]
    pub action: Action,
    #[command(flatten)]
    pub ledger: LedgerArgs,
    /// Defaults file [default: $XDG_CONFIG_HOME/decompute/config.toml]
    #[arg(long, env = "DECOMPUTE_CONFIG", value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Action {
    /// Runs, newest first
    List {
        #[command(flatten)]
        filter: FilterArgs,
        /// Print JSON (one array of runs) on stdout
        #[arg(long)]
        json: bool,
    },
    /// One run in full: components, factors with sources, power over time
    Show {
        /// Run id, or a unique prefix of it
        id: String,
    },
    /// Totals of runs, duration, energy, carbon and water by group
    Summary {
        /// project, day, week, month, user, host or tag:KEY
        #[arg(long, default_value = "project", value_parser = GroupBy::parse)]
        by: GroupBy,
        #[command(flatten)]
        filter: FilterArgs,
        /// table, csv or json
        #[arg(long, value_enum, default_value = "table")]
        format: SummaryFormat,
        /// Same as --format json
        #[arg(long)]
        json: bool,
    },
    /// Full records as JSON lines, CSV (CodeCarbon's 38 columns, then decompute's), or
    /// CodeCarbon's exact columns
    Export {
        #[arg(long, value_enum, default_value = "json")]
        format: Format,
        /// Write to FILE instead of stdout
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Add runs from a file ("-" for stdin), recognised by content: decompute's JSON lines,
    /// CSV or `run --json` report, or CodeCarbon's emissions.csv; runs already present are
    /// skipped
    Import {
        /// The file to import ("-" for standard input): a `ledger export` (JSON lines or
        /// CSV), a `run --json` report, CodeCarbon's emissions.csv, or a hosted-AI usage
        /// export (OpenAI's usage JSON or CSV, or date,model,requests,input_tokens,
        /// output_tokens), each row estimated as `estimate infer --model` would
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// The project a usage export's rows are recorded under [default: a `project`
        /// column, else as `run` chooses]
        #[arg(long, value_name = "NAME", value_parser = crate::ledger::parse_project)]
        project: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Json,
    Csv,
    /// CodeCarbon 3.3.2's 38 columns exactly (a tracker can append to the same file)
    Codecarbon,
}

#[derive(Debug, Clone, Copy, PartialEq, ValueEnum)]
pub enum SummaryFormat {
    Table,
    Csv,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct FilterArgs {
    /// Only runs of this project
    #[arg(long)]
    pub project: Option<String>,
    /// key=value (repeatable; all must match)
    #[arg(long = "tag", value_parser = ledger::parse_tag, value_name = "KEY=VALUE")]
    pub tags: Vec<(String, String)>,
    /// Runs started at or after: a date (YYYY-MM-DD, from its midnight UTC), an RFC 3339 time
    /// with any offset (2026-11-01T12:00:00+01:00, fractions of a second), or Unix seconds or
    /// milliseconds
    #[arg(long, value_parser = crate::timefmt::parse_bound_ms, value_name = "DATE")]
    pub since: Option<i64>,
    /// Runs started before: the same forms as --since
    #[arg(long, value_parser = crate::timefmt::parse_bound_ms, value_name = "DATE")]
    pub until: Option<i64>,
    /// At most N runs
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
}

impl FilterArgs {
    pub fn filter(&self) -> Filter {
        Filter {
            project: self.project.clone(),
            tags: self.tags.clone(),
            since_ms: self.since,
            until_ms: self.until,
            limit: self.limit,
        }
    }
}

pub fn main(a: LedgerCmd) -> anyhow::Result<()> {
    let mut said = super::said(PolicyChoice::Discover, &[&a.ledger]);
    said.config = a.config.clone();
    // An import is read and checked through before the ledger is opened: a refused file
    // leaves no ledger (and no half import) behind. Standard input is spooled to a private
    // temporary file first, to be read twice.
    let mut usage = None;
    let import = match &a.action {
        Action::Import { file, .. } => {
            let (path, spool) = if file.as_os_str() == "-" {
                let t = spool_stdin()?;
                (t.path().to_path_buf(), Some(t))
            } else {
                (file.clone(), None)
            };
            if let Some(u) = usage_export(&path)? {
                usage = Some(u);
                None
            } else {
                let f = ledger::import::ImportFile::open(&path).map_err(|e| anyhow::anyhow!(e))?;
                let checked = f.check().map_err(|e| anyhow::anyhow!(e))?;
                if checked.superseded > 0 {
                    crate::say!(
                    "decompute: {} earlier row(s) of the same CodeCarbon run were superseded by its last row",
                    checked.superseded
                );
                }
                Some((f, checked, spool))
            }
        }
        _ => None,
    };
    let settings = super::settings(said)?;
    // A usage export is estimated through before the ledger is opened: an unknown model
    // refuses the file, nothing half imported.
    let usage = match (usage, &a.action) {
        (Some(u), Action::Import { project, .. }) => {
            Some(usage_records(u, &settings, project.as_deref())?)
        }
        _ => None,
    };
    let loc = settings.ledger()?;
    let mut l = if import.is_some() || usage.is_some() {
        super::open_ledger(&loc, &settings.procfs_root())?
    } else {
        super::open_reading(&loc)?
    };
    match a.action {
        Action::List { filter: f, json } => {
            let mut filter = f.filter();
            filter.limit = filter.limit.or(Some(50));
            let rows = l.list(&filter)?;
            if json {
                return print_stdout(&(serde_json::to_string_pretty(&rows)? + "\n"));
            }
            print_stdout(&render::ledger::list(&rows))
        }
        Action::Show { id } => print_stdout(&render::ledger::show(&l.get(&id)?)),
        Action::Summary {
            by,
            filter,
            format,
            json,
        } => {
            let label = match &by {
                GroupBy::Tag(k) => format!("tag:{k}"),
                other => format!("{other:?}").to_lowercase(),
            };
            let rows = l.summary(&by, &filter.filter())?;
            match (json, format) {
                (true, _) | (_, SummaryFormat::Json) => {
                    let j = serde_json::json!({
                        "schema": "decompute.summary/1",
                        "by": label,
                        "ledger": loc.shown(),
                        "groups": rows,
                    });
                    return print_stdout(&(serde_json::to_string_pretty(&j)? + "\n"));
                }
                (false, SummaryFormat::Csv) => {
                    return print_stdout(&render::ledger::summary_csv(&label, &rows));
                }
                (false, SummaryFormat::Table) => {}
            }
            let head = match &loc.origin {
                crate::factors::Origin::Policy(_) => {
                    format!("ledger {} (named by {})\n", loc.shown(), loc.origin)
                }
                _ => String::new(),
            };
            print_stdout(&format!("{head}{}", render::ledger::summary(&label, &rows)))
        }
        Action::Export {
            format,
            output,
            filter,
        } => {
            let filter = filter.filter();
            let mut count = 0usize;
            let mut failed: Option<LedgerError> = None;
            let l = &l;
            let mut produce = |out: &mut dyn Write| -> std::io::Result<()> {
                match format {
                    Format::Csv => writeln!(out, "{}", ledger::csv::header())?,
                    Format::Codecarbon => {
                        writeln!(out, "{}", ledger::codecarbon::COLUMNS.join(","))?
                    }
                    Format::Json => {}
                }
                let res = l.export(&filter, &mut |r| {
                    let line = match format {
                        Format::Json => {
                            serde_json::to_string(&r).map_err(|e| LedgerError::BadRecord {
                                what: r.identity.id.clone(),
                                message: e.to_string(),
                            })?
                        }
                        Format::Csv => ledger::csv::row(&r),
                        Format::Codecarbon => ledger::codecarbon::row(&r),
                    };
                    writeln!(out, "{line}").map_err(|e| LedgerError::Output(e.to_string()))
                });
                match res {
                    Ok(n) => {
                        count = n;
                        Ok(())
                    }
                    Err(e) => {
                        failed = Some(e);
                        Err(std::io::Error::other("export failed"))
                    }
                }
            };
            let written = match &output {
                Some(p) => {
                    crate::outfile::check(p, &loc.protected())?;
                    crate::outfile::write_with(p, &mut produce).map_err(anyhow::Error::from)
                }
                None => {
                    let mut o = std::io::BufWriter::new(std::io::stdout().lock());
                    produce(&mut o)
                        .and_then(|()| o.flush())
                        .map_err(anyhow::Error::from)
                }
            };
            if let Some(e) = failed {
                return Err(e.into());
            }
            written?;
            if output.is_some() {
                crate::say!("decompute: exported {count} run(s)");
            }
            Ok(())
        }
        Action::Import { .. } => {
            if let Some((records, what)) = usage {
                let mut n = ledger::Imported::default();
                for b in records.chunks(ledger::import::BATCH) {
                    let got = l.import(b)?;
                    n.added += got.added;
                    n.present += got.present;
                }
                crate::say!(
                    "decompute: imported {} estimated row(s) of hosted-AI use, {} already present, from {what} (scope=estimated: apart from measured runs in listings, summaries and reports; budgets count them)",
                    n.added,
                    n.present
                );
                return Ok(());
            }
            let Some((f, checked, _spool)) = import else {
                return Ok(());
            };
            let mut n = ledger::Imported::default();
            f.batches(&checked, |b| {
                let got = l.import(b).map_err(|e| format!("{e:#}"))?;
                n.added += got.added;
                n.present += got.present;
                n.completed += got.completed;
                Ok(())
            })
            .map_err(|e| {
                anyhow::anyhow!("{e}; {} run(s) were imported before it (import the file again to complete it: imports are idempotent)", n.added + n.completed)
            })?;
            crate::say!(
                "decompute: imported {} run(s), {} already present{}",
                n.added,
                n.present,
                if n.completed > 0 {
                    format!(
                        ", {} completed (the ledger had them unfinished)",
                        n.completed
                    )
                } else {
                    String::new()
                }
            );
            Ok(())
        }
    }
}

/// A hosted-AI usage export, read (None: another kind of file, for the ledger's own import).
fn usage_export(
    path: &std::path::Path,
) -> anyhow::Result<
    Option<(
        String,
        crate::hosted::usage::Read,
        crate::hosted::usage::Format,
    )>,
> {
    use crate::hosted::usage;
    use std::io::{BufRead, Read};
    let name = crate::term::escape(&path.display().to_string());
    // Known by the first line (a CSV header, a compact JSON page or a JSON line): a ledger
    // export or an emissions.csv is not read through twice to tell it is not usage. Only a
    // JSON document over many lines (a run report, or a page) is read whole to tell which.
    let Ok(file) = crate::infile::open_regular(path, crate::infile::BULK_LIMIT) else {
        return Ok(None);
    };
    let mut first = String::new();
    let mut head = std::io::BufReader::new(file).take(1 << 20);
    while first.trim().is_empty() {
        first.clear();
        if !matches!(head.read_line(&mut first), Ok(n) if n > 0) {
            return Ok(None);
        }
    }
    let line = first.trim_start_matches('\u{feff}').trim();
    let pretty = line.starts_with('{') && serde_json::from_str::<serde_json::Value>(line).is_err();
    let whole = || crate::infile::read_text(path, crate::infile::DATA_LIMIT).ok();
    let (format, text) = if pretty {
        let Some(text) = whole() else {
            return Ok(None);
        };
        (usage::sniff(&text), Some(text))
    } else {
        (usage::sniff(&first), None)
    };
    let Some(format) = format else {
        return Ok(None);
    };
    // Usage exports are small (a row per day and model).
    let Some(text) = text.or_else(whole) else {
        anyhow::bail!(
            "{name}: a usage export larger than {} MB; split it by month",
            crate::infile::DATA_LIMIT >> 20
        );
    };
    let read = usage::read(&name, &text, format, crate::timefmt::now_s())
        .map_err(|e| anyhow::anyhow!("{e}; nothing was imported"))?;
    Ok(Some((name, read, format)))
}

/// The estimated records of a usage export's rows, under `project` (else each row's
/// `project` column, else the default project), with a line saying what was read.
fn usage_records(
    (name, read, format): (
        String,
        crate::hosted::usage::Read,
        crate::hosted::usage::Format,
    ),
    settings: &crate::settings::Settings,
    project: Option<&str>,
) -> anyhow::Result<(Vec<ledger::RunRecord>, String)> {
    let data = settings.factor_data()?;
    let conv = settings.conversion(&data)?;
    let f = crate::estimate::datacentre::factors(conv, &data);
    let (_, account) = crate::slurm::env::tags(std::env::vars());
    let default_project = settings.project(None, account);
    let mut out = Vec::with_capacity(read.rows.len());
    for row in &read.rows {
        let (e, used) = crate::hosted::estimate(&row.request, f.clone(), &data)
            .map_err(|e| anyhow::anyhow!("{name}: line {}: {e}; nothing was imported", row.line))?;
        let identity = ledger::RunIdentity {
            id: row.id.clone(),
            project: project
                .map(str::to_string)
                .or_else(|| row.project.clone())
                .unwrap_or_else(|| default_project.clone()),
            tags: row.tags.iter().cloned().collect(),
            user: ledger::current_user(),
            // Where it was imported: the requests ran at the provider.
            host: crate::host::hostname(),
            cwd: String::new(),
        };
        out.push(
            crate::hosted::record(&row.request, &e, &used, identity)
                .map_err(|e| anyhow::anyhow!("{name}: line {}: {e}", row.line))?,
        );
    }
    let mut what = format!("{name} ({})", format.name());
    if read.empty > 0 {
        what.push_str(&format!(
            "; {} row(s) with no requests or tokens left out",
            read.empty
        ));
    }
    if read.open > 0 {
        what.push_str(&format!(
            "; {} row(s) of a period not ended yet left out (their counts would still change: import them once it has ended)",
            read.open
        ));
    }
    Ok((out, what))
}

/// Standard input copied to a private temporary file (at most the bulk limit), so an
/// import can read it twice.
fn spool_stdin() -> anyhow::Result<tempfile::NamedTempFile> {
    let mut t = tempfile::NamedTempFile::new().context("a temporary file for standard input")?;
    let limit = crate::infile::BULK_LIMIT;
    let n = std::io::copy(
        &mut std::io::Read::take(std::io::stdin().lock(), limit + 1),
        t.as_file_mut(),
    )
    .context("reading standard input")?;
    if n > limit {
        anyhow::bail!("standard input is larger than {limit} bytes; split the import");
    }
    Ok(t)
}
