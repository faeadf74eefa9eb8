#!/usr/bin/env bash
# cutover orb, command `rollback` (orb/src/commands/rollback.yml): runs
# `cutover rollback [--to RELEASE] --json`. Exits with cutover's exit code.
# The test suite runs this file as it is.
set -euo pipefail

command -v cutover >/dev/null || { echo "cutover is not on PATH: run cutover/install first" >&2; exit 2; }
command -v jq >/dev/null || { echo "jq is needed and not installed" >&2; exit 2; }

args=(rollback --json)
if [ -n "${PARAM_TO:-}" ]; then args+=(--to "$PARAM_TO"); fi
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
  echo "cutover rollback exited with $code: see the error above (exit codes: cutover's docs/output.md)" >&2
  exit "$code"
fi
jq -r '
  "release:  \(.release) (\(.outcome)\(if .dry_run then ", dry run: nothing changed" else "" end))",
  "live:     \(.from // "none") -> \(.release)",
  "manifest: \(.manifest_diff.added | length) added, \(.manifest_diff.changed | length) changed, \(.manifest_diff.removed | length) removed, \(.manifest_diff.unchanged) unchanged"
' "$out"
