#!/usr/bin/env bash
# The cleanup lab: one cleanup at a time on a 10M-row copy of the guide's table, under 200
# single-row inserts a second from pgbench (its per-transaction log: latency from the scheduled
# start, no client runtime in between), each run on a fresh copy of the data directory (a few
# seconds instead of the bench's 90 s INSERT ... SELECT per copy). For exploring cleanup
# variants quickly; `idemtop bench` remains the measure of record (README.md, Performance).
#
#   contrib/cleanup-lab/lab.sh setup                      # build the data set once (~2.5 min)
#   contrib/cleanup-lab/lab.sh run NAME guide             # the guide's single DELETE
#   contrib/cleanup-lab/lab.sh run NAME idemtop [FLAGS]   # idemtop cleanup FLAGS (real binary)
#
# Two floors, no cleanup at all, for what any cleanup must cost the inserts at a given pace:
#   contrib/cleanup-lab/lab.sh run NAME wal BYTES CHUNK CONNS [BUSY]
#       BYTES of WAL (e.g. a sweep's 930000000) as logical messages of CHUNK bytes, each its
#       own synchronous commit, on CONNS connections, as fast as they go: the disk's share;
#       with BUSY backends busy on arithmetic meanwhile: both shares at once (a cleanup's
#       deletion CPU with none of its overhead, on processes of its own).
#   contrib/cleanup-lab/lab.sh run NAME cpu CONNS [SECONDS]
#       CONNS backends busy on arithmetic (no WAL, no I/O) for SECONDS (5): the CPU's share.
#
# Environment: PG_BIN (server binaries, default /usr/lib/postgresql/15/bin), IDEMTOP (default
# target/release/idemtop), LAB (directory, default /tmp/idemtop-lab: ~12 GB), ROWS (10000000).
# As root, the server runs as the `postgres` user. Prints one line per run: duration, rows/s,
# WAL, insert latency idle and during the cleanup, and the 12 slowest inserts (seconds after the
# cleanup started: latency ms) in $LAB/logs/NAME.slow.
set -euo pipefail
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
IDEMTOP=${IDEMTOP:-$ROOT/target/release/idemtop}
LAB=${LAB:-/tmp/idemtop-lab}
ROWS=${ROWS:-10000000}
PORT=5577
as_pg() { if [ "$(id -u)" = 0 ]; then su postgres -c "$*"; else bash -c "$*"; fi; }
psql_() { "$PG_BIN/psql" -h "$LAB" -p $PORT -U postgres -d postgres -qAt -v ON_ERROR_STOP=1 "$@"; }

setup() {
    mkdir -p "$LAB"
    [ "$(id -u)" = 0 ] && chown postgres "$LAB"
    as_pg "$PG_BIN/pg_ctl -D $LAB/base -w stop -m fast" >/dev/null 2>&1 || true
    rm -rf "$LAB/base"
    as_pg "$PG_BIN/initdb -D $LAB/base -A trust -U postgres" >/dev/null
    local mem_mb
    mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 / 4)}' /proc/meminfo)
    cat >>"$LAB/base/postgresql.conf" <<CONF
port = $PORT
unix_socket_directories = '$LAB'
listen_addresses = ''
shared_buffers = ${mem_mb}MB
max_wal_size = 4GB
min_wal_size = 256MB
checkpoint_timeout = 15min
fsync = on
synchronous_commit = on
full_page_writes = on
autovacuum = off
maintenance_work_mem = 256MB
shared_preload_libraries = 'pg_prewarm'
CONF
    as_pg "$PG_BIN/pg_ctl -D $LAB/base -l $LAB/base.log -w start" >/dev/null
    psql_ -f "$ROOT/migrations/045_create_idempotency_records.up.sql"
    psql_ -f "$ROOT/migrations/046_create_idempotency_cleanup_job.up.sql"
    psql_ -c "CREATE EXTENSION pg_prewarm"
    # created_at over 48 h in physical order, a 19.2 h TTL: ~60% expired; 416-byte payloads.
    psql_ <<SQL
INSERT INTO idempotency_records (request_id, operation, result_payload, status_code, created_at, expires_at)
SELECT gen_random_uuid(), 'op_' || (i % 12), repeat(md5(i::text), 13), 200,
       now() - interval '48 hours' + (i::float8 / $ROWS) * interval '48 hours',
       now() - interval '48 hours' + (i::float8 / $ROWS) * interval '48 hours' + interval '19.2 hours'
FROM generate_series(1, $ROWS) i;
VACUUM ANALYZE idempotency_records;
CHECKPOINT;
SQL
    psql_ -c "SELECT count(*) FILTER (WHERE expires_at < now()) AS expired, count(*) AS rows,
                     pg_size_pretty(pg_total_relation_size('idempotency_records')) FROM idempotency_records"
    as_pg "$PG_BIN/pg_ctl -D $LAB/base -w stop -m fast" >/dev/null
}

# CONNS backends busy on arithmetic (no WAL, no I/O) for SECONDS.
busy_backends() {
    echo "SELECT sum(i) FROM generate_series(1, 200000) i;" >"$LAB/cpu.sql"
    "$PG_BIN/pgbench" -h "$LAB" -p $PORT -U postgres -n -c "$1" -j "$1" -T "$2" \
        -f "$LAB/cpu.sql" postgres
}

