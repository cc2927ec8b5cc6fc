#!/usr/bin/env bash
# The fleet benchmark (issue #23): the ledger behind PgBouncer under many writers, many runs
# at once through PgBouncer, runs refused by a full server (the spool), and a Slurm node with
# many jobs (one controller pass, a burst of ended jobs accounted by the node agent).
# Run it through the test services, as root, with a Slurm node claiming enough CPUs:
#
#   DECOMPUTE_SLURM_CPUS=1100 tools/with-services.sh bench/fleet/fleet.sh [PARTS]
#
# PARTS (default all): writers runs spool slurm many. Sizes: WRITERS (1000), RUNS (1000),
# SPOOL_RUNS (200), JOBS (1000, 80 % flexible), CANCEL (600), MANY (5000 flexible jobs,
# as many running as the node has CPUs, the rest pending). Every figure is printed as
# `fleet: what: figure`; bench/fleet/README.md keeps the last ones.
set -euo pipefail
cd "$(dirname "$0")/../.."
parts=${*:-writers runs spool slurm many}
WRITERS=${WRITERS:-1000}
RUNS=${RUNS:-1000}
SPOOL_RUNS=${SPOOL_RUNS:-200}
JOBS=${JOBS:-1000}
CANCEL=${CANCEL:-600}
MANY=${MANY:-5000}
: "${DECOMPUTE_TEST_POSTGRES:?run it through tools/with-services.sh}"
cargo build --release --quiet
cargo build --release --quiet --example ledger_bench
bin=$PWD/target/release/decompute
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
say() { echo "fleet: $*"; }
spooled() { { find "$1" -name '*.json' 2>/dev/null || true; } | wc -l; }
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }
base=${DECOMPUTE_TEST_POSTGRES%/*}
newdb() { psql "$DECOMPUTE_TEST_POSTGRES" -qc "CREATE DATABASE $1" >/dev/null; }
pglog_from=$(stat -c %s "${DECOMPUTE_TEST_PGLOG:-/dev/null}" 2>/dev/null || echo 0)
pg_errors() {
  [ -n "${DECOMPUTE_TEST_PGLOG:-}" ] || { echo "?"; return; }
  tail -c +"$((pglog_from + 1))" "$DECOMPUTE_TEST_PGLOG" | grep -c 'ERROR' || true
}
empty=$work/empty-sysfs
mkdir -p "$empty"
run_args=(run --quiet --no-gpu --cpu-tdp 65 --sysfs-root "$empty")

if [[ " $parts " == *" writers "* ]]; then
  : "${DECOMPUTE_TEST_PGBOUNCER:?PgBouncer is not running}"
  db=fleet_writers_$$
  newdb "$db"
  ulimit -n 65536 2>/dev/null || true
  out=$(target/release/examples/ledger_bench "$DECOMPUTE_TEST_PGBOUNCER/$db" 0 "$WRITERS" 10 release 2>&1 | tail -1)
  say "checkpoints through PgBouncer (pool 20), $WRITERS writers x 10: $out"
fi

if [[ " $parts " == *" runs "* ]]; then
  : "${DECOMPUTE_TEST_PGBOUNCER:?PgBouncer is not running}"
  db=fleet_runs_$$
  newdb "$db"
  ledger="$DECOMPUTE_TEST_PGBOUNCER/$db"
  dir=$work/runs
  mkdir -p "$dir"
  printf 'project = "fleet"\n[budget.fleet]\nenergy = "1 MWh / month"\n' >"$dir/decompute.toml"
  before=$(pg_errors)
  t0=$(now)
  pids=()
  for i in $(seq 1 "$RUNS"); do
    (cd "$dir" && XDG_STATE_HOME=$work/state-runs "$bin" "${run_args[@]}" --checkpoint 2s --ledger "$ledger" -- sleep 5 \
      >/dev/null 2>"$dir/err.$i") &
    pids+=($!)
  done
  failed=0
  for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
  took=$(since "$t0")
  recorded=$("$bin" ledger list --json --limit 1000000 --ledger "$ledger" 2>/dev/null | grep -c '"id"' || true)
  warned=$(cat "$dir"/err.* | grep -c 'warning' || true)
  spooled=$(spooled "$work/state-runs")
  say "$RUNS budgeted runs (sleep 5) at once through PgBouncer: ${took} s wall, $failed failed, $recorded recorded, $warned warnings, $spooled spooled, server ERROR lines $(( $(pg_errors) - before ))"
fi

if [[ " $parts " == *" spool "* ]]; then
  # A role allowed 5 connections: most of the runs are refused at some write, and spooled.
  db=fleet_spool_$$
  psql "$DECOMPUTE_TEST_POSTGRES" -qc "CREATE ROLE fleetw LOGIN CONNECTION LIMIT 5" >/dev/null 2>&1 || true
  psql "$DECOMPUTE_TEST_POSTGRES" -qc "CREATE DATABASE $db OWNER fleetw" >/dev/null
  rest=${base#postgres://}
  ledger="postgres://fleetw@${rest#*@}/$db?sslmode=disable"
  "$bin" ledger list --ledger "$ledger" >/dev/null 2>&1 || true
  dir=$work/spool
  mkdir -p "$dir"
  t0=$(now)
  pids=()
  for i in $(seq 1 "$SPOOL_RUNS"); do
    (cd "$dir" && XDG_STATE_HOME=$work/state-spool "$bin" "${run_args[@]}" --checkpoint 1s --ledger "$ledger" -- sleep 2 \
      >/dev/null 2>"$dir/err.$i") &
    pids+=($!)
  done
  failed=0
  for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
  took=$(since "$t0")
  first=$("$bin" ledger list --json --limit 1000000 --ledger "$ledger" 2>/dev/null | grep -c '"id"' || true)
  # That listing itself delivered what it could; the rest as the next commands open it.
  for _ in 1 2 3 4 5; do
    left=$(spooled "$work/state-spool")
    [ "$left" = 0 ] && break
    XDG_STATE_HOME=$work/state-spool "$bin" ledger list --ledger "$ledger" >/dev/null 2>&1 || true
  done
  recorded=$("$bin" ledger list --json --limit 1000000 --ledger "$ledger" 2>/dev/null | grep -c '"id"' || true)
  hints=$(grep -l 'too many connections' "$dir"/err.* 2>/dev/null | wc -l)
  say "$SPOOL_RUNS runs at once against a role limited to 5 connections: ${took} s wall, $failed failed, $hints told (in words) that the server was full, $recorded of $SPOOL_RUNS recorded after the spool was delivered (first listing saw $first), spool left $(spooled "$work/state-spool")"
fi

if [[ " $parts " == *" slurm "* ]]; then
  : "${DECOMPUTE_TEST_SLURM_CONF:?Slurm is not running (as root, through tools/with-services.sh)}"
  export SLURM_CONF=$DECOMPUTE_TEST_SLURM_CONF
  db=fleet_slurm_$$
  newdb "$db"
  ledger="$base/$db?sslmode=disable"
  dir=$work/slurm
  mkdir -p "$dir"
  "$bin" serve --slurm --slurm-proctrack linuxproc --listen 127.0.0.1:0 --interval 1s --no-gpu \
    --cpu-tdp 65 --sysfs-root "$empty" --ledger "$ledger" >/dev/null 2>"$dir/serve.err" &
  agent=$!
  flex=$((JOBS * 8 / 10))
  t0=$(now)
  for i in $(seq 1 "$JOBS"); do
    p=debug
    [ "$i" -le "$flex" ] && p=flex
    sbatch -Q -p "$p" --account=fleet -o /dev/null --wrap "sleep 3000" >/dev/null
  done
  say "submitted $JOBS jobs ($flex flexible) in $(since "$t0") s"
  t0=$(now)
  for _ in $(seq 1 600); do
    r=$(squeue -h -t R | wc -l)
    [ "$r" -ge "$JOBS" ] && break
    sleep 1
  done
  say "$(squeue -h -t R | wc -l) jobs running after $(since "$t0") s"
  sleep 5
  echo 500 >"$dir/grid"
  t0=$(now)
  "$bin" slurm govern --once --grid "file:$dir/grid" --pause-above 100 --min-state 0s --flexible-partition flex \
    --state "$dir/govern.json" --ledger "$ledger" >"$dir/govern.out" 2>&1
  took=$(since "$t0")
  say "one govern pass, dirty grid, $JOBS running: ${took} s; suspended now $(squeue -h -t S | wc -l) (expected $flex)"
  echo 50 >"$dir/grid"
  t0=$(now)
  "$bin" slurm govern --once --grid "file:$dir/grid" --pause-above 100 --min-state 0s --flexible-partition flex \
    --state "$dir/govern.json" --ledger "$ledger" >>"$dir/govern.out" 2>&1
  say "one govern pass, clean grid: $(since "$t0") s; suspended now $(squeue -h -t S | wc -l)"
  # A burst: CANCEL jobs cancelled at once; how long until every record is in the ledger.
  ids=$(squeue -h -t R -o %i | head -n "$CANCEL" | tr '\n' ' ')
  t0=$(now)
  # shellcheck disable=SC2086
  scancel $ids
  done_at=""
  settled_at=""
  idlist=$(echo "$ids" | tr ' ' ',' | sed 's/,$//')
  for _ in $(seq 1 600); do
    if [ -z "$settled_at" ] && [ "$(squeue -h -t R,CG,S -j "$idlist" 2>/dev/null | wc -l)" = 0 ]; then
      settled_at=$(since "$t0")
    fi
    n=$("$bin" ledger list --json --limit 1000000 --ledger "$ledger" 2>/dev/null | grep -c '"id"' || true)
    if [ "$n" -ge "$CANCEL" ]; then done_at=$(since "$t0"); break; fi
    sleep 1
  done
  say "Slurm had ended the $CANCEL jobs (none running or completing) after ${settled_at:-more than the wait} s"
  say "the agent's warnings: $(grep -c warning "$dir/serve.err" || true); last: $(grep warning "$dir/serve.err" | tail -n 1)"
  complete=$("$bin" ledger export --format json --ledger "$ledger" 2>/dev/null \
    | grep -c '"project":"fleet".*"user":"root"' || true)
  say "$CANCEL jobs cancelled at once: all recorded after ${done_at:-never (600 s)} s; $complete with the job's account and user"
  kill "$agent" 2>/dev/null || true
  wait "$agent" 2>/dev/null || true
  scancel --user=root --quiet 2>/dev/null || true
fi

if [[ " $parts " == *" many "* ]]; then
  : "${DECOMPUTE_TEST_SLURM_CONF:?Slurm is not running (as root, through tools/with-services.sh)}"
  export SLURM_CONF=$DECOMPUTE_TEST_SLURM_CONF
  db=fleet_many_$$
  newdb "$db"
  ledger="$base/$db?sslmode=disable"
  dir=$work/many
  mkdir -p "$dir"
  t0=$(now)
  seq 1 "$MANY" | xargs -P 4 -I{} sbatch -Q -p flex --account=fleet -o /dev/null --wrap "sleep 3000" >/dev/null
  say "submitted $MANY flexible jobs in $(since "$t0") s"
  t0=$(now)
  last=-1
  for _ in $(seq 1 120); do
    r=$(squeue -h -t R | wc -l)
    [ "$r" = "$last" ] && [ "$r" -gt 0 ] && break
    last=$r
    sleep 5
  done
  running=$(squeue -h -t R | wc -l)
  pending=$(squeue -h -t PD | wc -l)
  say "queue: $running running, $pending pending after $(since "$t0") s"
  pass() { # label, then govern's own arguments
    local label=$1
    shift
    local t
    t=$(now)
    "$bin" slurm govern --once --min-state 0s --flexible-partition flex --state "$dir/govern.json" \
      --ledger "$ledger" "$@" >>"$dir/govern.out" 2>&1
    say "one govern pass over $MANY jobs, $label: $(since "$t") s; now $(squeue -h -t R | wc -l) running, $(squeue -h -t S | wc -l) suspended, $(squeue -h -t PD | wc -l) pending of which $(squeue -h -t PD -o %r | grep -c JobHeld || true) held"
  }
  echo 500 >"$dir/grid"
  pass "dirty grid (suspend every running one)" --grid "file:$dir/grid" --pause-above 100
  # The account's budget used up: its pending jobs are held, in the same pass the grid
  # clears and the suspended ones resume.
  XDG_STATE_HOME=$work/state-many "$bin" "${run_args[@]}" --project fleet --ledger "$ledger" -- sh -c 'i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done' 2>/dev/null
  printf '[budget.fleet]\nenergy = "1 mJ / day"\non_exceed = "warn"\n' >"$dir/decompute.toml"
  echo 50 >"$dir/grid"
  pass "clean grid, the account over its budget (resume the suspended, hold the pending)" \
    --grid "file:$dir/grid" --pause-above 100 --policy "$dir/decompute.toml"
  printf '[budget.fleet]\nenergy = "1 MWh / day"\n' >"$dir/decompute.toml"
  pass "the budget raised (release the held)" --grid "file:$dir/grid" --pause-above 100 \
    --policy "$dir/decompute.toml"
  say "govern warnings: $(grep -c warning "$dir/govern.out" || true); last: $(grep warning "$dir/govern.out" | tail -n 1)"
  t0=$(now)
  scancel --user=root --quiet 2>/dev/null || true
  for i in $(seq 1 900); do
    [ "$(squeue -h | wc -l)" = 0 ] && break
    # A cancel request can time out on a node this busy: asked again every 30 s.
    [ $((i % 15)) = 0 ] && { scancel --user=root --quiet 2>/dev/null || true; }
    sleep 2
  done
  say "the $MANY jobs cancelled and gone after $(since "$t0") s"
fi
