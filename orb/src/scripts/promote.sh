#!/usr/bin/env bash
# cutover orb, command `promote` (orb/src/commands/promote.yml): runs
# `cutover promote RELEASE --from FROM --to TO --json` for PARAM_RELEASE, or
# else for the id that deploy.sh saved in PARAM_RELEASE_ID_DIR/cutover-release-id.
# The environments are cutover.toml's [environments.NAME]. Exits with
# cutover's exit code. The test suite runs this file as it is.
set -euo pipefail

command -v cutover >/dev/null || { echo "cutover is not on PATH: run cutover/install first" >&2; exit 2; }
command -v jq >/dev/null || { echo "jq is needed and not installed" >&2; exit 2; }

# Parameters that are settings become cutover's own variables; left empty,
# they keep the job's value (a context's CUTOVER_APP, say).
export CUTOVER_APP="${PARAM_APP:-${CUTOVER_APP:-}}"
export CUTOVER_ROLE_ARN="${PARAM_ROLE_ARN:-${CUTOVER_ROLE_ARN:-}}"

if [ -z "${PARAM_FROM:-}" ] || [ -z "${PARAM_TO:-}" ]; then
  echo "promote needs the from and to parameters: environments of cutover.toml ([environments.NAME])" >&2
  exit 2
fi
release="${PARAM_RELEASE:-}"
if [ -z "$release" ]; then
  file="${PARAM_RELEASE_ID_DIR:-/tmp/cutover}/cutover-release-id"
  [ -s "$file" ] || { echo "no release to promote: $file does not exist; set the release parameter, or attach the workspace a cutover/deploy job persisted to" >&2; exit 2; }
  release="$(tr -d '[:space:]' <"$file")"
fi

args=(promote "$release" --from "$PARAM_FROM" --to "$PARAM_TO" --json)
[ -z "${PARAM_MESSAGE:-}" ] || args+=(--message "$PARAM_MESSAGE")
[ "${PARAM_DRY_RUN:-false}" != true ] || args+=(--dry-run)
# extra_args: split on spaces, no globbing.
# shellcheck disable=SC2206
set -f && args+=(${PARAM_EXTRA_ARGS:-}) && set +f

out="$(mktemp)"
trap 'rm -f "$out"' EXIT
code=0
cutover "${args[@]}" >"$out" || code=$?
if [ "$code" -ne 0 ]; then
  echo "cutover promote $release exited with $code: see the error above (exit codes: cutover's docs/output.md)" >&2
  exit "$code"
fi
jq -r '
  "release:  \(.release) (\(.outcome)\(if .dry_run then ", dry run: nothing changed" else "" end))",
  "from:     \(.from_environment) -> \(.to_environment)",
  "copied:   \(.copied.files) objects (\(.copied.bytes) bytes), \(.already_there) already there",
  "live:     \(.live_before // "none") -> \(if .outcome == "recorded" then "unchanged (pinned)" else .release end)"
' "$out"
