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
# Open-weight families and an API EcoLogits' list lacks, from their model cards and API
# documentation (facts; decompute's own rows): DeepSeek and Qwen, and the DeepSeek API's ids.
def card(provider, name, total, active=None, source="", aliases=""):
    a = active if active is not None else total
    return {
        "provider": provider, "model": name, "aliases": aliases,
        "architecture": "moe" if a < total else "dense",
        "total_b_min": f"{total:g}", "total_b_max": f"{total:g}",
        "active_b_min": f"{a:g}", "active_b_max": f"{a:g}",
        "published": "yes",
        "parameters_from": "model card" if provider == "open-weight"
        else "the open-weight model it serves (model card)",
        "source": source or f"https://huggingface.co/{name}",
    }


EXTRA = [
    card("open-weight", "deepseek-ai/DeepSeek-V3", 671, 37),
    card("open-weight", "deepseek-ai/DeepSeek-V3.1", 671, 37),
    card("open-weight", "deepseek-ai/DeepSeek-V3.2", 671, 37),
    card("open-weight", "deepseek-ai/DeepSeek-R1", 671, 37),
    card("open-weight", "deepseek-ai/DeepSeek-R1-Distill-Llama-70B", 70.6),
    card("open-weight", "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B", 32.8),
    card("open-weight", "Qwen/Qwen3-235B-A22B", 235, 22, aliases="Qwen/Qwen3-235B-A22B-Instruct-2507"),
    card("open-weight", "Qwen/Qwen3-30B-A3B", 30.5, 3.3, aliases="Qwen/Qwen3-30B-A3B-Instruct-2507"),
    card("open-weight", "Qwen/Qwen3-Next-80B-A3B-Instruct", 80, 3),
    card("open-weight", "Qwen/Qwen3-32B", 32.8),
    card("open-weight", "Qwen/Qwen3-14B", 14.8),
    card("open-weight", "Qwen/Qwen3-8B", 8.2),
    card("open-weight", "Qwen/Qwen2.5-72B-Instruct", 72.7),
    card("open-weight", "Qwen/Qwen2.5-7B-Instruct", 7.61),
    card("deepseek", "deepseek-chat", 671, 37,
         source="https://api-docs.deepseek.com/quick_start/pricing https://huggingface.co/deepseek-ai/DeepSeek-V3.2"),
    card("deepseek", "deepseek-reasoner", 671, 37,
         source="https://api-docs.deepseek.com/quick_start/pricing https://huggingface.co/deepseek-ai/DeepSeek-V3.2"),
]
known = {(r["provider"], r["model"].lower()) for r in rows}
rows += [r for r in EXTRA if (r["provider"], r["model"].lower()) not in known]
# The Hugging Face hub renamed Meta's Llama 3.1 repositories (Meta-Llama-3.1-8B ->
# Llama-3.1-8B): the new names as aliases.
for r in rows:
    m = r["model"]
    if m.startswith("meta-llama/Meta-Llama-3.1-"):
        new = m.replace("meta-llama/Meta-Llama-3.1-", "meta-llama/Llama-3.1-")
        r["aliases"] = " ".join(sorted(set(r["aliases"].split()) | {new}))
rows.sort(key=lambda r: (r["provider"], r["model"]))
with out.open("w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
print(f"{len(rows)} models from {len({r['provider'] for r in rows})} providers -> {out}")
