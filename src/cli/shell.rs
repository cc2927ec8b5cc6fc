//! `decompute completions SHELL` and `decompute man`: the shell's conventions, generated
//! from the same command definitions the parser uses, so they never drift from the flags.

use super::{print_stdout, Cli};
use clap::{Args, CommandFactory, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Powershell,
    Elvish,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, powershell or elvish
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write one roff page per subcommand (decompute-run.1, …) into DIR; without it, the
    /// main page goes to stdout
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

pub fn completions(a: CompletionsArgs) -> anyhow::Result<()> {
    use clap_complete::{generate, Shell as S};
    let shell = match a.shell {
        Shell::Bash => S::Bash,
        Shell::Zsh => S::Zsh,
        Shell::Fish => S::Fish,
        Shell::Powershell => S::PowerShell,
        Shell::Elvish => S::Elvish,
    };
    let mut buf = Vec::new();
    generate(shell, &mut Cli::command(), "decompute", &mut buf);
    print_stdout(&String::from_utf8_lossy(&buf))
}

pub fn man(a: ManArgs) -> anyhow::Result<()> {
    let cmd = Cli::command();
    match a.dir {
        None => print_stdout(&String::from_utf8_lossy(&page(&cmd, "decompute")?)),
        Some(dir) => {
            if dir.exists() && !dir.is_dir() {
                anyhow::bail!(
                    "--dir {}: not a directory; give a directory for the pages",
                    dir.display()
                );
            }
            if !dir.is_dir() {
                anyhow::bail!(
                    "--dir {}: no such directory; create it first (e.g. mkdir -p {})",
                    dir.display(),
                    dir.display()
                );
            }
            let mut n = 0;
            write_pages(&cmd, "decompute", &dir, &mut n)?;
            crate::say!("decompute: wrote {n} man pages to {}", dir.display());
            Ok(())
        }
    }
}

/// The roff page of `cmd`, named `name` (`decompute-run`, as git names its pages) and
/// invoked as its words (`decompute run`: there is no `decompute-run` binary), with the
/// sections clap does not write: EXIT STATUS, ENVIRONMENT, FILES and EXAMPLES.
fn page(cmd: &clap::Command, name: &str) -> anyhow::Result<Vec<u8>> {
    let words = name.replace('-', " ");
    let page = cmd.clone().name(name.to_string()).bin_name(words.clone());
    let mut buf = Vec::new();
    clap_mangen::Man::new(page).render(&mut buf)?;
    buf.extend_from_slice(sections(&words).as_bytes());
    Ok(buf)
}

/// One roff section: a heading and tagged paragraphs.
fn section(out: &mut String, title: &str, items: &[(&str, &str)]) {
    out.push_str(&format!(".SH \"{title}\"\n"));
    for (tag, text) in items {
        out.push_str(&format!(".TP\n\\fB{}\\fR\n{}\n", roff(tag), roff(text)));
    }
}

/// Text made safe for roff: backslashes doubled, a leading dot or quote escaped.
fn roff(s: &str) -> String {
    let t = s.replace('\\', "\\e").replace('-', "\\-");
    if t.starts_with('.') || t.starts_with('\'') {
        format!("\\&{t}")
    } else {
        t
    }
}

fn sections(words: &str) -> String {
    let mut o = String::new();
    let is_run = words == "decompute run";
    let exit: Vec<(&str, &str)> = if is_run {
        vec![
            ("N", "the command's own exit status (128+N when it was killed by signal N)"),
            ("123", "refused before starting: a project budget of the policy file is used up (--force starts anyway, recorded)"),
            ("124", "stopped by a budget (its on_exceed is stop)"),
            ("125", "decompute's own error (bad flags or files, a report that could not be written); what was measured is still printed"),
            ("126", "the command is not executable"),
            ("127", "the command was not found"),
        ]
    } else {
        vec![
            ("0", "success"),
            ("1", "an error, said in one line on stderr with what to do"),
            ("2", "a usage error (unknown flag, bad value)"),
        ]
    };
    section(&mut o, "EXIT STATUS", &exit);
    let mut env: Vec<(&str, &str)> = vec![
        ("DECOMPUTE_LEDGER", "the ledger: a SQLite path or a postgres:// URL (as --ledger)"),
        ("DECOMPUTE_CONFIG", "the config file (default $XDG_CONFIG_HOME/decompute/config.toml)"),
        ("DECOMPUTE_POLICY", "the policy file with the budgets (as --policy; default decompute.toml here or above)"),
        ("DECOMPUTE_ZONE", "the grid zone (as --zone)"),
        ("DECOMPUTE_DATA_DIR", "a directory of factor tables that replace the shipped ones"),
        ("DECOMPUTE_SYSFS_ROOT, DECOMPUTE_PROCFS_ROOT", "where /sys and /proc are read (a container reading the host's)"),
        ("DECOMPUTE_NVML_SCRIPT", "play GPUs from a JSON script instead of the driver; labelled nvml-script:FILE, never measured"),
        ("NO_COLOR, TERM=dumb", "no colour"),
        ("XDG_DATA_HOME, XDG_STATE_HOME, XDG_CONFIG_HOME", "where the ledger, the state (spool, notes) and the config live"),
    ];
    if words.starts_with("decompute serve") {
        env.push((
            "DECOMPUTE_LISTEN",
            "the address /metrics listens on (as --listen)",
        ));
        env.push((
            "DECOMPUTE_CGROUP_ROOT",
            "the cgroup v2 tree read (as --cgroup-root)",
        ));
    }
    section(&mut o, "ENVIRONMENT", &env);
    section(
        &mut o,
        "FILES",
        &[
            ("$XDG_DATA_HOME/decompute/ledger.sqlite", "the default ledger (~/.local/share/decompute/ledger.sqlite)"),
            ("$XDG_CONFIG_HOME/decompute/config.toml", "defaults: zone, PUE, ledger, CPU TDP"),
            ("decompute.toml", "the team's policy file: project budgets, read here or in a parent directory when trusted"),
            ("$XDG_STATE_HOME/decompute/spool/", "runs the ledger could not take, delivered by the next command"),
        ],
    );
    let examples: &[(&str, &str)] = match words {
        "decompute run" => &[
            ("decompute run --zone FR -- python train.py", "measure a training script in France's grid"),
            ("decompute run --budget energy=500Wh,carbon=200g -- make", "stop the build past either limit (exit 124)"),
            ("decompute run --grid csv:forecast.csv --pause-above 300 -- ./job", "freeze the job while the grid is above 300 gCO2e/kWh"),
            ("decompute run --json-file report.json --explain -- ./job", "the whole calculation, and the report as JSON"),
        ],
        "decompute ledger" | "decompute ledger summary" => &[
            ("decompute ledger summary --by week --since 2026-11-01", "what each week cost"),
            ("decompute ledger export --format codecarbon > emissions.csv", "CodeCarbon's columns"),
        ],
        "decompute estimate" | "decompute estimate train" => &[
            ("decompute estimate train --params 70B --tokens 15T --hardware h100 --explain", "a training run's FLOP, energy, carbon and water, every input sourced"),
        ],
        "decompute estimate infer" => &[
            ("decompute estimate infer --params 8B --tokens-out 1000 --requests 1e6", "a million answers of an 8 B model"),
        ],
        "decompute serve" => &[
            ("decompute serve --listen 127.0.0.1:9464", "a node agent for Prometheus"),
        ],
        "decompute slurm govern" => &[
            ("decompute slurm govern --grid cmd:grid-intensity --pause-above 400 --flexible-partition preemptible", "suspend flexible jobs while the grid is dirty"),
        ],
        _ => &[
            ("decompute run -- CMD", "measure a command"),
            ("decompute ledger list", "the runs recorded"),
            ("decompute report --html report.html", "one page of what a period cost"),
        ],
    };
    section(&mut o, "EXAMPLES", examples);
    o
}

/// The page of `cmd` (named `name`) and of each subcommand under it.
fn write_pages(
    cmd: &clap::Command,
    name: &str,
    dir: &std::path::Path,
    n: &mut usize,
) -> anyhow::Result<()> {
    crate::outfile::write(&dir.join(format!("{name}.1")), &page(cmd, name)?)?;
    *n += 1;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        write_pages(sub, &format!("{name}-{}", sub.get_name()), dir, n)?;
    }
    Ok(())
}
