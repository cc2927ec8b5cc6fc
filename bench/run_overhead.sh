#!/usr/bin/env bash
# Wall-time overhead of `decompute run -- true` over bare `true` (median of 30 runs).
# Needs hyperfine (Debian package). Usage: bench/run_overhead.sh [path/to/decompute]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/decompute}
[ -x "$bin" ] || cargo build --release
export DECOMPUTE_LEDGER=${TMPDIR:-/tmp}/decompute-overhead-ledger.sqlite
rm -f "$DECOMPUTE_LEDGER"*
hyperfine -N --warmup 5 --runs 30 --export-json /tmp/decompute-overhead.json \
  'true' "$bin run --quiet --zone FR -- true" "$bin run --quiet --no-ledger --zone FR -- true"
python3 - <<'PY'
import json
r = json.load(open("/tmp/decompute-overhead.json"))["results"]
bare, wrapped, noledger = (x["median"] * 1e3 for x in r)
print(f"median: true {bare:.2f} ms; decompute run -- true {wrapped:.2f} ms (overhead {wrapped - bare:.2f} ms, ledger included); "
      f"with --no-ledger {noledger:.2f} ms (overhead {noledger - bare:.2f} ms)")
PY
