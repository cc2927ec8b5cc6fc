//! Runs the measured command: spawns it with stdio passed through, makes the monitor a
//! child subreaper (so daemonised descendants stay in its tree), forwards SIGINT, SIGTERM
//! and SIGHUP sent to decompute, reaps every process that ends up as its child (keeping
//! their CPU rusage), and maps the command's end to an exit code (128+N for signal N).

use std::io::ErrorKind;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Instant;

static CHILD_PID: AtomicI32 = AtomicI32::new(0);
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);
static LAST_SIGNAL: AtomicI32 = AtomicI32::new(0);
/// How many SIGINT/SIGTERM/SIGHUP arrived (so the run loop sees each one).
static SIGNAL_COUNT: AtomicI32 = AtomicI32::new(0);
/// Whether the last one came from the kernel (a terminal's Ctrl-C, sent to the whole
/// foreground process group already).
static LAST_FROM_KERNEL: AtomicI32 = AtomicI32::new(0);

/// Linux's si_code for signals the kernel itself sends (e.g. Ctrl-C from the terminal,
/// which already reaches the whole foreground process group).
const SI_KERNEL: libc::c_int = 0x80;

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("command not found: '{0}'; check the name and your PATH")]
    NotFound(String),
    #[error("cannot execute '{0}': permission denied; make it executable (chmod +x) or run it through its interpreter")]
    NotExecutable(String),
    #[error("cannot start '{0}': {1}")]
    Other(String, std::io::Error),
    #[error("no command given; write it after --, e.g. decompute run -- python train.py")]
    Empty,
    #[error("cannot set up signal handling: {0}")]
    Setup(std::io::Error),
}

impl SpawnError {
    /// The shell's conventional exit codes: 127 not found, 126 not executable.
    pub fn exit_code(&self) -> i32 {
        match self {
            SpawnError::NotFound(_) => 127,
            SpawnError::NotExecutable(_) => 126,
            _ => 126,
        }
    }
}

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    pub fn code(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => 128 + s,
        }
    }

    fn from_status(status: libc::c_int) -> Exit {
        if libc::WIFSIGNALED(status) {
            Exit::Signal(libc::WTERMSIG(status))
        } else {
            Exit::Code(libc::WEXITSTATUS(status))
        }
    }
}

/// A running command and the machinery to wait for it.
/// Process groups of decompute's own helpers (grid commands), shared with whoever starts
/// them: never part of the workload.
pub type Excluded = std::sync::Arc<std::sync::Mutex<Vec<i32>>>;

/// decompute's own helper processes, shared between whoever starts them and whoever reaps.
#[derive(Debug, Clone, Default)]
pub struct Helpers {
    /// Process groups of running helpers (each helper leads its own group): never workload.
    pub pgids: Excluded,
    /// Exit statuses of helpers that a run loop reaped before the helper's owner could.
    pub statuses: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<i32, i32>>>,
}

impl Helpers {
    /// Whether `pid` is a running helper (its group leader).
    pub fn is_helper(&self, pid: i32) -> bool {
        self.pgids.lock().map(|g| g.contains(&pid)).unwrap_or(false)
    }

    /// Keeps the status of a helper reaped by someone else.
    pub fn reaped(&self, pid: i32, status: i32) {
        if let Ok(mut m) = self.statuses.lock() {
            m.insert(pid, status);
        }
    }
}

#[derive(Debug)]
pub struct Running {
    pub pid: i32,
    wake_read: i32,
    exit: Option<Exit>,
    /// decompute's own helpers (grid commands): reaped here, but never counted as workload.
    pub helpers: Helpers,
}

extern "C" fn on_signal(sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: only async-signal-safe calls (kill, write) and atomics; errno is restored.
    unsafe {
        let errno = *libc::__errno_location();
        if sig != libc::SIGCHLD {
            let from_kernel = !info.is_null() && (*info).si_code == SI_KERNEL;
            let pid = CHILD_PID.load(Ordering::SeqCst);
            if pid > 0 && !from_kernel {
                libc::kill(pid, sig);
            }
            LAST_SIGNAL.store(sig, Ordering::SeqCst);
            LAST_FROM_KERNEL.store(i32::from(from_kernel), Ordering::SeqCst);
            SIGNAL_COUNT.fetch_add(1, Ordering::SeqCst);
        }
        let fd = WAKE_FD.load(Ordering::SeqCst);
        if fd >= 0 {
            let b = 1u8;
            libc::write(fd, &b as *const u8 as *const libc::c_void, 1);
        }
        *libc::__errno_location() = errno;
    }
}

fn install_handlers() -> Result<i32, std::io::Error> {
    let mut fds = [0i32; 2];
    // SAFETY: fds is a valid two-element array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    WAKE_FD.store(fds[1], Ordering::SeqCst);
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGCHLD] {
        // SAFETY: a zeroed sigaction is valid; we set the handler, flags and an empty mask.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(fds[0])
}

/// How many SIGINT/SIGTERM/SIGHUP decompute received so far.
pub fn signal_count() -> i32 {
    SIGNAL_COUNT.load(Ordering::SeqCst)
}

/// Whether the last signal came from the kernel (a terminal), which already delivered it to
/// every process of the foreground process group.
pub fn last_from_kernel() -> bool {
    LAST_FROM_KERNEL.load(Ordering::SeqCst) != 0
}

/// The direct child's pid, while it runs (0 after).
pub fn child_pid() -> i32 {
    CHILD_PID.load(Ordering::SeqCst)
}

