#!/usr/bin/env bash
# The whole test suite: format, lints, unit and integration tests (Rust),
# then the readers' suites (Ruby with Rails, Node) against the binary just built.
# Every suite starts its own moto and redis-server on free loopback ports
# (the Rust tests use CUTOVER_TEST_S3_ENDPOINT instead when it is set).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export AWS_EC2_METADATA_DISABLED=true
cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked -- --test-threads=4
bash scripts/test-ruby.sh
bash scripts/test-node.sh
