//! The writes a plan is made of: one [`Step`] per write, which the
//! executor carries out and `--dry-run` describes.

use std::sync::Arc;

use serde::Serialize;

use super::PlannedFile;
use crate::build::headers::Headers;
use crate::contract::{Action, CanaryMode, PinChange};
use crate::release::ReleaseRecord;

/// One write. The executor carries out a plan's steps in order; the last
/// step that cannot be undone (the switch) comes after every check.
#[derive(Debug, Clone)]
pub enum Step {
    /// Upload the files S3 lacks: conditional PUTs, each with its SHA-256.
    Upload(Vec<Arc<PlannedFile>>),
    /// The full release record (with its file list) to S3, after its objects.
    /// Serialized when the step runs, not before: at 50,000 files the JSON
    /// is 20 MB that would otherwise be held through the whole upload.
    PutRecord {
        key: String,
        record: Arc<ReleaseRecord>,
        /// The one change a record may take: an unsigned record replaced by
        /// the same record with its signature. Otherwise an existing record
        /// is kept (records are immutable).
        signs: bool,
    },
    /// Record the release in Redis. An existing record is kept (records are
    /// immutable), unless `replace_broken`: the record read there was
    /// damaged (not this release's own, readable record); or it is unsigned
    /// and this one is signed (it gains its signature).
    Register {
        record: Box<ReleaseRecord>,
        replace_broken: bool,
    },
    /// Make a release live in one atomic compare-and-set step.
    Switch(Box<Switch>),
    /// Set, change or take off the canary in one atomic compare-and-set
    /// step (`rollout`).
    Rollout(Box<Rollout>),
    /// Delete the deploy lock if it still holds `owner` (`cutover unlock`).
    /// With `wrong_type`: delete it if it still holds a value of that type
    /// (a key something else wrote), whatever the value.
    Unlock {
        owner: String,
        wrong_type: Option<String>,
    },
    /// Set the pin (`pin`), or clear it (`unpin`).
    Pin(Option<crate::contract::Pin>),
    /// Server-side copies (CopyObject): a mutable file restored from its
    /// content-addressed copy, or an object's headers rewritten in place.
    Copy(Vec<ObjectCopy>),
    /// After the switch: ask CloudFront to forget these paths.
    Invalidate {
        distribution: String,
        paths: Vec<String>,
        wait: bool,
    },
    /// Before a prune deletes: mark it, so that a deploy that listed the
    /// bucket before lists it again under the lock.
    MarkPruned(String),
    /// Delete objects (`prune`), 1,000 a request.
    Delete(Vec<String>),
    /// Delete release records: the S3 copies at `keys`, and `ids` from
    /// Redis (record, set of releases, set of rolled-back releases).
    DeleteRecords { ids: Vec<String>, keys: Vec<String> },
    /// Not a write: after the switch, wait up to `within` seconds until
    /// every live reader process reports `release` (`--wait-converged`);
    /// exit 6 naming the processes behind when they do not.
    AwaitFleet {
        release: String,
        within: u64,
        /// Served live (a switch), as the canary, or no more as the canary.
        serves: crate::fleet::Serves,
    },
    /// Not a write: fetch these files through the CDN and stop (exit 4)
    /// unless each is served with its bytes and headers. Comes right before
    /// the switch (`--verify-cdn`).
    VerifyCdn(Vec<crate::release::CdnCheck>),
}

impl Step {
    /// The step's name in `--timings` and the JSON `timings`.
    pub fn name(&self) -> &'static str {
        match self {
            Step::Upload(_) => "upload",
            Step::PutRecord { .. } => "record",
            Step::Register { .. } => "register",
            Step::Switch(_) => "switch",
            Step::Rollout(_) => "rollout",
            Step::Unlock { .. } => "unlock",
            Step::Pin(_) => "pin",
            Step::VerifyCdn(_) => "verify_cdn",
            Step::MarkPruned(_) => "mark_pruned",
            Step::Delete(_) => "delete",
            Step::Copy(_) => "copy",
            Step::Invalidate { .. } => "invalidate",
            Step::DeleteRecords { .. } => "delete_records",
            Step::AwaitFleet { .. } => "await_fleet",
        }
    }
}

/// One server-side copy: `from` to `to` with `headers` (same bytes), only if
/// `from` still has the ETag the plan saw.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectCopy {
    /// The source bucket, when not the destination's (promote).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_bucket: Option<String>,
    pub from: String,
    pub to: String,
    pub headers: Headers,
    pub sha256: String,
    #[serde(skip)]
    pub if_match: Option<String>,
}

/// The atomic switch: if `current` is still what was planned against (or
/// `force`), make `release` live with its manifest, log it and publish it;
/// do `pin` with the pin and mark `rolled_back_from`. On each Redis target
/// that does not serve it yet, each atomically.
#[derive(Debug, Clone)]
pub struct Switch {
    /// Each Redis target's precondition, in target order.
    pub expect: Vec<crate::state::Expect>,
    pub release: String,
    pub manifest: serde_json::Value,
    pub action: Action,
    pub by: Option<String>,
    pub message: Option<String>,
    pub force: bool,
    pub pin: PinChange,
    pub rolled_back_from: Option<String>,
    /// Written to the signature key in the same step; None deletes it
    /// (the release is unsigned).
    pub signature: Option<String>,
    /// What the switch does with a running rollout.
    pub canary: CanaryMode,
}

/// The rollout step: on each Redis target, if it still serves what was
/// planned against (`expect`), write the canary, log and publish the event.
#[derive(Debug, Clone)]
pub struct Rollout {
    pub expect: Vec<crate::state::RolloutExpect>,
    /// `Rollout` (set or changed) or `RolloutAbort`.
    pub action: Action,
    pub write: CanaryWrite,
    pub by: Option<String>,
    pub message: Option<String>,
}

/// What a rollout writes.
#[derive(Debug, Clone)]
pub enum CanaryWrite {
    /// A new canary: its JSON, its manifest (the exact bytes readers
    /// check) and its signature.
    Set {
        canary: crate::canary::Canary,
        manifest: serde_json::Value,
        signature: Option<String>,
    },
    /// The running canary at another percent: its JSON only.
    Raise(crate::canary::Canary),
    /// Take the canary off (None: what is there is unreadable).
    Abort { release: Option<String> },
}

impl CanaryWrite {
    /// The canary's release (None: an unreadable one, aborted).
    pub fn release(&self) -> Option<&str> {
        match self {
            CanaryWrite::Set { canary, .. } | CanaryWrite::Raise(canary) => Some(&canary.release),
            CanaryWrite::Abort { release } => release.as_deref(),
        }
    }

    /// The percent after (None: aborted).
    pub fn percent(&self) -> Option<crate::canary::Percent> {
        match self {
            CanaryWrite::Set { canary, .. } | CanaryWrite::Raise(canary) => Some(canary.percent),
            CanaryWrite::Abort { .. } => None,
        }
    }
}

impl Switch {
    /// What the first Redis target served when planned.
    pub fn expected(&self) -> Option<&str> {
        self.expect.first().and_then(|t| t.current.as_deref())
    }
}
