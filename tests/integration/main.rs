//! Integration tests: the real binary against a real Redis and a real
//! S3-compatible server (moto), started once per run. One test binary.

mod support;

mod activation;
mod after_the_switch;
mod atomic_switch;
mod bad_input;
mod big_files;
mod bytes_truth;
mod ci_config;
mod ci_credentials;
mod ci_pipeline;
mod ci_rollout;
mod cli_surface;
mod consumers;
mod content_index;
mod crafted_records;
mod doctor_exposure;
mod dry_runs;
mod faults;
mod fleet;
mod formats;
mod json_errors;
mod least_privilege;
mod lifecycle;
mod lock_ownership;
mod lost_race;
mod mutable_files;
mod never_wedged;
mod nothing_leaked;
mod notifications;
mod pods;
mod promote;
mod prune_safety;
mod quickstart;
mod redis_drops;
mod release_checks;
mod right_redis;
mod rollout;
mod rollout_fleet;
mod signatures;
mod stale_guard;
mod topology;
mod upload;
mod urls;
mod verify_cdn;
