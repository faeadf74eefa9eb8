#!/usr/bin/env bash
# The GitHub Action (action.yml at the repository root): runs
# `cutover deploy DIR --json` (with the rollout input, `--rollout N`), or with
# the promote-to input `cutover promote RELEASE --from FROM --to TO --json`,
# or with the rollout-action input `cutover rollout --percent N --json`
# (change), `cutover rollout complete --json` or `cutover rollout abort
# --json`, and turns its document into
#   - step outputs in $GITHUB_OUTPUT: release-id, live-release, outcome,
#     activated, canary and percent (the rollout's canary after the step),
#     and uploaded (deploy: files uploaded) or copied (promote: objects
#     copied);
#   - a Markdown summary in $GITHUB_STEP_SUMMARY: deploy's plan (files
#     uploaded and skipped, manifest diff counts, the switch, the canary,
#     warnings), promote's copies and switch, or the rollout's change, and
#     the writes;
#   - an ::error:: annotation when cutover fails (its warnings are already
#     ::warning:: annotations: cutover writes them so under GITHUB_ACTIONS=true).
# Inputs come as INPUT_* variables (action.yml sets them). Exits with
# cutover's exit code. The test suite runs this file as it is
# (tests/integration/ci_pipeline.rs, promote.rs, ci_rollout.rs).
set -euo pipefail

command -v cutover >/dev/null || { echo "::error::cutover is not on PATH: set the action's base-url input to install it, or install it before this step"; exit 2; }
command -v jq >/dev/null || { echo "::error::jq is needed and not installed"; exit 2; }

# Inputs that are settings become cutover's own variables; left empty, they
# keep the job's value (the step's env: CUTOVER_APP, say).
export CUTOVER_APP="${INPUT_APP:-${CUTOVER_APP:-}}"

summary() {
  if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then cat >>"$GITHUB_STEP_SUMMARY"; else cat >/dev/null; fi
}
# Workflow command data: %, CR and LF escaped.
escape() {
  local s="$1"
  s="${s//'%'/%25}"
  s="${s//$'\r'/%0D}"
  s="${s//$'\n'/%0A}"
  printf '%s' "$s"
}

if [ -n "${INPUT_PROMOTE_TO:-}" ] && [ -n "${INPUT_ROLLOUT_ACTION:-}" ]; then
  echo "::error::promote-to and rollout-action are two different steps: use one"
  exit 2
elif [ -n "${INPUT_PROMOTE_TO:-}" ]; then
  mode=promote
  if [ -z "${INPUT_PROMOTE_FROM:-}" ] || [ -z "${INPUT_RELEASE:-}" ]; then
    echo "::error::promote-to needs promote-from and release (environments of cutover.toml, and the release id to promote)"
    exit 2
  fi
  title="promote \`$INPUT_RELEASE\`: $INPUT_PROMOTE_FROM → $INPUT_PROMOTE_TO"
  args=(promote "$INPUT_RELEASE" --from "$INPUT_PROMOTE_FROM" --to "$INPUT_PROMOTE_TO" --json)
elif [ -n "${INPUT_ROLLOUT_ACTION:-}" ]; then
  mode=rollout
  action="$INPUT_ROLLOUT_ACTION"
  title="rollout $action"
  args=(rollout)
  case "$action" in
    change)
      [ -n "${INPUT_ROLLOUT:-}" ] || { echo "::error::rollout-action change needs the rollout input: the new percent"; exit 2; }
      ;;
    complete | abort) args+=("$action") ;;
    *)
      echo "::error::rollout-action is change, complete or abort (a rollout starts with a deploy with the rollout input), not \"$(escape "$action")\""
      exit 2
      ;;
  esac
  # complete and abort take no percent: cutover says so (exit 2).
  [ -z "${INPUT_ROLLOUT:-}" ] || args+=(--percent "$INPUT_ROLLOUT")
  args+=(--json)
else
  mode=deploy
  build_dir="${INPUT_BUILD_DIR:-public/packs}"
  title="deploy $build_dir"
  args=(deploy "$build_dir" --json)
  [ "${INPUT_NO_ACTIVATE:-false}" != true ] || args+=(--no-activate)
  [ -z "${INPUT_ROLLOUT:-}" ] || args+=(--rollout "$INPUT_ROLLOUT")
