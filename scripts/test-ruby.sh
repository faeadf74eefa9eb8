#!/usr/bin/env bash
# The Ruby reader's tests (ruby/): minitest against a private redis-server,
# moto and the real cutover binary. Installs what is missing first: Debian's
# Ruby, rake, redis gem, Rails 6.1, Puma 5 and Unicorn 6 packages, and (scripts/setup.sh) redis-server
# and moto in .venv-s3. The binary is $CUTOVER_BIN, default target/debug/cutover
# (built with cargo if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(ruby rake ruby-redis ruby-railties ruby-actionpack ruby-actionview ruby-rack-test ruby-minitest puma unicorn)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "test-ruby: installing ${missing[*]} with apt-get" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
bash scripts/setup.sh

CUTOVER_BIN="${CUTOVER_BIN:-target/debug/cutover}"
if [ ! -x "$CUTOVER_BIN" ]; then
  echo "test-ruby: building $CUTOVER_BIN" >&2
  cargo build --locked
fi
export CUTOVER_BIN="$(realpath "$CUTOVER_BIN")"
export AWS_EC2_METADATA_DISABLED=true

# The suite is ruby/Rakefile's `test` task (what `cd ruby && rake test` runs).
# Arguments are minitest options (-v, -n /contract/); rake splits TESTOPTS as
# a shell would, so each one is single-quoted.
if (($#)); then
  testopts=""
  for a in "$@"; do testopts+="'${a//\'/\'\\\'\'}' "; done
  export TESTOPTS="$testopts"
fi
cd ruby
exec rake test
