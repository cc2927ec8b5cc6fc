#!/usr/bin/env python3
"""Writes a deterministic demo ledger as decompute JSON lines on stdout: four projects over
ten weeks of GPU and CPU runs, some paused for the grid, some tagged with their FLOP. It
exists for the report's snapshot tests and the rendered example in docs/: the figures are
plausible, not measured. Each record is built from tests/fixtures/report/template.json (a
real `decompute run` record) so the schema is the ledger's own.

    tools/demo-ledger.py > demo.jsonl && decompute ledger import demo.jsonl
"""
import copy, json, math, os, random, sys

here = os.path.dirname(os.path.abspath(__file__))
template = json.load(open(os.path.join(here, "..", "tests", "fixtures", "report", "template.json")))
rng = random.Random(20261129)

GRID = {"value": 296.0, "source": "Ember and Energy Institute via Our World in Data (CC BY 4.0), compiled in CodeCarbon 3.3.2 global_energy_mix.json", "year": 2023,
        "origin": {"kind": "shipped", "from": "data/grid_intensity.csv"}}
PUE = {"value": 1.1, "source": "preset 'hyperscale': Google 2024 Environmental Report: fleet-wide trailing-twelve-month PUE for 2023", "year": 2023,
       "origin": {"kind": "flag", "from": "--pue"}}
WUE = {"value": 0.3, "source": "Microsoft, datacenter sustainability (FY2023): global average WUE 0.30 L/kWh", "year": 2023, "origin": {"kind": "flag", "from": "--wue"}}
EWIF = {"value": 2.0, "source": "WRI, Reig et al. 2020, per-country factors as compiled in EcoLogits 0.11.3", "year": 2020,
        "origin": {"kind": "shipped", "from": "data/water_intensity.csv"}}

PROJECTS = [
    ("llm-finetune", "python train.py --model 8b --epochs 1", 1, 0.6),
    ("vision", "python train_vit.py --epochs 30", 1, 0.35),
    ("eval", "python eval.py --suite full", 1, 0.15),
    ("ci", "make test", 0, 0.02),
]

def rfc(t):
    import datetime
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")

def ulid(t, i):
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    ms = int(t * 1000)
    s = ""
    for _ in range(10):
        s = alphabet[ms % 32] + s
        ms //= 32
    r = rng.getrandbits(80)
    for _ in range(16):
        s += alphabet[r % 32]
        r //= 32
    return s

