#!/usr/bin/env bash
# The Node reader's tests (node/): node --test against a private redis-server
# and moto started once for the run, with the real cutover binary deploying
# the fixture builds, after `tsc` has checked index.d.ts against the code.
# CUTOVER_BIN picks the binary (default target/debug/cutover,
# built with cargo when missing). Extra arguments: test files to run instead of all.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

[ -x .venv-s3/bin/moto_server ] && command -v redis-server >/dev/null || bash scripts/setup.sh
command -v node >/dev/null && command -v npm >/dev/null || {
  echo "test-node: node and npm are needed (Node 18 or later)" >&2
  exit 2
}

export CUTOVER_BIN="${CUTOVER_BIN:-$root/target/debug/cutover}"
# Relative to where it was given, not to node/ where the tests run.
case "$CUTOVER_BIN" in /*) ;; *) CUTOVER_BIN="$root/$CUTOVER_BIN" ;; esac
if [ ! -x "$CUTOVER_BIN" ]; then
  [ "$CUTOVER_BIN" = "$root/target/debug/cutover" ] || { echo "test-node: CUTOVER_BIN=$CUTOVER_BIN is not an executable" >&2; exit 2; }
  cargo build --locked
fi

cd node
# npm ci only when node_modules is missing or was installed from another lockfile.
stamp=node_modules/.cutover-lock-sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -d node_modules ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  npm ci --no-audit --no-fund
  echo "$want" >"$stamp"
fi

# index.d.ts against the code (tsconfig.json): a declaration that disagrees fails the run.
node_modules/.bin/tsc -p .

export AWS_EC2_METADATA_DISABLED=true
exec node test/support/with-servers.mjs "$@"
