# shellcheck shell=bash
# The results: each measured step is one process under /usr/bin/time -v
# (wall time, max RSS) with the server's, the latency proxies' and the
# machine's CPU read around it, and one row of results.tsv; machine.tsv
# describes the machine. report.py reads them. Sourced by run.sh.

# start_results: empty results.tsv and precheck.tsv, with their headers.
start_results() {
  printf 'server\tworkload\ttool\trun\twall_s\tmax_rss_kb\tuser_s\tsys_s\tserver_cpu_s\tother_cpu_s\tobjects\tproxy_cpu_s\n' >"$RESULTS"
  printf 'server\ttool\tstep\texit\tseconds\n' >"$WORK/precheck.tsv"
}

# The latency proxy in front of Redis while one is in use (rollback.sh): its
# CPU, like that of the proxy in front of the S3 server, is the proxies' and
# not the rest of the machine's.
REDIS_PROXY=""

# proxies_cpu SERVER: CPU seconds the proxies in SERVER's path have used so far.
proxies_cpu() {
  local pid total=0
  for pid in ${PROXY[$1]:-} $REDIS_PROXY; do
    total=$(awk -v a="$total" -v b="$(server_cpu "$pid")" 'BEGIN { printf "%.2f", a + b }')
  done
  echo "$total"
}

# run_step SERVER WORKLOAD TOOL RUN EXPECTED_EXIT: runs CMD under
# /usr/bin/time -v (output to $LOGS), dies unless it exits EXPECTED_EXIT;
# leaves the server's, the machine's and the proxies' CPU readings around it
# in STEP_CPU.
run_step() {
  local server=$1 workload=$2 tool=$3 run=$4 expect=$5
  local base="$LOGS/$server-$workload-$tool-r$run"
  local s0 m0 p0 rc=0
  s0=$(server_cpu "${PID[$server]}"); m0=$(machine_cpu); p0=$(proxies_cpu "$server")
  timeout "$STEP_TIMEOUT" /usr/bin/time -v -o "$base.time" "${CMD[@]}" >"$base.out" 2>"$base.err" || rc=$?
  STEP_CPU=("$s0" "$(server_cpu "${PID[$server]}")" "$m0" "$(machine_cpu)" "$p0" "$(proxies_cpu "$server")")
  if [[ $rc -ne $expect ]]; then
    tail -5 "$base.err" >&2
    die "$tool exited $rc, expected $expect ($workload, run $run): ${CMD[*]}"
  fi
}

# append_row SERVER WORKLOAD TOOL RUN OBJECTS: the results.tsv row of the
# step run_step just ran, logged.
append_row() {
  local server=$1 workload=$2 tool=$3 run=$4 objects=$5
  awk -F': ' -v server="$server" -v wl="$workload" -v tool="$tool" -v run="$run" \
      -v s0="${STEP_CPU[0]}" -v s1="${STEP_CPU[1]}" -v m0="${STEP_CPU[2]}" -v m1="${STEP_CPU[3]}" \
      -v p0="${STEP_CPU[4]}" -v p1="${STEP_CPU[5]}" -v objects="$objects" '
    /Elapsed \(wall clock\)/ { n = split($NF, t, ":"); wall = (n == 3) ? t[1]*3600 + t[2]*60 + t[3] : t[1]*60 + t[2] }
    /Maximum resident set size/ { rss = $NF }
    /User time \(seconds\)/ { user = $NF }
    /System time \(seconds\)/ { sys = $NF }
    END {
      srv = s1 - s0; proxy = p1 - p0; other = (m1 - m0) - srv - proxy - user - sys; if (other < 0) other = 0
      printf "%s\t%s\t%s\t%s\t%.2f\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t%d\t%.2f\n", server, wl, tool, run, wall, rss, user, sys, srv, other, objects, proxy
    }' "$LOGS/$server-$workload-$tool-r$run.time" >>"$RESULTS"
  log "$(tail -1 "$RESULTS" | awk -F'\t' '{ printf "%-7s %-22s %-8s run %s: %6.2f s  %4d MB RSS  (%d objects, server %.1f cpu-s)", $1, $2, $3, $4, $5, $6/1024, $11, $9 }')"
}

# measure SERVER WORKLOAD TOOL RUN BUCKET DIR EXPECTED_OBJECTS: one upload
# of DIR by TOOL, timed, with the objects it left under packs/ (at least
# EXPECTED_OBJECTS; "skip": not counted, as listing 50,000 objects through
# s5cmd takes longer than the step).
measure() {
  local server=$1 workload=$2 tool=$3 run=$4 bucket=$5 dir=$6 expected=$7
  tool_cmd "$tool" "$server" "$bucket" "$dir"
  run_step "$server" "$workload" "$tool" "$run" 0
  local objects=0
  [[ $expected == skip ]] || objects=$(count_objects "$server" "$bucket")
  if [[ $expected != skip && $objects -lt $expected ]]; then
    die "$tool left $objects objects under s3://$bucket/packs/ after $workload, expected at least $expected"
  fi
  append_row "$server" "$workload" "$tool" "$run" "$objects"
}

# timed SERVER WORKLOAD RUN [EXPECTED_EXIT]: runs CMD (a cutover command)
# timed, its row with no object count.
timed() {
  local server=$1 workload=$2 run=$3 expect=${4:-0}
  run_step "$server" "$workload" cutover "$run" "$expect"
  append_row "$server" "$workload" cutover "$run" 0
}

# machine.tsv: the machine and the run (STARTED: its start, epoch seconds).
write_machine() {
  local started=$1
  kv cpus "$(nproc)"
  kv cpu_model "$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
  kv memory "$(free -h | awk '/^Mem:/ { print $2 }')"
  kv kernel "$(uname -sr)"
  kv os "$( . /etc/os-release && echo "$PRETTY_NAME")"
  kv storage "$BENCH_TMP ($(stat -f -c %T "$BENCH_TMP"))"
  kv date "$(date -u +%Y-%m-%dT%H:%MZ)"
  kv duration_s "$(($(date +%s) - started))"
  kv runs "$RUNS"
}
