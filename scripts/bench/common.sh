# shellcheck shell=bash
# What every part of the harness uses: log and die, the EXIT trap that stops
# every server it started and removes its temp directories, this benchmark's
# Redis keys (db 15 only), and small file helpers. Sourced by run.sh.

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[bench] ERROR: %s\n' "$*" >&2; exit 1; }

# kv KEY VALUE: one line of a two-column .tsv (versions, machine, rollback).
kv() { printf '%s\t%s\n' "$1" "$2"; }

# The files of a build, relative to its directory.
list_files() { (cd "$1" && find . -type f | sed 's|^\./||'); }

redis_clean() {
  # Only this benchmark's keys, in db 15.
  redis-cli -n 15 --scan --pattern "cutover:{$APP*" | xargs -r redis-cli -n 15 del >/dev/null
}

# stop_pid PID: TERM, up to 5 s to exit, then KILL.
stop_pid() {
  local pid=$1
  kill -0 "$pid" 2>/dev/null || return 0
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}

SERVER_PIDS=()
DATA_DIRS=()
cleanup() {
  local rc=$? pid d
  for pid in "${SERVER_PIDS[@]+"${SERVER_PIDS[@]}"}"; do stop_pid "$pid"; done
  for d in "${DATA_DIRS[@]+"${DATA_DIRS[@]}"}"; do rm -rf "$d"; done
  redis_clean 2>/dev/null || true
  if [[ $rc -ne 0 ]]; then log "failed (exit $rc); logs in ${LOGS#"$ROOT"/}"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
