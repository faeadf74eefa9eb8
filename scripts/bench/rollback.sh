# shellcheck shell=bash
# Rollback / activate of a 5,000-file release with BENCH_OTHERS other objects
# under the prefix, on s3s-fs, BENCH_ROLLBACK_RUNS times each; the Redis
# commands one rollback and one activate send (MONITOR on db 15); and the
# rollback refusing (exit 4) once an object of its release is gone. Writes
# rollback.tsv and redis-{rollback,activate}.tsv. Sourced by run.sh.

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

RB_APP=bench-rb
RB_BUCKET=rollback

# rb_cmd ARGS...: sets CMD to a cutover command on the rollback bucket.
rb_cmd() {
  CMD=("$CUTOVER" "$@" --app "$RB_APP" --bucket "$RB_BUCKET" --prefix packs --cdn-url https://cdn.example.com
    --s3-endpoint "${RB_EP:-${EP[s3s]}}" --redis-url "$REDIS_URL" --quiet)
}

# rb_release DIR: deploys DIR (activating it) and prints the release id.
rb_release() {
  rb_cmd deploy "$1" --json
  "${CMD[@]}" 2>>"$LOGS/rollback.err" | python3 -c 'import json,sys; print(json.load(sys.stdin)["release"]["id"])'
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

# rollback_at_latency A B: the same rollback and activate at each
# BENCH_LATENCY round trip (ms; 0: straight to s3s-fs, else through
# latency_proxy.py) and each BENCH_CHECK_CONCURRENCY (HEADs in flight), with
# no other objects under the prefix: what a switch costs where S3 is far
# away, and what the default check_concurrency buys or costs at each.
rollback_at_latency() {
  local a=$1 b=$2 lat port proxy run n
  for lat in ${BENCH_LATENCY-0 20}; do
    proxy=""
    if [[ $lat -gt 0 ]]; then
      port=$(free_port)
      python3 "$ROOT/scripts/bench/latency_proxy.py" "$port" "127.0.0.1:${EP[s3s]##*:}" "$lat" \
        >"$LOGS/latency-proxy-$lat.log" 2>&1 &
      proxy=$!
      SERVER_PIDS+=("$proxy")
      wait_port "$port" "$proxy" "latency_proxy.py"
      RB_EP="http://127.0.0.1:$port"
    fi
    for n in ${BENCH_CHECK_CONCURRENCY-32 256}; do
      log "rollback and activate at a ${lat} ms round trip, ${n} checks in flight"
      for run in $(seq "$ROLLBACK_RUNS"); do
        rb_cmd rollback --to "$a" --check-concurrency "$n"
        timed s3s "rollback-lat$lat-cc$n" "$run"
        rb_cmd activate "$b" --unpin --check-concurrency "$n"
        timed s3s "activate-lat$lat-cc$n" "$run"
      done
    done
    RB_EP=""
    if [[ -n $proxy ]]; then stop_pid "$proxy"; fi
  done
}

rollback_at_scale() {
  local have=0 want run a b victim
  log "rollback at scale"
  make_bucket s3s "$RB_BUCKET"
  a=$(rb_release "$BASE") || die "cannot deploy the first release for the rollback"
  b=$(rb_release "$CHANGED_DIR") || die "cannot deploy the second release for the rollback"
  {
    kv release_files "$(expected_count cutover "$WORK/base.list")"
    kv runs "$ROLLBACK_RUNS"
  } >"$WORK/rollback.tsv"
  rollback_at_latency "$a" "$b"
  for want in $OTHERS; do
    if [[ $want -gt $have ]]; then
      other_objects "$have" "$want"
      have=$want
    fi
    for run in $(seq "$ROLLBACK_RUNS"); do
      rb_cmd rollback --to "$a"
      timed s3s "rollback-$want" "$run"
      rb_cmd activate "$b" --unpin
      timed s3s "activate-$want" "$run"
    done
  done
  rb_cmd rollback --to "$a"
  redis_commands "$WORK/redis-rollback.tsv"
  rb_cmd activate "$b" --unpin
  redis_commands "$WORK/redis-activate.tsv"
  # Still exact: with one object of the target release gone, rollback refuses (exit 4).
  victim=$(comm -23 <(sort "$WORK/base.list") <(sort "$WORK/changed.list") | grep -v '^manifest' | head -1)
  rm -f "${DATA[s3s]}/$RB_BUCKET/packs/$victim"
  rb_cmd rollback --to "$a"
  timed s3s "rollback-missing-$have" 1 4
  kv missing "$victim" >>"$WORK/rollback.tsv"
  kv missing_exit 4 >>"$WORK/rollback.tsv"
  grep -o 'not intact[^;]*' "$LOGS/s3s-rollback-missing-$have-cutover-r1.err" | head -1 | sed 's/^/missing_message\t/' >>"$WORK/rollback.tsv" || true
  drop_bucket s3s "$RB_BUCKET"
}
