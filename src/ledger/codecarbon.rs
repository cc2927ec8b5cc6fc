//! CodeCarbon's `emissions.csv`, both ways. Reading: every column CodeCarbon 2.x–3.x
//! writes, by name (older files have fewer); each row becomes a ledger record whose figures
//! are CodeCarbon's own (kWh → J, kg → g), marked as imported from CodeCarbon with its
//! version, and whose cells are kept as written, so nothing is recomputed. Writing: the 38
//! columns of CodeCarbon 3.3.2 with its meanings: energies and powers include PUE (it
//! multiplies them), `water_consumed` is on-site water only, and timestamps are
//! `%Y-%m-%dT%H:%M:%S`, so one `pandas.to_datetime` parses a file holding both tools' rows.

use super::{RunIdentity, RunRecord, Status, RECORD_SCHEMA};
use crate::report::{
    ComponentReport, EnergySplit, FactorRef, FactorsUsed, HostInfo, ImportedFrom, Ranged, RunReport,
};
use crate::sample::{Component, Method};
use crate::units::J_PER_KWH;
use std::collections::BTreeMap;

/// The columns of CodeCarbon 3.3.2's `emissions.csv`, in its order.
pub const COLUMNS: [&str; 38] = [
    "timestamp",
    "project_name",
    "run_id",
    "experiment_id",
    "duration",
    "emissions",
    "emissions_rate",
    "cpu_power",
    "gpu_power",
    "ram_power",
    "cpu_energy",
    "gpu_energy",
    "ram_energy",
    "energy_consumed",
    "water_consumed",
    "country_name",
    "country_iso_code",
    "region",
    "cloud_provider",
    "cloud_region",
    "os",
    "python_version",
    "codecarbon_version",
    "cpu_count",
    "cpu_model",
    "gpu_count",
    "gpu_model",
    "longitude",
    "latitude",
    "ram_total_size",
    "tracking_mode",
    "cpu_utilization_percent",
    "gpu_utilization_percent",
    "ram_utilization_percent",
    "ram_used_gb",
    "on_cloud",
    "pue",
    "wue",
];

/// The columns every CodeCarbon version since 2.0 writes, without which a row means nothing.
pub(crate) const REQUIRED: [&str; 6] = [
    "timestamp",
    "project_name",
    "run_id",
    "duration",
    "emissions",
    "energy_consumed",
];

/// The tool name imported CodeCarbon records carry.
pub const TOOL: &str = "codecarbon";

/// Whether a CSV header is CodeCarbon's (and not decompute's fuller export, which starts
/// with the same columns).
pub fn is_codecarbon(header: &[String]) -> bool {
    REQUIRED.iter().all(|c| header.iter().any(|h| h == c))
        && !header.iter().any(|h| h == "decompute_version")
}

/// A time as CodeCarbon writes it: `2026-11-29T08:12:26` (UTC here; CodeCarbon writes its
/// machine's local time).
pub fn timestamp(unix_s: f64) -> String {
    let s = crate::timefmt::rfc3339_s(unix_s.floor());
    s.trim_end_matches('Z').to_string()
}

/// What a `tracking_mode` means for the host figures.
fn tracking(mode: &str) -> &'static str {
    match mode {
        "machine" => "the whole machine",
        "process" => "the tracked process",
        _ => "the tracked code",
    }
}

/// Reads CodeCarbon rows into records, one per `run_id` (the last row of a run wins: a
/// tracker that flushes writes a run more than once, each row the total so far).
/// (Tests read a whole table at once; imports stream through `ledger::import`.)
#[cfg(test)]
pub fn read(t: &crate::csvdata::Table) -> Result<(Vec<RunRecord>, usize), String> {
    for c in REQUIRED {
        t.column(c).map_err(|e| e.to_string())?;
    }
    let mut by_id: BTreeMap<String, (usize, RunRecord)> = BTreeMap::new();
    let mut superseded = 0;
    for (order, (line, row)) in t.rows.iter().enumerate() {
        let cells: BTreeMap<String, String> =
            t.header.iter().cloned().zip(row.iter().cloned()).collect();
        let rec = record(&cells).map_err(|e| format!("{}: line {line}: {e}", t.file))?;
        if by_id
            .insert(rec.identity.id.clone(), (order, rec))
            .is_some()
        {
            superseded += 1;
        }
    }
    let mut out: Vec<(usize, RunRecord)> = by_id.into_values().collect();
    out.sort_by_key(|(o, _)| *o);
    Ok((out.into_iter().map(|(_, r)| r).collect(), superseded))
}

