#!/usr/bin/env bash
# The GitHub Action in promote mode (inputs promote-from, promote-to and
# release; action.yml): runs `cutover promote RELEASE --from FROM --to TO
# --json` and turns its document into step outputs (release-id,
# live-release, outcome, activated, copied) and a summary. Exits with
# cutover's exit code. The test suite runs this file as it is.
set -euo pipefail

if [ -z "${INPUT_PROMOTE_FROM:-}" ] || [ -z "${INPUT_RELEASE:-}" ]; then
  echo "::error::promote-to needs promote-from and release (environments of cutover.toml, and the release id to promote)"
  exit 2
fi
args=(promote "$INPUT_RELEASE" --from "$INPUT_PROMOTE_FROM" --to "$INPUT_PROMOTE_TO" --json)
if [ -n "${INPUT_APP:-}" ]; then args+=(--app "$INPUT_APP"); fi
if [ -n "${INPUT_MESSAGE:-}" ]; then args+=(--message "$INPUT_MESSAGE"); fi
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

out="$(mktemp)"
trap 'rm -f "$out"' EXIT
code=0
cutover "${args[@]}" >"$out" || code=$?
if [ "$code" -ne 0 ]; then
  message="$(jq -r '.error // empty' "$out" 2>/dev/null || true)"
  [ -n "$message" ] || message="cutover exited with $code (see the log)"
  message="${message//'%'/%25}"
  message="${message//$'\n'/%0A}"
  echo "::error title=cutover promote failed (exit $code)::$message"
  exit "$code"
fi

if [ -n "${GITHUB_OUTPUT:-}" ]; then
  jq -r '
    "release-id=\(.release)",
    "live-release=\(if .outcome == "activated" or .outcome == "already_live" or .outcome == "repaired" then .release else (.live_before // "") end)",
    "outcome=\(.outcome)",
    "activated=\(.outcome == "activated" or .outcome == "repaired")",
    "copied=\(.copied.files)"
  ' "$out" >>"$GITHUB_OUTPUT"
fi
jq -r '
  "### cutover promote `\(.release)`: \(.from_environment) → \(.to_environment)",
  "",
  ({planned: "Dry run: nothing changed.", activated: "Live in \(.to_environment) (was \(.live_before // "none")).",
    already_live: "Already live in \(.to_environment).", repaired: "Live in \(.to_environment) (its keys were written again).",
    recorded: "Recorded in \(.to_environment) but NOT activated: it is pinned."}[.outcome] // .outcome),
  "",
  "Objects copied: \(.copied.files) (\(.copied.bytes) bytes); already there: \(.already_there).",
  "",
  "<details><summary>Writes (\(.steps | length))</summary>",
  "",
  (.steps[] | "- `\(.)`"),
  "",
  "</details>",
  ""
' "$out" | summary
jq -r '"cutover: \(.outcome), release \(.release), \(.from_environment) -> \(.to_environment), \(.copied.files) objects copied"' "$out"
