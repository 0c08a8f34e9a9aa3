#!/usr/bin/env bash
# The daemon alone, as installed: `smsgate run` (release build) with 8
# simulated modems found in its discovery directory. Prints its memory
# (VmRSS, VmHWM from /proc/PID/status) idle and under load, and its CPU
# while idle. See docs/benchmarks.md ("Scale").
#
#   bash bench/rss.sh                      # builds the release binary if missing
#   SMSGATE_BIN=path/to/smsgate bash bench/rss.sh
#   IDLE_SECS=60 MESSAGES=2000 SUBSCRIBERS=10 MODEMS=8 bash bench/rss.sh
#
# Needs socat (the bus is asked for its `stats` through it).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${SMSGATE_BIN:-target/release/smsgate}
IDLE_SECS=${IDLE_SECS:-60}
MESSAGES=${MESSAGES:-2000}
SUBSCRIBERS=${SUBSCRIBERS:-10}
MODEMS=${MODEMS:-8}
[ -x "$BIN" ] || cargo build --release --locked
command -v socat >/dev/null || { echo "bench/rss.sh needs socat" >&2; exit 2; }

dir=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT

sock="$dir/smsgate.sock"
cat >"$dir/smsgate.toml" <<EOF
[bus]
socket = "$sock"
[store]
path = "$dir/smsgate.db"
[discovery]
dir = "$dir/dev"
[privacy]
policy = "open"
EOF

"$BIN" sim --dir "$dir/dev" --modems "$MODEMS" >"$dir/sim.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -S "$dir/dev/sim.sock" ] && break; sleep 0.1; done
RUST_LOG=warn "$BIN" run --config "$dir/smsgate.toml" >"$dir/run.log" 2>&1 &
daemon=$!
pids+=($daemon)

ask() { printf '%s\n' "$1" | socat -t 5 - "UNIX-CONNECT:$sock" 2>/dev/null; }
field() { grep "^$1:" "/proc/$daemon/status" | awk '{print $2}'; }
# utime + stime of the daemon, in clock ticks (fields 14 and 15).
ticks() { awk '{print $14 + $15}' "/proc/$daemon/stat"; }
hz=$(getconf CLK_TCK)

ready=0
for _ in $(seq 300); do
    ready=$(ask '{"op":"modems"}' | grep -o '"state":"ready"' | wc -l || true)
    [ "$ready" -ge "$MODEMS" ] && break
    sleep 0.2
done
[ "$ready" -ge "$MODEMS" ] || { echo "only $ready of $MODEMS modems ready" >&2; cat "$dir/run.log" >&2; exit 1; }
threads=$(field Threads)

# Idle: let start-up work settle, then CPU over IDLE_SECS.
sleep 5
t0=$(ticks)
sleep "$IDLE_SECS"
t1=$(ticks)
idle_rss=$(field VmRSS)
idle_hwm=$(field VmHWM)

# Load: subscribers following every event, a batch through the bus.
# Each subscriber: socat runs the script below as its child (and stops it
# when killed), writing `subscribe` and keeping the connection open.
printf '#!/bin/sh\nprintf %s\n exec sleep 100000\n' "'{\"op\":\"subscribe\"}\\n'" >"$dir/sub.sh"
chmod +x "$dir/sub.sh"
for i in $(seq "$SUBSCRIBERS"); do
    socat -u EXEC:"$dir/sub.sh" "UNIX-CONNECT:$sock" >/dev/null 2>&1 &
    pids+=($!)
done
{
    echo "to,text"
    for i in $(seq "$MESSAGES"); do echo "+4915112345678,rss bench $i"; done
} >"$dir/batch.csv"
peak=0
l0=$(ticks)
start=$(date +%s.%N)
"$BIN" send --socket "$sock" --batch "$dir/batch.csv" >/dev/null 2>"$dir/batch.log" &
batch=$!
pids+=($batch)
while :; do
    rss=$(field VmRSS)
    [ "$rss" -gt "$peak" ] && peak=$rss
    if ! kill -0 "$batch" 2>/dev/null; then
        left=$(ask '{"op":"stats"}' | grep -o '"parts_\(queued\|sending\)":[0-9]*' | awk -F: '{s += $2} END {print s + 0}')
        [ "$left" -eq 0 ] && break
    fi
    sleep 0.2
done
elapsed=$(echo "$(date +%s.%N) - $start" | bc)
l1=$(ticks)
load_hwm=$(field VmHWM)
load_anon=$(field RssAnon)
load_file=$(field RssFile)

echo "smsgate run, $MODEMS simulated modems, $(nproc) CPUs, $threads threads, binary $BIN"
echo "| | VmRSS | VmHWM | CPU |"
echo "|---|---:|---:|---:|"
printf '| idle, %s s | %.1f MiB | %.1f MiB | %.1f ms (%.3f %% of a core) |\n' "$IDLE_SECS" \
    "$(echo "$idle_rss / 1024" | bc -l)" "$(echo "$idle_hwm / 1024" | bc -l)" \
    "$(echo "($t1 - $t0) * 1000 / $hz" | bc -l)" "$(echo "($t1 - $t0) * 100 / $hz / $IDLE_SECS" | bc -l)"
printf '| %s messages, %s subscribers, %.1f s | %.1f MiB (peak sampled) | %.1f MiB | %.0f µs/msg |\n' \
    "$MESSAGES" "$SUBSCRIBERS" "$elapsed" "$(echo "$peak / 1024" | bc -l)" \
    "$(echo "$load_hwm / 1024" | bc -l)" "$(echo "($l1 - $l0) * 1000000 / $hz / $MESSAGES" | bc -l)"
printf 'after the load: RssAnon %.1f MiB (heap, stacks), RssFile %.1f MiB (the binary, libraries, SQLite shared memory)\n' \
    "$(echo "$load_anon / 1024" | bc -l)" "$(echo "$load_file / 1024" | bc -l)"
