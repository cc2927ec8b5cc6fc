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
        None => {
            let mut buf = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut buf)?;
            print_stdout(&String::from_utf8_lossy(&buf))
        }
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

/// The page of `cmd` (named `name`) and of each subcommand under it.
fn write_pages(
    cmd: &clap::Command,
    name: &str,
    dir: &std::path::Path,
    n: &mut usize,
) -> anyhow::Result<()> {
    let page = cmd.clone().name(name.to_string());
    let mut buf = Vec::new();
    clap_mangen::Man::new(page).render(&mut buf)?;
    crate::outfile::write(&dir.join(format!("{name}.1")), &buf)?;
    *n += 1;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        write_pages(sub, &format!("{name}-{}", sub.get_name()), dir, n)?;
    }
    Ok(())
}
