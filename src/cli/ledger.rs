//! `decompute ledger list|show|summary|export|import`: query, total, export and merge the
//! record of runs.

use super::{print_stdout, FactorArgs, LedgerArgs};
use crate::ledger::{self, Filter, GroupBy, LedgerError, RunRecord, RECORD_SCHEMA};
use crate::render;
use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use std::io::{BufRead, Write};
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
    #[arg(long, value_parser = ledger::parse_time_bound, value_name = "DATE")]
    pub since: Option<String>,
    /// Runs started before (YYYY-MM-DD or RFC 3339 UTC)
    #[arg(long, value_parser = ledger::parse_time_bound, value_name = "DATE")]
    pub until: Option<String>,
    /// At most N runs
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
}

impl FilterArgs {
    fn filter(&self) -> Filter {
        Filter {
            project: self.project.clone(),
            tags: self.tags.clone(),
            since: self.since.clone(),
            until: self.until.clone(),
            limit: self.limit,
        }
    }
}

pub fn main(a: LedgerCmd) -> anyhow::Result<()> {
    let cfg = FactorArgs::config_from(a.config.as_deref())?;
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
            print_stdout(&render::ledger::summary(
                &label,
                &l.summary(&by, &filter.filter())?,
            ))
        }
        Action::Export {
            format,
            output,
            filter,
        } => {
            let mut out: Box<dyn Write> = match &output {
                Some(p) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(p)
                        .with_context(|| format!("cannot create {}", p.display()))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let io = |e: std::io::Error| LedgerError::BadRecord {
                what: "output".into(),
                message: e.to_string(),
            };
            if let Format::Csv = format {
                writeln!(out, "{}", render::ledger::csv_header())?;
            }
            let n = l.export(&filter.filter(), &mut |r| {
                let line = match format {
                    Format::Json => {
                        serde_json::to_string(&r).map_err(|e| LedgerError::BadRecord {
                            what: r.identity.id.clone(),
                            message: e.to_string(),
                        })?
                    }
                    Format::Csv => render::ledger::csv_row(&r),
                };
                writeln!(out, "{line}").map_err(io)
            });
            out.flush()?;
            let n = n?;
            if output.is_some() {
                eprintln!("decompute: exported {n} run(s)");
            }
            Ok(())
        }
        Action::Import { file } => {
            let reader: Box<dyn BufRead> = if file.as_os_str() == "-" {
                Box::new(std::io::stdin().lock())
            } else {
                Box::new(std::io::BufReader::new(
                    std::fs::File::open(&file)
                        .with_context(|| format!("cannot open {} (give the file `decompute ledger export --format json` wrote, or - for stdin)", file.display()))?,
                ))
            };
            let name = file.display().to_string();
            let mut records = Vec::new();
            for (i, line) in reader.lines().enumerate() {
                let line = line.with_context(|| format!("reading {name}"))?;
                if line.trim().is_empty() {
                    continue;
                }
                let r: RunRecord = serde_json::from_str(&line).map_err(|e| anyhow::anyhow!("{name}: line {}: not a ledger record ({e}); import reads the output of `decompute ledger export --format json`", i + 1))?;
                if r.schema != RECORD_SCHEMA {
                    anyhow::bail!(
                        "{name}: line {}: schema '{}' is not {RECORD_SCHEMA}",
                        i + 1,
                        r.schema
                    );
                }
                records.push(r);
            }
            let (added, present) = l.import(&records)?;
            eprintln!("decompute: imported {added} run(s), {present} already present");
            Ok(())
        }
    }
}
