#!/usr/bin/env bash
# Ledger speed: `ledger summary` over N runs (default one million), and the cost of a
# checkpoint. Needs hyperfine. Usage: bench/ledger.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000000}
db=${TMPDIR:-/tmp}/decompute-bench-ledger-$n.sqlite
cargo build --release --quiet --example ledger_bench
cargo build --release --quiet
if [ ! -s "$db" ]; then
  target/release/examples/ledger_bench "$db" "$n"
else
  echo "reusing $db"
fi
export DECOMPUTE_LEDGER=$db
hyperfine -N --warmup 2 --runs 10 --export-json /tmp/decompute-ledger-bench.json \
  'target/release/decompute ledger summary --by project' \
  'target/release/decompute ledger summary --by month' \
  'target/release/decompute ledger summary --by tag:model' \
  'target/release/decompute ledger list --limit 20'
python3 - <<'PY'
import json
for r in json.load(open("/tmp/decompute-ledger-bench.json"))["results"]:
    print(f"median {r['median']*1e3:8.1f} ms  {r['command']}")
PY
