#!/usr/bin/env bash
# Mutation testing of the code that holds cutover's safety properties
# (TESTING.md, "Mutation testing"). Two parts:
#
#   hand   hand-written mutants of what cargo-mutants cannot mutate: the Lua
#          scripts (strings to Rust) and single builder calls (`NX`, a
#          checksum, `If-None-Match`). Each is applied to the source, the
#          tests that guard it run, and they must FAIL; the file is restored.
#   cargo  cargo-mutants (installed from crates.io at a pinned version) over
#          the lock, plan decisions, S3 conditional writes and checksums and
#          configuration validation, each group with only its guarding tests.
#
#   scripts/mutants.sh [hand|cargo|all|extra] [NAME_REGEX]     (default: all)
#
# `all` (hand, then the cargo groups lock, plan and remote-compare) takes
# about 30 minutes on this project's 2-core machine when nothing else runs
# (each mutant is a rebuild of 15-40 s). A hand mutant whose text is no
# longer in its file stops the script: update the text.
# `extra` adds the groups that do not fit in that: S3 conditional writes
# (through the integration tests, about a minute a mutant) and
# configuration validation (263 mutants). Not part of .ci/run (too slow).
# Results go to target/mutants/ (hand.txt, and cargo-mutants' own
# mutants.out per group); TESTING.md has the latest and explains each
# missed mutant. Exit 1 if a hand mutant survives or cargo-mutants misses
# one (look it up in TESTING.md: killed by a test since, or equivalent).
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"
only="${2:-}"
CARGO_MUTANTS_VERSION=27.1.0
out=target/mutants
mkdir -p "$out"
export AWS_EC2_METADATA_DISABLED=true

bash scripts/setup.sh >/dev/null

