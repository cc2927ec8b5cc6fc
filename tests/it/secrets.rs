//! Secrets and ledger addresses (issue #25, points 2, 6, 7 and 8; #21's one policy rule): a
//! PostgreSQL password is never shown whatever characters it holds, never handed to the
//! workload and never accepted in a policy file; a ledger text is a URL in any case of its
//! scheme or a path, and a connection string of another kind is refused rather than made
//! into a file; a ledger on read-only media can be read; a FIFO is refused, not waited on;
//! and one broken policy file is refused with the same line by every command that reads it.

use crate::support::{decompute, err};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// A URL to a port nothing listens on, with a password full of URL syntax.
const HOSTILE: &str = "postgres://ann:pa/ss?w#rd@127.0.0.1:9/ledger";
const SECRET: &str = "pa/ss?w#rd";

fn run_in(dir: &Path, args: &[&str]) -> std::process::Output {
    decompute()
        .current_dir(dir)
        .args(["run", "--no-gpu", "--sysfs-root", "/nonexistent"])
        .args(args)
        .output()
        .expect("runs")
}

#[test]
fn a_password_with_url_syntax_is_never_shown() {
    let d = tempfile::tempdir().expect("tmp");
    let o = run_in(d.path(), &["--explain", "--ledger", HOSTILE, "--", "true"]);
    let text = format!("{}{}", err(&o), String::from_utf8_lossy(&o.stdout));
    assert!(!text.contains(SECRET) && !text.contains("ss?w"), "{text}");
    assert!(text.contains("ann:***@127.0.0.1:9"), "{text}");
    for args in [
        vec!["ledger", "list", "--ledger", HOSTILE],
        vec!["report", "--html", "-", "--ledger", HOSTILE],
    ] {
        let o = decompute()
            .current_dir(d.path())
            .args(&args)
            .output()
            .expect("runs");
        let text = format!("{}{}", err(&o), String::from_utf8_lossy(&o.stdout));
        assert!(!o.status.success());
        assert!(!text.contains(SECRET), "{args:?}: {text}");
    }
}

