# shellcheck shell=bash
# The tools measured: the command line with which cutover, aws s3 sync,
# s5cmd sync and rclone copy each upload a build to s3://BUCKET/packs, how
# many objects each is expected to leave there, and the precheck that finds
# which of them a server can serve (a tiny build, cold then unchanged, 20 s
# each). Sourced by run.sh.

declare -A PRE_FAIL

# tool_cmd TOOL SERVER BUCKET DIR [QUIET]: sets CMD to the command line of
# TOOL uploading DIR to s3://BUCKET/packs on SERVER.
tool_cmd() {
  local tool=$1 server=$2 bucket=$3 dir=$4 quiet=${5:-1}
  local ep="${EP[$server]}"
  case $tool in
    cutover)
      CMD=("$CUTOVER" deploy "$dir" --no-activate --app "$APP" --bucket "$bucket" --prefix packs
        --cdn-url https://cdn.example.com --s3-endpoint "$ep" --redis-url "$REDIS_URL")
      if [[ $quiet == 1 ]]; then CMD+=(--quiet); fi
      ;;
    aws) CMD=("$VENV/bin/aws" s3 sync "$dir" "s3://$bucket/packs" --endpoint-url "$ep" --only-show-errors) ;;
    s5cmd) CMD=("$S5CMD" --endpoint-url "$ep" sync "$dir/" "s3://$bucket/packs/") ;;
    # AWS_CA_BUNDLE (set on some machines) makes rclone 1.60 fail at start
    # ("LoadCustomCABundleError ... unsupported transport"); the endpoint is plain http.
    rclone) CMD=(env -u AWS_CA_BUNDLE "RCLONE_CONFIG_BENCH_ENDPOINT=$ep" rclone copy "$dir" "bench:$bucket/packs") ;;
    *) die "unknown tool $tool" ;;
  esac
}

# expected_count TOOL LIST...: the files TOOL is expected to leave under
# packs/ (cutover keeps the manifest and its precompressed copies out of the
# bucket).
expected_count() {
  local tool=$1; shift
  if [[ $tool == cutover ]]; then
    cat "$@" | sort -u | grep -cvE '^manifest\.json(\.gz|\.br)?$'
  else
    cat "$@" | sort -u | wc -l
  fi
}

# precheck TOOL SERVER: a tool is "compatible" with SERVER if it uploads a
# tiny build and redeploys it without error within 20 s each. Appends each
# step to precheck.tsv; on failure, PRE_FAIL[TOOL] is the step that failed.
precheck() {
  local tool=$1 server=$2 bucket="pre-$1-$2" step rc t0 t1 secs
  make_bucket "$server" "$bucket"
  for step in cold unchanged; do
    tool_cmd "$tool" "$server" "$bucket" "$TINY"
    rc=0
    t0=$(date +%s.%N)
    timeout 20 "${CMD[@]}" >"$LOGS/precheck-$server-$tool-$step.out" 2>"$LOGS/precheck-$server-$tool-$step.err" || rc=$?
    t1=$(date +%s.%N)
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
    printf '%s\t%s\t%s\t%s\t%s\n' "$server" "$tool" "$step" "$rc" "$secs" >>"$WORK/precheck.tsv"
    if [[ $rc -ne 0 ]]; then
      local why="exit $rc"
      [[ $rc -eq 124 ]] && why="killed after 20 s"
      log "precheck: $tool $step on $server failed ($why) after ${secs}s; stderr: $(tail -c 300 "$LOGS/precheck-$server-$tool-$step.err" | tr '\n' ' ')"
      PRE_FAIL[$tool]=$step
      return 1
    fi
  done
  drop_bucket "$server" "$bucket"
  return 0
}
