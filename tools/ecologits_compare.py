#!/usr/bin/env python3
"""EcoLogits' GPU energy per output token on the rows of data/ml_energy_inference.csv, grouped
as docs/validation.md section 3 groups decompute's, for the comparison column there.

EcoLogits 0.11.3 publishes its LLM model (ecologits/impacts/llm.py, MPL-2.0): per GPU,
E_token = alpha * exp(beta * batch) * P_active + gamma  (Wh; P in billions), times the GPUs
needed to hold the weights: ceil(1.2 * P_total * bits / 8 / 80 GB), rounded up to a power of
two. Its published coefficients are used as facts; this script is ours. It runs outside the
product (standard library only):

    python3 tools/ecologits_compare.py
"""
import csv, math, pathlib, statistics

ALPHA, BETA, GAMMA = 1.1665273170451914e-06, -0.011205921025579175, 4.052928146734005e-05
GPU_MEMORY_GB = 80

root = pathlib.Path(__file__).resolve().parent.parent
rows = list(csv.DictReader(open(root / "data/ml_energy_inference.csv")))
calibration = {(r["model"], float(r["batch"])) for r in csv.DictReader(open(root / "data/inference_calibration.csv"))}


def group(r):
    total, active = float(r["total_params_b"]), float(r["active_params_b"])
    v2 = r["dataset"].startswith("ml.energy-v2")
    if total <= 4:
        return "models ≤ 4 B (v2 rows only; --stack older)"
    if v2:
        return "v2, larger models (--stack older)"
    if active < total:
        return "mixture-of-experts, " + ("H100 (v3)" if r["gpu"] == "H100" else "B200 (v3)")
    return "dense, H100 (v3)" if r["gpu"] == "H100" else "dense, B200 (v3)"


def ecologits_j(r):
    total, active = float(r["total_params_b"]), float(r["active_params_b"])
    bits = 8 if r["weight_precision"] == "fp8" else 16
    n = math.ceil(1.2 * total * bits / 8 / GPU_MEMORY_GB)
    n = 2 ** math.ceil(math.log2(n))
    wh = (ALPHA * math.exp(BETA * float(r["max_batch"])) * active + GAMMA) * n
    return wh * 3600


by = {}
for r in rows:
    short = r["model"].split("/")[-1]
    if r["dataset"].startswith("ml.energy-v3") and r["gpu"] == "H100" and (short, float(r["max_batch"])) in calibration:
        continue  # decompute's calibration rows: left out of both columns
    ratio = ecologits_j(r) / float(r["energy_per_output_token_j"])
    by.setdefault(group(r), []).append(ratio)
print("| group | rows | EcoLogits: median estimate ÷ measured | median error | worst error |")
print("|---|---|---|---|---|")
for g in sorted(by):
    rs = by[g]
    err = [max(x, 1 / x) for x in rs]
    print(f"| {g} | {len(rs)} | {statistics.median(rs):.2f} | ×{statistics.median(err):.2f} | ×{max(err):.2f} |")
