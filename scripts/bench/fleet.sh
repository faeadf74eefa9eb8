# shellcheck shell=bash
# The fleet at scale (docs/redis.md, "The fleet"): BENCH_FLEET simulated
# reader processes (2000) each report every 5 s, as the readers do (one
# pipelined ZADD, SET PX, ZREMRANGEBYSCORE, a report of the readers'
# shape), to a private redis-server. Measured: that server's CPU (its
# /proc utime+stime over BENCH_FLEET_SECS, as a share of one core), and
# `cutover status` and `cutover fleet` (median of 20 runs each, wall
# clock) with those processes reporting. Writes fleet.tsv in $WORK
# (report.py's "The fleet at scale"). Sourced by run.sh; also runs alone,
# printing that section:
#
#   bash scripts/bench/fleet.sh
#
# The simulator is Ruby with Debian's redis gem, as the Rails reader uses.

# FLEET_SIM MODE PORT APP N INTERVAL SECS: N processes, each sending every
# INTERVAL s for SECS s, paced evenly; MODE "report" sends the readers'
# report, "ping" a lone PING (the floor: the same rate of round trips with
# nothing in them). Prints how many it sent.
FLEET_SIM='
require "redis"
require "json"
mode, port, app, n, interval, secs = ARGV[0], ARGV[1].to_i, ARGV[2], ARGV[3].to_i, ARGV[4].to_f, ARGV[5].to_f
r = Redis.new(host: "127.0.0.1", port: port)
fleet = "cutover:{#{app}}:fleet"
now = -> { Process.clock_gettime(Process::CLOCK_REALTIME, :millisecond) }
start = Process.clock_gettime(Process::CLOCK_MONOTONIC)
sent = 0
loop do
  elapsed = Process.clock_gettime(Process::CLOCK_MONOTONIC) - start
  break if elapsed >= secs
  # Send number `sent` is due at (sent / n) * interval.
  due = (sent.to_f / n) * interval
  if due > elapsed
    sleep(due - elapsed)
    next
  end
  if mode == "ping"
    r.ping
  else
    pid = 10_000 + (sent % n)
    at = now.()
    id = "web-#{pid / 100}:#{pid}"
    report = JSON.generate("v" => 1, "id" => id, "host" => "web-#{pid / 100}", "pid" => pid, "kind" => "rails",
                           "reader" => "ruby/0.1.0", "release" => "0f1e2d3c4b5a6978", "since" => at - 60_000,
                           "source" => "pubsub", "heartbeat" => interval.to_i, "at" => at, "started" => at - 3_600_000)
    r.pipelined do |p|
      p.zadd(fleet, at, id)
      p.set("#{fleet}:#{id}", report, px: 600_000)
      p.zremrangebyscore(fleet, "-inf", "(#{at - 600_000}")
    end
  end
  sent += 1
end
puts sent
'

# cpu_ticks PID: utime + stime of a process, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# median_ms CMD...: the median wall time of 20 runs, in milliseconds.
median_ms() {
  local i t0 t1 times=()
  for i in $(seq 20); do
    t0=$(date +%s%N)
    "$@" >/dev/null
    t1=$(date +%s%N)
    times+=($(((t1 - t0) / 1000000)))
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

fleet_at_scale() {
  local n=${BENCH_FLEET:-2000} secs=${BENCH_FLEET_SECS:-30} interval=5
  local port dir pid app="bench-fleet" bin="${CUTOVER_BIN:-$CUTOVER}"
  log "fleet: $n simulated processes reporting every ${interval}s for ${secs}s"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  dir=$(mktemp -d)
  DATA_DIRS+=("$dir")
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" >"$dir/redis.log" 2>&1 &
  pid=$!
  SERVER_PIDS+=("$pid")
  for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
  # What bounds it: the same rate of round trips with nothing in them.
  local ping0 ping_pct t0 t1
  ping0=$(cpu_ticks "$pid")
  t0=$(date +%s%N)
  ruby -e "$FLEET_SIM" ping "$port" "$app" "$n" "$interval" "$secs" >/dev/null
  t1=$(date +%s%N)
  ping_pct=$(awk -v t="$(($(cpu_ticks "$pid") - ping0))" -v c="$(getconf CLK_TCK)" -v w="$(((t1 - t0) / 1000000))" \
    'BEGIN {printf "%.2f", 100 * t / c / (w / 1000)}')
  # A first round fills the fleet; then the measured window.
  ruby -e "$FLEET_SIM" report "$port" "$app" "$n" "$interval" "$interval" >/dev/null
  local ticks0 ticks1 sent clk
  clk=$(getconf CLK_TCK)
  ticks0=$(cpu_ticks "$pid")
  t0=$(date +%s%N)
  sent=$(ruby -e "$FLEET_SIM" report "$port" "$app" "$n" "$interval" "$secs")
  t1=$(date +%s%N)
  ticks1=$(cpu_ticks "$pid")
  local wall_s cpu_pct members status_ms fleet_ms
  wall_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", (b - a) / 1e9}')
  cpu_pct=$(awk -v t="$((ticks1 - ticks0))" -v c="$clk" -v w="$wall_s" 'BEGIN {printf "%.2f", 100 * t / c / w}')
  members=$(redis-cli -p "$port" zcard "cutover:{$app}:fleet")
  local env=(env -i PATH="$PATH" HOME="$HOME" CUTOVER_APP="$app" REDIS_URL="redis://127.0.0.1:$port")
  # Keep the fleet live while status is timed: the simulator runs on.
  ruby -e "$FLEET_SIM" report "$port" "$app" "$n" "$interval" 600 >/dev/null &
  local sim=$!
  status_ms=$(median_ms "${env[@]}" "$bin" status --json)
  fleet_ms=$(median_ms "${env[@]}" "$bin" fleet --json)
  local live
  live=$("${env[@]}" "$bin" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["fleet"]["processes"])')
  kill "$sim" 2>/dev/null || true
  wait "$sim" 2>/dev/null || true
  {
    kv processes "$n"
    kv interval_s "$interval"
    kv window_s "$wall_s"
    kv reports "$sent"
    kv members "$members"
    kv live "$live"
    kv redis_cpu_pct "$cpu_pct"
    kv ping_cpu_pct "$ping_pct"
    kv status_ms "$status_ms"
    kv fleet_ms "$fleet_ms"
  } >"$WORK/fleet.tsv"
  stop_pid "$pid"
}

# Run alone: its own Redis, the release build, the section on stdout.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
  ROOT="$(cd "$HERE/../.." && pwd)"
  log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
  kv() { printf '%s\t%s\n' "$1" "$2"; }
  stop_pid() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
  SERVER_PIDS=()
  DATA_DIRS=()
  WORK=$(mktemp -d)
  trap 'for p in "${SERVER_PIDS[@]+"${SERVER_PIDS[@]}"}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK" "${DATA_DIRS[@]+"${DATA_DIRS[@]}"}"' EXIT
  # Where `cargo build --release` puts it (CARGO_TARGET_DIR moves it), as in config.sh.
  CUTOVER="${CARGO_TARGET_DIR:-$ROOT/target}/release/cutover"
  [[ -x "${CUTOVER_BIN:-$CUTOVER}" ]] || (cd "$ROOT" && cargo build --release --locked)
  fleet_at_scale
  python3 "$HERE/report.py" --fleet "$WORK"
fi
