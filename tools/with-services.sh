#!/usr/bin/env bash
# Runs a command beside throwaway services. As root it installs what is missing (Debian's
# prometheus, postgresql, slurm-wlm and munge, chromium: one `apt-get update`, then
# `apt-get install -y`), starts throwaway instances (data, config and sockets in a
# temporary directory, loopback only), runs the command with their addresses in the
# environment (DECOMPUTE_TEST_*), and stops them. Without root, or when a package cannot be
# had, what needs it is skipped. tools/test.sh runs the tests this way.
#
#   tools/with-services.sh COMMAND [ARGS...]
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
    if [ -n "${PGBOUNCER_PID_FILE:-}" ] && [ -f "$PGBOUNCER_PID_FILE" ]; then
        kill "$(cat "$PGBOUNCER_PID_FILE")" 2>/dev/null || true
    fi
    if [ -n "${PGDATA_DIR:-}" ]; then
        if [ "$(id -u)" = 0 ]; then
            su postgres -s /bin/sh -c "$PGBIN/pg_ctl -D $PGDATA_DIR -m immediate stop" >/dev/null 2>&1 || true
        else
            "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -m immediate stop >/dev/null 2>&1 || true
        fi
    fi
    [ -n "${SLURM_STOP:-}" ] && $SLURM_STOP >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT
trap "exit 130" INT TERM

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

need=()
command -v prometheus >/dev/null || need+=(prometheus)
[ -n "$(pg_bin)" ] || need+=(postgresql)
command -v openssl >/dev/null || need+=(openssl)
chromium_bin() { command -v chromium || command -v chromium-browser || true; }
[ -n "$(chromium_bin)" ] || need+=(chromium fonts-dejavu-core)
command -v slurmctld >/dev/null || need+=(slurm-wlm)
command -v munged >/dev/null || need+=(munge)
command -v pgbouncer >/dev/null || need+=(pgbouncer)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "tools/with-services.sh: installing ${need[*]}"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    else
        echo "tools/with-services.sh: not root (or no apt-get): ${need[*]} missing; their tests are skipped"
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
        echo "tools/with-services.sh: prometheus did not start:"; tail -5 "$tmp/prom/log"
    fi
fi

# PostgreSQL: a throwaway cluster on loopback (data, config and socket in $tmp/pg), trust
# for the test user, one role that only TLS may use (self-signed certificate for 127.0.0.1),
# and one that must give a password.
PGBIN=$(pg_bin)
if [ -n "$PGBIN" ] && command -v openssl >/dev/null; then
    pg="$tmp/pg"
    pgport=$(free_port)
    mkdir -p "$pg"
    if [ "$(id -u)" = 0 ]; then
        chown postgres "$pg"
        chmod 755 "$tmp"
        as_pg() { su postgres -s /bin/sh -c "$*"; }
    else
        as_pg() { sh -c "$*"; }
    fi
    as_pg "$PGBIN/initdb -D $pg/data -U decompute --auth=trust -E UTF8 --no-sync" >"$tmp/pg.log" 2>&1
    # A throwaway CA, and a server certificate for 127.0.0.1 signed by it (a leaf, as
    # WebPKI wants, not the CA itself).
    openssl req -x509 -newkey rsa:2048 -nodes -days 3 -subj "/CN=decompute test CA" \
        -keyout "$pg/ca.key" -out "$pg/ca.crt" >>"$tmp/pg.log" 2>&1
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
        -keyout "$pg/data/server.key" -out "$pg/server.csr" >>"$tmp/pg.log" 2>&1
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$pg/ext.cnf"
    openssl x509 -req -in "$pg/server.csr" -CA "$pg/ca.crt" -CAkey "$pg/ca.key" -CAcreateserial \
        -days 3 -extfile "$pg/ext.cnf" -out "$pg/data/server.crt" >>"$tmp/pg.log" 2>&1
    chmod 600 "$pg/data/server.key"
    if [ "$(id -u)" = 0 ]; then chown postgres "$pg/data/server.key" "$pg/data/server.crt"; fi
    {
        echo "listen_addresses = '127.0.0.1'"
        echo "port = $pgport"
        echo "unix_socket_directories = '$pg'"
        echo "ssl = on"
        echo "fsync = off"
        echo "max_connections = 200"
    } >>"$pg/data/postgresql.conf"
    {
        echo "local all all trust"
        echo "hostnossl all tlsonly 127.0.0.1/32 reject"
        echo "hostssl all tlsonly 127.0.0.1/32 trust"
        echo "host all pwuser 127.0.0.1/32 scram-sha-256"
        echo "host all all 127.0.0.1/32 trust"
    } >"$pg/data/pg_hba.conf"
    if as_pg "$PGBIN/pg_ctl -D $pg/data -l $pg/log -w start" >>"$tmp/pg.log" 2>&1; then
        PGDATA_DIR="$pg/data"
        "$PGBIN/psql" -h 127.0.0.1 -p "$pgport" -U decompute -d postgres -q \
            -c "CREATE ROLE tlsonly LOGIN SUPERUSER" \
            -c "CREATE ROLE pwuser LOGIN SUPERUSER PASSWORD 'pw-secret'" >>"$tmp/pg.log" 2>&1
        export DECOMPUTE_TEST_POSTGRES="postgres://decompute@127.0.0.1:$pgport/postgres"
        export DECOMPUTE_TEST_POSTGRES_CA="$pg/ca.crt"
        export DECOMPUTE_TEST_PGCTL="$PGBIN/pg_ctl -D $pg/data"
        export DECOMPUTE_TEST_PGLOG="$pg/log"
        # PgBouncer in transaction mode in front of it (pool 20, any database name), as a
        # fleet would run it: the ledger's tests run through it too.
        if command -v pgbouncer >/dev/null; then
            bport=$(free_port)
            cat >"$pg/pgbouncer.ini" <<EOF
