//! The cluster controller (`slurm govern`) when Slurm stops answering: `squeue` and
//! `scontrol` are scripts on `PATH` that log what they are asked and fail on cue, so the test
//! needs no Slurm. A controller whose `squeue` fails pass after pass goes on, keeps its state
//! and, once Slurm answers, acts on what it remembers (it resumes the job it suspended).

use crate::support::{decompute, eventually, KillOnDrop};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;

/// `squeue` failing for its first `fail` calls, then printing `queue`; `scontrol` logging.
fn fake_slurm(dir: &Path, fail: u32, queue: &str) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    let _ = std::fs::remove_file(dir.join("calls"));
    std::fs::write(dir.join("queue"), queue).expect("queue");
    let squeue = format!(
        "#!/bin/sh\nn=$(cat {d}/calls 2>/dev/null || echo 0); n=$((n+1)); echo $n > {d}/calls\n\
         if [ $n -le {fail} ]; then echo 'slurm_load_jobs error: Unable to contact slurm controller' >&2; exit 1; fi\n\
         cat {d}/queue\n",
        d = dir.display()
    );
    let scontrol = format!("#!/bin/sh\necho \"$@\" >> {}/scontrol.log\n", dir.display());
    for (name, text) in [("squeue", squeue), ("scontrol", scontrol)] {
        let p = bin.join(name);
        std::fs::write(&p, text).expect("script");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
}

fn controller(dir: &Path) -> KillOnDrop {
    let path = format!(
        "{}:{}",
        dir.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    KillOnDrop(
        decompute()
            .current_dir(dir)
            .env("PATH", path)
            .args([
                "slurm",
                "govern",
                "--every",
                "200ms",
                "--pause-above",
                "100",
                // The restarted controller resumes at once (the default waits a minute).
                "--min-state",
                "0s",
            ])
            .args(["--flexible-partition", "flex"])
            .arg("--grid")
            .arg(format!("file:{}", dir.join("grid").display()))
            .arg("--state")
            .arg(dir.join("state.json"))
            .arg("--ledger")
            .arg(dir.join("l.sqlite"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("govern"),
    )
}

fn logged(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("scontrol.log")).unwrap_or_default()
}

fn stop(mut c: KillOnDrop) -> String {
    // SAFETY: kill(2) on the controller this test started.
    unsafe { libc::kill(c.0.id() as i32, libc::SIGTERM) };
    let o = c.output();
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_controller_whose_squeue_fails_goes_on_and_keeps_its_state() {
    let d = tempfile::tempdir().expect("tmp");
    let dir = d.path();
    std::fs::write(dir.join("grid"), "500\n").expect("grid");
    // Slurm unreachable for its first 8 passes (1.6 s at --every 200ms: a minute's outage,
    // scaled), then a flexible job running under a dirty grid: suspended.
    fake_slurm(dir, 8, "7|acme|flex|RUNNING|None|\n");
    let c = controller(dir);
    assert!(
        eventually(|| logged(dir).contains("suspend 7")),
        "suspended once Slurm answered: {}",
        logged(dir)
    );
    let said = stop(c);
    assert!(said.matches("this pass skipped").count() >= 8, "{said}");
    let state = std::fs::read_to_string(dir.join("state.json")).expect("state kept");
    assert!(state.contains("\"7\""), "{state}");
    // Slurm fails again, and meanwhile the grid turned clean: the restarted controller goes
    // on through the failures and, once Slurm answers, resumes the job it remembers.
    std::fs::write(dir.join("grid"), "50\n").expect("grid");
    fake_slurm(
        dir,
        8,
        "7|acme|flex|SUSPENDED|None|[decompute:suspended] [decompute:paused 1-]\n",
    );
    let c = controller(dir);
    assert!(
        eventually(|| logged(dir).contains("resume 7")),
        "resumed: {}",
        logged(dir)
    );
    let said = stop(c);
    assert!(!said.contains("decompute: error"), "{said}");
}

/// A `squeue` that hangs (a `slurmctld` that stopped answering) neither hangs the controller
/// nor keeps it from ending: SIGTERM ends it within seconds, the hung command killed (#26).
#[test]
fn a_hung_squeue_never_holds_the_controller() {
    let d = tempfile::tempdir().expect("tmp");
    let dir = d.path();
    std::fs::write(dir.join("grid"), "500\n").expect("grid");
    fake_slurm(dir, 0, "");
    std::fs::write(
        dir.join("bin/squeue"),
        format!(
            "#!/bin/sh\necho $$ > {}/hung.pid\nexec sleep 300\n",
            dir.display()
        ),
    )
    .expect("hang");
    let c = controller(dir);
    assert!(
        eventually(|| dir.join("hung.pid").exists()),
        "squeue was asked"
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    let t = std::time::Instant::now();
    let said = stop(c);
    assert!(
        t.elapsed() < std::time::Duration::from_secs(5),
        "ended after {:?}: {said}",
        t.elapsed()
    );
    let pid: i32 = std::fs::read_to_string(dir.join("hung.pid"))
        .expect("pid")
        .trim()
        .parse()
        .expect("a pid");
    // SAFETY: kill(2) with signal 0 only asks whether the process exists.
    let alive = unsafe { libc::kill(pid, 0) } == 0
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false);
    assert!(!alive, "the hung squeue {pid} was left running");
}