# ---------------------------------------------------------------------------
# Hand-written mutants: name | file | exact text | replacement | test filters.
# The text must occur exactly once in the file.
HAND=(
  "activate-no-compare-and-set|src/store/scripts.rs|if ARGV[7] ~= '1' and (cur or '') ~= ARGV[1] then|if false then|lost_race::"
  "activate-force-ignored|src/store/scripts.rs|if ARGV[7] ~= '1' and (cur or '')|if true and (cur or '')|lost_race::"
  "activate-no-type-check|src/store/scripts.rs|if bad then return redis.error_reply(bad) end|if false then return redis.error_reply(bad) end|atomic_switch::"
  "activate-publish-after-writes|src/store/scripts.rs|redis.call('PUBLISH', ARGV[6], text)
redis.call('SET', KEYS[1], ARGV[2])|redis.call('SET', KEYS[1], ARGV[2])
redis.call('PUBLISH', ARGV[6], text)|atomic_switch::"
  "activate-pin-ignored|src/store/scripts.rs|if ARGV[8] == 'respect' then|if false then|lifecycle:: lost_race::"
  "activate-unregistered-allowed|src/store/scripts.rs|if redis.call('EXISTS', KEYS[4]) == 0 then|if false then|lost_race::a_release_whose_record"
  "register-overwrites-records|src/store/scripts.rs|if not old or (ARGV[4] == '1' and not pcall(cjson.decode, old)) then|if true then|activation::a_release_record"
  "unlock-ignores-owner|src/store/scripts.rs|if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL'|if redis.call('GET', KEYS[1]) then return redis.call('DEL'|lock_ownership:: never_wedged::unlock"
  "renew-ignores-owner|src/store/scripts.rs|if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE'|if redis.call('GET', KEYS[1]) then return redis.call('PEXPIRE'|lock_ownership::"
  "lock-without-nx|src/store/redis/access.rs|            .arg(\"NX\")
            .arg(\"PX\")|            .arg(\"PX\")|lock_ownership:: activation::concurrent"
  "part-without-checksum|src/store/s3/upload.rs|                .checksum_sha256(B64.encode(sha))
                .body(body)|                .body(body)|upload::large_file"
  "put-without-if-none-match|src/store/s3/upload.rs|            None => req.if_none_match(\"*\"),|            None => req,|upload::conflict"
  "dry-run-pin-writes|src/commands/pin.rs|    if req.dry_run {
        return Ok(out);|    if false {
        return Ok(out);|dry_runs::"
  "dry-run-unlock-writes|src/commands/unlock.rs|    if req.dry_run {
        out.outcome = Ending::Planned;|    if false {
        out.outcome = Ending::Planned;|dry_runs::"
  "dry-run-switch-writes|src/commands/switch.rs|    let lock = !req.dry_run && !plan::is_live(&live, &record, &in_redis);|    let lock = !plan::is_live(&live, &record, &in_redis);|dry_runs::"
  "put-without-checksum|src/store/s3/upload.rs|            .checksum_sha256(B64.encode(sha))
            .metadata(META_SHA256, file.sha256_hex);|            .metadata(META_SHA256, file.sha256_hex);|faults::flaky"
)

hand() {
  local report="$out/hand.txt" survived=0
  : >"$report"
  # Build once unmutated, so each mutant rebuilds only what it changes.
  cargo test --locked --no-run >/dev/null 2>&1
  for entry in "${HAND[@]}"; do
    # -d '': the texts may span lines.
    IFS='|' read -r -d '' name file from to tests <<<"$entry" || true
    tests="${tests%$'\n'}"
    [[ -n "$only" && ! "$name" =~ $only ]] && continue
    local saved
    saved="$(mktemp)"
    cp "$file" "$saved"
    # shellcheck disable=SC2064
    trap "cp '$saved' '$file'" EXIT INT TERM
    FROM="$from" TO="$to" python3 - "$file" <<'PY'
import os, sys
path = sys.argv[1]
text = open(path).read()
n = text.count(os.environ["FROM"])
if n != 1:
    sys.exit(f"mutant text found {n} times in {path}")
open(path, "w").write(text.replace(os.environ["FROM"], os.environ["TO"]))
PY
    local started=$SECONDS verdict
    # shellcheck disable=SC2086
    if cargo test --locked --test integration -- $tests >"$out/hand-$name.log" 2>&1; then
      verdict="MISSED"
      survived=$((survived + 1))
    elif grep -q "^test result: FAILED" "$out/hand-$name.log"; then
      verdict="caught"
    else
      verdict="UNVIABLE (did not build; see $out/hand-$name.log)"
      survived=$((survived + 1))
    fi
    cp "$saved" "$file"
    rm -f "$saved"
    trap - EXIT INT TERM
    local failed
    failed="$(grep -E '^    [a-z0-9_:]+$' "$out/hand-$name.log" | tr -d ' ' | paste -sd' ' || true)"
    printf '%-32s %-8s %4ss  %s\n' "$name" "$verdict" "$((SECONDS - started))" "$failed" | tee -a "$report"
  done
  # Rebuild unmutated.
  cargo test --locked --no-run >/dev/null 2>&1
  [[ $survived -eq 0 ]]
}

# ---------------------------------------------------------------------------
# cargo-mutants over the modules that hold safety properties, each group with
# the test target that guards it (built alone: --cargo-arg reaches the build
# as well as the test run) and the tests of it to run.
install_cargo_mutants() {
  if ! cargo mutants --version 2>/dev/null | grep -q "$CARGO_MUTANTS_VERSION"; then
    cargo install cargo-mutants --version "$CARGO_MUTANTS_VERSION" --locked
  fi
}

# name ; cargo-mutants scope options ; test targets ; test name filters
GROUPS_=(
  "lock;--file src/store/lock.rs;--test=integration;lock_ownership:: never_wedged::a_lock"
  "plan;--file src/plan/deploy/mod.rs --file src/plan/deploy/facts.rs --re (classify|closer_look|first_look|steps|mutable_copies);--lib --test=integration;plan:: mutable_files::"
  "remote-compare;--file src/state.rs --re (compare|matches);--lib --test=integration;state:: plan::"
)
EXTRA_GROUPS=(
  "conditional-writes;--file src/store/s3/upload.rs --file src/store/s3/mod.rs --re (put_single|put_file|settle_existing|is_precondition_failed|quoted|is_md5);--test=integration;upload:: bytes_truth:: faults::flaky"
  "config-validation;--file src/config/values.rs --exclude-re (delete.field|markdown);--lib;config::"
)

cargo_mutants() {
  install_cargo_mutants
  local missed=0
  for entry in "$@"; do
    IFS=';' read -r name scope targets filters <<<"$entry"
    [[ -n "$only" && ! "$name" =~ $only ]] && continue
    echo "== cargo-mutants: $name ($scope; $targets: $filters)"
    local cargo_args=()
    for t in $targets; do cargo_args+=("--cargo-arg=$t"); done
    # --in-place: reuse target/ (a copy would build from nothing);
    # the baseline is the green suite this runs on.
    # shellcheck disable=SC2086
    if ! cargo mutants --in-place --baseline=skip --no-shuffle --timeout 120 \
      --output "$out/$name" "${cargo_args[@]}" $scope -- -- $filters; then
      missed=1
    fi
    for f in caught missed unviable timeout; do
      printf '   %-9s %s\n' "$f" "$(wc -l <"$out/$name/mutants.out/$f.txt" 2>/dev/null || echo 0)"
    done
    sed 's/^/   MISSED: /' "$out/$name/mutants.out/missed.txt" 2>/dev/null || true
  done
  return $missed
}

status=0
case "$what" in
  hand) hand || status=1 ;;
  cargo) cargo_mutants "${GROUPS_[@]}" || status=1 ;;
  extra) cargo_mutants "${EXTRA_GROUPS[@]}" || status=1 ;;
  all)
    hand || status=1
    cargo_mutants "${GROUPS_[@]}" || status=1
    ;;
  *) echo "usage: $0 [hand|cargo|all|extra] [NAME_REGEX]" >&2; exit 2 ;;
esac
exit $status
