//! `/proc/PID/stat`: a process's parent, CPU times, start time and resident memory. The
//! command name sits in parentheses and may itself contain spaces and parentheses, so we
//! split at the *last* `)`, never on whitespace from the start.

/// The fields of `/proc/PID/stat` that decompute uses.
#[derive(Debug, Clone, PartialEq)]
pub struct PidStat {
    pub pid: i32,
    pub comm: String,
    pub state: char,
    pub ppid: i32,
    /// Process group.
    pub pgrp: i32,
    pub session: i32,
    /// User and system CPU time of the process itself, in clock ticks.
    pub utime: u64,
    pub stime: u64,
    /// CPU time of its children that it has waited for, in clock ticks.
    pub cutime: u64,
    pub cstime: u64,
    /// Start time after boot, in clock ticks: with the pid, the identity of a process.
    pub starttime: u64,
    /// Resident set size in pages.
    pub rss_pages: u64,
}

impl PidStat {
    /// Own plus reaped children's CPU time, in ticks.
    pub fn cpu_with_children(&self) -> u64 {
        self.utime + self.stime + self.cutime + self.cstime
    }
}

pub fn parse(text: &str) -> Result<PidStat, String> {
    let open = text.find('(').ok_or("no '(' before the command name")?;
    let close = text.rfind(')').ok_or("no ')' after the command name")?;
    if close < open {
        return Err("')' before '('".into());
    }
    let pid = text[..open]
        .trim()
        .parse::<i32>()
        .map_err(|_| format!("bad pid '{}'", text[..open].trim()))?;
    let comm = text[open + 1..close].to_string();
    let rest: Vec<&str> = text[close + 1..].split_ascii_whitespace().collect();
    // rest[0] is field 3 (state); field N is rest[N - 3].
    let field = |n: usize| -> Result<&str, String> {
        rest.get(n - 3)
            .copied()
            .ok_or_else(|| format!("only {} fields, need field {n}", rest.len() + 2))
    };
    let num = |n: usize| -> Result<u64, String> {
        let f = field(n)?;
        f.parse::<u64>()
            .map_err(|_| format!("field {n} '{f}' is not a number"))
    };
    let int = |n: usize| -> Result<i32, String> {
        let f = field(n)?;
        f.parse::<i32>()
            .map_err(|_| format!("field {n} '{f}' is not a number"))
    };
    // cutime/cstime are signed in the kernel's format; negative values never occur in practice.
    let signed = |n: usize| -> Result<u64, String> {
        let f = field(n)?;
        f.parse::<i64>()
            .map(|v| v.max(0) as u64)
            .map_err(|_| format!("field {n} '{f}' is not a number"))
    };
    Ok(PidStat {
        pid,
        comm,
        state: field(3)?.chars().next().ok_or("empty state")?,
        ppid: int(4)?,
        pgrp: int(5)?,
        session: int(6)?,
        utime: num(14)?,
        stime: num(15)?,
        cutime: signed(16)?,
        cstime: signed(17)?,
        starttime: num(22)?,
        rss_pages: signed(24)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(comm: &str) -> String {
        format!("4242 ({comm}) S 4241 4242 4242 34816 4242 4194304 120 0 0 0 250 75 10 5 20 0 1 0 98765 12345678 2048 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n")
    }

    #[test]
    fn parses_plain_and_tricky_command_names() {
        for comm in ["python3", "my prog", "a) b (c", ") S 1 2 3", "(", "💥 x"] {
            let s = parse(&line(comm)).unwrap_or_else(|e| panic!("{comm}: {e}"));
            assert_eq!(s.comm, comm);
            assert_eq!(s.pid, 4242);
            assert_eq!(s.ppid, 4241);
            assert_eq!(s.session, 4242);
            assert_eq!((s.utime, s.stime, s.cutime, s.cstime), (250, 75, 10, 5));
            assert_eq!(s.starttime, 98765);
            assert_eq!(s.rss_pages, 2048);
            assert_eq!(s.cpu_with_children(), 340);
        }
    }

    #[test]
    fn truncated_or_garbled_lines_are_errors_not_panics() {
        for bad in [
            "",
            "4242",
            "4242 (x",
            "4242 (x) S 1",
            "x (y) S 1 2 3",
            "4242 )x( S",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let full = line("ok");
        for cut in 0..full.len() {
            if full.is_char_boundary(cut) {
                let _ = parse(&full[..cut]);
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,200}") {
            let _ = parse(&s);
        }

        #[test]
        fn near_misses_never_panic(comm in "\\PC{0,20}", rest in "[0-9 é-]{0,80}") {
            let _ = parse(&format!("42 ({comm}) S {rest}"));
        }
    }
}
