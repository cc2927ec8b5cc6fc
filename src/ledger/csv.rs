//! decompute's CSV export (`ledger export --format csv`) and its import. The first 38
//! columns are CodeCarbon 3.3.2's with its meanings ([`super::codecarbon`]); decompute's own
//! figures follow: who ran what, the exact start and end, IT energy before PUE, the
//! measured/modelled split and bands, off-site water, and each factor's source. A record read
//! back keeps its cells, so export → import → export gives the same file.

use super::codecarbon::{self, COLUMNS};
use super::{RunIdentity, RunRecord, Status, RECORD_SCHEMA};
use crate::csvdata::{quote, text_cell};
use crate::report::{
    ComponentReport, EnergySplit, FactorRef, FactorsUsed, HostInfo, ImportedFrom, Ranged, RunReport,
};
use crate::sample::{Component, Method};
use crate::units::J_PER_KWH;
use std::collections::BTreeMap;

/// The tool name of records read from decompute's CSV.
pub const TOOL: &str = "decompute-csv";

/// decompute's columns after CodeCarbon's.
pub const EXTRA: [&str; 27] = [
    "status",
    "exit_code",
    "user",
    "host",
    "cwd",
    "command",
    "started_at",
    "ended_at",
    "it_energy_consumed",
    "host_energy_consumed",
    "energy_low",
    "energy_high",
    "emissions_low",
    "emissions_high",
    "water_offsite",
    "water_total",
    "modelled_share",
    "cpu_method",
    "cpu_source",
    "grid_intensity_g_per_kwh",
    "grid_intensity_source",
    "pue_source",
    "wue_source",
    "ewif_l_per_kwh",
    "ewif_source",
    "tags",
    "decompute_version",
];

pub fn header() -> String {
    COLUMNS
        .iter()
        .chain(EXTRA.iter())
        .copied()
        .collect::<Vec<_>>()
        .join(",")
}

/// A header row of decompute's CSV.
pub fn is_decompute(header: &[String]) -> bool {
    header.iter().any(|h| h == "decompute_version") && header.iter().any(|h| h == "run_id")
}

fn kwh(j: f64) -> f64 {
    j / J_PER_KWH
}

/// The cells of one record: CodeCarbon's 38, then decompute's.
fn computed(r: &RunRecord) -> Vec<String> {
    let p = &r.report;
    let f = &p.factors;
    let cpu = p.components.iter().find(|c| c.component == Component::Cpu);
    let onsite = kwh(p.energy_j.workload) * f.wue_l_per_kwh.value;
    let mut cells = codecarbon::cells(r);
    cells.extend([
        r.status.to_string(),
        p.exit_code.map(|c| c.to_string()).unwrap_or_default(),
        r.identity.user.clone(),
        r.identity.host.clone(),
        r.identity.cwd.clone(),
        crate::term::shell_words(&p.command),
        p.started_at.clone(),
        p.ended_at.clone(),
        crate::units::py_float(kwh(p.energy_j.workload)),
        crate::units::py_float(kwh(p.energy_j.host)),
        crate::units::py_float(kwh(p.energy_j.workload_low)),
        crate::units::py_float(kwh(p.energy_j.workload_high)),
        crate::units::py_float(p.carbon_g.low / 1000.0),
        crate::units::py_float(p.carbon_g.high / 1000.0),
        crate::units::py_float((p.water_l.value - onsite).max(0.0)),
        crate::units::py_float(p.water_l.value),
        crate::units::py_float(p.modelled_share),
        cpu.map(|c| c.method.to_string()).unwrap_or_default(),
        cpu.map(|c| c.source.clone()).unwrap_or_default(),
        crate::units::py_float(f.grid_gco2_per_kwh.value),
        f.grid_gco2_per_kwh.source.clone(),
        f.pue.source.clone(),
        f.wue_l_per_kwh.source.clone(),
        crate::units::py_float(f.ewif_l_per_kwh.value),
        f.ewif_l_per_kwh.source.clone(),
        // A JSON object: any key or value (commas, semicolons, '=') reads back exactly.
        if r.identity.tags.is_empty() {
            String::new()
        } else {
            serde_json::to_string(&r.identity.tags).unwrap_or_default()
        },
        p.decompute_version.clone(),
    ]);
    cells
}