fn number(cells: &BTreeMap<String, String>, col: &str, default: f64) -> Result<f64, String> {
    match cells.get(col).map(|s| s.trim()) {
        None | Some("") => Ok(default),
        Some(v) => v
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite() && *x >= 0.0)
            .ok_or_else(|| {
                format!(
                    "{col} '{}' is not a non-negative number",
                    crate::term::escape(&crate::term::fit(v, 30))
                )
            }),
    }
}

pub(crate) fn record(cells: &BTreeMap<String, String>) -> Result<RunRecord, String> {
    let text = |c: &str| {
        cells
            .get(c)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let version = text("codecarbon_version");
    let who = if version.is_empty() {
        "CodeCarbon".to_string()
    } else {
        format!("CodeCarbon {version}")
    };
    let id = text("run_id");
    if id.is_empty() {
        return Err("empty run_id".into());
    }
    let ended =
        crate::timefmt::parse_time(&text("timestamp")).map_err(|e| format!("timestamp: {e}"))?;
    let duration = number(cells, "duration", 0.0)?;
    let pue = number(cells, "pue", 1.0)?;
    if !(1.0..=4.0).contains(&pue) {
        return Err(format!("pue {pue} is not between 1 and 4"));
    }
    let wue = number(cells, "wue", 0.0)?;
    let kg = number(cells, "emissions", 0.0)?;
    let kwh = number(cells, "energy_consumed", 0.0)?;
    let water = number(cells, "water_consumed", 0.0)?;
    let it_j =
        |col: &str| -> Result<f64, String> { Ok(number(cells, col, 0.0)? * J_PER_KWH / pue) };
    let mode = text("tracking_mode");
    let comp = |component, col: &str, power: &str| -> Result<ComponentReport, String> {
        let j = it_j(col)?;
        let w = number(cells, power, 0.0)?;
        Ok(ComponentReport {
            component,
            method: Method::Reported,
            source: format!(
                "{who} {col} (mean {power} {w} W incl. PUE, {})",
                tracking(&mode)
            ),
            host_energy_j: j,
            workload_energy_j: j,
            low_j: j,
            high_j: j,
        })
    };
    let components = vec![
        comp(Component::Cpu, "cpu_energy", "cpu_power")?,
        comp(Component::Gpu, "gpu_energy", "gpu_power")?,
        comp(Component::Dram, "ram_energy", "ram_power")?,
    ];
    let it = kwh * J_PER_KWH / pue;
    let ranged = |v: f64| Ranged {
        value: v,
        low: v,
        high: v,
        host: v,
    };
    let origin = Some(crate::factors::Origin::Imported(who.clone()));
    let factor = |value: f64, source: String| FactorRef {
        value,
        source,
        year: None,
        origin: origin.clone(),
    };
    let zone = match text("country_iso_code") {
        z if z.is_empty() => "WORLD".to_string(),
        z => z.to_ascii_uppercase(),
    };
    let grid = if kwh > 0.0 { kg * 1000.0 / kwh } else { 0.0 };
    let mut tags = BTreeMap::new();
    let experiment = text("experiment_id");
    if !experiment.is_empty() {
        tags.insert("experiment_id".to_string(), experiment);
    }
    // CodeCarbon's figures are the whole machine's unless it tracked a process (its
    // default, and the only mode before 2.8, is the machine).
    tags.insert(
        super::SCOPE_TAG.to_string(),
        match mode.as_str() {
            "process" => "process".to_string(),
            _ => super::MACHINE_SCOPE.to_string(),
        },
    );
    let gpus = text("gpu_model");
    let report = RunReport {
        schema: crate::report::SCHEMA.into(),
        decompute_version: env!("CARGO_PKG_VERSION").into(),
        command: Vec::new(),
        exit_code: None,
        killed_by_signal: None,
        interrupted_by: None,
        started_at: crate::timefmt::rfc3339_ms(((ended - duration) * 1000.0).round() as i64),
        ended_at: crate::timefmt::rfc3339_ms((ended * 1000.0).round() as i64),
        duration_s: duration,
        interval_s: 0.0,
        host: HostInfo::described(
            String::new(),
            text("cpu_model"),
            number(cells, "cpu_count", 0.0)? as usize,
            number(cells, "ram_total_size", 0.0)?,
        ),
        processes_followed: 0,
        cpu_time_s: 0.0,
        components,
        energy_j: EnergySplit {
            host: it,
            workload: it,
            rest: 0.0,
            workload_low: it,
            workload_high: it,
        },
        modelled_share: 1.0,
        pue,
        facility_energy_j: ranged(kwh * J_PER_KWH),
        carbon_g: ranged(kg * 1000.0),
        water_l: ranged(water),
        factors: FactorsUsed {
            zone,
            zone_name: text("country_name"),
            grid_gco2_per_kwh: factor(
                grid,
                format!("implied by {who}'s figures: emissions ÷ energy_consumed"),
            ),
            pue: factor(pue, format!("{who} pue column")),
            wue_l_per_kwh: factor(wue, format!("{who} wue column")),
            ewif_l_per_kwh: factor(
                0.0,
                format!("not counted by {who} (it has no off-site water of electricity)"),
            ),
            cloud: None,
        },
        notes: vec![format!(
            "imported from {who}'s emissions.csv: its figures as it printed them, not recomputed; \
             its timestamp has no time zone and was read as UTC; energy measured or modelled \
             by CodeCarbon cannot be told apart, so none of it counts as measured{}",
            if gpus.is_empty() {
                String::new()
            } else {
                format!("; GPUs: {gpus}")
            }
        )],
        leftover_processes: Vec::new(),
        governance: None,
        run: None,
        imported: Some(ImportedFrom {
            tool: TOOL.into(),
            version,
            cells: cells.clone(),
        }),
        samples: Vec::new(),
    };
    let mut rec = RunRecord {
        schema: RECORD_SCHEMA.into(),
        identity: RunIdentity {
            id,
            project: match text("project_name") {
                p if p.is_empty() => "codecarbon".to_string(),
                p => p,
            },
            tags,
            user: "unknown".into(),
            host: "unknown".into(),
            cwd: String::new(),
        },
        status: Status::Finished,
        report,
    };
    rec.validate()?;
    Ok(rec)
}

/// The 38 CodeCarbon cells of a record, unquoted. A record imported from a CSV (CodeCarbon's
/// or decompute's, whose first 38 columns are CodeCarbon's) gives back its cells as they
/// were; any other is written with CodeCarbon's meanings.
pub fn cells(r: &RunRecord) -> Vec<String> {
    let p = &r.report;
    if let Some(kept) = p.imported.as_ref() {
        return COLUMNS
            .iter()
            .map(|c| kept.cells.get(*c).cloned().unwrap_or_default())
            .collect();
    }
    cells_of(r, Scope::Process)
}

/// What a CodeCarbon row's figures cover, its `tracking_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The whole machine (CodeCarbon's default): decompute's host figures.
    Machine,
    /// The tracked process and its children: decompute's workload figures.
    Process,
}

