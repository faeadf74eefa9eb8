#!/usr/bin/env bash
# The benchmark harness that scripts/bench.sh runs (its header has the knobs).
# What it does, in order:
#   1. installs what is missing (tools.sh) and builds cutover (cargo build
#      --release);
#   2. generates a seeded BENCH_FILES-file webpack-like build and its 1%
#      rebuild (fixture.sh, gen_build.py);
#   3. starts s3s-fs on a free 127.0.0.1 port (servers.sh), probes it for the
#      S3 features the clients use, and runs every tool once on a tiny build
#      (peers.sh); a tool that fails there (or takes > 20 s) is measured on
#      moto_server instead, together with cutover (and aws s3 sync) for fair
#      ratios, and BENCHMARKS.md says so; for each BENCH_LATENCY round trip
#      above 0, s3s-fs behind latency_proxy.py is one more server (s3s<ms>),
#      where each tool is measured as on s3s-fs;
#   4. BENCH_RUNS times, per tool in rotating order, on a fresh bucket of each
#      server: cold upload, unchanged redeploy (same directory), rebuilt (a
#      fresh copy: same bytes, new mtimes, as every CI build), 1% changed;
#      then the real fixture (cold, unchanged) if present (workloads.sh). Each
#      step is one process under /usr/bin/time -v and one row of results.tsv
#      (rows.sh);
#   5. one extra cutover pass per workload with --json for its phase timings
#      (workloads.sh);
#   6. cutover's scale curve on s3s-fs (scale.sh), and rollback / activate
#      (rollback.sh): at each BENCH_LATENCY round trip to S3 on s3s-fs and
#      moto_server, at each BENCH_REDIS_LATENCY round trip to Redis, and with
#      BENCH_OTHERS other objects under the prefix; with the Redis commands one
#      activation sends;
#   7. BENCH_FLEET simulated reader processes reporting to a private Redis:
#      its CPU, and `status` with them (fleet.sh);
#   8. writes BENCH_OUTPUT (report.py).
# Every server it started is stopped on exit. Nothing leaves 127.0.0.1.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"

# shellcheck source=scripts/bench/config.sh
source "$HERE/config.sh"
# shellcheck source=scripts/bench/common.sh
source "$HERE/common.sh"
# shellcheck source=scripts/bench/tools.sh
source "$HERE/tools.sh"
# shellcheck source=scripts/bench/servers.sh
source "$HERE/servers.sh"
# shellcheck source=scripts/bench/fixture.sh
source "$HERE/fixture.sh"
# shellcheck source=scripts/bench/peers.sh
source "$HERE/peers.sh"
# shellcheck source=scripts/bench/rows.sh
source "$HERE/rows.sh"
# shellcheck source=scripts/bench/workloads.sh
source "$HERE/workloads.sh"
# shellcheck source=scripts/bench/scale.sh
source "$HERE/scale.sh"
# shellcheck source=scripts/bench/rollback.sh
source "$HERE/rollback.sh"
# shellcheck source=scripts/bench/fleet.sh
source "$HERE/fleet.sh"

# Where each tool is measured on s3s-fs: "" (everywhere), "cold-only" or
# "all" (skipped there), from its precheck.
declare -A SKIP
# The servers the upload workloads run on: BENCH_SERVERS, with s3s-fs behind
# the latency proxy after s3s-fs (check_servers).
UPLOAD_SERVERS=""

has_tool() { [[ " $TOOLS " == *" $1 "* ]]; }

