#!/usr/bin/env bash
# Builds the webpack test fixtures used by cutover's tests.
#
#   scripts/build-fixtures.sh
#
# Installs the pinned npm dependencies of tests/fixtures/webpack-app (only if
# node_modules is missing) and builds it three times:
#   tests/fixtures/builds/shakapacker/  webpack-assets-manifest (Shakapacker default)
#   tests/fixtures/builds/flat/         webpack-manifest-plugin ("name": "/packs/file")
#   tests/fixtures/builds/example/      Shakapacker style, built with the CDN as
#                                       public path (the quick start deploys it)
# Both output directories are wiped first. The output is deterministic: running
# this twice produces byte-identical files.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
app_dir="$repo_root/tests/fixtures/webpack-app"
builds_dir="$repo_root/tests/fixtures/builds"

command -v node >/dev/null || { echo "build-fixtures: node is required" >&2; exit 1; }
command -v npm >/dev/null || { echo "build-fixtures: npm is required" >&2; exit 1; }

if [[ ! -d "$app_dir/node_modules" ]]; then
  echo "build-fixtures: npm ci in $app_dir"
  (cd "$app_dir" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
fi

build() {
  local manifest="$1" name="$2" public_path="${3:-/packs/}"
  local out="$builds_dir/$name"
  rm -rf "$out"
  mkdir -p "$out"
  echo "build-fixtures: MANIFEST=$manifest -> ${out#"$repo_root"/}"
  (
    cd "$app_dir"
    MANIFEST="$manifest" OUTDIR="$out" PUBLIC_PATH="$public_path" NODE_ENV=production \
      node node_modules/webpack-cli/bin/cli.js --config webpack.config.mjs
  )
  # webpack-assets-manifest takes a lock next to the manifest while writing it.
  if [[ -e "$out/webpack-assets-manifest.lock" ]]; then
    echo "build-fixtures: stale lock left in $out" >&2
    exit 1
  fi
}

build assets shakapacker
build flat flat
build assets example https://cdn.example.com/packs/

echo "build-fixtures: done ($(du -sh "$builds_dir" | cut -f1) in ${builds_dir#"$repo_root"/})"
