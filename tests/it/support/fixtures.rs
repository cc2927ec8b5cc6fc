//! Fake sysfs powercap trees in temp dirs, laid out as the kernel does: each zone is a real
//! directory under devices/virtual/powercap, subzones nested in their parent, and every zone
//! also listed flat in class/powercap through a symlink. Tests advance `energy_uj` by known
//! amounts and check exact joules.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

pub const MAX: u64 = 262_143_328_850;

/// (id, name, energy_uj) — a subzone's id has two colons and nests under its parent.
pub type ZoneSpec<'a> = (&'a str, &'a str, u64);

pub struct Sysfs {
    pub dir: tempfile::TempDir,
}

impl Sysfs {
    pub fn new(zones: &[ZoneSpec]) -> Sysfs {
        let dir = tempfile::tempdir().expect("tempdir");
        let class = dir.path().join("class/powercap");
        std::fs::create_dir_all(&class).expect("class dir");
        for (id, name, uj) in zones {
            let zdir = zone_dir(dir.path(), id);
            std::fs::create_dir_all(&zdir).expect("zone dir");
            std::fs::write(zdir.join("name"), format!("{name}\n")).expect("name");
            std::fs::write(zdir.join("energy_uj"), format!("{uj}\n")).expect("energy");
            std::fs::write(zdir.join("max_energy_range_uj"), format!("{MAX}\n")).expect("max");
            symlink(&zdir, class.join(id)).expect("flat link");
        }
        Sysfs { dir }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn energy_path(&self, id: &str) -> PathBuf {
        zone_dir(self.dir.path(), id).join("energy_uj")
    }

    pub fn set(&self, id: &str, uj: u64) {
        std::fs::write(self.energy_path(id), format!("{uj}\n")).expect("write counter");
    }
}

fn zone_dir(root: &Path, id: &str) -> PathBuf {
    let control = id.split(':').next().unwrap_or(id);
    let base = root.join("devices/virtual/powercap").join(control);
    let parts: Vec<&str> = id.split(':').collect();
    let mut p = base;
    for depth in 1..parts.len() {
        p = p.join(parts[..=depth].join(":"));
    }
    p
}

/// Two Intel sockets: packages with core/uncore/dram subzones, a psys zone, and an MMIO
/// duplicate of package-0 (a Skylake-SP-like server with a client-style psys).
pub fn intel_two_sockets() -> Sysfs {
    Sysfs::new(&[
        ("intel-rapl:0", "package-0", 1_000_000),
        ("intel-rapl:0:0", "core", 500_000),
        ("intel-rapl:0:1", "uncore", 100_000),
        ("intel-rapl:0:2", "dram", 2_000_000),
        ("intel-rapl:1", "package-1", 3_000_000),
        ("intel-rapl:1:0", "core", 700_000),
        ("intel-rapl:1:1", "dram", 4_000_000),
        ("intel-rapl:2", "psys", 9_000_000),
        ("intel-rapl-mmio:0", "package-0", 1_000_000),
    ])
}

/// An AMD EPYC: package only (with a core subzone), no DRAM domain.
pub fn amd_package_only() -> Sysfs {
    Sysfs::new(&[
        ("intel-rapl:0", "package-0", 10_000_000),
        ("intel-rapl:0:0", "core", 4_000_000),
    ])
}