run() {
    local name=$1 side=$2
    shift 2
    local run=$LAB/run logs=$LAB/logs/$name
    as_pg "$PG_BIN/pg_ctl -D $run -w stop -m immediate" >/dev/null 2>&1 || true
    rm -rf "$run"
    cp -a "$LAB/base" "$run"
    as_pg "$PG_BIN/pg_ctl -D $run -l $LAB/run.log -w start" >/dev/null
    # The bench's copies are in shared buffers when it cleans them up; so are these.
    psql_ -c "SELECT sum(pg_prewarm(oid)) FROM pg_class WHERE relname LIKE 'idempotency_records%' OR relname LIKE 'idx_idempotency%'" >/dev/null
    psql_ -c "CHECKPOINT"
    sync
    sleep 2
    mkdir -p "$logs"
    rm -f "$logs"/*
    cat >"$LAB/insert.sql" <<'SQL'
INSERT INTO idempotency_records (request_id, operation, result_payload, status_code, expires_at) VALUES (gen_random_uuid(), 'create_transaction', '{"transaction_id": "...", "amount": "100.50"}', 201, NOW() + INTERVAL '24 hours');
SQL
    (cd "$logs" && "$PG_BIN/pgbench" -h "$LAB" -p $PORT -U postgres -n -R 200 -T 22 -c 8 -j 2 \
        -f "$LAB/insert.sql" -l postgres >/dev/null 2>&1) &
    local bench=$!
    sleep 10
    local lsn0 t0 t1 out wal
    lsn0=$(psql_ -c "SELECT pg_current_wal_lsn()")
    t0=$(date +%s.%N)
    if [ "$side" = guide ]; then
        out=$(psql_ -c "SELECT * FROM cleanup_expired_idempotency_records()")
    elif [ "$side" = wal ]; then
        local bytes=$1 chunk=$2 conns=$3 busy=${4:-0} cpu=
        echo "SELECT pg_logical_emit_message(true, 'lab', repeat('x', $chunk));" >"$LAB/wal.sql"
        if [ "$busy" -gt 0 ]; then
            busy_backends "$busy" 60 >"$logs.cpu.err" 2>&1 &
            cpu=$!
        fi
        "$PG_BIN/pgbench" -h "$LAB" -p $PORT -U postgres -n -c "$conns" -j "$conns" \
            -t $((bytes / chunk / conns)) -f "$LAB/wal.sql" postgres >"$logs.err" 2>&1
        if [ -n "$cpu" ]; then
            kill "$cpu" 2>/dev/null || true
            wait "$cpu" 2>/dev/null || true
        fi
        out="0 wal floor: $chunk-byte commits on $conns connections, $busy busy backends"
    elif [ "$side" = cpu ]; then
        local conns=$1 secs=${2:-5}
        busy_backends "$conns" "$secs" >"$logs.err" 2>&1
        out="0 cpu floor: $conns busy backends"
    else
        out=$(PGHOST=$LAB PGPORT=$PORT PGUSER=postgres PGDATABASE=postgres \
            "$IDEMTOP" cleanup --format=json "$@" 2>"$logs.err" |
            python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["deleted"], d.get("batches"), d.get("method"), d.get("wal_compression"), d.get("sweep_connections"))')
    fi
    t1=$(date +%s.%N)
    wal=$(psql_ -c "SELECT pg_size_pretty(pg_wal_lsn_diff(pg_current_wal_lsn(), '$lsn0'))")
    wait $bench || true
    as_pg "$PG_BIN/pg_ctl -D $run -w stop -m fast" >/dev/null
    python3 - "$t0" "$t1" "$name" "$out" "$wal" "$logs" <<'PY'
import glob, sys
t0, t1, name, out, wal, logs = float(sys.argv[1]), float(sys.argv[2]), *sys.argv[3:7]
rows = []
for f in glob.glob(f"{logs}/pgbench_log*"):
    for line in open(f):
        p = line.split()
        # client, transaction, time (us), script, end epoch s, end us, schedule lag (us)
        start = int(p[4]) + int(p[5]) / 1e6 - int(p[2]) / 1e6
        rows.append((start, (int(p[2]) + (int(p[6]) if len(p) > 6 else 0)) / 1000))
rows.sort()
def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")
idle = [l for s, l in rows if rows[0][0] + 2 <= s <= t0 - 0.5]
during = [l for s, l in rows if t0 <= s <= t1]
slow = sorted(((l, s - t0) for s, l in rows if t0 <= s <= t1), reverse=True)[:12]
open(f"{logs}.slow", "w").write(" ".join(f"{o:.2f}s:{l:.1f}" for l, o in sorted(slow, key=lambda x: x[1])) + "\n")
deleted = int(out.split()[0]) if out.split() and out.split()[0].isdigit() else 0
secs = t1 - t0
print(f"{name:24s} {secs:6.2f} s {deleted / secs:9.0f} rows/s  WAL {wal:>8s}  idle p50/p99 {pct(idle, .5):.2f}/{pct(idle, .99):.2f} ms"
      f"  during p50/p99/max {pct(during, .5):.2f}/{pct(during, .99):.2f}/{max(during, default=0):.2f} ms  n={len(during)}"
      f"  p99 {pct(during, .99) / pct(idle, .99):.1f}x idle  [{out}]")
PY
}

case "${1:-}" in
setup) setup ;;
run)
    shift
    [ $# -ge 2 ] || { echo "usage: $0 run NAME guide|idemtop [idemtop cleanup flags] | wal BYTES CHUNK CONNS [BUSY] | cpu CONNS [SECONDS]" >&2; exit 2; }
    run "$@"
    ;;
*)
    echo "usage: $0 setup | run NAME guide|idemtop [idemtop cleanup flags] | run NAME wal BYTES CHUNK CONNS [BUSY] | run NAME cpu CONNS [SECONDS]" >&2
    exit 2
    ;;
esac
