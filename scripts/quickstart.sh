#!/usr/bin/env bash
# Quick start: set up loopback Redis and S3 (moto), build cutover, and ship the
# example webpack build: dry run, deploy, status. Everything stays on 127.0.0.1
# and under .cutover-dev/; stop the servers with `scripts/quickstart.sh stop`.
set -euo pipefail
cd "$(dirname "$0")/.."
DEV=.cutover-dev
S3_PORT=${S3_PORT:-5055}
REDIS_PORT=${REDIS_PORT:-6390}
mkdir -p "$DEV"

if [ "${1:-}" = stop ]; then
  for f in "$DEV"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; rm -f "$f"; done
  exit 0
fi

bash scripts/setup.sh
cargo build --release --locked

if ! redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
    --pidfile "$PWD/$DEV/redis.pid" --logfile "$PWD/$DEV/redis.log"
fi
if ! curl -s -o /dev/null "http://127.0.0.1:$S3_PORT/"; then
  nohup .venv-s3/bin/moto_server -H 127.0.0.1 -p "$S3_PORT" >"$DEV/moto.log" 2>&1 &
  echo $! >"$DEV/moto.pid"
fi
for _ in $(seq 1 100); do
  curl -s -o /dev/null "http://127.0.0.1:$S3_PORT/" && redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
  sleep 0.1
done

export AWS_ACCESS_KEY_ID=dev AWS_SECRET_ACCESS_KEY=dev AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
export CUTOVER_APP=example CUTOVER_BUCKET=example-assets CUTOVER_CDN_URL=https://cdn.example.com
export CUTOVER_S3_ENDPOINT="http://127.0.0.1:$S3_PORT" REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
curl -s -X PUT "http://127.0.0.1:$S3_PORT/$CUTOVER_BUCKET" >/dev/null

BIN=target/release/cutover
BUILD=tests/fixtures/builds/shakapacker
echo "== cutover deploy $BUILD --dry-run"
$BIN deploy "$BUILD" --dry-run
echo "== cutover deploy $BUILD"
$BIN deploy "$BUILD" --message "quick start"
echo "== cutover status"
$BIN status
echo "== what the Rails app reads: GET cutover:{example}:manifest (first lines)"
redis-cli -p "$REDIS_PORT" --raw GET 'cutover:{example}:manifest' | head -c 400; echo
echo
echo "Servers keep running (S3 :$S3_PORT, Redis :$REDIS_PORT). Stop them: scripts/quickstart.sh stop"
