#!/usr/bin/env bash
# cutover orb, command `activate` (orb/src/commands/activate.yml): runs
# `cutover activate RELEASE --json` for PARAM_RELEASE, or else for the id
# that deploy.sh saved in PARAM_RELEASE_ID_DIR/cutover-release-id. Exits with
# cutover's exit code. The test suite runs this file as it is.
set -euo pipefail

command -v cutover >/dev/null || { echo "cutover is not on PATH: run cutover/install first" >&2; exit 2; }
command -v jq >/dev/null || { echo "jq is needed and not installed" >&2; exit 2; }

release="${PARAM_RELEASE:-}"
if [ -z "$release" ]; then
  file="${PARAM_RELEASE_ID_DIR:-/tmp/cutover}/cutover-release-id"
  if [ ! -s "$file" ]; then
    echo "no release to activate: $file does not exist; set the release parameter, or attach the workspace a cutover/deploy job persisted to" >&2
    exit 2
  fi
  release="$(tr -d '[:space:]' <"$file")"
fi

args=(activate "$release" --json)
if [ -n "${PARAM_APP:-}" ]; then args+=(--app "$PARAM_APP"); fi
if [ -n "${PARAM_MESSAGE:-}" ]; then args+=(--message "$PARAM_MESSAGE"); fi
if [ "${PARAM_DRY_RUN:-false}" = true ]; then args+=(--dry-run); fi
if [ -n "${PARAM_EXTRA_ARGS:-}" ]; then
  set -f # split on spaces, no globbing
  # shellcheck disable=SC2206
  extra=($PARAM_EXTRA_ARGS)
  set +f
  args+=("${extra[@]}")
fi
if [ -n "${PARAM_ROLE_ARN:-}" ]; then export AWS_ROLE_ARN="$PARAM_ROLE_ARN"; fi

out="$(mktemp)"
trap 'rm -f "$out"' EXIT
code=0
cutover "${args[@]}" >"$out" || code=$?
if [ "$code" -ne 0 ]; then
  echo "cutover activate $release exited with $code: see the error above (exit codes: cutover's docs/output.md)" >&2
  exit "$code"
fi
jq -r '
  "release:  \(.release) (\(.outcome)\(if .dry_run then ", dry run: nothing changed" else "" end))",
  "live:     \(.from // "none") -> \(.release)",
  "manifest: \(.manifest_diff.added | length) added, \(.manifest_diff.changed | length) changed, \(.manifest_diff.removed | length) removed, \(.manifest_diff.unchanged) unchanged"
' "$out"
