//! `decompute ledger list|show|summary|export|import`: query, total, export and merge the
//! record of runs.

use super::{print_stdout, FactorArgs, LedgerArgs};
use crate::ledger::{self, Filter, GroupBy, LedgerError, RunRecord};
use crate::render;
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
    List(FilterArgs),
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
    },
    /// Full records as JSON lines, or CodeCarbon-compatible CSV
    Export {
        #[arg(long, value_enum, default_value = "json")]
        format: Format,
        /// Write to FILE instead of stdout
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Add exported JSON-lines records ("-" for stdin); runs already present are skipped
    Import {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Json,
    Csv,
}

#[derive(Debug, Clone, Args)]
pub struct FilterArgs {
    #[arg(long)]
    pub project: Option<String>,
    /// key=value (repeatable; all must match)
    #[arg(long = "tag", value_parser = ledger::parse_tag, value_name = "KEY=VALUE")]
    pub tags: Vec<(String, String)>,
    /// Runs started at or after (YYYY-MM-DD or RFC 3339 UTC)
    #[arg(long, value_parser = crate::timefmt::parse_bound_ms, value_name = "DATE")]
    pub since: Option<i64>,
    /// Runs started before (YYYY-MM-DD or RFC 3339 UTC)
    #[arg(long, value_parser = crate::timefmt::parse_bound_ms, value_name = "DATE")]
    pub until: Option<i64>,
    /// At most N runs
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
}

impl FilterArgs {
    fn filter(&self) -> Filter {
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
    let cfg = FactorArgs::config_from(a.config.as_deref())?;
    // An import is read and checked whole before the ledger is opened: a refused file
    // leaves no ledger (and no half import) behind.
    let records = match &a.action {
        Action::Import { file } => Some(read_import(file)?),
        _ => None,
    };
    let mut l = a.ledger.open(&cfg)?;
    let _ = l.recover();
    match a.action {
        Action::List(f) => {
            let mut filter = f.filter();
            filter.limit = filter.limit.or(Some(50));
            print_stdout(&render::ledger::list(&l.list(&filter)?))
        }
        Action::Show { id } => print_stdout(&render::ledger::show(&l.get(&id)?)),
        Action::Summary { by, filter } => {
            let label = match &by {
                GroupBy::Tag(k) => format!("tag:{k}"),
                other => format!("{other:?}").to_lowercase(),
            };
            let head = a.ledger.shared_heading(&cfg).unwrap_or_default();
            print_stdout(&format!(
                "{head}{}",
                render::ledger::summary(&label, &l.summary(&by, &filter.filter())?)
            ))
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
                if let Format::Csv = format {
                    writeln!(out, "{}", render::ledger::csv_header())?;
                }
                let res = l.export(&filter, &mut |r| {
                    let line = match format {
                        Format::Json => {
                            serde_json::to_string(&r).map_err(|e| LedgerError::BadRecord {
                                what: r.identity.id.clone(),
                                message: e.to_string(),
                            })?
                        }
                        Format::Csv => render::ledger::csv_row(&r),
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
                    crate::outfile::check(p, &a.ledger.protected(&cfg))?;
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
            let records = records.unwrap_or_default();
            let n = l.import(&records)?;
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

/// Reads, parses and validates every record of an export file; the first bad line refuses
/// the whole file, naming the line.
fn read_import(file: &std::path::Path) -> anyhow::Result<Vec<RunRecord>> {
    let name = file.display().to_string();
    let text = if file.as_os_str() == "-" {
        let mut t = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin().lock(), &mut t)
            .with_context(|| "reading standard input")?;
        t
    } else {
        crate::infile::read_text(file, crate::infile::BULK_LIMIT).with_context(|| {
            "give the file `decompute ledger export --format json` wrote, or - for stdin"
        })?
    };
    // A `run --json` report (one JSON document, pretty-printed): the record it stands for.
    if let Ok(report) = serde_json::from_str::<crate::report::RunReport>(&text) {
        let mut r = RunRecord::from_report(report).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        r.validate()
            .map_err(|e| anyhow::anyhow!("{name}: {e}; nothing was imported"))?;
        return Ok(vec![r]);
    }
    let mut records = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut r: RunRecord = serde_json::from_str(line).map_err(|e| anyhow::anyhow!("{name}: line {}: not a ledger record ({e}); import reads the output of `decompute ledger export --format json`; nothing was imported", i + 1))?;
        r.validate()
            .map_err(|e| anyhow::anyhow!("{name}: line {}: {e}; nothing was imported", i + 1))?;
        records.push(r);
    }
    Ok(records)
}