def record(i, t0, project, command, gpus, scale):
    r = copy.deepcopy(template)
    rep = r["report"]
    hours = max(0.05, rng.lognormvariate(math.log(6 * scale + 0.2), 0.5))
    dur = hours * 3600
    paused = []
    gov = None
    if gpus and rng.random() < 0.35:
        start = dur * rng.uniform(0.2, 0.6)
        length = min(dur * 0.25, rng.uniform(1200, 5400))
        before, after = rng.uniform(420, 520), rng.uniform(180, 260)
        paused.append((start, start + length, before, after))
    n = 40
    samples = []
    cpu_j = gpu_j = dram_j = work_j = 0.0
    for k in range(n):
        t = dur * (k + 1) / n
        dt = dur / n
        in_pause = any(a <= t - dt / 2 <= b for a, b, _, _ in paused)
        cpu = (18 if in_pause else 95 + 25 * math.sin(k / 3.0)) * (0.5 if not gpus else 1)
        dram = 9.0
        gpu = 0.0 if not gpus else (62 if in_pause else 520 + 90 * math.sin(k / 2.0) + rng.uniform(-30, 30))
        work = (cpu * 0.9 + dram * 0.2 + gpu) if not in_pause else 2.0
        samples.append({"t_s": round(t, 3), "dt_s": round(dt, 3), "cpu_w": round(cpu, 2), "dram_w": dram,
                        "gpu_w": round(gpu, 2), "workload_w": round(work, 2)})
        cpu_j += cpu * dt; dram_j += dram * dt; gpu_j += gpu * dt; work_j += work * dt
    comps = [
        {"component": "cpu", "method": "measured", "source": "rapl:intel-rapl:0", "host_energy_j": cpu_j,
         "workload_energy_j": cpu_j * 0.9, "low_j": cpu_j * 0.9 * 0.97, "high_j": cpu_j * 0.9 * 1.03},
        {"component": "dram", "method": "modelled", "source": "model:dram-per-gb", "host_energy_j": dram_j,
         "workload_energy_j": dram_j * 0.2, "low_j": dram_j * 0.1, "high_j": dram_j * 0.3},
    ]
    if gpus:
        comps.append({"component": "gpu", "method": "measured", "source": "nvml:0", "host_energy_j": gpu_j,
                      "workload_energy_j": gpu_j, "low_j": gpu_j * 0.95, "high_j": gpu_j * 1.05})
    w = sum(c["workload_energy_j"] for c in comps)
    lo = sum(c["low_j"] for c in comps)
    hi = sum(c["high_j"] for c in comps)
    host = cpu_j + dram_j + gpu_j
    kwh = lambda j: j / 3.6e6
    fac = w * PUE["value"]
    rep.update({
        "command": command.split(), "exit_code": 0,
        "started_at": rfc(t0), "ended_at": rfc(t0 + dur), "duration_s": round(dur, 3), "interval_s": round(dur / n, 3),
        "cpu_time_s": round(dur * 3.1, 1), "components": comps,
        "energy_j": {"host": host, "workload": w, "rest": host - w, "workload_low": lo, "workload_high": hi},
        "modelled_share": (dram_j * 0.2) / w, "pue": PUE["value"],
        "facility_energy_j": {"value": fac, "low": lo * PUE["value"], "high": hi * PUE["value"], "host": host * PUE["value"]},
        "carbon_g": {"value": kwh(fac) * GRID["value"], "low": kwh(lo * PUE["value"]) * GRID["value"] * 0.9,
                     "high": kwh(hi * PUE["value"]) * GRID["value"] * 1.1, "host": kwh(host * PUE["value"]) * GRID["value"]},
        "water_l": {"value": kwh(w) * WUE["value"] + kwh(fac) * EWIF["value"],
                    "low": kwh(lo) * WUE["value"] + kwh(lo * PUE["value"]) * EWIF["value"] * 0.5,
                    "high": kwh(hi) * WUE["value"] + kwh(hi * PUE["value"]) * EWIF["value"] * 1.5,
                    "host": kwh(host) * WUE["value"] + kwh(host * PUE["value"]) * EWIF["value"]},
        "samples": samples, "notes": [],
    })
    rep["factors"].update({"zone": "FR", "zone_name": "France", "grid_gco2_per_kwh": GRID, "pue": PUE,
                           "wue_l_per_kwh": WUE, "ewif_l_per_kwh": EWIF})
    rep["host"].update({"hostname": "gpu-node-%d" % (i % 3 + 1), "cpu_model": "Intel Xeon Gold 6338", "logical_cpus": 64,
                        "memory_gb": 512.0, "virtual_machine": False})
    if paused:
        pauses = []
        total_avoided = 0.0
        for a, b, before, after in paused:
            deferred = 600 * (b - a)
            avoided = max(0.0, kwh(deferred) * PUE["value"] * (before - after))
            total_avoided += avoided
            pauses.append({"start_s": round(a, 1), "end_s": round(b, 1), "cause": "grid",
                           "reason": "grid %.0f g/kWh above 400; resumed below 300" % before, "avoided_g": avoided})
        rep["governance"] = {"grid_signal": "file:forecast.json", "pauses": pauses,
                             "paused_s": sum(b - a for a, b, _, _ in paused), "carbon_avoided_g": total_avoided}
    r["id"] = ulid(t0, i)
    r["project"] = project
    r["user"] = ["amina", "jo", "li", "sam"][i % 4]
    r["host"] = rep["host"]["hostname"]
    r["cwd"] = "/home/%s/%s" % (r["user"], project)
    r["tags"] = {}
    if project == "llm-finetune":
        r["tags"] = {"params": "8e9", "tokens": "2e9"}
    r["status"] = "finished"
    return r

start = 1789776000  # 2026-09-20T00:00:00Z
out = []
i = 0
for day in range(70):
    for (project, command, gpus, scale) in PROJECTS:
        if rng.random() < (0.25 if project != "ci" else 0.6):
            t0 = start + day * 86400 + rng.randint(0, 20 * 3600)
            out.append(record(i, t0, project, command, gpus, scale))
            i += 1
for r in sorted(out, key=lambda r: r["report"]["started_at"]):
    sys.stdout.write(json.dumps(r, separators=(",", ":")) + "\n")
