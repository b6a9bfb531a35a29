#!/usr/bin/env bash
# Regenerate the PNGs in screenshots/ from the real program in a real terminal:
#
#     bash screenshots/generate.sh
#
# Builds `cargo build --release`, runs `target/release/idemtop demo` inside a private tmux
# server at a fixed size, drives it with `tmux send-keys`, captures each state with
# `tmux capture-pane -e` (ANSI colours kept) and renders the captures to PNG with
# screenshots/render.py (pyte + Pillow, DejaVu Sans Mono). The PNGs are replaced only when
# every capture succeeded. Installs what it needs when missing (tmux, fonts, PostgreSQL via
# apt-get as root; pyte and Pillow in a virtualenv under ~/.cache).
#
# Knobs (environment): COLS ROWS (terminal size, 120x36), SEED_ROWS (history rows, 400000),
# RATE (requests/s, 40), WARMUP (seconds of traffic before the dashboard shot, 30), INTERVAL
# (dashboard refresh in seconds, 1: one sparkline bar a second),
# KEEP_RAW=1 (keep the raw .ansi captures and print where), NO_BUILD=1 (skip the build and use
# the existing target/release/idemtop).
set -euo pipefail

COLS=${COLS:-120}
ROWS=${ROWS:-36}
SEED_ROWS=${SEED_ROWS:-400000}
RATE=${RATE:-40}
WARMUP=${WARMUP:-30}
INTERVAL=${INTERVAL:-1}
KEEP_RAW=${KEEP_RAW:-0}

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
FONT_DIR=/usr/share/fonts/truetype/dejavu
VENV=${XDG_CACHE_HOME:-$HOME/.cache}/idemtop-screenshots/venv