impl Scope {
    pub fn parse(mode: &str) -> Option<Scope> {
        match mode {
            "machine" => Some(Scope::Machine),
            "process" => Some(Scope::Process),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Scope::Machine => "machine",
            Scope::Process => "process",
        }
    }
}

/// The 38 cells of a decompute record as CodeCarbon would write them in `scope`.
pub fn cells_of(r: &RunRecord, scope: Scope) -> Vec<String> {
    let p = &r.report;
    let machine = scope == Scope::Machine;
    let pue = p.pue;
    let comp = |c: Component| {
        p.components
            .iter()
            .filter(|x| x.component == c)
            .fold(0.0, |a, x| {
                a + if machine {
                    x.host_energy_j
                } else {
                    x.workload_energy_j
                }
            })
    };
    let per_s = |v: f64| {
        if p.duration_s > 0.0 {
            v / p.duration_s
        } else {
            0.0
        }
    };
    let kwh = |j: f64| j / J_PER_KWH;
    let (cpu, gpu, ram) = (
        comp(Component::Cpu) * pue,
        comp(Component::Gpu) * pue,
        comp(Component::Dram) * pue,
    );
    let (kg, it_j, facility_j) = if machine {
        (p.carbon_g.host, p.energy_j.host, p.facility_energy_j.host)
    } else {
        (
            p.carbon_g.value,
            p.energy_j.workload,
            p.facility_energy_j.value,
        )
    };
    let kg = kg / 1000.0;
    let it_kwh = kwh(it_j);
    let onsite = it_kwh * p.factors.wue_l_per_kwh.value;
    let f = &p.factors;
    // A US state zone is CodeCarbon's country USA with the state as its region.
    let (country, iso, region) = match f.zone.strip_prefix("US-") {
        Some(_) => {
            let state = f
                .zone_name
                .split(" — ")
                .next()
                .unwrap_or("")
                .trim_start_matches("United States: ")
                .to_lowercase();
            ("United States".to_string(), "USA".to_string(), state)
        }
        None => (
            f.zone_name.split(" — ").next().unwrap_or("").to_string(),
            f.zone.clone(),
            String::new(),
        ),
    };
    let gpu_models: Vec<&str> = p.host.gpus.iter().map(|g| g.name.as_str()).collect();
    vec![
        timestamp(crate::timefmt::parse_time(&p.ended_at).unwrap_or(0.0)),
        r.identity.project.clone(),
        r.identity.id.clone(),
        r.identity
            .tags
            .get("experiment_id")
            .cloned()
            .unwrap_or_default(),
        crate::units::py_float(p.duration_s),
        crate::units::py_float(kg),
        crate::units::py_float(per_s(kg)),
        crate::units::py_float(per_s(cpu)),
        crate::units::py_float(per_s(gpu)),
        crate::units::py_float(per_s(ram)),
        crate::units::py_float(kwh(cpu)),
        crate::units::py_float(kwh(gpu)),
        crate::units::py_float(kwh(ram)),
        crate::units::py_float(kwh(facility_j)),
        crate::units::py_float(onsite),
        country,
        iso,
        region,
        f.cloud
            .as_ref()
            .map(|c| c.provider.clone())
            .unwrap_or_default(),
        f.cloud
            .as_ref()
            .map(|c| c.region.clone())
            .unwrap_or_default(),
        // decompute measures runs on Linux only.
        "Linux".into(),
        String::new(),
        String::new(),
        p.host.logical_cpus.to_string(),
        p.host.cpu_model.clone(),
        p.host.gpus.len().to_string(),
        gpu_models.join(", "),
        String::new(),
        String::new(),
        crate::units::py_float(p.host.memory_gb),
        scope.name().into(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        if f.cloud.is_some() { "Y" } else { "N" }.into(),
        crate::units::py_float(pue),
        crate::units::py_float(f.wue_l_per_kwh.value),
    ]
}

/// One line of `export --format codecarbon` (no trailing newline).
pub fn row(r: &RunRecord) -> String {
    COLUMNS
        .iter()
        .zip(cells(r))
        .map(|(col, cell)| super::csv::safe(col, &cell))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> crate::csvdata::Table {
        crate::csvdata::parse(
            "emissions.csv",
            include_str!("../../tests/fixtures/codecarbon-3.3.2/emissions.csv"),
        )
        .expect("fixture parses")
    }

    #[test]
    fn the_real_file_reads_with_its_own_figures() {
        let t = fixture();
        assert!(is_codecarbon(&t.header));
        assert_eq!(t.header, COLUMNS.to_vec(), "3.3.2 writes these 38 columns");
        let (recs, superseded) = read(&t).expect("reads");
        assert_eq!((recs.len(), superseded), (2, 0));
        let r = &recs[0];
        assert_eq!(r.identity.id, "fcc636d0-a171-4190-ba61-192ad4e73b9d");
        assert_eq!(r.identity.project, "demo");
        assert_eq!(
            r.identity.tags.get("experiment_id").map(String::as_str),
            Some("5b0fa12a-3dd7-45bb-9766-cc326314d9f1")
        );
        let p = &r.report;
        assert_eq!(p.ended_at, "2026-11-29T08:12:26.000Z");
        // 2.0107446170000003 s before the timestamp.
        assert_eq!(p.started_at, "2026-11-29T08:12:23.989Z");
        // 1.2159017036069122e-05 kWh = 43.7724613 J (PUE 1.0).
        assert!((p.energy_j.workload - 43.772_461_329_848_84).abs() < 1e-9);
        assert!((p.carbon_g.value - 6.813_791_556_842_776e-4).abs() < 1e-15);
        // France's offline factor, as CodeCarbon applied it: 56.039 g/kWh.
        assert!((p.factors.grid_gco2_per_kwh.value - 56.039).abs() < 0.001);
        assert_eq!(p.factors.zone, "FRA");
        assert!(p.components.iter().all(|c| c.method == Method::Reported));
        assert_eq!(p.modelled_share, 1.0);
        let i = p.imported.as_ref().expect("marked");
        assert_eq!(
            (i.tool.as_str(), i.version.as_str()),
            ("codecarbon", "3.3.2")
        );
        // Back out exactly as written.
        let text = include_str!("../../tests/fixtures/codecarbon-3.3.2/emissions.csv");
        let first = text.lines().nth(1).expect("row");
        assert_eq!(row(r), first);
    }

    #[test]
    fn older_versions_and_repeated_runs() {
        // CodeCarbon 2.0's columns (no version, pue, water, experiment id); the same run
        // flushed twice: the later, larger row wins.
        let text = "timestamp,project_name,run_id,duration,emissions,emissions_rate,cpu_power,gpu_power,ram_power,cpu_energy,gpu_energy,ram_energy,energy_consumed,country_name,country_iso_code,region,cloud_provider,cloud_region,os,python_version,cpu_count,cpu_model,gpu_count,gpu_model,longitude,latitude,ram_total_size,tracking_mode,on_cloud\n\
            2022-05-01T10:00:00,p,r1,60,0.001,1.6e-05,42.5,0,3,0.0007,0,0.00005,0.00075,Germany,DEU,,,,Linux,3.8,8,Intel,0,,,,16,machine,N\n\
            2022-05-01T10:01:00,p,r1,120,0.002,1.6e-05,42.5,0,3,0.0014,0,0.0001,0.0015,Germany,DEU,,,,Linux,3.8,8,Intel,0,,,,16,machine,N\n";
        let t = crate::csvdata::parse("old.csv", text).expect("parses");
        let (recs, superseded) = read(&t).expect("reads");
        assert_eq!((recs.len(), superseded), (1, 1));
        assert_eq!(recs[0].report.duration_s, 120.0);
        assert_eq!(recs[0].report.pue, 1.0);
        assert!((recs[0].report.energy_j.workload - 5400.0).abs() < 1e-9);
        let bad = text.replace("0.002,", "-1,");
        let t = crate::csvdata::parse("old.csv", &bad).expect("parses");
        let e = read(&t).expect_err("negative");
        assert!(e.contains("line 3") && e.contains("emissions"), "{e}");
        assert_eq!(timestamp(0.9), "1970-01-01T00:00:00");
    }

    proptest::proptest! {
        #[test]
        fn rows_never_panic(cells in proptest::collection::vec("\\PC{0,12}", 6)) {
            let text = format!("timestamp,project_name,run_id,duration,emissions,energy_consumed\n{}\n",
                cells.iter().map(|c| crate::csvdata::quote(c)).collect::<Vec<_>>().join(","));
            if let Ok(t) = crate::csvdata::parse("x.csv", &text) {
                let _ = read(&t);
            }
        }
    }
}
