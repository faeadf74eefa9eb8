# shellcheck shell=bash
# Rollback / activate of a 5,000-file release (switch_costs): at each
# BENCH_LATENCY round trip to S3 and each BENCH_CHECK_CONCURRENCY, on s3s-fs
# and (if it runs) moto_server, whose listings carry ETags as AWS S3's do; at
# each BENCH_REDIS_LATENCY round trip to Redis beside 0 ms, on s3s-fs; and with
# BENCH_OTHERS other objects under the prefix, on s3s-fs; BENCH_ROLLBACK_RUNS
# times each. Then the Redis commands one rollback and one activate send
# (MONITOR on db 15), and the rollback refusing (exit 4) once an object of its
# release is gone. Writes rollback.tsv and redis-{rollback,activate}.tsv.
# Sourced by run.sh.

# redis_commands OUT: runs CMD under redis-cli MONITOR and writes to OUT the
# commands it sent to db 15 with their counts.
redis_commands() {
  local out=$1 mon="$LOGS/monitor.txt" pid
  : >"$mon"
  redis-cli monitor >"$mon" 2>/dev/null &
  pid=$!
  until grep -q '^OK' "$mon"; do kill -0 "$pid" 2>/dev/null || die "redis-cli monitor exited"; sleep 0.05; done
  "${CMD[@]}" >/dev/null 2>>"$LOGS/monitor.err" || die "cutover failed under MONITOR: ${CMD[*]}"
  redis-cli -n 15 echo bench-monitor-end >/dev/null
  until grep -q bench-monitor-end "$mon"; do sleep 0.05; done
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  # Commands this client sent to db 15 (not those its Lua scripts ran).
  grep -F '[15 127.0.0.1:' "$mon" | grep -v bench-monitor-end \
    | awk '{
        gsub(/"/, ""); c = toupper($4)
        # Name each script call by the first key it touches.
        if (c == "EVALSHA" || c == "EVAL") {
          if ($6 == 0) c = c "(probe)"; else { k = $7; sub(/^.*:/, "", k); c = c "(" k ")" }
        }
        print c
      }' | sort | uniq -c | awk '{ print $2 "\t" $1 }' >"$out"
}

RB_BUCKET=rollback
# Per S3 server (s3s, moto): the first release (the build) and the second
# (its 1% rebuild, live), in that server's rollback bucket.
declare -A RB_A RB_B
# The Redis URL the rollback commands use ("": $REDIS_URL).
RB_REDIS=""

# rb_cmd SERVER ARGS...: sets CMD to a cutover command on SERVER's rollback
# bucket (through its proxy for s3s20 and the like). Each S3 server has an
# app of its own: an app's release records live in one bucket.
rb_cmd() {
  local sv=$1 app=bench-rb
  shift
  [[ ${ORIGIN[$sv]} == s3s ]] || app="bench-rb-${ORIGIN[$sv]}"
  CMD=("$CUTOVER" "$@" --app "$app" --bucket "$RB_BUCKET" --prefix packs --cdn-url https://cdn.example.com
    --s3-endpoint "${EP[$sv]}" --redis-url "${RB_REDIS:-$REDIS_URL}" --quiet)
}

# rb_release SERVER DIR: deploys DIR (activating it) and prints the release id.
rb_release() {
  rb_cmd "$1" deploy "$2" --json
  "${CMD[@]}" 2>>"$LOGS/rollback.err" | python3 -c 'import json,sys; print(json.load(sys.stdin)["release"]["id"])'
}

# rb_setup SERVER: SERVER's rollback bucket with its two releases, deployed
# straight to the server (not measured).
rb_setup() {
  local sv=$1
  make_bucket "$sv" "$RB_BUCKET"
  RB_A[$sv]=$(rb_release "$sv" "$BASE") || die "cannot deploy the first release for the rollback ($sv)"
  RB_B[$sv]=$(rb_release "$sv" "$CHANGED_DIR") || die "cannot deploy the second release for the rollback ($sv)"
}

# rb_pair SERVER WORKLOAD RUN [ARGS...]: `rollback --to A` then `activate B
# --unpin` on SERVER, with ARGS, timed as rollback-WORKLOAD and
# activate-WORKLOAD; SERVER is s3s, moto or one of them behind a proxy.
rb_pair() {
  local sv=$1 wl=$2 run=$3
  shift 3
  rb_cmd "$sv" rollback --to "${RB_A[${ORIGIN[$sv]}]}" "$@"
  timed "$sv" "rollback-$wl" "$run"
  rb_cmd "$sv" activate "${RB_B[${ORIGIN[$sv]}]}" --unpin "$@"
  timed "$sv" "activate-$wl" "$run"
}

# other_objects FROM TO: writes objects FROM..TO-1 of the other releases
# straight into s3s-fs's data directory (small files under packs/js/, listed
# like any object); uploading 100,000 of them through S3 would take minutes.
other_objects() {
  python3 - "${DATA[s3s]}/$RB_BUCKET/packs/js" "$1" "$2" <<'PY'
import os, sys
root, lo, hi = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(root, exist_ok=True)
for i in range(lo, hi):
    with open(os.path.join(root, f"other-{i:06d}-0123456789abcdef.js"), "wb") as f:
        f.write(b"/* another release's chunk */ %d\n" % i)
PY
}