say() { printf 'screenshots: %s\n' "$*" >&2; }
die() { printf 'screenshots: error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------
# Prerequisites
# ---------------------------------------------------------------------------------------------
APT_UPDATED=0
apt_install() {
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        die "missing: $*; install it (Debian/Ubuntu: sudo apt-get install $*) and run again"
    fi
    if [ "$APT_UPDATED" = 0 ]; then
        say "apt-get update"
        apt-get update -qq >&2 || die "apt-get update failed"
        APT_UPDATED=1
    fi
    say "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2 \
        || die "apt-get install $* failed"
}

command -v cargo >/dev/null 2>&1 || die "cargo not found: install a Rust toolchain (rustup, Rust 1.85+)"
command -v tmux >/dev/null 2>&1 || apt_install tmux
command -v python3 >/dev/null 2>&1 || apt_install python3 python3-venv
[ -f "$FONT_DIR/DejaVuSansMono.ttf" ] && [ -f "$FONT_DIR/DejaVuSansMono-Bold.ttf" ] \
    || apt_install fonts-dejavu-core
[ -f "$FONT_DIR/DejaVuSansMono.ttf" ] || die "DejaVu Sans Mono not found in $FONT_DIR"

pg_bin_dir() {
    if [ -n "${PG_BIN:-}" ]; then echo "$PG_BIN"; return; fi
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1
}
if [ -z "$(pg_bin_dir)" ] || [ ! -x "$(pg_bin_dir)/initdb" ]; then
    apt_install postgresql
fi
PG_MAJOR=$(basename "$(dirname "$(pg_bin_dir)")")
if [ ! -f "/usr/lib/postgresql/$PG_MAJOR/lib/pg_cron.so" ] && [ -z "${PG_BIN:-}" ]; then
    # Optional: without it the activity screen shows how to enable pg_cron instead of the job.
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt_install "postgresql-$PG_MAJOR-cron" || true
    else
        say "note: pg_cron not installed (postgresql-$PG_MAJOR-cron); activity.png will say so"
    fi
fi

# Python with pyte and Pillow: the system one if it has them, else a cached virtualenv.
PY=python3
if ! python3 -c 'import pyte, PIL' >/dev/null 2>&1; then
    if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import pyte, PIL' >/dev/null 2>&1; then
        say "installing pyte and Pillow into $VENV"
        rm -rf "$VENV"
        mkdir -p "$(dirname "$VENV")"
        if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
            rm -rf "$VENV"
            apt_install python3-venv
            python3 -m venv "$VENV" || die "python3 -m venv failed"
        fi
        "$VENV/bin/pip" install -q --disable-pip-version-check pyte pillow >&2 \
            || die "pip install pyte pillow failed (needs PyPI)"
    fi
    PY=$VENV/bin/python
fi

# ---------------------------------------------------------------------------------------------
# Build
# ---------------------------------------------------------------------------------------------
if [ "${NO_BUILD:-0}" = 1 ]; then
    say "NO_BUILD=1: using the existing target/release/idemtop"
else
    say "cargo build --release"
    (cd "$ROOT" && cargo build --release) || die "cargo build --release failed"
fi
BIN=$ROOT/target/release/idemtop
[ -x "$BIN" ] || die "$BIN not found after the build"

# ---------------------------------------------------------------------------------------------
# tmux: a private server (own socket), so no other tmux session is touched
# ---------------------------------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/idemtop-shots.XXXXXX")
RAW=$WORK/raw
OUT=$WORK/png
mkdir -p "$RAW" "$OUT" "$WORK/config" # an empty config dir: the defaults, not your config.toml
T=(tmux -S "$WORK/tmux.sock" -f "$WORK/tmux.conf")
cat >"$WORK/tmux.conf" <<'EOF'
set -g status off
set -g default-terminal "tmux-256color"
set -g remain-on-exit on
set -g history-limit 2000
EOF

pane_dead() { [ "$("${T[@]}" display-message -p -t shots '#{pane_dead}' 2>/dev/null || echo 1)" = 1 ]; }
plain() { "${T[@]}" capture-pane -p -t shots 2>/dev/null || true; }

cleanup() {
    local rc=$?
    [ -z "${NAP_PID:-}" ] || kill "$NAP_PID" 2>/dev/null || true
    if "${T[@]}" has-session -t shots 2>/dev/null; then
        if ! pane_dead; then
            # Close any dialog, then quit the demo so it stops its server and removes its files.
            "${T[@]}" send-keys -t shots Escape 2>/dev/null || true
            sleep 0.4
            "${T[@]}" send-keys -t shots q 2>/dev/null || true
            for _ in $(seq 1 100); do pane_dead && break; sleep 0.2; done
        fi
        "${T[@]}" kill-server 2>/dev/null || true
    fi
    rm -f "$WORK/tmux.sock"
    if [ "$KEEP_RAW" = 1 ]; then
        say "raw captures kept in $RAW"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'say "interrupted: quitting the demo"; exit 130' INT TERM HUP
# A sleep that a signal interrupts (bash runs traps only between commands).
NAP_PID=
nap() { sleep "$1" & NAP_PID=$!; wait "$NAP_PID" || true; NAP_PID=; }

fail() {
    say "error: $*"
    say "the terminal showed (last lines):"
    "${T[@]}" capture-pane -p -S -60 -t shots 2>/dev/null | grep -v '^[[:space:]]*$' | tail -40 | sed 's/^/    | /' >&2 || true
    exit 1
}

# wait_for REGEX SECONDS: until the screen (plain text) matches.
wait_for() {
    local re=$1 secs=$2 i
    for i in $(seq 1 $((secs * 10))); do
        if plain | grep -Eq -- "$re"; then return 0; fi
        pane_dead && fail "idemtop exited while waiting for /$re/"
        sleep 0.1
    done
    fail "timed out after ${secs}s waiting for /$re/"
}
# wait_gone REGEX SECONDS: until the screen no longer matches.
wait_gone() {
    local re=$1 secs=$2 i
    for i in $(seq 1 $((secs * 10))); do
        if ! plain | grep -Eq -- "$re"; then return 0; fi
        sleep 0.1
    done
    fail "timed out after ${secs}s waiting for /$re/ to go away"
}
key() { "${T[@]}" send-keys -t shots "$@"; }
esc() { key Escape; sleep 0.4; } # a key right after Esc would be read as Alt+key
capture() { "${T[@]}" capture-pane -p -e -N -t shots >"$RAW/$1.ansi"; say "captured $1"; }

say "starting idemtop demo --seed-rows $SEED_ROWS --rate $RATE in tmux (${COLS}x${ROWS})"
"${T[@]}" new-session -d -s shots -x "$COLS" -y "$ROWS" \
    "cd '$ROOT' && exec env -u NO_COLOR XDG_CONFIG_HOME='$WORK/config' TERM=tmux-256color \
        '$BIN' --interval $INTERVAL demo --seed-rows $SEED_ROWS --rate $RATE"
SIZE=$("${T[@]}" display-message -p -t shots '#{pane_width}x#{pane_height}')
[ "$SIZE" = "${COLS}x${ROWS}" ] || fail "pane is $SIZE, wanted ${COLS}x${ROWS}"

# 1. dashboard, after some traffic so rates and sparklines have history
wait_for 'refreshed [0-9]{2}:[0-9]{2}' 600
say "dashboard is up; ${WARMUP}s of traffic"
nap "$WARMUP"
capture dashboard

# 2. help overlay (on the dashboard: its keys first)
key '?'
wait_for 'Keys \(' 10
sleep 0.5
capture help
key '?'
wait_gone 'Keys \(' 10

# 3. records, 4. a record's detail
key 2
wait_for ' Records · ' 10
wait_gone 'oading…' 30
sleep 1
capture records
key Enter
wait_for 'Payload · line' 15
wait_gone 'Loading…' 15
sleep 0.5
capture detail
esc
key 1
wait_for 'refreshed' 10
sleep 1

# 5. a cleanup in progress: c, y, then capture as soon as the gauge is part-way
key c
wait_for 'Confirm ' 10
key y
best=""
best_dist=1000
deadline=$((SECONDS + 600))
n=0
while [ $SECONDS -lt $deadline ]; do
    n=$((n + 1))
    f=$RAW/cleanup.$n.ansi
    "${T[@]}" capture-pane -p -e -N -t shots >"$f"
    pct=$(sed 's/\x1b\[[0-9;:]*m//g' "$f" | grep -Eo 'cleanup [0-9]+\.[0-9]%' | head -1 | grep -Eo '[0-9]+' | head -1 || true)
    if [ -n "$pct" ] && grep -q 'rows/s' <(sed 's/\x1b\[[0-9;:]*m//g' "$f"); then
        d=$((pct > 50 ? pct - 50 : 50 - pct))
        if [ "$pct" -gt 0 ] && [ "$pct" -lt 100 ] && [ $d -lt $best_dist ]; then
            best=$f
            best_dist=$d
        fi
        [ $d -le 15 ] && break # 35%..65%: good enough
    elif { [ -n "$best" ] || [ $n -gt 50 ]; } && ! sed 's/\x1b\[[0-9;:]*m//g' "$f" | grep -q ' Running '; then
        break # finished (or never showed progress)
    fi
    [ "$f" = "$best" ] || rm -f "$f"
    sleep 0.05
done
[ -n "$best" ] || fail "never caught the cleanup part-way (too fast? try a larger SEED_ROWS)"
cp "$best" "$RAW/cleanup.ansi"
say "captured cleanup (at $(sed 's/\x1b\[[0-9;:]*m//g' "$best" | grep -Eo 'cleanup [0-9.]+%' | head -1 | cut -d" " -f2))"
wait_gone ' Running ' 600

# 6. the activity log with the pg_cron panel; with pg_cron, schedule the cleanup job first (S, y)
key 5
wait_for 'Activity log' 10
wait_gone 'reading pg_cron…' 20
sleep 1
if plain | grep -q 'the cleanup job is not scheduled'; then
    key S
    wait_for 'Confirm ' 10
    key y
    wait_gone 'the cleanup job is not scheduled' 20
    sleep 1.5
fi
capture activity

# The demo's own server, for the two shots below: the throwaway cluster's directory is named
# after the process that owns it (the pane's process, idemtop itself).
PANE_PID=$("${T[@]}" display-message -p -t shots '#{pane_pid}')
DEMO_DATA=$(ls -d "${TMPDIR:-/tmp}"/idemtop-pg-"$PANE_PID"-*/data 2>/dev/null | head -1)
[ -n "$DEMO_DATA" ] && [ -f "$DEMO_DATA/postmaster.pid" ] \
    || fail "cannot find the demo's server directory (idemtop-pg-$PANE_PID-*)"
DEMO_PORT=$(sed -n 4p "$DEMO_DATA/postmaster.pid")
PSQL=$(pg_bin_dir)/psql
[ -x "$PSQL" ] || PSQL=psql

# 7. another session holds an ACCESS EXCLUSIVE lock: the header says LOCKED and who holds it
key 1
wait_for 'refreshed' 10
"$PSQL" -h 127.0.0.1 -p "$DEMO_PORT" -U postgres -d postgres -q \
    -c "SET application_name = 'migration-042'" \
    -c "BEGIN" -c "LOCK TABLE idempotency_records IN ACCESS EXCLUSIVE MODE" \
    -c "SELECT pg_sleep(25)" -c "COMMIT" >/dev/null 2>&1 &
LOCKER=$!
wait_for 'LOCKED' 20
sleep 3
capture locked
kill "$LOCKER" 2>/dev/null || true
wait "$LOCKER" 2>/dev/null || true
wait_gone 'LOCKED' 40

# 7b. a session idle in transaction holds the xmin horizon: the dashboard names it, with the
# dead rows it keeps and the C/T keys (psql reads the script from a pipe that stays open)
( printf '%s\n' "SET application_name = 'billing-worker';" \
      "BEGIN ISOLATION LEVEL REPEATABLE READ;" \
      "SELECT count(*) FROM idempotency_records;"
  sleep 40
  printf '%s\n' "COMMIT;" ) \
    | "$PSQL" -h 127.0.0.1 -p "$DEMO_PORT" -U postgres -d postgres -q >/dev/null 2>&1 &
HOLDER=$!
key r
wait_for 'xmin horizon' 30
sleep 3
capture horizon
kill "$HOLDER" 2>/dev/null || true
wait "$HOLDER" 2>/dev/null || true

# 7c. a fleet: a second idemtop in its own tmux window, on a config of four targets: the demo's
# table, two more databases on the same server with the guide's table and a backlog, and one
# target whose server is down. The Overview lists them worst first.
for db in orders billing; do
    "$PSQL" -h 127.0.0.1 -p "$DEMO_PORT" -U postgres -d postgres -q -c "CREATE DATABASE $db" >/dev/null \
        || fail "cannot create database $db"
    "$BIN" --database-url "postgres://postgres@127.0.0.1:$DEMO_PORT/$db" migrate run >/dev/null \
        || fail "cannot migrate database $db"
done
"$PSQL" -h 127.0.0.1 -p "$DEMO_PORT" -U postgres -d orders -q -c "
    INSERT INTO idempotency_records (request_id, operation, result_payload, status_code, created_at, expires_at)
    SELECT gen_random_uuid(), (ARRAY['checkout','refund','capture'])[1 + i % 3], '{\"ok\":true}', 200,
           now() - interval '30 hours' + i * interval '5 seconds', now() - interval '6 hours' + i * interval '5 seconds'
      FROM generate_series(1, 30000) i; ANALYZE idempotency_records" >/dev/null || fail "cannot seed orders"
"$PSQL" -h 127.0.0.1 -p "$DEMO_PORT" -U postgres -d billing -q -c "
    INSERT INTO idempotency_records (request_id, operation, result_payload, status_code, created_at, expires_at)
    SELECT gen_random_uuid(), 'invoice', '{\"ok\":true}', CASE WHEN i % 50 = 0 THEN 503 ELSE 201 END,
           now() - interval '2 hours' + i * interval '1 second', now() + interval '22 hours' + i * interval '1 second'
      FROM generate_series(1, 5000) i; ANALYZE idempotency_records" >/dev/null || fail "cannot seed billing"
cat >"$WORK/fleet.toml" <<TOML
[[target]]
name = "payments"
url = "postgres://postgres@127.0.0.1:$DEMO_PORT/postgres"
[[target]]
name = "orders"
url = "postgres://postgres@127.0.0.1:$DEMO_PORT/orders"
[[target]]
name = "billing"
url = "postgres://postgres@127.0.0.1:$DEMO_PORT/billing"
[[target]]
name = "ledger-eu"
url = "postgres://postgres@127.0.0.1:1/ledger"
TOML
"${T[@]}" new-window -t shots \
    "cd '$ROOT' && exec env -u NO_COLOR XDG_CONFIG_HOME='$WORK/config' TERM=tmux-256color \
        '$BIN' --interval $INTERVAL --config '$WORK/fleet.toml'"
wait_for 'ledger-eu' 30
wait_for 'billing' 30
sleep $((INTERVAL * 3))
capture overview
key q
for _ in $(seq 1 50); do pane_dead && break; sleep 0.2; done
"${T[@]}" kill-window -t shots 2>/dev/null || true
sleep 0.5

# 8. the server goes away: disconnected, retrying, the last figures kept and marked stale
DEMO_PID=$(head -1 "$DEMO_DATA/postmaster.pid")
kill -INT "$DEMO_PID" 2>/dev/null || fail "cannot stop the demo's server (pid $DEMO_PID)" # fast shutdown
wait_for 'disconnected' 30
sleep 3
capture disconnected

# Quit: the demo stops its server (already gone here) and removes its files.
key q
for _ in $(seq 1 150); do pane_dead && break; sleep 0.2; done
pane_dead || fail "idemtop did not exit after q"
plain | grep -q 'server stopped and its files removed' \
    || say "note: did not see the demo's 'server stopped' line (its server was stopped for disconnected.png)"

say "rendering"
"$PY" "$HERE/render.py" --cols "$COLS" --rows "$ROWS" --title "idemtop demo — ${COLS}×${ROWS}" \
    "$RAW/dashboard.ansi" "$OUT/dashboard.png" \
    "$RAW/cleanup.ansi" "$OUT/cleanup.png" \
    "$RAW/records.ansi" "$OUT/records.png" \
    "$RAW/detail.ansi" "$OUT/detail.png" \
    "$RAW/help.ansi" "$OUT/help.png" \
    "$RAW/activity.ansi" "$OUT/activity.png" \
    "$RAW/locked.ansi" "$OUT/locked.png" \
    "$RAW/horizon.ansi" "$OUT/horizon.png" \
    "$RAW/overview.ansi" "$OUT/overview.png" \
    "$RAW/disconnected.ansi" "$OUT/disconnected.png"
cp "$OUT"/*.png "$HERE"/
say "done: $(cd "$HERE" && ls ./*.png | tr '\n' ' ')"
