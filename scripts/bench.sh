#!/usr/bin/env bash
# Benchmarks cutover's upload against `aws s3 sync`, `s5cmd sync` and
# `rclone copy` on two local S3 servers (s3s-fs, whose listings carry no
# ETags, and moto_server, whose do), and on s3s-fs behind a proxy that adds a
# round trip's latency; cutover's scale curve; its rollback and activate
# with S3 or Redis far away and with a large prefix; and writes BENCHMARKS.md,
# with the goals each number is held to.
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
# BENCH_SERVERS="s3s moto" (the upload workloads' servers; moto_server also
# gets the rollback at each BENCH_LATENCY),
# BENCH_SCALE="1000 5000 20000 50000" (empty: skip),
# BENCH_LATENCY="0 20" (round trips to S3 in ms, through
# scripts/bench/latency_proxy.py above 0: each above 0 runs every upload
# workload and tool again on s3s-fs that far away, and the rollback at each
# on s3s-fs and moto_server; empty: neither),
# BENCH_CHECK_CONCURRENCY="32 256" (HEADs in flight for the rollback at each
# BENCH_LATENCY, each measured there),
# BENCH_REDIS_LATENCY="2" (round trips to Redis in ms, through the same proxy,
# at which the rollback is measured again beside 0 ms; empty: skip),
# BENCH_OTHERS="0 20000 100000" (other objects under the prefix for the
# rollback; empty: skip), BENCH_ROLLBACK_RUNS=5 (rollbacks take a second
# each: more runs steady their medians),
# BENCH_FLEET=2000 (simulated reader processes; empty: skip), BENCH_FLEET_SECS=30,
# BENCH_OUTPUT=BENCHMARKS.md. Logs and raw results: .bench-tools/run/.
#
# The report marks each goal met or missed; scripts/bench/notes.tsv (optional,
# goal id<TAB>one sentence, ids listed there) adds what bounds a goal under
# its table.
#
# A smoke run, the smallest that still runs every step (a few minutes once
# the tools are installed and cutover is built; its report goes elsewhere):
#
#   BENCH_RUNS=1 BENCH_FILES=200 BENCH_TOTAL_MB=5 BENCH_CHANGED=5 \
#   BENCH_IDLE_WAIT=0 BENCH_SCALE=200 BENCH_OTHERS="0 200" BENCH_ROLLBACK_RUNS=1 \
#   BENCH_OUTPUT=/tmp/bench-smoke.md scripts/bench.sh
exec bash "$(dirname "${BASH_SOURCE[0]}")/bench/run.sh" "$@"
