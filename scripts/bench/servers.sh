# shellcheck shell=bash
# The local S3 servers: starts s3s-fs (a temp data dir, fixed keys) and
# moto_server on free 127.0.0.1 ports (both stopped by the EXIT trap), and
# either of them behind scripts/bench/latency_proxy.py as a server of its own
# (start_far); probes them for the S3 features the clients use, creates and
# drops buckets, reads the CPU time a server and the whole machine have used,
# and waits for the machine to go idle before a run. Sourced by run.sh.

# Per server id (s3s, moto, and s3s20, moto20... for one behind the proxy):
# its endpoint, the S3 server's process and data directory (those of the
# server behind the proxy, so that its CPU is counted and its data directory
# reachable), the server it stands for, and the proxy's process (if any).
declare -A EP PID DATA ORIGIN PROXY

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_port() {
  local port=$1 pid=$2 name=$3
  for _ in $(seq 150); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    kill -0 "$pid" 2>/dev/null || die "$name exited at start; see its log in ${LOGS#"$ROOT"/}"
    sleep 0.1
  done
  die "$name did not listen on 127.0.0.1:$port within 15 s"
}

# start_server SERVER NAME PORT COMMAND...: runs COMMAND (which listens on
# 127.0.0.1:PORT) in the background, output to $LOGS/NAME.log, stopped on
# exit; waits until it listens and sets PID[SERVER] and EP[SERVER].
start_server() {
  local server=$1 name=$2 port=$3
  shift 3
  "$@" >"$LOGS/$name.log" 2>&1 &
  PID[$server]=$!
  SERVER_PIDS+=("${PID[$server]}")
  wait_port "$port" "${PID[$server]}" "$name"
  EP[$server]="http://127.0.0.1:$port"
}

start_s3s() {
  local port data
  port=$(free_port)
  data=$(mktemp -d "$BENCH_TMP/bench-s3s.XXXXXX")
  DATA_DIRS+=("$data")
  DATA[s3s]="$data"
  ORIGIN[s3s]=s3s
  start_server s3s s3s-fs "$port" \
    "$S3S_BIN" --host 127.0.0.1 --port "$port" --access-key "$ACCESS_KEY" --secret-key "$SECRET_KEY" "$data"
  log "s3s-fs $S3S_VERSION on ${EP[s3s]} (data ${data})"
}

start_moto() {
  [[ -n "${EP[moto]:-}" ]] && return 0
  install_moto
  local port
  port=$(free_port)
  start_server moto moto "$port" "$MOTO_VENV/bin/moto_server" -H 127.0.0.1 -p "$port"
  ORIGIN[moto]=moto
  log "moto_server $MOTO_VERSION on ${EP[moto]}"
}

# start_proxy NAME PORT RTT_MS: scripts/bench/latency_proxy.py on a free port
# in front of 127.0.0.1:PORT, adding RTT_MS to every round trip (output to
# $LOGS/NAME.log, stopped on exit); sets PROXY_PORT and PROXY_PID.
start_proxy() {
  local name=$1 target=$2 rtt=$3
  PROXY_PORT=$(free_port)
  python3 "$ROOT/scripts/bench/latency_proxy.py" "$PROXY_PORT" "127.0.0.1:$target" "$rtt" >"$LOGS/$name.log" 2>&1 &
  PROXY_PID=$!
  SERVER_PIDS+=("$PROXY_PID")
  wait_port "$PROXY_PORT" "$PROXY_PID" "$name"
}

# start_far SERVER RTT_MS: the server id SERVER<RTT_MS>, SERVER (already
# running) behind latency_proxy.py at RTT_MS, as far away as that; once.
start_far() {
  local origin=$1 rtt=$2 sv="$1$2"
  [[ -n "${EP[$sv]:-}" ]] && return 0
  start_proxy "latency-proxy-$sv" "${EP[$origin]##*:}" "$rtt"
  EP[$sv]="http://127.0.0.1:$PROXY_PORT"
  PID[$sv]=${PID[$origin]}
  DATA[$sv]=${DATA[$origin]:-}
  ORIGIN[$sv]=$origin
  PROXY[$sv]=$PROXY_PID
  log "$sv: $origin behind latency_proxy.py at a $rtt ms round trip on ${EP[$sv]}"
}

# probe SERVER: scripts/bench/probe_s3.py on a bucket "probe" of SERVER, its
# findings in probe-SERVER.json and its report in $LOGS/probe-SERVER.txt.
probe() {
  make_bucket "$1" probe
  "$VENV/bin/python" "$ROOT/scripts/bench/probe_s3.py" "${EP[$1]}" probe "$WORK/probe-$1.json" \
    >"$LOGS/probe-$1.txt" 2>&1
}

# Bucket chores go straight to the server, not through its proxy: they are not measured.
make_bucket() { "$S5CMD" --endpoint-url "${EP[${ORIGIN[$1]}]}" mb "s3://$2" >/dev/null || die "cannot create bucket $2 on $1"; }

count_objects() {
  # Objects under packs/ (release records live outside it).
  "$S5CMD" --endpoint-url "${EP[${ORIGIN[$1]}]}" ls "s3://$2/packs/*" 2>/dev/null | wc -l
}

drop_bucket() {
  local server=$1 bucket=$2
  if [[ ${ORIGIN[$server]} == s3s ]]; then
    # s3s-fs keeps a bucket as a directory plus two sidecar files per object
    # in its root; deleting them directly is much faster than through S3.
    local enc
    enc=$(printf %s "$bucket" | base64 -w0 | tr '+/' '-_' | tr -d '=')
    rm -rf "${DATA[s3s]:?}/$bucket"
    find "${DATA[s3s]}" -maxdepth 1 -name ".bucket-$enc.*" -delete
  fi
  # moto keeps objects in memory until it stops; nothing to do.
}

# CPU seconds a server process has used so far.
server_cpu() {
  local pid=$1
  awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f\n", ($12 + $13) / hz }' "/proc/$pid/stat"
}

# CPU seconds all processes on the machine have used so far.
machine_cpu() {
  awk -v hz="$(getconf CLK_TCK)" '/^cpu / { printf "%.2f\n", ($2 + $3 + $4 + $7 + $8 + $9) / hz }' /proc/stat
}

# Wait (bounded) until the machine is mostly idle, so that someone else's
# build does not land in the timings.
wait_idle() {
  local waited=0 a b busy
  while :; do
    a=$(machine_cpu); sleep 2; b=$(machine_cpu)
    busy=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", (b - a) / 2 }')
    if awk -v x="$busy" 'BEGIN { exit !(x < 0.25) }'; then
      [[ $waited -gt 0 ]] && log "machine idle after ${waited}s"
      return 0
    fi
    if [[ $waited -ge $IDLE_WAIT ]]; then
      log "WARNING: other processes still use ${busy} cores after ${waited}s; measuring anyway"
      echo "$busy" >>"$WORK/busy.txt"
      return 0
    fi
    [[ $waited -eq 0 ]] && log "other processes use ${busy} of $(nproc) cores; waiting up to ${IDLE_WAIT}s for them"
    waited=$((waited + 2))
  done
}