# check_servers: s3s-fs probed and every tool prechecked on it; a tool that
# fails its tiny redeploy there is measured cold only (or not at all), there
# and behind the proxy (the server answers the same); moto_server, if it
# runs, must serve every tool.
check_servers() {
  local t srv lat
  start_s3s
  log "probing s3s-fs"
  probe s3s || die "the S3 probe could not run"
  sed 's/^/  /' "$LOGS/probe-s3s.txt" >&2
  drop_bucket s3s probe
  for t in $TOOLS; do
    if ! precheck "$t" s3s; then
      printf '%s\t%s\n' "$t" "${PRE_FAIL[$t]}" >>"$WORK/fallback.tsv"
      if [[ ${PRE_FAIL[$t]} == unchanged ]]; then SKIP[s3s:$t]=cold-only; else SKIP[s3s:$t]=all; fi
    fi
  done
  if [[ " $SERVERS " == *" moto "* ]]; then
    start_moto
    probe moto || true
    for t in $TOOLS; do
      precheck "$t" moto || die "$t fails on moto_server; see $LOGS/precheck-moto-$t-*.err"
    done
  fi
  for srv in $SERVERS; do
    UPLOAD_SERVERS+=" $srv"
    [[ $srv == s3s ]] || continue
    for lat in $LATENCY; do
      [[ $lat -gt 0 ]] || continue
      start_far s3s "$lat"
      UPLOAD_SERVERS+=" s3s$lat"
      for t in $TOOLS; do SKIP[s3s$lat:$t]=${SKIP[s3s:$t]:-}; done
    done
  done
}

# measure_runs: BENCH_RUNS runs of every tool's sequence on every server,
# the tools in rotating order.
measure_runs() {
  local run i n t srv rotated tools_arr
  read -r -a tools_arr <<<"$TOOLS"
  n=${#tools_arr[@]}
  for run in $(seq "$RUNS"); do
    # Wait for other load to settle: the full BENCH_IDLE_WAIT before the first run, briefly later.
    if [[ $run -eq 1 ]]; then wait_idle; else IDLE_WAIT=30 wait_idle; fi
    log "run $run of $RUNS"
    redis_clean
    rotated=()
    for i in $(seq 0 $((n - 1))); do rotated+=("${tools_arr[$(((i + run - 1) % n))]}"); done
    for srv in $UPLOAD_SERVERS; do
      for t in "${rotated[@]}"; do
        case "${SKIP[$srv:$t]:-}" in
          "") sequence "$srv" "$t" "$run" ;;
          cold-only) sequence "$srv" "$t" "$run" cold-only ;;
          *) ;;
        esac
      done
    done
  done
}

main() {
  local started t
  started=$(date +%s)
  mkdir -p "$WORK"
  rm -rf "$LOGS" "$WORK"/*.tsv "$WORK"/*.txt "$WORK"/*.json "$WORK"/*.list "$WORK/builds"
  mkdir -p "$LOGS"
  start_results

  for t in $TOOLS; do
    case $t in cutover | aws | s5cmd | rclone) ;; *) die "unknown tool in BENCH_TOOLS: $t" ;; esac
  done
  for t in $SERVERS; do
    case $t in s3s | moto) ;; *) die "unknown server in BENCH_SERVERS: $t (s3s, moto)" ;; esac
  done
  for t in $LATENCY $REDIS_LATENCY $CHECK_CONCURRENCY; do
    [[ $t =~ ^[0-9]+$ ]] || die "not a whole number in BENCH_LATENCY, BENCH_REDIS_LATENCY or BENCH_CHECK_CONCURRENCY: $t"
  done
  install_tools
  if has_tool cutover; then build_cutover; fi
  redis-cli -n 15 ping >/dev/null || die "Redis is not answering on 127.0.0.1:6379"
  redis_clean

  make_builds
  check_servers
  measure_runs
  if has_tool cutover; then
    phase_timings
    if [[ -n "$SCALE" ]]; then scale_curve; fi
    if [[ -n "$LATENCY$REDIS_LATENCY$OTHERS" ]]; then switch_costs; fi
    if [[ -n "${BENCH_FLEET-2000}" ]]; then fleet_at_scale; fi
  fi

  write_versions >"$WORK/versions.tsv"
  write_machine "$started" >"$WORK/machine.tsv"
  python3 "$ROOT/scripts/bench/report.py" "$WORK" "$OUTPUT"
  log "wrote ${OUTPUT#"$ROOT"/} in $(($(date +%s) - started)) s"
}

main "$@"
