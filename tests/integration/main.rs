//! Integration tests: the real binary against a real Redis and a real
//! S3-compatible server (moto), started once per run. One test binary.

mod support;

mod activation;
mod bad_input;
mod ci_config;
mod consumers;
mod faults;
mod plan_and_dry_run;
mod redis_drops;
mod upload;