# rollback_at_latency ORIGINS: the rollback and activate on each of ORIGINS
# at each BENCH_LATENCY round trip (ms; 0: straight to the server, else
# through latency_proxy.py: server id s3s20 and the like) and each
# BENCH_CHECK_CONCURRENCY (HEADs in flight), with no other objects under the
# prefix: what a switch costs where S3 is far away, what the default
# check_concurrency buys or costs at each, and (on moto_server) what it costs
# where listings carry ETags.
rollback_at_latency() {
  local origin lat sv n run
  for origin in "$@"; do
    for lat in $LATENCY; do
      sv=$origin
      if [[ $lat -gt 0 ]]; then start_far "$origin" "$lat"; sv="$origin$lat"; fi
      for n in $CHECK_CONCURRENCY; do
        log "rollback and activate on $origin at a ${lat} ms round trip, ${n} checks in flight"
        for run in $(seq "$ROLLBACK_RUNS"); do rb_pair "$sv" "cc$n" "$run" --check-concurrency "$n"; done
      done
    done
  done
}

# rollback_redis_latency: the rollback and activate on s3s-fs (no proxy, the
# default check_concurrency) with Redis straight, then through
# latency_proxy.py at each BENCH_REDIS_LATENCY round trip: timed as
# rollback-redisMS and activate-redisMS.
rollback_redis_latency() {
  local ms run levels=0
  for ms in $REDIS_LATENCY; do [[ $ms -eq 0 ]] || levels+=" $ms"; done
  for ms in $levels; do
    if [[ $ms -gt 0 ]]; then
      start_proxy "latency-proxy-redis$ms" 6379 "$ms"
      REDIS_PROXY=$PROXY_PID
      RB_REDIS="redis://127.0.0.1:$PROXY_PORT/15"
    fi
    log "rollback and activate with a ${ms} ms round trip to Redis"
    for run in $(seq "$ROLLBACK_RUNS"); do rb_pair s3s "redis$ms" "$run"; done
    if [[ -n $REDIS_PROXY ]]; then stop_pid "$REDIS_PROXY"; fi
    REDIS_PROXY=""
    RB_REDIS=""
  done
}

# rollback_at_scale: the rollback and activate on s3s-fs with each
# BENCH_OTHERS number of other objects under the prefix.
rollback_at_scale() {
  local have=0 want run
  for want in $OTHERS; do
    if [[ $want -gt $have ]]; then
      other_objects "$have" "$want"
      have=$want
    fi
    log "rollback and activate with $want other objects under the prefix"
    for run in $(seq "$ROLLBACK_RUNS"); do rb_pair s3s "$want" "$run"; done
  done
  OTHERS_HAVE=$have
}

# switch_costs: all of the above, in that order (the other objects last:
# the rollbacks before them see none), on s3s-fs and, for the round trips to
# S3, moto_server if it runs.
switch_costs() {
  local origins=s3s victim origin
  [[ -n "$LATENCY" && " $SERVERS " == *" moto "* ]] && origins+=" moto"
  log "rollback and activate"
  for origin in $origins; do rb_setup "$origin"; done
  {
    kv release_files "$(expected_count cutover "$WORK/base.list")"
    kv runs "$ROLLBACK_RUNS"
    # The default the CLI ships with, as its help states it.
    kv check_concurrency_default "$("$CUTOVER" rollback --help | awk '/--check-concurrency/ { f = 1 }
      f && match($0, /\[default: [0-9]+\]/) { print substr($0, RSTART + 10, RLENGTH - 11); exit }')"
  } >"$WORK/rollback.tsv"
  # shellcheck disable=SC2086 # a list of server ids
  if [[ -n "$LATENCY" ]]; then rollback_at_latency $origins; fi
  if [[ -n "$REDIS_LATENCY" ]]; then rollback_redis_latency; fi
  OTHERS_HAVE=0
  if [[ -n "$OTHERS" ]]; then rollback_at_scale; fi
  rb_cmd s3s rollback --to "${RB_A[s3s]}"
  redis_commands "$WORK/redis-rollback.tsv"
  rb_cmd s3s activate "${RB_B[s3s]}" --unpin
  redis_commands "$WORK/redis-activate.tsv"
  # Still exact: with one object of the target release gone, rollback refuses (exit 4).
  victim=$(comm -23 <(sort "$WORK/base.list") <(sort "$WORK/changed.list") | grep -v '^manifest' | head -1)
  rm -f "${DATA[s3s]}/$RB_BUCKET/packs/$victim"
  rb_cmd s3s rollback --to "${RB_A[s3s]}"
  timed s3s "rollback-missing-$OTHERS_HAVE" 1 4
  kv missing "$victim" >>"$WORK/rollback.tsv"
  kv missing_exit 4 >>"$WORK/rollback.tsv"
  grep -o 'not intact[^;]*' "$LOGS/s3s-rollback-missing-$OTHERS_HAVE-cutover-r1.err" | head -1 | sed 's/^/missing_message\t/' >>"$WORK/rollback.tsv" || true
  for origin in $origins; do drop_bucket "$origin" "$RB_BUCKET"; done
}
