#!/usr/bin/env bash
# The test command. As root it installs what the service tests need when missing
# (Debian's prometheus, postgresql, slurm-wlm and munge, chromium: one `apt-get update`,
# then `apt-get install -y`), starts throwaway instances (data, config and sockets in a
# temporary directory, loopback only), runs `cargo test --all-targets` with their addresses
# in the environment, and stops them. Without root, or when a package cannot be had, the
# tests that need it say they were skipped (and fail under CI=true).
#
#   tools/test.sh [extra cargo test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

tmp=$(mktemp -d "${TMPDIR:-/tmp}/decompute-services.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]:-}"; do
        [ -n "$p" ] && kill "$p" 2>/dev/null || true
    done
    for p in "${pids[@]:-}"; do
        [ -n "$p" ] && wait "$p" 2>/dev/null || true
    done
    if [ -n "${PGBIN:-}" ] && [ -d "$tmp/pg" ]; then
        su postgres -s /bin/sh -c "$PGBIN/pg_ctl -D $tmp/pg -m immediate stop" >/dev/null 2>&1 || true
    fi
    [ -n "${SLURM_STOP:-}" ] && $SLURM_STOP >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT

need=()
command -v prometheus >/dev/null || need+=(prometheus)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "tools/test.sh: installing ${need[*]}"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    else
        echo "tools/test.sh: not root (or no apt-get): ${need[*]} missing; their tests are skipped"
    fi
fi

# Wait until a TCP port answers (bounded).
wait_port() {
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# A free loopback port.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Prometheus: scrapes two fixed loopback targets every second; the serve tests start the
# agent on them.
if command -v prometheus >/dev/null; then
    pport=$(free_port)
    t1=$(free_port)
    t2=$(free_port)
    mkdir -p "$tmp/prom"
    cat >"$tmp/prom/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: decompute
    static_configs:
      - targets: ["127.0.0.1:$t1", "127.0.0.1:$t2"]
EOF
    prometheus --config.file="$tmp/prom/prometheus.yml" --storage.tsdb.path="$tmp/prom/data" \
        --web.listen-address="127.0.0.1:$pport" >"$tmp/prom/log" 2>&1 &
    pids+=($!)
    if wait_port "$pport"; then
        export DECOMPUTE_TEST_PROMETHEUS="http://127.0.0.1:$pport"
        export DECOMPUTE_TEST_PROM_TARGETS="127.0.0.1:$t1,127.0.0.1:$t2"
    else
        echo "tools/test.sh: prometheus did not start:"; tail -5 "$tmp/prom/log"
    fi
fi

cargo test --all-targets "$@"