/// The last SIGINT/SIGTERM/SIGHUP decompute received, if any.
pub fn received_signal() -> Option<i32> {
    match LAST_SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// Starts `argv` with stdio inherited. The monitor becomes a child subreaper first. With
/// `join_cgroup` (a `cgroup.procs` file) the command joins that cgroup before it executes.
pub fn spawn(
    argv: &[std::ffi::OsString],
    join_cgroup: Option<&std::path::Path>,
    helpers: Helpers,
    withheld: &[&str],
) -> Result<Running, SpawnError> {
    let (prog, args) = argv.split_first().ok_or(SpawnError::Empty)?;
    let name = prog.to_string_lossy().into_owned();
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes an integer argument only.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
    let wake_read = install_handlers().map_err(SpawnError::Setup)?;
    let mut cmd = Command::new(prog);
    cmd.args(args);
    // decompute's own secrets stay with decompute (the caller names them).
    for k in withheld {
        cmd.env_remove(k);
    }
    // Opened here (close-on-exec), written from the child before exec.
    let procs = match join_cgroup {
        Some(p) => Some(
            std::fs::OpenOptions::new()
                .write(true)
                .open(p)
                .map_err(SpawnError::Setup)?,
        ),
        None => None,
    };
    let procs_fd = procs
        .as_ref()
        .map(std::os::fd::AsRawFd::as_raw_fd)
        .unwrap_or(-1);
    // SAFETY: the pre-exec hook only makes async-signal-safe calls (write, sigprocmask).
    unsafe {
        cmd.pre_exec(move || {
            if procs_fd >= 0 && libc::write(procs_fd, b"0".as_ptr() as *const libc::c_void, 1) != 1
            {
                return Err(std::io::Error::last_os_error());
            }
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|e| match e.kind() {
        ErrorKind::NotFound => SpawnError::NotFound(name.clone()),
        ErrorKind::PermissionDenied => SpawnError::NotExecutable(name.clone()),
        _ if e.raw_os_error() == Some(libc::ENOEXEC) => SpawnError::NotExecutable(name.clone()),
        _ => SpawnError::Other(name.clone(), e),
    })?;
    drop(procs);
    let pid = child.id() as i32;
    // We reap with wait4 ourselves; dropping the handle neither waits nor kills.
    drop(child);
    CHILD_PID.store(pid, Ordering::SeqCst);
    if let Some(sig) = received_signal() {
        // A signal that arrived while we were spawning still reaches the command.
        // SAFETY: plain kill(2) on our own child.
        unsafe {
            libc::kill(pid, sig);
        }
    }
    Ok(Running {
        pid,
        wake_read,
        exit: None,
        helpers,
    })
}

impl Running {
    /// Reaps every finished child without blocking; returns the CPU time and peak memory
    /// (from rusage) of all reaped processes. Records the command's own exit.
    pub fn reap(&mut self) -> Reaped {
        let mut out = Reaped::default();
        loop {
            let mut status = 0;
            // SAFETY: a zeroed rusage is a valid out-parameter.
            let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: valid pointers to locals.
            let pid = unsafe { libc::wait4(-1, &mut status, libc::WNOHANG, &mut ru) };
            if pid <= 0 {
                break;
            }
            if self.helpers.is_helper(pid) {
                self.helpers.reaped(pid, status);
                continue;
            }
            let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
            out.cpu_s += tv(ru.ru_utime) + tv(ru.ru_stime);
            out.max_rss_bytes = out.max_rss_bytes.max(ru.ru_maxrss.max(0) as u64 * 1024);
            out.pids.push(pid);
            if pid == self.pid {
                self.exit = Some(Exit::from_status(status));
                CHILD_PID.store(0, Ordering::SeqCst);
            }
        }
        out
    }

    pub fn exit(&self) -> Option<Exit> {
        self.exit
    }

    /// Sleeps until `deadline`, waking early when a child changes state or a signal
    /// arrives. Returns what processes reaped meanwhile used.
    pub fn wait_until(&mut self, deadline: Instant) -> Reaped {
        let mut got = self.reap();
        if !got.pids.is_empty() {
            return got;
        }
        let now = Instant::now();
        if now < deadline {
            let ms = crate::ticker::poll_timeout_ms(deadline - now);
            let mut pfd = libc::pollfd {
                fd: self.wake_read,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let r = unsafe { libc::poll(&mut pfd, 1, ms) };
            if r > 0 {
                let mut buf = [0u8; 64];
                // SAFETY: reading into a local buffer from our own non-blocking pipe.
                while unsafe {
                    libc::read(
                        self.wake_read,
                        buf.as_mut_ptr() as *mut libc::c_void,
                        buf.len(),
                    )
                } > 0
                {}
            }
        }
        got.add(self.reap());
        got
    }

    /// Sends a signal to the command (not its descendants).
    pub fn signal(&self, sig: i32) {
        if self.exit.is_none() {
            // SAFETY: kill(2) on our own, not yet reaped, child.
            unsafe {
                libc::kill(self.pid, sig);
            }
        }
    }
}

/// What reaped processes used, from their rusage.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reaped {
    /// User + system CPU seconds, including their own reaped descendants.
    pub cpu_s: f64,
    /// The largest peak resident set among them, in bytes.
    pub max_rss_bytes: u64,
    /// Their pids.
    pub pids: Vec<i32>,
}

impl Reaped {
    pub fn add(&mut self, o: Reaped) {
        self.pids.extend(o.pids);
        self.cpu_s += o.cpu_s;
        self.max_rss_bytes = self.max_rss_bytes.max(o.max_rss_bytes);
    }
}
