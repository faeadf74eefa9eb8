#!/usr/bin/env bash
# Builds the test fixtures used by cutover's tests, with real tools from npm.
#
#   scripts/build-fixtures.sh
#
# Installs the pinned npm dependencies of each fixture project (npm ci, only if
# its node_modules is missing) and builds:
#   tests/fixtures/builds/shakapacker/  webpack-app: webpack-assets-manifest (Shakapacker default)
#   tests/fixtures/builds/flat/         webpack-app: webpack-manifest-plugin ("name": "/packs/file")
#   tests/fixtures/builds/example/      webpack-app: Shakapacker style, built with the CDN as
#                                       public path (the quick start deploys it)
#   tests/fixtures/builds/vite/         vite-app: Vite 7 with vite-plugin-ruby, as vite_ruby
#                                       builds public/vite (.vite/manifest.json), base
#                                       https://cdn.example.com/vite/
#   tests/fixtures/builds/propshaft/    propshaft-app: jsbundling-rails' esbuild command, then
#                                       tools/propshaft-digest.mjs (Propshaft 1.3.2's rules)
#                                       into public/assets' layout (.manifest.json)
#   tests/fixtures/builds/sprockets/    sprockets-app: tools/sprockets-manifest.mjs writes
#                                       Sprockets 4.4.0's layout (.sprockets-manifest-*.json)
# Every output directory is wiped first. The output is deterministic: running
# this twice produces byte-identical files.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
app_dir="$repo_root/tests/fixtures/webpack-app"
builds_dir="$repo_root/tests/fixtures/builds"

command -v node >/dev/null || { echo "build-fixtures: node is required" >&2; exit 1; }
command -v npm >/dev/null || { echo "build-fixtures: npm is required" >&2; exit 1; }

npm_ci() {
  if [[ ! -d "$1/node_modules" ]]; then
    echo "build-fixtures: npm ci in ${1#"$repo_root"/}"
    (cd "$1" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
  fi
}
npm_ci "$app_dir"

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

# Vite, as vite_ruby builds it: vite-plugin-ruby reads config/vite.json
# (production: publicDir ../builds, publicOutputDir vite, assetHost the CDN).
vite_dir="$repo_root/tests/fixtures/vite-app"
npm_ci "$vite_dir"
rm -rf "$builds_dir/vite"
echo "build-fixtures: vite build -> tests/fixtures/builds/vite"
(cd "$vite_dir" && RAILS_ENV=production node node_modules/vite/bin/vite.js build)

# jsbundling-rails (esbuild, its documented command with code splitting), then
# Propshaft's precompile step.
propshaft_dir="$repo_root/tests/fixtures/propshaft-app"
npm_ci "$propshaft_dir"
rm -rf "$propshaft_dir/app/assets/builds" "$builds_dir/propshaft"
echo "build-fixtures: esbuild + propshaft digest -> tests/fixtures/builds/propshaft"
(
  cd "$propshaft_dir"
  node node_modules/esbuild/bin/esbuild app/javascript/*.* --bundle --sourcemap --format=esm \
    --splitting '--chunk-names=[name]-[hash].digested' --outdir=app/assets/builds --public-path=/assets \
    --log-level=warning
  node tools/propshaft-digest.mjs "$builds_dir/propshaft"
)

rm -rf "$builds_dir/sprockets"
node "$repo_root/tests/fixtures/sprockets-app/tools/sprockets-manifest.mjs" "$builds_dir/sprockets"

echo "build-fixtures: done ($(du -sh "$builds_dir" | cut -f1) in ${builds_dir#"$repo_root"/})"