fi
[ -z "${INPUT_MESSAGE:-}" ] || args+=(--message "$INPUT_MESSAGE")
[ "${INPUT_DRY_RUN:-false}" != true ] || args+=(--dry-run)
# extra-args: split on spaces, no globbing.
# shellcheck disable=SC2206
set -f && args+=(${INPUT_EXTRA_ARGS:-}) && set +f

out="$(mktemp)"
trap 'rm -f "$out"' EXIT
code=0
cutover "${args[@]}" >"$out" || code=$?

if [ "$code" -ne 0 ]; then
  message="$(jq -r '.error // empty' "$out" 2>/dev/null || true)"
  [ -n "$message" ] || message="cutover exited with $code (see the log)"
  echo "::error title=cutover $mode failed (exit $code)::$(escape "$message")"
  printf '### cutover %s: failed (exit %s)\n\n%s\n' "$title" "$code" "$message" | summary
  exit "$code"
fi

# Each mode: its outputs, its summary, its log line, from cutover's document.
# (The writes close every summary.)
writes='"", "<details><summary>Writes (\(.steps | length))</summary>", "", (.steps[] | "- `\(.)`"), "", "</details>", ""'
if [ "$mode" = promote ]; then
  outputs='
    "release-id=\(.release)",
    "live-release=\(if .outcome == "activated" or .outcome == "already_live" or .outcome == "repaired" then .release else (.live_before // "") end)",
    "outcome=\(.outcome)",
    "activated=\(.outcome == "activated" or .outcome == "repaired")",
    "copied=\(.copied.files)",
    "canary=",
    "percent="'
  # (promote's document names no canary: it refuses to switch while a
  # rollout runs in the target.)
  report='
    "### cutover promote `\(.release)`: \(.from_environment) → \(.to_environment)",
    "",
    ({planned: "Dry run: nothing changed.", activated: "Live in \(.to_environment) (was \(.live_before // "none")).",
      already_live: "Already live in \(.to_environment).", repaired: "Live in \(.to_environment) (its keys were written again).",
      recorded: "Recorded in \(.to_environment) but NOT activated: it is pinned."}[.outcome] // .outcome),
    "",
    "Objects copied: \(.copied.files) (\(.copied.bytes) bytes); already there: \(.already_there).",
    '"$writes"
  line='"cutover: \(.outcome), release \(.release), \(.from_environment) -> \(.to_environment), \(.copied.files) objects copied"'
elif [ "${action:-}" = complete ]; then
  # activate's document: the canary went live, no rollout runs after it.
  outputs='
    "release-id=\(.release)",
    "live-release=\(if .outcome == "activated" or .outcome == "already_live" or .outcome == "repaired" then .release else (.from // "") end)",
    "outcome=\(.outcome)",
    "activated=\(.outcome == "activated" or .outcome == "repaired")",
    "canary=",
    "percent="'
  report='
    def id: if . == null then "none" else "`\(.)`" end;
    "### cutover rollout complete: " + ({
        planned: "dry run, nothing changed",
        activated: "release `\(.release)` is live for everyone",
        already_live: "release `\(.release)` was already live",
        repaired: "release `\(.release)` is live for everyone (its keys were written again)"
      }[.outcome] // .outcome),
    "",
    (if .dry_run then "Switch: none (dry run); it would be \(.from | id) → `\(.release)` and end the rollout."
     else "Switch: \(.from | id) → `\(.release)`. The rollout is over: no canary." end),
    "",
    "Manifest against the release live before: \(.manifest_diff.added | length) added, \(.manifest_diff.changed | length) changed, \(.manifest_diff.removed | length) removed, \(.manifest_diff.unchanged) unchanged.",
    '"$writes"
  line='"cutover: \(.outcome), release \(.release), live \(.from // "none") -> \(.release), rollout complete"'
elif [ "$mode" = rollout ]; then
  # The rollout's document: live, canary (after), previous (before).
  outputs='
    "release-id=\((.canary // .previous).release // "")",
    "live-release=\(.live // "")",
    "outcome=\(.outcome)",
    "activated=false",
    "canary=\(.canary.release // "")",
    "percent=\(.canary.percent // "")"'
  report='
    def id: if . == null then "none" else "`\(.)`" end;
    "### cutover rollout \($action): " + ({
        planned: "dry run, nothing changed",
        changed: "canary `\(.canary.release)` at \(.canary.percent)% (was \(.previous.percent)%)",
        aborted: "rollout of `\(.previous.release)` aborted",
        unchanged: (if .canary then "canary `\(.canary.release)` is at \(.canary.percent)% already" else "no rollout is running" end)
      }[.outcome] // .outcome),
    "",
    (if .canary then "Canary: `\(.canary.release)` at \(.canary.percent)%\(if .dry_run then " (after this dry run)" else "" end), rolling out since \(.canary.since); every other request gets \(.live | id)."
     else "Canary: none\(if .dry_run then " (after this dry run)" else "" end); every request gets \(.live | id)." end),
    '"$writes"
  line='"cutover: \(.outcome), canary \(.canary.release // "none")\(if .canary then " at \(.canary.percent)%" else "" end), live \(.live // "none")"'
else
  outputs='
    "release-id=\(.release.id)",
    "live-release=\(.live_after // "")",
    "uploaded=\(.uploaded.files // 0)",
    "outcome=\(.outcome)",
    "activated=\(.activated)",
    "canary=\(.canary.release // "")",
    "percent=\(.canary.percent // "")"'
  report='
    def size: if . < 1024 then "\(.) B" elif . < 1048576 then "\(. / 1024 * 10 | floor / 10) KiB"
              else "\(. / 1048576 * 10 | floor / 10) MiB" end;
    def id: if . == null then "none" else "`\(.)`" end;
    .release.id as $id
    | "### cutover deploy \($dir): " + ({
        planned: "dry run, nothing changed",
        activated: "release `\($id)` is live",
        recorded: "release `\($id)` recorded, not activated",
        already_live: "release `\($id)` was already live",
        repaired: "release `\($id)` is live (its keys were written again)",
        rolling_out: "release `\($id)` is rolling out to \(.canary.percent)%"
      }[.outcome] // .outcome),
      "",
      "| files | count | size |",
      "|---|---:|---:|",
      "| \(if .dry_run then "to upload" else "uploaded" end) | \(.upload.files) | \(.upload.bytes | size) |",
      "| already in S3 (skipped) | \(.skip.files) | \(.skip.bytes | size) |",
      "",
      "Manifest against the live release: \(.manifest_diff.added | length) added, \(.manifest_diff.changed | length) changed, \(.manifest_diff.removed | length) removed, \(.manifest_diff.unchanged) unchanged.",
      "",
      (if .dry_run then "Switch: none (dry run); live release: \(.live_before | id)."
       elif .activated then "Switch: \(.live_before | id) → \(.live_after | id)."
       elif .outcome == "recorded" and $asked == "true" then "Switch: none; the live release stays \(.live_after | id). Activate it with `cutover activate \($id)`."
       elif .outcome == "rolling_out" then "Switch: none; the live release stays \(.live_after | id) for every request not on the canary."
       elif .outcome == "recorded" and .canary then "Switch: none; a rollout is running, so the live release stays \(.live_after | id). Complete or abort it first (`cutover rollout complete`, `abort`), or deploy with `rollout` to make this build the canary."
       elif .outcome == "recorded" and .pinned == null then "Switch: none; the live release stays \(.live_after | id). `cutover activate \($id)` makes this one live."
       elif .outcome == "recorded" then "Switch: none; the app is pinned (a rollback pins it) and the live release stays \(.live_after | id). `cutover activate \($id) --unpin` makes this one live."
       else "Switch: none; live release: \(.live_after | id)." end),
      (if .canary then "", "Rollout: canary `\(.canary.release)` at \(.canary.percent)% since \(.canary.since); the others get \(.live_after // .live_before | id). `cutover rollout --percent N` changes the share, `cutover rollout complete` makes it live, `cutover rollout abort` takes it off." else empty end),
      (if (.warnings | length) > 0 then "", "**Warnings**", "", (.warnings[] | "- \(.)") else empty end),
      '"$writes"
  line='"cutover: \(.outcome), release \(.release.id), live \(.live_before // "none") -> \(.live_after // "none"), \(.uploaded.files // 0) files uploaded"'
fi

[ -z "${GITHUB_OUTPUT:-}" ] || jq -r "$outputs" "$out" >>"$GITHUB_OUTPUT"
jq -r --arg dir "${build_dir:-}" --arg asked "${INPUT_NO_ACTIVATE:-false}" --arg action "${action:-}" "$report" "$out" | summary
jq -r "$line" "$out"
