#!/usr/bin/env bash
# The GitHub Action (action.yml at the repository root): runs
# `cutover deploy DIR --json` (or, with the promote-to input,
# scripts/ci/github-promote.sh) and turns its document into
#   - step outputs in $GITHUB_OUTPUT: release-id, live-release, uploaded
#     (files uploaded), outcome, activated;
#   - a Markdown summary of the plan in $GITHUB_STEP_SUMMARY: files uploaded
#     and skipped, manifest diff counts, the switch, warnings;
#   - an ::error:: annotation when cutover fails (its warnings are already
#     ::warning:: annotations: cutover writes them so under GITHUB_ACTIONS=true).
# Inputs come as INPUT_* variables (action.yml sets them). Exits with
# cutover's exit code. The test suite runs this file as it is
# (tests/integration/ci_pipeline.rs).
set -euo pipefail

command -v cutover >/dev/null || { echo "::error::cutover is not on PATH: set the action's base-url input to install it, or install it before this step"; exit 2; }
command -v jq >/dev/null || { echo "::error::jq is needed and not installed"; exit 2; }

if [ -n "${INPUT_PROMOTE_TO:-}" ]; then
  # Promote mode: the other half of the action, in promote.sh's image.
  exec bash "$(dirname "$0")/github-promote.sh"
fi

build_dir="${INPUT_BUILD_DIR:-public/packs}"
args=(deploy "$build_dir" --json)
if [ -n "${INPUT_APP:-}" ]; then args+=(--app "$INPUT_APP"); fi
if [ -n "${INPUT_MESSAGE:-}" ]; then args+=(--message "$INPUT_MESSAGE"); fi
if [ "${INPUT_NO_ACTIVATE:-false}" = true ]; then args+=(--no-activate); fi
if [ "${INPUT_DRY_RUN:-false}" = true ]; then args+=(--dry-run); fi
if [ -n "${INPUT_EXTRA_ARGS:-}" ]; then
  set -f # split on spaces, no globbing
  # shellcheck disable=SC2206
  extra=($INPUT_EXTRA_ARGS)
  set +f
  args+=("${extra[@]}")
fi

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

out="$(mktemp)"
trap 'rm -f "$out"' EXIT
code=0
cutover "${args[@]}" >"$out" || code=$?

if [ "$code" -ne 0 ]; then
  message="$(jq -r '.error // empty' "$out" 2>/dev/null || true)"
  [ -n "$message" ] || message="cutover exited with $code (see the log)"
  echo "::error title=cutover deploy failed (exit $code)::$(escape "$message")"
  printf '### cutover deploy %s: failed (exit %s)\n\n%s\n' "$build_dir" "$code" "$message" | summary
  exit "$code"
fi

if [ -n "${GITHUB_OUTPUT:-}" ]; then
  jq -r '
    "release-id=\(.release.id)",
    "live-release=\(.live_after // "")",
    "uploaded=\(.uploaded.files // 0)",
    "outcome=\(.outcome)",
    "activated=\(.activated)"
  ' "$out" >>"$GITHUB_OUTPUT"
fi

jq -r --arg dir "$build_dir" --arg asked "${INPUT_NO_ACTIVATE:-false}" '
  def size: if . < 1024 then "\(.) B" elif . < 1048576 then "\(. / 1024 * 10 | floor / 10) KiB"
            else "\(. / 1048576 * 10 | floor / 10) MiB" end;
  def id: if . == null then "none" else "`\(.)`" end;
  .release.id as $id
  | "### cutover deploy \($dir): " + ({
      planned: "dry run, nothing changed",
      activated: "release `\($id)` is live",
      recorded: "release `\($id)` recorded, not activated",
      already_live: "release `\($id)` was already live",
      repaired: "release `\($id)` is live (its keys were written again)"
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
     elif .outcome == "recorded" then "Switch: none; the app is pinned (a rollback pins it) and the live release stays \(.live_after | id). `cutover activate \($id) --unpin` makes this one live."
     else "Switch: none; live release: \(.live_after | id)." end),
    (if (.warnings | length) > 0 then "", "**Warnings**", "", (.warnings[] | "- \(.)") else empty end),
    "",
    "<details><summary>Writes (\(.steps | length))</summary>",
    "",
    (.steps[] | "- `\(.)`"),
    "",
    "</details>",
    ""
' "$out" | summary

jq -r '"cutover: \(.outcome), release \(.release.id), live \(.live_before // "none") -> \(.live_after // "none"), \(.uploaded.files // 0) files uploaded"' "$out"
