#!/usr/bin/env python3
"""Regenerates data/hosted_models.csv, the registry of hosted and open-weight models behind
`decompute models` and `estimate infer --model`, from the model list carried in the ecologits
wheel (EcoLogits 0.11.3, MPL-2.0; see data/SOURCES.md):

    pip download --no-deps ecologits==0.11.3 -d wheels && unzip wheels/ecologits-*.whl -d wheels/ecologits
    python3 tools/make_models.py wheels/ecologits

Only facts are carried over (names, aliases, architecture, parameter counts or EcoLogits'
ranges where the provider publishes none, source addresses); this script is ours.
"""
import csv, json, sys, pathlib

root = pathlib.Path(sys.argv[1])
out = pathlib.Path(__file__).resolve().parent.parent / "data" / "hosted_models.csv"
d = json.loads((root / "ecologits/data/models.json").read_text())
aliases = {}
for a in d["aliases"]:
    aliases.setdefault((a["provider"], a["alias"]), []).append(a["name"])
PROVIDER = {"google_genai": "google", "mistralai": "mistral", "huggingface_hub": "open-weight"}


def rng(p):
    """(min, max) in billions from a number or a {min, max} object."""
    if isinstance(p, dict):
        return float(p["min"]), float(p["max"])
    return float(p), float(p)


rows = []
for m in d["models"]:
    if m.get("type") != "model":
        continue
    arch = m["architecture"]
    if arch["type"] == "moe":
        t = rng(arch["parameters"]["total"])
        a = rng(arch["parameters"]["active"])
    else:
        t = rng(arch["parameters"])
        a = t
    warnings = m.get("warnings") or []
    published = "no" if "model-arch-not-released" in warnings else "yes"
    rows.append({
        "provider": PROVIDER.get(m["provider"], m["provider"]),
        "model": m["name"],
        "aliases": " ".join(sorted(aliases.get((m["provider"], m["name"]), []))),
        "architecture": arch["type"],
        "total_b_min": f"{t[0]:g}", "total_b_max": f"{t[1]:g}",
        "active_b_min": f"{a[0]:g}", "active_b_max": f"{a[1]:g}",
        "published": published,
        "parameters_from": "model card" if published == "yes"
        else "EcoLogits 0.11.3 estimate (the provider publishes no size)",
        "source": " ".join(m.get("sources") or []),
    })
rows.sort(key=lambda r: (r["provider"], r["model"]))
with out.open("w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
print(f"{len(rows)} models from {len({r['provider'] for r in rows})} providers -> {out}")
