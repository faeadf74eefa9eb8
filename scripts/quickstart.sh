#!/usr/bin/env bash
# Quick start: cutover against a loopback Redis and S3 server (moto).
#
#   scripts/quickstart.sh        set up, start the two servers, build cutover,
#                                then ship the example build: dry run, deploy, status
#   scripts/quickstart.sh env    print the exports that point cutover (and you)
#                                at the two servers: eval "$(scripts/quickstart.sh env)"
#   scripts/quickstart.sh stop   stop the servers this script started
#
# Ports: QUICKSTART_S3_PORT (default 5055) and QUICKSTART_REDIS_PORT (default
# 6390). A port that something else already listens on is refused, never reused.
# Everything stays on 127.0.0.1 and under .cutover-dev/.
set -euo pipefail
cd "$(dirname "$0")/.."
DEV=.cutover-dev
S3_PORT=${QUICKSTART_S3_PORT:-5055}
REDIS_PORT=${QUICKSTART_REDIS_PORT:-6390}
BUILD=tests/fixtures/builds/example
BIN=target/release/cutover

exports() {
  cat <<EOF
export AWS_ACCESS_KEY_ID=dev AWS_SECRET_ACCESS_KEY=dev AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
export CUTOVER_APP=example CUTOVER_BUCKET=example-assets CUTOVER_CDN_URL=https://cdn.example.com
export CUTOVER_S3_ENDPOINT=http://127.0.0.1:$S3_PORT REDIS_URL=redis://127.0.0.1:$REDIS_PORT
export PATH="$PWD/target/release:\$PATH"
EOF
}

# Is the server we started on this port (pid file) still running?
ours() { [ -f "$DEV/$1-$2.pid" ] && kill -0 "$(cat "$DEV/$1-$2.pid")" 2>/dev/null; }
# Does anything listen on the port?
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Refuse a port another program listens on: stopping it later would be wrong.
check_port() {
  local name=$1 port=$2
  if ! ours "$name" "$port" && listening "$port"; then
    echo "quickstart: port $port is taken by another program; set QUICKSTART_${name^^}_PORT to a free port" >&2
    exit 2
  fi
}

start() {
  local name=$1 port=$2
  shift 2
  if ours "$name" "$port"; then return; fi
  nohup "$@" >"$DEV/$name.log" 2>&1 &
  echo $! >"$DEV/$name-$port.pid"
  for _ in $(seq 1 200); do listening "$port" && return; sleep 0.05; done
  echo "quickstart: $name did not start; see $DEV/$name.log" >&2
  exit 1
}

case "${1:-run}" in
  env)
    exports
    exit 0
    ;;
  stop)
    for pidfile in "$DEV"/*.pid; do
      [ -f "$pidfile" ] || continue
      name=$(basename "$pidfile" .pid)
      if kill "$(cat "$pidfile")" 2>/dev/null; then echo "stopped $name"; fi
      rm -f "$pidfile"
    done
    exit 0
    ;;
  run) ;;
  *)
    echo "usage: scripts/quickstart.sh [run|env|stop]" >&2
    exit 2
    ;;
esac

mkdir -p "$DEV"
check_port redis "$REDIS_PORT"
check_port s3 "$S3_PORT"
bash scripts/setup.sh
echo "quickstart: building cutover (release)"
cargo build --release --locked --quiet
start redis "$REDIS_PORT" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$PWD/$DEV"
start s3 "$S3_PORT" .venv-s3/bin/moto_server -H 127.0.0.1 -p "$S3_PORT"
eval "$(exports)"
curl -s -X PUT "http://127.0.0.1:$S3_PORT/$CUTOVER_BUCKET" >/dev/null

echo
echo "\$ cutover deploy $BUILD --dry-run"
cutover deploy "$BUILD" --dry-run --quiet
echo
echo "\$ cutover deploy $BUILD --message 'quick start'"
cutover deploy "$BUILD" --message "quick start" --quiet
echo
echo "\$ cutover status"
cutover status
cat <<EOF

The servers keep running (S3 on :$S3_PORT, Redis on :$REDIS_PORT). To keep using them:
  eval "\$(scripts/quickstart.sh env)"   # then: cutover releases, cutover rollback --dry-run, ...
  redis-cli -p $REDIS_PORT GET 'cutover:{example}:manifest'   # what the Rails app reads
  scripts/quickstart.sh stop
EOF
