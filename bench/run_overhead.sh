#!/usr/bin/env bash
# Wall-time overhead of `decompute run -- true` over bare `true` (median of 30 runs).
# Needs hyperfine (Debian package). Usage: bench/run_overhead.sh [path/to/decompute]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/decompute}
[ -x "$bin" ] || cargo build --release
hyperfine -N --warmup 5 --runs 30 --export-json /tmp/decompute-overhead.json \
  'true' "$bin run --quiet --zone FR -- true"
python3 - <<'PY'
import json
r = json.load(open("/tmp/decompute-overhead.json"))["results"]
bare, wrapped = r[0]["median"] * 1e3, r[1]["median"] * 1e3
print(f"median: true {bare:.2f} ms, decompute run -- true {wrapped:.2f} ms, overhead {wrapped - bare:.2f} ms")
PY
