//! `/proc/meminfo`: installed memory, the base of the DRAM power model and of the
//! resident-memory share that attributes DRAM energy to the workload.

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemInfo {
    pub total_bytes: u64,
}

pub fn parse(text: &str) -> Result<MemInfo, String> {
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("MemTotal:") {
            let mut it = rest.split_ascii_whitespace();
            let n: u64 = it
                .next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("bad MemTotal line '{line}'"))?;
            let mult = match it.next() {
                Some("kB") | None => 1024,
                Some(u) => return Err(format!("unknown unit '{u}' in MemTotal")),
            };
            return Ok(MemInfo {
                total_bytes: n * mult,
            });
        }
    }
    Err("no MemTotal line".into())
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_mem_total() {
        let m = super::parse("MemTotal:       24598020 kB\nMemFree:  1 kB\n").expect("parses");
        assert_eq!(m.total_bytes, 24598020 * 1024);
        assert!(super::parse("MemFree: 1 kB\n").is_err());
        assert!(super::parse("MemTotal: lots\n").is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,200}", n in "[0-9é ]{0,25}", unit in "(kB|MB|é|)") {
            let _ = super::parse(&s);
            let _ = super::parse(&format!("MemTotal: {n} {unit}\n"));
        }
    }
}
