#!/usr/bin/env bash
# Ledger speed: `ledger summary` over N runs (default one million), the cost of a
# checkpoint, and 32 concurrent writers. Needs hyperfine.
#   bench/ledger.sh [N]                      # SQLite
#   tools/with-services.sh bench/ledger.sh [N] postgres    # the throwaway PostgreSQL
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000000}
backend=${2:-sqlite}
cargo build --release --quiet --example ledger_bench
cargo build --release --quiet
if [ "$backend" = postgres ]; then
  : "${DECOMPUTE_TEST_POSTGRES:?run it through tools/with-services.sh}"
  db="bench_$n"
  psql "$DECOMPUTE_TEST_POSTGRES" -qc "CREATE DATABASE $db" >/dev/null 2>&1 || true
  ledger="${DECOMPUTE_TEST_POSTGRES%/*}/$db?sslmode=disable"
  target/release/examples/ledger_bench "$ledger" "$n" 32
  psql "${DECOMPUTE_TEST_POSTGRES%/*}/$db" -qc "VACUUM ANALYZE" >/dev/null
else
  ledger=${TMPDIR:-/tmp}/decompute-bench-ledger-$n.sqlite
  if [ ! -s "$ledger" ]; then
    target/release/examples/ledger_bench "$ledger" "$n" 32
  else
    echo "reusing $ledger"
  fi
fi
export DECOMPUTE_LEDGER=$ledger
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