[databases]
* = host=127.0.0.1 port=$pgport
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $bport
unix_socket_dir = $pg
auth_type = trust
auth_file = $pg/userlist.txt
pool_mode = transaction
default_pool_size = 20
max_client_conn = 2000
ignore_startup_parameters = extra_float_digits,options
logfile = $pg/pgbouncer.log
pidfile = $pg/pgbouncer.pid
EOF
            printf '"decompute" ""\n' >"$pg/userlist.txt"
            if [ "$(id -u)" = 0 ]; then chown postgres "$pg/pgbouncer.ini" "$pg/userlist.txt"; fi
            if as_pg "ulimit -n 8192 2>/dev/null; pgbouncer -d -q $pg/pgbouncer.ini" >>"$tmp/pg.log" 2>&1 && wait_port "$bport"; then
                PGBOUNCER_PID_FILE="$pg/pgbouncer.pid"
                export DECOMPUTE_TEST_PGBOUNCER="postgres://decompute@127.0.0.1:$bport"
            else
                echo "tools/with-services.sh: pgbouncer did not start:"; tail -5 "$pg/pgbouncer.log" 2>/dev/null
            fi
        fi
    else
        echo "tools/with-services.sh: postgresql did not start:"; tail -5 "$tmp/pg.log" "$pg/log" 2>/dev/null
    fi
fi
# Slurm: a one-node cluster (munged, slurmctld, slurmd) with its config, state, logs and
# sockets in $tmp/slurm, proctrack/linuxproc, a debug and a flex partition. As root only
# (slurmd must start job steps as their users). Tests get its config file.
stop_slurm() {
    if [ -n "${SLURM_DIR:-}" ]; then
        SLURM_CONF="$SLURM_DIR/slurm.conf" scancel --full --quiet --user=root 2>/dev/null || true
        for f in slurmd slurmctld munged; do
            [ -f "$SLURM_DIR/$f.pid" ] || continue
            p=$(cat "$SLURM_DIR/$f.pid")
            kill "$p" 2>/dev/null || continue
            for _ in $(seq 1 50); do
                kill -0 "$p" 2>/dev/null || break
                sleep 0.1
            done
            kill -9 "$p" 2>/dev/null || true
        done
    fi
}
if [ "$(id -u)" = 0 ] && command -v slurmctld >/dev/null && command -v munged >/dev/null; then
    sl="$tmp/slurm"
    mkdir -p "$sl/state" "$sl/spool" "$sl/log"
    chmod 755 "$tmp"
    if command -v mungekey >/dev/null; then
        mungekey -c -k "$sl/munge.key" -b 1024 >/dev/null 2>&1
    else
        dd if=/dev/urandom of="$sl/munge.key" bs=1 count=1024 2>/dev/null
    fi
    chmod 600 "$sl/munge.key"
    munged --force --key-file="$sl/munge.key" --socket="$sl/munge.sock" \
        --pid-file="$sl/munged.pid" --log-file="$sl/munged.log" --seed-file="$sl/munge.seed" \
        >"$sl/log/munged.out" 2>&1 || true
    node=$(hostname -s)
    cat >"$sl/slurm.conf" <<EOF
ClusterName=decompute-test
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket=$sl/munge.sock
CredType=cred/munge
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
StateSaveLocation=$sl/state
SlurmdSpoolDir=$sl/spool
SlurmctldPidFile=$sl/slurmctld.pid
SlurmdPidFile=$sl/slurmd.pid
SlurmctldLogFile=$sl/log/slurmctld.log
SlurmdLogFile=$sl/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
MpiDefault=none
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MinJobAge=600
MaxJobCount=20000
SlurmdParameters=config_overrides
NodeName=$node NodeAddr=127.0.0.1 CPUs=${DECOMPUTE_SLURM_CPUS:-$(nproc)} RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
PartitionName=flex Nodes=ALL MaxTime=INFINITE State=UP
EOF
    SLURM_DIR="$sl"
    SLURM_STOP=stop_slurm
    if SLURM_CONF="$sl/slurm.conf" slurmctld -i >>"$sl/log/start" 2>&1 \
        && SLURM_CONF="$sl/slurm.conf" slurmd >>"$sl/log/start" 2>&1; then
        up=""
        for _ in $(seq 1 100); do
            if SLURM_CONF="$sl/slurm.conf" sinfo -h -o %T 2>/dev/null | grep -q idle; then
                up=1
                break
            fi
            sleep 0.1
        done
        if [ -n "$up" ]; then
            export DECOMPUTE_TEST_SLURM_CONF="$sl/slurm.conf"
        else
            echo "tools/with-services.sh: slurm did not come up:"; tail -5 "$sl/log/slurmctld.log" "$sl/log/slurmd.log" 2>/dev/null
        fi
    else
        echo "tools/with-services.sh: slurm did not start:"; tail -5 "$sl/log/start"
    fi
fi

# Chromium: the report tests render pages headless (each run in its own profile directory).
if [ -n "$(chromium_bin)" ]; then
    export DECOMPUTE_TEST_CHROMIUM="$(chromium_bin)"
fi

"$@"
