#!/usr/bin/env bash
# Benchmarks cutover's upload against `aws s3 sync`, `s5cmd sync` and
# `rclone copy` on two local S3 servers (s3s-fs, whose listings carry no
# ETags, and moto_server, whose do), cutover's scale curve and its rollback
# with a large prefix, and writes BENCHMARKS.md.
#
#   bash scripts/bench.sh          (or scripts/bench.sh)
#
# Installs what is missing (apt, PyPI, crates.io), builds cutover (cargo build
# --release), starts and stops its own servers, needs Redis on 127.0.0.1:6379
# (it uses db 15). The harness is in scripts/bench/: run.sh says what it does
# in order, and each file there what it covers.
#
# Knobs (environment): BENCH_RUNS=3, BENCH_TOOLS="cutover aws s5cmd rclone",
# BENCH_FILES=5000, BENCH_TOTAL_MB=200, BENCH_CHANGED=50,
# BENCH_IDLE_WAIT=180 (seconds to wait for other CPU load to settle),
# BENCH_TMP=/dev/shm (server data and builds; /tmp if there is no tmpfs),
# BENCH_FIXTURE=tests/fixtures/builds/shakapacker (skipped with a note if absent),
# BENCH_SERVERS="s3s moto", BENCH_SCALE="1000 5000 20000 50000" (empty: skip),
# BENCH_OTHERS="0 20000 100000" (empty: skip the rollback), BENCH_ROLLBACK_RUNS=5,
# BENCH_FLEET=2000 (simulated reader processes; empty: skip), BENCH_FLEET_SECS=30,
# BENCH_LATENCY="0 20" (round trips in ms for the rollback, through
# scripts/bench/latency_proxy.py above 0; empty: skip),
# BENCH_CHECK_CONCURRENCY="32 256" (HEADs in flight, each measured there)
# (rollbacks take a second each: more runs steady their medians),
# BENCH_OUTPUT=BENCHMARKS.md. Logs and raw results: .bench-tools/run/.
#
# A smoke run, the smallest that still runs every step (a few minutes once
# the tools are installed and cutover is built; its report goes elsewhere):
#
#   BENCH_RUNS=1 BENCH_FILES=200 BENCH_TOTAL_MB=5 BENCH_CHANGED=5 \
#   BENCH_IDLE_WAIT=0 BENCH_SCALE=200 BENCH_OTHERS="0 200" BENCH_ROLLBACK_RUNS=1 \
#   BENCH_OUTPUT=/tmp/bench-smoke.md scripts/bench.sh
exec bash "$(dirname "${BASH_SOURCE[0]}")/bench/run.sh" "$@"
