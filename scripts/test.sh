#!/usr/bin/env bash
# The whole test suite: format, lints, unit and integration tests.
# Integration tests start their own moto and redis-server on free loopback
# ports (or use CUTOVER_TEST_S3_ENDPOINT for S3).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export AWS_EC2_METADATA_DISABLED=true
cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked -- --test-threads=4
