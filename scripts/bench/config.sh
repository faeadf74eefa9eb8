# shellcheck shell=bash
# The harness's settings: the BENCH_* knobs (documented in scripts/bench.sh)
# with their defaults, the pinned tool versions, the paths it writes, where
# builds and server data live (tmpfs when there is one), and the environment
# every client runs with (fixed keys, no ~/.aws, rclone's remote "bench").
# Sourced by run.sh; ROOT is the repository.

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
# Round trips to S3 in ms: above 0, s3s-fs behind scripts/bench/latency_proxy.py
# is one more server for the uploads (server id "s3s<ms>"), and every server
# is measured behind it for the rollback (0: straight to the server).
LATENCY="${BENCH_LATENCY-0 20}"
CHECK_CONCURRENCY="${BENCH_CHECK_CONCURRENCY-32 256}"
# Round trips to Redis in ms (above 0, through latency_proxy.py) at which the
# rollback is measured again beside the same at 0 ms.
REDIS_LATENCY="${BENCH_REDIS_LATENCY-2}"
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
# Where `cargo build --release` puts it (CARGO_TARGET_DIR moves it).
CUTOVER="${CARGO_TARGET_DIR:-$ROOT/target}/release/cutover"
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

ACCESS_KEY=benchaccesskey
SECRET_KEY=benchsecretkey0123456789
export AWS_ACCESS_KEY_ID="$ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$SECRET_KEY"
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true CI=true
# Keep any ~/.aws configuration out of the measurement.
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
# rclone: an S3 remote named "bench" from the environment only.
export RCLONE_CONFIG=/dev/null RCLONE_CONFIG_BENCH_TYPE=s3 RCLONE_CONFIG_BENCH_PROVIDER=Other
export RCLONE_CONFIG_BENCH_ACCESS_KEY_ID="$ACCESS_KEY" RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY="$SECRET_KEY"
export RCLONE_CONFIG_BENCH_REGION=us-east-1 RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE=true
