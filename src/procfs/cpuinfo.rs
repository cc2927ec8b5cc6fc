//! `/proc/cpuinfo`: the CPU model name (to look up its TDP), the number of physical packages
//! (TDP is per package) and whether we run under a hypervisor (a guest sees a slice of a
//! package, so a package TDP would overstate its power).

#[derive(Debug, Clone, PartialEq, Default)]
pub struct CpuInfo {
    pub model_name: Option<String>,
    pub logical_cpus: usize,
    pub packages: usize,
    pub hypervisor: bool,
}

pub fn parse(text: &str) -> CpuInfo {
    let mut info = CpuInfo::default();
    let mut ids = std::collections::BTreeSet::new();
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        match k {
            "processor" => info.logical_cpus += 1,
            "model name" | "Model" | "cpu model" if info.model_name.is_none() && !v.is_empty() => {
                info.model_name = Some(v.to_string())
            }
            "physical id" => {
                ids.insert(v.to_string());
            }
            "flags" | "Features" if v.split_ascii_whitespace().any(|f| f == "hypervisor") => {
                info.hypervisor = true
            }
            _ => {}
        }
    }
    info.packages = ids.len().max(1);
    info
}

#[cfg(test)]
mod tests {
    #[test]
    fn two_socket_host_and_vm_guest() {
        let host = "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz\nphysical id\t: 0\nflags\t\t: fpu vme\n\n\
                    processor\t: 1\nmodel name\t: Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz\nphysical id\t: 1\nflags\t\t: fpu vme\n";
        let i = super::parse(host);
        assert_eq!(i.logical_cpus, 2);
        assert_eq!(i.packages, 2);
        assert!(!i.hypervisor);
        assert_eq!(
            i.model_name.as_deref(),
            Some("Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz")
        );
        let vm = super::parse("processor : 0\nmodel name : AMD EPYC\nflags : fpu hypervisor sse\n");
        assert!(vm.hypervisor);
        assert_eq!(vm.packages, 1);
        assert_eq!(super::parse("").logical_cpus, 0);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,300}", v in "\\PC{0,10}") {
            let _ = super::parse(&s);
            let _ = super::parse(&format!("processor\t: {v}\nphysical id\t: {v}\nflags\t: {v} hypervisor\nmodel name\t: {v}\n"));
        }
    }
}