/// One CSV line for a record (no trailing newline). A record read from a CSV gives back the
/// cells it was read with.
pub fn row(r: &RunRecord) -> String {
    let kept = r.report.imported.as_ref().filter(|i| i.tool == TOOL);
    let fresh = computed(r);
    COLUMNS
        .iter()
        .chain(EXTRA.iter())
        .zip(fresh)
        .map(|(col, cell)| match kept.and_then(|k| k.cells.get(*col)) {
            Some(k) => quote(k),
            None => safe(col, &cell),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Text that came from people is defused for spreadsheets; numbers and fixed words are not.
pub fn safe(col: &str, cell: &str) -> String {
    const TEXT: [&str; 13] = [
        "project_name",
        "run_id",
        "experiment_id",
        "country_name",
        "cpu_model",
        "gpu_model",
        "user",
        "host",
        "cwd",
        "command",
        "cpu_source",
        "grid_intensity_source",
        "tags",
    ];
    if TEXT.contains(&col) {
        text_cell(cell)
    } else {
        quote(cell)
    }
}

/// Splits what [`crate::term::shell_words`] joined (POSIX shell words, by `shlex`; a cell
/// that is no valid shell text, edited by hand, is split at its spaces).
pub fn split_words(s: &str) -> Vec<String> {
    shlex::split(s).unwrap_or_else(|| s.split_whitespace().map(str::to_string).collect())
}

fn num(cells: &BTreeMap<String, String>, col: &str) -> Result<f64, String> {
    let v = cells.get(col).map(|s| s.trim()).unwrap_or("");
    if v.is_empty() {
        return Ok(0.0);
    }
    v.parse::<f64>()
        .ok()
        .filter(|x| x.is_finite())
        .ok_or_else(|| {
            format!(
                "{col} '{}' is not a number",
                crate::term::escape(&crate::term::fit(v, 30))
            )
        })
}

/// Reads decompute's CSV back into records.
/// The columns an import of decompute's CSV needs.
pub(crate) const REQUIRED: [&str; 5] = [
    "run_id",
    "project_name",
    "status",
    "it_energy_consumed",
    "pue",
];

/// (Tests read a whole table at once; imports stream through `ledger::import`.)
#[cfg(test)]
pub fn read(t: &crate::csvdata::Table) -> Result<Vec<RunRecord>, String> {
    for c in REQUIRED {
        t.column(c).map_err(|e| e.to_string())?;
    }
    t.rows
        .iter()
        .map(|(line, row)| {
            let cells: BTreeMap<String, String> =
                t.header.iter().cloned().zip(row.iter().cloned()).collect();
            record(cells).map_err(|e| format!("{}: line {line}: {e}", t.file))
        })
        .collect()
}

/// A cell [`text_cell`] defused (`'=x`) read back as it was.
fn undefuse(c: &str) -> String {
    match c.strip_prefix('\'') {
        Some(rest) if rest.starts_with(['=', '+', '-', '@', '\t', '\r']) => rest.to_string(),
        _ => c.to_string(),
    }
}

/// A record from a row's cells as written (kept, for export) and as meant (parsed).
pub(crate) fn record(raw: BTreeMap<String, String>) -> Result<RunRecord, String> {
    let cells: BTreeMap<String, String> =
        raw.iter().map(|(k, v)| (k.clone(), undefuse(v))).collect();
    let text = |c: &str| cells.get(c).cloned().unwrap_or_default();
    let status = Status::parse(&text("status"))
        .ok_or_else(|| format!("status '{}' is not a run status", text("status")))?;
    let pue = num(&cells, "pue")?;
    let it = num(&cells, "it_energy_consumed")? * J_PER_KWH;
    let modelled_share = num(&cells, "modelled_share")?;
    let per_it =
        |col: &str| -> Result<f64, String> { Ok(num(&cells, col)? * J_PER_KWH / pue.max(1.0)) };
    let (cpu, gpu, ram) = (
        per_it("cpu_energy")?,
        per_it("gpu_energy")?,
        per_it("ram_energy")?,
    );
    let cpu_method = match text("cpu_method").as_str() {
        "measured" => Method::Measured,
        "reported" => Method::Reported,
        _ => Method::Modelled,
    };
    // The GPU and DRAM methods are not columns: choose those that give back the modelled
    // share the row states.
    let target = modelled_share * it;
    let not_measured = |m: Method, j: f64| if m == Method::Measured { 0.0 } else { j };
    let (gm, rm) = [
        (Method::Measured, Method::Measured),
        (Method::Measured, Method::Modelled),
        (Method::Modelled, Method::Measured),
        (Method::Modelled, Method::Modelled),
    ]
    .into_iter()
    .min_by(|a, b| {
        let err = |(g, r): (Method, Method)| {
            (not_measured(cpu_method, cpu) + not_measured(g, gpu) + not_measured(r, ram) - target)
                .abs()
        };
        err(*a).total_cmp(&err(*b))
    })
    .unwrap_or((Method::Modelled, Method::Modelled));
    let comp = |component, method, j: f64, source: String| ComponentReport {
        component,
        method,
        source,
        host_energy_j: j,
        workload_energy_j: j,
        low_j: j,
        high_j: j,
    };
    let components = vec![
        comp(Component::Cpu, cpu_method, cpu, text("cpu_source")),
        comp(Component::Gpu, gm, gpu, "gpu_energy of a CSV export".into()),
        comp(
            Component::Dram,
            rm,
            ram,
            "ram_energy of a CSV export".into(),
        ),
    ];
    let tags: BTreeMap<String, String> = match text("tags").trim() {
        "" => BTreeMap::new(),
        t => serde_json::from_str(t).map_err(|e| format!("tags is not a JSON object ({e})"))?,
    };
    let kg = |c: &str| -> Result<f64, String> { Ok(num(&cells, c)? * 1000.0) };
    let water = num(&cells, "water_total")?;
    let factor = |value: f64, source: String| FactorRef {
        value,
        source,
        year: None,
        origin: Some(crate::factors::Origin::Imported(
            "a decompute CSV export".into(),
        )),
    };
    let ended = text("ended_at");
    let duration = num(&cells, "duration")?;
    let exit_code = match text("exit_code").trim() {
        "" => None,
        c => Some(
            c.parse::<i32>()
                .map_err(|_| format!("exit_code '{c}' is not a number"))?,
        ),
    };
    let report = RunReport {
        schema: crate::report::SCHEMA.into(),
        decompute_version: text("decompute_version"),
        command: split_words(&text("command")),
        exit_code,
        killed_by_signal: None,
        interrupted_by: None,
        started_at: text("started_at"),
        ended_at: ended,
        duration_s: duration,
        interval_s: 0.0,
        host: HostInfo::described(
            text("host"),
            text("cpu_model"),
            num(&cells, "cpu_count")?.max(0.0) as usize,
            num(&cells, "ram_total_size")?,
        ),
        processes_followed: 0,
        cpu_time_s: 0.0,
        components,
        energy_j: EnergySplit {
            host: num(&cells, "host_energy_consumed")? * J_PER_KWH,
            workload: it,
            rest: (num(&cells, "host_energy_consumed")? * J_PER_KWH - it).max(0.0),
            workload_low: num(&cells, "energy_low")? * J_PER_KWH,
            workload_high: num(&cells, "energy_high")? * J_PER_KWH,
        },
        modelled_share,
        pue,
        facility_energy_j: Ranged {
            value: it * pue,
            low: num(&cells, "energy_low")? * J_PER_KWH * pue,
            high: num(&cells, "energy_high")? * J_PER_KWH * pue,
            host: num(&cells, "host_energy_consumed")? * J_PER_KWH * pue,
        },
        carbon_g: Ranged {
            value: kg("emissions")?,
            low: kg("emissions_low")?,
            high: kg("emissions_high")?,
            host: kg("emissions")?,
        },
        water_l: Ranged {
            value: water,
            low: water,
            high: water,
            host: water,
        },
        factors: FactorsUsed {
            zone: text("country_iso_code"),
            zone_name: text("country_name"),
            grid_gco2_per_kwh: factor(
                num(&cells, "grid_intensity_g_per_kwh")?,
                text("grid_intensity_source"),
            ),
            pue: factor(pue, text("pue_source")),
            wue_l_per_kwh: factor(num(&cells, "wue")?, text("wue_source")),
            ewif_l_per_kwh: factor(num(&cells, "ewif_l_per_kwh")?, text("ewif_source")),
            cloud: None,
        },
        notes: vec!["imported from a decompute CSV export: no power samples".into()],
        leftover_processes: Vec::new(),
        governance: None,
        run: None,
        imported: None,
        samples: Vec::new(),
    };
    let mut rec = RunRecord {
        schema: RECORD_SCHEMA.into(),
        identity: RunIdentity {
            id: text("run_id"),
            project: text("project_name"),
            tags,
            user: text("user"),
            host: text("host"),
            cwd: text("cwd"),
        },
        status,
        report,
    };
    rec.validate()?;
    rec.report.imported = Some(ImportedFrom {
        tool: TOOL.into(),
        version: text("decompute_version"),
        cells: raw,
    });
    Ok(rec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_back() {
        for argv in [
            vec!["sh", "-c", "seq 3 | sort"],
            vec!["it's", "", "a b", "x'y'z"],
            vec!["plain"],
        ] {
            let argv: Vec<String> = argv.into_iter().map(String::from).collect();
            let joined = crate::term::shell_words(&argv);
            assert_eq!(split_words(&joined), argv, "{joined}");
        }
    }

    proptest::proptest! {
        #[test]
        fn words_round_trip(argv in proptest::collection::vec("\\PC{0,8}", 0..5)) {
            let joined = crate::term::shell_words(&argv);
            proptest::prop_assert_eq!(split_words(&joined), argv);
        }

        #[test]
        fn rows_never_panic(cells in proptest::collection::vec("\\PC{0,10}", 8)) {
            let text = format!("run_id,project_name,status,it_energy_consumed,pue,tags,exit_code,decompute_version\n{}\n",
                cells.iter().map(|c| quote(c)).collect::<Vec<_>>().join(","));
            if let Ok(t) = crate::csvdata::parse("x.csv", &text) {
                let _ = read(&t);
            }
        }
    }
}
