//! Planning, pure: what a command will do, decided from facts it read
//! before. Every command that changes something goes the same way: gather
//! the facts (I/O, in `commands`), make a plan here, hand its [`Step`]s to
//! the executor (`exec`), and report a typed outcome. `--dry-run` prints
//! the same steps instead of running them, so the two cannot drift apart.
//!
//! - [`deploy`]: for each file of a build, upload, skip or refuse; then the
//!   uploads, the record and the switch.
//! - [`switch`]: activate, rollback, promote (which adds its copies), pin,
//!   unpin and unlock.
//! - [`prune`]: what no kept release references.
//! - [`rollout`]: start, change or abort a rollout (its completion is a
//!   switch).

pub mod deploy;
pub mod promote;
pub mod prune;
pub mod rollout;
mod step;
pub mod switch;

pub use deploy::{
    deploy, header_checks, md5_needed, to_inspect, Decision, DeployFacts, DeployOptions,
    DeployPlan, PlannedFile, Provenance,
};
pub use step::{CanaryWrite, ObjectCopy, Rollout, Step, Switch};

/// The CloudFront path of a key: the CDN URL's own path, then the key,
/// percent-encoded as its public URL is.
pub fn invalidation_path(cdn_url: &str, key: &str) -> String {
    let base = url::Url::parse(cdn_url)
        .map(|u| u.path().trim_end_matches('/').to_string())
        .unwrap_or_default();
    format!("{base}/{}", crate::contract::url_path(key))
}

#[cfg(test)]
mod tests;
