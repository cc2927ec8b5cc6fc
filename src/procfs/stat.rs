//! `/proc/stat`: the system-wide CPU time split, whose busy share of each interval is both
//! the load fed to the CPU power model and the denominator of workload attribution.

/// Cumulative system CPU time in clock ticks, summed over all CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CpuTimes {
    /// user + nice + system + irq + softirq + steal (guest time is already inside user/nice).
    pub busy: u64,
    /// busy + idle + iowait.
    pub total: u64,
    /// Number of `cpuN` lines: the logical CPUs the kernel shows us.
    pub cpus: usize,
}

/// Parses the aggregate `cpu` line and counts the per-CPU lines.
pub fn parse(text: &str) -> Result<CpuTimes, String> {
    let mut agg = None;
    let mut cpus = 0;
    for line in text.lines() {
        let mut it = line.split_ascii_whitespace();
        match it.next() {
            Some("cpu") => {
                let v: Vec<u64> = it
                    .map(|f| {
                        f.parse::<u64>()
                            .map_err(|_| format!("bad number '{f}' in the cpu line"))
                    })
                    .collect::<Result<_, _>>()?;
                if v.len() < 4 {
                    return Err(format!("cpu line has {} fields, need at least 4", v.len()));
                }
                let g = |i: usize| v.get(i).copied().unwrap_or(0);
                // user nice system idle iowait irq softirq steal guest guest_nice
                let busy = g(0) + g(1) + g(2) + g(5) + g(6) + g(7);
                let total = busy + g(3) + g(4);
                agg = Some((busy, total));
            }
            Some(tag) if tag.starts_with("cpu") && tag[3..].chars().all(|c| c.is_ascii_digit()) => {
                cpus += 1
            }
            _ => {}
        }
    }
    let (busy, total) = agg.ok_or("no aggregate 'cpu' line")?;
    Ok(CpuTimes {
        busy,
        total,
        cpus: cpus.max(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_busy_and_idle() {
        let text = "cpu  100 5 50 1000 20 3 2 10 7 0\ncpu0 50 2 25 500 10 1 1 5 3 0\ncpu1 50 3 25 500 10 2 1 5 4 0\nintr 1 2\nctxt 5\n";
        let t = parse(text).expect("parses");
        assert_eq!(t.busy, 100 + 5 + 50 + 3 + 2 + 10);
        assert_eq!(t.total, t.busy + 1000 + 20);
        assert_eq!(t.cpus, 2);
    }

    #[test]
    fn old_kernels_with_four_fields_and_garbage() {
        assert_eq!(parse("cpu 1 2 3 4\n").expect("old").busy, 6);
        assert!(parse("cpu 1 2\n").is_err());
        assert!(parse("cpu 1 x 3 4\n").is_err());
        assert!(parse("intr 1\n").is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,200}", nums in "[0-9 é]{0,60}") {
            let _ = parse(&s);
            let _ = parse(&format!("cpu {nums}\ncpu0 {nums}\n"));
        }
    }
}
