//! Slurm's own commands (`squeue`, `scontrol`, `scancel`) as decompute runs them: with a
//! deadline, so a `slurmctld` that hangs never hangs the controller or the node agent (nor
//! keeps it from ending on SIGTERM), in a process group of their own that is killed whole at
//! the deadline, with their output drained as it comes (a queue of thousands of jobs never
//! blocks on a full pipe).

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one Slurm command may take: far above a healthy `squeue` of 10,000 jobs (about
/// 2 s on the project's 2-core VM), far below a pass interval a person would notice.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// What a finished command gave.
#[derive(Debug)]
pub struct Output {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `program args…` and waits at most `deadline`, or until `stop()` says to give up.
pub fn run(
    program: &str,
    args: &[&str],
    deadline: Duration,
    stop: &dyn Fn() -> bool,
) -> Result<Output, String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot run {program} ({e}); is Slurm installed here?"))?;
    let drain = |r: Option<Box<dyn Read + Send>>| {
        r.map(|mut r| {
            std::thread::spawn(move || {
                let mut v = Vec::new();
                let _ = r.read_to_end(&mut v);
                String::from_utf8_lossy(&v).into_owned()
            })
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|o| Box::new(o) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|e| Box::new(e) as Box<dyn Read + Send>),
    );
    let pid = child.id() as i32;
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Ok(s),
            Ok(None) => {}
            Err(e) => break Err(format!("waiting for {program}: {e}")),
        }
        if start.elapsed() >= deadline || stop() {
            // SAFETY: kill(2) on the process group this function created.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            let _ = child.wait();
            break Err(if stop() {
                format!("{program} was stopped: decompute is ending")
            } else {
                format!(
                    "{program} took longer than {} s (is slurmctld answering?); killed",
                    deadline.as_secs()
                )
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    // Whatever it left in its group goes too (nothing, for Slurm's commands).
    // SAFETY: as above; the group may be gone already.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    let stdout = out.and_then(|h| h.join().ok()).unwrap_or_default();
    let stderr = err.and_then(|h| h.join().ok()).unwrap_or_default();
    let status = status?;
    Ok(Output {
        success: status.success(),
        stdout,
        stderr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hung_command_is_killed_at_its_deadline_and_on_stop() {
        let t = Instant::now();
        let e = run("sleep", &["30"], Duration::from_millis(300), &|| false).expect_err("hung");
        assert!(e.contains("took longer than"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
        let t = Instant::now();
        let e = run("sleep", &["30"], DEADLINE, &|| true).expect_err("stopped");
        assert!(e.contains("stopped"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(10));
        let o = run(
            "sh",
            &["-c", "echo out; echo err >&2; exit 3"],
            DEADLINE,
            &|| false,
        )
        .expect("runs");
        assert!(
            !o.success && o.stdout == "out\n" && o.stderr == "err\n",
            "{o:?}"
        );
        let e = run("/nonexistent/squeue", &[], DEADLINE, &|| false).expect_err("missing");
        assert!(e.contains("is Slurm installed"), "{e}");
        // Output larger than a pipe's buffer never blocks it.
        let o = run(
            "sh",
            &["-c", "head -c 1000000 /dev/zero | tr '\\0' x"],
            DEADLINE,
            &|| false,
        )
        .expect("big");
        assert_eq!(o.stdout.len(), 1_000_000);
    }
}
