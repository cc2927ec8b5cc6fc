#!/usr/bin/env python3
"""Regenerates data/grid_intensity.csv, data/water_intensity.csv and data/cpu_tdp.csv
from the factor tables carried in the codecarbon and ecologits wheels (see data/SOURCES.md).

    pip download --no-deps codecarbon==3.3.2 ecologits==0.11.3 -d wheels
    (unzip both) ; pip install pycountry
    python3 tools/make_data.py WHEELDIR

Only facts (numbers, years, ISO codes) are carried over; this script is ours.
"""
import csv, json, sys, pathlib
import pycountry

root = pathlib.Path(sys.argv[1])
out = pathlib.Path(__file__).resolve().parent.parent / "data"

def alpha2(a3):
    c = pycountry.countries.get(alpha_3=a3)
    return (c.alpha_2, c.name) if c else ("", a3)

mix = json.loads((root / "codecarbon/codecarbon/data/private_infra/global_energy_mix.json").read_text())
rows, num, den, years = [], 0.0, 0.0, set()
for a3, v in sorted(mix.items()):
    a2, name = alpha2(a3)
    ci = float(v["carbon_intensity"])
    rows.append((a3, a2, name, round(ci, 1), int(v["year"])))
    if v.get("total_TWh"):
        num += ci * float(v["total_TWh"]); den += float(v["total_TWh"]); years.add(int(v["year"]))
world = round(num / den, 1)
usa = json.loads((root / "codecarbon/codecarbon/data/private_infra/2023/usa_emissions.json").read_text())
states = []
for key, v in usa.items():
    if key.startswith("_") or key == "usa":
        continue
    lbs = float(v["emissions"])
    name = "United States: " + " ".join(x if x == "of" else x.capitalize() for x in key.split())
    states.append(["US-" + v["regionCode"], "", name, round(lbs / 2.20462, 1), 2023, "subdivision",
                   f"US EPA eGRID2023, state annual CO2e total output emission rate (STC2ERTA) {lbs} lb/MWh ÷ 2.20462; "
                   "combustion emissions only, where the country rows are life-cycle; public domain; "
                   "via the codecarbon 3.3.2 wheel (usa_emissions.json)"])
with open(out / "grid_intensity.csv", "w", newline="") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(["zone", "alpha2", "name", "g_co2e_per_kwh", "year", "basis", "source"])
    w.writerow(["WORLD", "", "World", world, max(years), "derived", ""])
    for r in rows:
        w.writerow(list(r) + ["country", ""])
    for r in sorted(states):
        w.writerow(r)

water = json.loads((root / "ecologits/ecologits/data/electricity_mixes.json").read_text())["electricity_mixes"]
with open(out / "water_intensity.csv", "w", newline="") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(["zone", "alpha2", "name", "l_per_kwh", "basis"])
    for m in sorted(water, key=lambda m: m["name"]):
        a3 = m["name"]
        if a3 == "WOR":
            w.writerow(["WORLD", "", "World", m["wue"], "world"]); continue
        a2, name = alpha2(a3)
        if not a2:
            continue  # not an ISO 3166 country (e.g. EcoLogits' EEE placeholder)
        basis = "world-default" if "electricity-mix-wue-world" in (m["warnings"] or []) else "country"
        w.writerow([a3, a2, name, m["wue"], basis])

with open(root / "codecarbon/codecarbon/data/hardware/cpu_power.csv") as f, \
     open(out / "cpu_tdp.csv", "w", newline="") as g:
    w = csv.writer(g, lineterminator="\n")
    w.writerow(["model", "tdp_w"])
    seen = set()
    for r in csv.DictReader(f):
        try:
            tdp = float(r["TDP"])
        except ValueError:
            print("skipping malformed TDP row:", r, file=sys.stderr); continue
        name = r["Name"].strip()
        if name.lower() in seen or tdp <= 0:
            continue
        seen.add(name.lower())
        w.writerow([name, tdp])
