#!/usr/bin/env bash
# cutover orb, command `deploy` (orb/src/commands/deploy.yml): runs
# `cutover deploy DIR --json` (with PARAM_ROLLOUT, `--rollout N`: the build
# becomes a rollout's canary), prints what happened, and saves the release id
# for a later activate or rollout: PARAM_RELEASE_ID_DIR/cutover-release-id,
# and CUTOVER_RELEASE_ID in $BASH_ENV for the job's following steps. Exits
# with cutover's exit code. Parameters come as PARAM_* variables. The test
# suite runs this file as it is (tests/integration/ci_pipeline.rs,
# ci_rollout.rs). CircleCI inlines one file per step, so the lines the
# orb's scripts have in common are repeated in each.
set -euo pipefail

command -v cutover >/dev/null || { echo "cutover is not on PATH: run cutover/install first" >&2; exit 2; }
command -v jq >/dev/null || { echo "jq is needed and not installed" >&2; exit 2; }

# Parameters that are settings become cutover's own variables; left empty,
# they keep the job's value (a context's CUTOVER_APP, say).
export CUTOVER_APP="${PARAM_APP:-${CUTOVER_APP:-}}"
export CUTOVER_ROLE_ARN="${PARAM_ROLE_ARN:-${CUTOVER_ROLE_ARN:-}}"

args=(deploy "${PARAM_BUILD_DIR:-public/packs}" --json)
[ -z "${PARAM_MESSAGE:-}" ] || args+=(--message "$PARAM_MESSAGE")
[ "${PARAM_NO_ACTIVATE:-false}" != true ] || args+=(--no-activate)
[ -z "${PARAM_ROLLOUT:-}" ] || args+=(--rollout "$PARAM_ROLLOUT")
[ "${PARAM_DRY_RUN:-false}" != true ] || args+=(--dry-run)
# extra_args: split on spaces, no globbing.
# shellcheck disable=SC2206
set -f && args+=(${PARAM_EXTRA_ARGS:-}) && set +f

out="$(mktemp)"
trap 'rm -f "$out"' EXIT
code=0
cutover "${args[@]}" >"$out" || code=$?
if [ "$code" -ne 0 ]; then
  case "$code" in
    2) why="bad usage, configuration, input or permissions" ;;
    3) why="refused for safety: conflict, lock held, live release changed, pinned, or a limit" ;;
    4) why="verification failed: objects missing or corrupt" ;;
    5) why="partially applied: some Redis targets switched, some did not" ;;
    6) why="switched, but a step after the switch did not complete; the switch stands" ;;
    1 | 130) why="failed or interrupted; nothing was switched" ;;
    *) why="failed" ;;
  esac
  echo "cutover deploy exited with $code ($why): see the error above" >&2
  exit "$code"
fi

jq -r '
  def size: if . < 1024 then "\(.) B" elif . < 1048576 then "\(. / 1024 * 10 | floor / 10) KiB"
            else "\(. / 1048576 * 10 | floor / 10) MiB" end;
  "release:  \(.release.id) (\(.outcome))",
  "files:    \(.upload.files) to upload (\(.upload.bytes | size)), \(.skip.files) already in S3",
  "manifest: \(.manifest_diff.added | length) added, \(.manifest_diff.changed | length) changed, \(.manifest_diff.removed | length) removed, \(.manifest_diff.unchanged) unchanged",
  if .dry_run then "live:     \(.live_before // "none") (dry run: unchanged)"
  elif .outcome == "rolling_out" then "live:     \(.live_before // "none") (unchanged: every request not on the canary)"
  else "live:     \(.live_before // "none") -> \(.live_after // "none")" end,
  if .canary then "canary:   \(.canary.release) at \(.canary.percent)% (rollout since \(.canary.since))" else empty end
' "$out"

if [ "${PARAM_DRY_RUN:-false}" = true ]; then
  echo "dry run: nothing changed, no release id saved. It would:"
  jq -r '.steps[] | "  - \(.)"' "$out"
  exit 0
fi

id="$(jq -r '.release.id' "$out")"
dir="${PARAM_RELEASE_ID_DIR:-/tmp/cutover}"
mkdir -p "$dir"
printf '%s\n' "$id" >"$dir/cutover-release-id"
if [ -n "${BASH_ENV:-}" ]; then echo "export CUTOVER_RELEASE_ID=$id" >>"$BASH_ENV"; fi
case "$(jq -r '.outcome' "$out")" in
  rolling_out)
    echo "release $id is rolling out to $(jq -r '.canary.percent' "$out")% of the requests: cutover/rollout changes the percent (action change), makes it live (complete) or takes it off (abort)"
    ;;
  recorded)
    if [ "${PARAM_NO_ACTIVATE:-false}" = true ]; then
      echo "release $id is recorded, not live: activate it with cutover/activate (or cutover activate $id)"
    elif [ "$(jq -r '.canary != null' "$out")" = true ]; then
      echo "release $id is recorded, not live: a rollout is running (canary $(jq -r '.canary.release' "$out")); complete or abort it with cutover/rollout first, or deploy with rollout to replace its canary"
    elif [ "$(jq -r '.pinned != null' "$out")" = true ]; then
      echo "release $id is recorded, not live: the app is pinned (a rollback pins it); cutover activate $id --unpin makes it live"
    else
      echo "release $id is recorded, not live: cutover/activate (or cutover activate $id) makes it live"
    fi
    ;;
esac
echo "release id saved in $dir/cutover-release-id"
