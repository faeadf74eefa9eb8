# shellcheck shell=bash
# The upload workloads, per tool on fresh buckets: cold, unchanged, rebuilt
# and 1% changed, then the real fixture cold and unchanged (sequence); and
# one extra cutover pass per workload with --json for its phase timings
# (phase_timings). Sourced by run.sh.

# fixture_steps SERVER TOOL RUN WORKLOAD...: the real fixture on a fresh
# bucket of SERVER, once per WORKLOAD (cold, unchanged), if it is present.
fixture_steps() {
  local server=$1 tool=$2 run=$3 wl
  shift 3
  [[ -n "$FIXTURE_OK" ]] || return 0
  local bucket="f-$server-$tool-r$run"
  make_bucket "$server" "$bucket"
  for wl in "$@"; do
    measure "$server" "fixture-$wl" "$tool" "$run" "$bucket" "$FIXTURE" "$(expected_count "$tool" "$WORK/fixture.list")"
  done
  drop_bucket "$server" "$bucket"
}

# sequence SERVER TOOL RUN [cold-only]: one tool's full sequence on fresh
# buckets of SERVER (with "cold-only", only the cold uploads: for a tool
# whose redeploys s3s-fs cannot serve).
sequence() {
  local server=$1 tool=$2 run=$3 only=${4:-}
  local bucket="b-$server-$tool-r$run" wl workloads=(cold unchanged rebuilt changed)
  [[ $only == cold-only ]] && workloads=(cold)
  make_bucket "$server" "$bucket"
  for wl in "${workloads[@]}"; do
    prepare_workload "$wl"
    measure "$server" "$wl" "$tool" "$run" "$bucket" "$WL_DIR" "$(expected_count "$tool" "${WL_LISTS[@]}")"
  done
  rm -rf "$REBUILT"
  drop_bucket "$server" "$bucket"
  if [[ $only == cold-only ]]; then
    fixture_steps "$server" "$tool" "$run" cold
  else
    fixture_steps "$server" "$tool" "$run" cold unchanged
  fi
}

# cutover's phases (deploy --json "timings"), one run per workload and server.
phase_timings() {
  log "cutover phase timings (--json)"
  local srv bucket step
  for srv in $UPLOAD_SERVERS; do
    bucket="diag-$srv"
    make_bucket "$srv" "$bucket"
    for step in cold unchanged rebuilt changed; do
      prepare_workload "$step"
      tool_cmd cutover "$srv" "$bucket" "$WL_DIR"
      "${CMD[@]}" --json >"$WORK/timings-$srv-$step.json" 2>"$LOGS/timings-$srv-$step.err" \
        || die "cutover failed in the phase pass ($srv, $step)"
    done
    rm -rf "$REBUILT"
    drop_bucket "$srv" "$bucket"
  done
}