#[test]
fn the_ledgers_password_is_not_passed_to_the_workload() {
    let d = tempfile::tempdir().expect("tmp");
    let workload_env = |ledger: &str| {
        let o = decompute()
            .current_dir(d.path())
            .env("DECOMPUTE_LEDGER", ledger)
            .args([
                "run",
                "--no-gpu",
                "--sysfs-root",
                "/nonexistent",
                "--",
                "env",
            ])
            .output()
            .expect("runs");
        assert!(o.status.success(), "{}", err(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let env = workload_env(HOSTILE);
    assert!(env.contains("PATH="), "the workload's environment: {env}");
    assert!(
        !env.contains("DECOMPUTE_LEDGER") && !env.contains(SECRET),
        "{env}"
    );
    // A ledger without a password is the workload's to see (a nested run uses it).
    let plain = d.path().join("l.sqlite");
    assert!(workload_env(plain.to_str().expect("utf-8")).contains("DECOMPUTE_LEDGER="));
}

#[test]
fn a_policy_holding_a_password_is_refused_whatever_it_holds() {
    let d = tempfile::tempdir().expect("tmp");
    let p = d.path().join("decompute.toml");
    std::fs::write(&p, format!("ledger = \"{HOSTILE}\"\n")).expect("w");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let o = run_in(d.path(), &["--", "true"]);
    assert_eq!(o.status.code(), Some(125), "{}", err(&o));
    assert!(err(&o).contains("holds a password"), "{}", err(&o));
    assert!(!err(&o).contains(SECRET), "{}", err(&o));
}

#[test]
fn ledger_texts_are_urls_in_any_case_or_paths_never_files_named_after_secrets() {
    let d = tempfile::tempdir().expect("tmp");
    // An upper-case scheme is a PostgreSQL URL: a connection is tried, no file is made.
    let o = run_in(
        d.path(),
        &[
            "--ledger",
            "POSTGRES://u:hunter2@127.0.0.1:9/db",
            "--",
            "true",
        ],
    );
    assert!(
        err(&o).contains("postgres://u:***@127.0.0.1:9/db"),
        "{}",
        err(&o)
    );
    // A libpq keyword string and another scheme are refused in one line, before the run.
    for text in [
        "host=127.0.0.1 dbname=l password=hunter2",
        "mysql://u:hunter2@h/db",
    ] {
        let o = run_in(d.path(), &["--ledger", text, "--", "true"]);
        assert_eq!(o.status.code(), Some(125), "{text}: {}", err(&o));
        let e = err(&o);
        assert_eq!(e.lines().filter(|l| l.contains("error")).count(), 1, "{e}");
        assert!(!e.contains("hunter2"), "{e}");
    }
    let left: Vec<_> = std::fs::read_dir(d.path())
        .expect("dir")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "nothing created: {left:?}");
}

#[test]
fn a_ledger_on_read_only_media_can_be_read() {
    let d = tempfile::tempdir().expect("tmp");
    let src = d.path().join("src");
    let ro = d.path().join("ro");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::create_dir_all(&ro).expect("mkdir");
    let o = run_in(
        d.path(),
        &[
            "--ledger",
            src.join("l.sqlite").to_str().expect("utf-8"),
            "--",
            "true",
        ],
    );
    assert!(o.status.success(), "{}", err(&o));
    let bin = env!("CARGO_BIN_EXE_decompute");
    let l = ro.join("l.sqlite");
    let l = l.to_str().expect("utf-8");
    // A read-only bind mount in a mount namespace of its own: needs root.
    let script = format!(
        "mount --bind -o ro {src} {ro} || exit 77; \
         {bin} ledger list --ledger {l} && {bin} ledger summary --ledger {l} && \
         {bin} ledger export --ledger {l} --format json && \
         {bin} report --html - --ledger {l} > /dev/null",
        src = src.display(),
        ro = ro.display()
    );
    let o = std::process::Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .env("XDG_CONFIG_HOME", "/nonexistent-decompute-test-config")
        .output()
        .expect("unshare");
    if o.status.code() == Some(77) || (!o.status.success() && err(&o).contains("unshare")) {
        #[allow(clippy::disallowed_macros)]
        {
            eprintln!("skipped: no mount namespace here ({})", err(&o).trim());
        }
        return;
    }
    assert!(o.status.success(), "{}", err(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("finished"));
}

#[test]
fn a_fifo_is_refused_at_once_not_waited_on() {
    let d = tempfile::tempdir().expect("tmp");
    let fifo = d.path().join("grid");
    let c = std::ffi::CString::new(fifo.display().to_string()).expect("path");
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let f = fifo.to_str().expect("utf-8");
    let t = Instant::now();
    let o = run_in(
        d.path(),
        &[
            "--grid",
            &format!("file:{f}"),
            "--pause-above",
            "100",
            "--",
            "true",
        ],
    );
    assert_eq!(o.status.code(), Some(125), "{}", err(&o));
    assert!(err(&o).contains("FIFO"), "{}", err(&o));
    let o = decompute()
        .args(["when", "--grid", &format!("json:{f}"), "--duration", "1h"])
        .output()
        .expect("runs");
    assert!(!o.status.success());
    assert!(err(&o).contains("FIFO"), "{}", err(&o));
    assert!(t.elapsed() < Duration::from_secs(30));
}

#[test]
fn one_broken_policy_is_refused_alike_by_every_command_that_reads_it() {
    let d = tempfile::tempdir().expect("tmp");
    let p = d.path().join("decompute.toml");
    std::fs::write(&p, "project = \"x\"\n[budget.x]\nenergy = \"lots\"\n").expect("w");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let l = d.path().join("l.sqlite");
    let l = l.to_str().expect("utf-8");
    let commands: Vec<Vec<&str>> = vec![
        vec!["run", "--no-gpu", "--ledger", l, "--", "true"],
        vec!["ledger", "list", "--ledger", l],
        vec!["report", "--html", "-", "--ledger", l],
        vec![
            "serve",
            "--slurm",
            "--slurm-proctrack",
            "linuxproc",
            "--listen",
            "127.0.0.1:0",
            "--ledger",
            l,
        ],
        vec!["slurm", "govern", "--once", "--ledger", l],
        vec!["budget", "status", "--ledger", l],
    ];
    let mut lines = Vec::new();
    for c in &commands {
        let o = decompute()
            .current_dir(d.path())
            .args(c)
            .output()
            .expect("runs");
        assert!(!o.status.success(), "{c:?} refused");
        let line = err(&o)
            .lines()
            .find(|x| x.contains("error"))
            .unwrap_or_default()
            .to_string();
        assert!(line.contains("needs a period"), "{c:?}: {}", err(&o));
        lines.push(line);
    }
    lines.dedup();
    assert_eq!(lines.len(), 1, "one message: {lines:?}");
    assert!(!Path::new(l).exists(), "no ledger written");
}
