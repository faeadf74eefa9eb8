#!/usr/bin/env bash
# Install what cutover's tests and quick start need on a fresh Debian machine
# with Rust: redis-server, setpriv (util-linux), python3-venv, and moto (the
# S3-compatible server) pinned in .venv-s3. Idempotent; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

MOTO_VERSION=5.2.5

need_apt=()
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v setpriv >/dev/null || need_apt+=(util-linux)
command -v curl >/dev/null || need_apt+=(curl)
command -v openssl >/dev/null || need_apt+=(openssl)
# A real Ruby Redis client reads what cutover publishes, as the Rails app does.
command -v ruby >/dev/null || need_apt+=(ruby)
ruby -e 'require "redis"' 2>/dev/null || need_apt+=(ruby-redis)
# The Rails app under Puma that the fleet test (tests/integration/fleet.rs)
# and the Ruby suite run: Debian's Rails 6.1 and Puma (scripts/test-ruby.sh
# checks its whole list again).
for p in ruby-railties ruby-actionpack ruby-actionview puma; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need_apt+=("$p")
done
# The stale-deploy guard's test makes commits in a git repository.
command -v git >/dev/null || need_apt+=(git)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
# nginx stands in for the CDN in the URL and CDN tests.
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need_apt+=(nginx-light)
# The Node reader's tests (node/) need Node 18 or later with npm.
command -v node >/dev/null || need_apt+=(nodejs)
command -v npm >/dev/null || need_apt+=(npm)
# The orb's and the GitHub Action's scripts read cutover's --json with jq.
command -v jq >/dev/null || need_apt+=(jq)
if ((${#need_apt[@]})); then
  echo "setup: installing ${need_apt[*]} with apt-get" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! .venv-s3/bin/python -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
  echo "setup: installing moto $MOTO_VERSION into .venv-s3" >&2
  python3 -m venv .venv-s3
  .venv-s3/bin/pip install -q --disable-pip-version-check "moto[s3,cloudfront]==$MOTO_VERSION" flask flask-cors
fi
# CI pipeline checks (tests/integration/ci_config.rs): check-jsonschema
# validates .circleci/config.yml, the packed orb and action.yml against the
# schemas pinned in tests/fixtures/schemas; scripts/pack-orb.py uses ruamel.yaml.
CHECK_JSONSCHEMA_VERSION=0.39.0
if ! .venv-ci/bin/check-jsonschema --version 2>/dev/null | grep -qx "check-jsonschema, version $CHECK_JSONSCHEMA_VERSION"; then
  echo "setup: installing check-jsonschema $CHECK_JSONSCHEMA_VERSION into .venv-ci" >&2
  python3 -m venv .venv-ci
  .venv-ci/bin/pip install -q --disable-pip-version-check "check-jsonschema==$CHECK_JSONSCHEMA_VERSION" "ruamel.yaml==0.19.1"
fi

# s3s-fs: the second S3-compatible server the tests run against (big files
# uploaded in parts must check out on every server tested); the benchmarks
# (scripts/bench.sh) use the same binary.
S3S_VERSION=0.14.1
S3S_BIN=.bench-tools/s3s-fs/bin/s3s-fs
if ! { [ -x "$S3S_BIN" ] && "$S3S_BIN" --version 2>/dev/null | grep -qx "s3s-fs $S3S_VERSION"; }; then
  echo "setup: cargo install s3s-fs $S3S_VERSION into .bench-tools/s3s-fs (a few minutes, once)" >&2
  mkdir -p .bench-tools
  cargo install s3s-fs --version "$S3S_VERSION" --features binary --locked --root .bench-tools/s3s-fs \
    >.bench-tools/s3s-fs-install.log 2>&1 \
    || { echo "setup: cargo install s3s-fs failed; see .bench-tools/s3s-fs-install.log" >&2; exit 1; }
fi

echo "setup: ok (redis-server $(redis-server --version | awk '{print $3}'), moto $MOTO_VERSION, s3s-fs $S3S_VERSION)" >&2
