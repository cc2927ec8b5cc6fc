#!/usr/bin/env bash
# Runs .ci/run in a fresh clone of this repository's HEAD while two CPU-bound loops of
# normal priority compete for the cores, as on a shared build machine; prints the result
# and the wall time. The suite must pass like this (see docs/architecture.md, "Tests").
#
#   tools/busy-ci.sh [LOOPS]      LOOPS: how many busy loops (default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
loops=${1:-2}
dir=$(mktemp -d /tmp/decompute-busy-ci.XXXXXX)
git clone --quiet . "$dir/repo"
pids=()
stop() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$dir"
}
trap stop EXIT
for _ in $(seq "$loops"); do
    sh -c 'while :; do :; done' &
    pids+=("$!")
done
echo "busy-ci: $loops busy loops (pids ${pids[*]}) beside .ci/run in $dir/repo" >&2
start=$(date +%s)
set +e
(cd "$dir/repo" && CI=true bash .ci/run)
rc=$?
set -e
echo "busy-ci: .ci/run exited $rc after $(( $(date +%s) - start )) s with $loops busy loops" >&2
exit "$rc"
