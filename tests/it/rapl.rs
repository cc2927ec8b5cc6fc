//! RAPL zone selection and counter arithmetic against fake powercap trees.

use crate::support::fixtures::{self, Sysfs, MAX};
use decompute::source::rapl::{RaplError, RaplMeter};
use decompute::units::Joules;

#[test]
fn two_intel_sockets_sum_packages_and_dram_only() {
    let s = fixtures::intel_two_sockets();
    let mut m = RaplMeter::open(s.root()).expect("opens");
    assert_eq!(m.selection.cpu_label(), "rapl:package-0+package-1");
    assert_eq!(m.selection.dram_label(), "rapl:dram+dram");
    assert!(m
        .selection
        .notes
        .iter()
        .any(|n| n.contains("intel-rapl-mmio:0")));
    assert!(m.selection.notes.iter().any(|n| n.contains("psys")));
    // Advance every counter, including the ones that must not be added.
    s.set("intel-rapl:0", 1_000_000 + 10_500_000); // +10.5 J
    s.set("intel-rapl:1", 3_000_000 + 20_250_000); // +20.25 J
    s.set("intel-rapl:0:0", 500_000 + 9_000_000);
    s.set("intel-rapl:0:1", 100_000 + 1_000_000);
    s.set("intel-rapl:2", 9_000_000 + 99_000_000);
    s.set("intel-rapl-mmio:0", 1_000_000 + 10_500_000);
    s.set("intel-rapl:0:2", 2_000_000 + 3_000_000); // +3 J
    s.set("intel-rapl:1:1", 4_000_000 + 1_500_000); // +1.5 J
    let d = m.read().expect("reads");
    assert_eq!(d.cpu, Joules(30.75));
    assert_eq!(d.dram, Some(Joules(4.5)));
    // Nothing moved: zero, not a repeat of the last delta.
    let d = m.read().expect("reads");
    assert_eq!(d.cpu, Joules(0.0));
}

#[test]
fn amd_package_only_has_no_dram() {
    let s = fixtures::amd_package_only();
    let mut m = RaplMeter::open(s.root()).expect("opens");
    assert_eq!(m.selection.cpu_label(), "rapl:package-0");
    assert!(!m.has_dram());
    s.set("intel-rapl:0", 10_000_000 + 42_000_000);
    s.set("intel-rapl:0:0", 4_000_000 + 40_000_000);
    assert_eq!(m.read().expect("reads").cpu, Joules(42.0));
    assert_eq!(m.read().expect("reads").dram, None);
}

#[test]
fn counter_wrap_is_corrected_not_dropped() {
    let s = Sysfs::new(&[("intel-rapl:0", "package-0", MAX - 1_000_000)]);
    let mut m = RaplMeter::open(s.root()).expect("opens");
    s.set("intel-rapl:0", 2_000_000); // 1 J before the wrap, 2 J after
    assert_eq!(m.read().expect("reads").cpu, Joules(3.0));
    s.set("intel-rapl:0", 7_000_000);
    assert_eq!(m.read().expect("reads").cpu, Joules(5.0));
}

#[test]
fn psys_alone_only_without_packages() {
    let s = Sysfs::new(&[("intel-rapl:0", "psys", 0), ("intel-rapl:0:0", "dram", 0)]);
    let mut m = RaplMeter::open(s.root()).expect("opens");
    assert!(m.selection.psys_only);
    assert_eq!(m.selection.cpu_label(), "rapl:psys");
    assert!(!m.has_dram(), "dram is inside psys");
    s.set("intel-rapl:0", 8_000_000);
    s.set("intel-rapl:0:0", 2_000_000);
    let d = m.read().expect("reads");
    assert_eq!((d.cpu, d.dram), (Joules(8.0), None));
}

#[test]
fn mirrored_die_packages_count_once_and_true_dies_add() {
    let mirrored = Sysfs::new(&[
        ("intel-rapl:0", "package-0-die-0", 5_000_000),
        ("intel-rapl:1", "package-0-die-1", 5_000_000),
    ]);
    let m = RaplMeter::open(mirrored.root()).expect("opens");
    assert_eq!(m.selection.cpu_label(), "rapl:package-0-die-0");
    let dies = Sysfs::new(&[
        ("intel-rapl:0", "package-0-die-0", 5_000_000),
        ("intel-rapl:1", "package-0-die-1", 6_000_000),
    ]);
    let m = RaplMeter::open(dies.root()).expect("opens");
    assert_eq!(
        m.selection.cpu_label(),
        "rapl:package-0-die-0+package-0-die-1"
    );
}

#[test]
fn mmio_zone_is_used_when_it_is_the_only_one() {
    let s = Sysfs::new(&[("intel-rapl-mmio:0", "package-0", 0)]);
    let mut m = RaplMeter::open(s.root()).expect("opens");
    s.set("intel-rapl-mmio:0", 1_500_000);
    assert_eq!(m.read().expect("reads").cpu, Joules(1.5));
}

#[test]
fn no_powercap_at_all() {
    let dir = tempfile::tempdir().expect("tmp");
    let e = RaplMeter::open(dir.path()).expect_err("absent");
    assert!(matches!(e, RaplError::Absent(_)), "{e}");
    assert!(e.to_string().contains("class/powercap"));
}

#[test]
fn garbage_counter_is_an_error_naming_the_file() {
    let s = Sysfs::new(&[("intel-rapl:0", "package-0", 0)]);
    std::fs::write(s.energy_path("intel-rapl:0"), "lots\n").expect("write");
    let e = RaplMeter::open(s.root()).expect_err("garbage");
    assert!(
        e.to_string().contains("energy_uj") && e.to_string().contains("lots"),
        "{e}"
    );
}
