#!/usr/bin/env bash
# cutover orb, command `rollout` (orb/src/commands/rollout.yml): runs, by
# PARAM_ACTION,
#   start:    `cutover rollout RELEASE --percent N --json`, for PARAM_RELEASE
#             or else the id deploy.sh saved in PARAM_RELEASE_ID_DIR/cutover-release-id;
#   change:   `cutover rollout --percent N --json`;
#   complete: `cutover rollout complete --json` (the canary goes live);
#   abort:    `cutover rollout abort --json` (the canary is taken off).
# Prints the release, percent, live release and outcome. Exits with
# cutover's exit code. The test suite runs this file as it is
# (tests/integration/ci_rollout.rs).
set -euo pipefail

command -v cutover >/dev/null || { echo "cutover is not on PATH: run cutover/install first" >&2; exit 2; }
command -v jq >/dev/null || { echo "jq is needed and not installed" >&2; exit 2; }

# Parameters that are settings become cutover's own variables; left empty,
# they keep the job's value (a context's CUTOVER_APP, say).
export CUTOVER_APP="${PARAM_APP:-${CUTOVER_APP:-}}"
export CUTOVER_ROLE_ARN="${PARAM_ROLE_ARN:-${CUTOVER_ROLE_ARN:-}}"

action="${PARAM_ACTION:-start}"
args=(rollout)
case "$action" in
  start)
    [ -n "${PARAM_PERCENT:-}" ] || { echo "rollout start needs the percent parameter (the share of the requests the release gets, e.g. 5)" >&2; exit 2; }
    release="${PARAM_RELEASE:-}"
    if [ -z "$release" ]; then
      file="${PARAM_RELEASE_ID_DIR:-/tmp/cutover}/cutover-release-id"
      [ -s "$file" ] || { echo "no release to roll out: $file does not exist; set the release parameter, or attach the workspace a cutover/deploy job persisted to" >&2; exit 2; }
      release="$(tr -d '[:space:]' <"$file")"
    fi
    args+=("$release")
    ;;
  change)
    [ -n "${PARAM_PERCENT:-}" ] || { echo "rollout change needs the percent parameter (the new share, e.g. 50)" >&2; exit 2; }
    ;;
  complete | abort) args+=("$action") ;;
  *)
    echo "unknown rollout action \"$action\": start, change, complete or abort" >&2
    exit 2
    ;;
esac
if [ "$action" != start ] && [ -n "${PARAM_RELEASE:-}" ]; then
  echo "the release parameter is for action start; $action applies to the running rollout, whatever its release" >&2
  exit 2
fi
# complete and abort take no percent: cutover says so (exit 2).
[ -z "${PARAM_PERCENT:-}" ] || args+=(--percent "$PARAM_PERCENT")
args+=(--json)
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
  echo "cutover rollout ($action) exited with $code: see the error above (exit codes: cutover's docs/output.md)" >&2
  exit "$code"
fi
# complete prints activate's document (release, from); the others the
# rollout's (live, canary after, previous before).
jq -r --arg action "$action" '
  def pct: "\(.percent)%";
  (if .dry_run then ", dry run: nothing changed" else "" end) as $dry
  | if $action == "complete" then
      "release:  \(.release) (\(.outcome)\($dry))",
      "percent:  100%\(if .dry_run then " when completed" else " (the rollout is complete)" end)",
      "live:     \(.from // "none") -> \(.release)"
    else
      "release:  \((.canary // .previous).release // "none") (\(.outcome)\($dry))",
      "percent:  \(if .canary then .canary | pct else "none (no rollout runs)" end)\(
        if .previous == null or .previous == .canary then ""
        elif .canary != null and .previous.release != .canary.release then " (replaces \(.previous.release) at \(.previous | pct))"
        else " (was \(.previous | pct))" end)",
      "live:     \(.live // "none") (every request not on the canary)"
    end
' "$out"
