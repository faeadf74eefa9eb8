//! `cutover promote RELEASE --from staging --to production`: the release
//! that was tested, byte for byte, made live in another environment.
//!
//! The release record comes from the source's S3 records; its objects are
//! checked there (exit 4 if any is missing or corrupt). When the target
//! stores files elsewhere (bucket, prefix) they are copied server-side,
//! exactly the missing ones; when it serves them from another base URL,
//! the build's public path must allow it (relative, or already the
//! target's: it is baked into the bundles). The target's record keeps the
//! id and says where the release came from; then the target switches as
//! `activate` does, respecting its lock, and as a deploy does for its pin.
//! Gather (both sides) → [`plan::promote`] → execute → [`Outcome`].

use serde::Serialize;

use super::switch::{self, Ending, ReleaseObjects};
use super::{resolve_in_s3, Ctx, Head};
use crate::contract::Action;
use crate::error::Failure;
use crate::notify::{About, Happened, Kind, Notable};
use crate::plan::promote as plan;
use crate::plan::switch::{is_live, problems, SwitchFacts};
use crate::plan::ObjectCopy;
use crate::release::ReleaseRecord;
use crate::render::{bytes, count, Render};
use crate::store::redis::Needs;
use crate::store::registries::Registries;
use crate::store::s3::S3Store;

pub struct Request {
    pub release: String,
    /// The environments' names.
    pub from: String,
    pub to: String,
    pub switch: switch::Request,
}

#[derive(Debug, Serialize)]
pub struct Outcome {
    #[serde(flatten)]
    pub head: Head,
    pub outcome: Ending,
    pub release: String,
    pub from_environment: String,
    pub to_environment: String,
    /// Objects copied (or, in a dry run, to copy) into the target's storage.
    pub copied: Counted,
    /// Objects the target's storage already held with the release's bytes.
    pub already_there: usize,
    /// The release live in the target before (or, in a dry run, now).
    pub live_before: Option<String>,
    /// The writes, in order.
    pub steps: Vec<String>,
    pub pinned: Option<crate::contract::Pin>,
    /// The target's Redis targets switched (or, in a dry run, to switch),
    /// each as `host:port/db`.
    pub targets: Vec<String>,
    /// `--wait-converged`: every live reader process serves the release.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fleet: Option<crate::fleet::Convergence>,
    /// For a notification: the message, and the release's git sha and CI
    /// build (from its record).
    #[serde(skip)]
    pub about: About,
}

#[derive(Debug, Default, Serialize)]
pub struct Counted {
    pub files: usize,
    pub bytes: u64,
}

/// Promote from the environment of `source` to the one of `dest`.
pub async fn run(source: &Ctx, dest: &Ctx, req: Request) -> anyhow::Result<Outcome> {
    let (from, to) = (&source.config, &dest.config);
    let (src_store, dst_store) = tokio::join!(S3Store::connect(from), S3Store::connect(to));
    let (src_store, dst_store) = (src_store?, dst_store?);

    // The source: the record, and every object of it intact.
    let record = resolve_in_s3(from, &src_store, &req.release).await?;
    let (n, observer) = (from.check_concurrency, source.observer.as_ref());
    let in_source = src_store
        .release_objects(&record, &from.meta_prefix()?, n, false, observer)
        .await?;
    let broken = problems(&in_source);
    if !broken.is_empty() {
        return Err(Failure::verification(format!(
            "in {}: release {} is not intact in s3://{}: {}; nothing was promoted",
            req.from,
            record.id,
            src_store.bucket(),
            crate::render::some(&broken, 10)
        )));
    }
    let promoted = plan::for_target(&record, from, to, &req.from)?;

    // The target: what its storage holds, its live state and its record.
    let same_storage = plan::same_storage(&record, from, to);
    let dst_meta = to.meta_prefix()?;
    let mut redis = Registries::connect(to).await?;
    if !req.switch.dry_run {
        redis.check_permissions(Needs::Switch).await?;
        if dest.config.wait_converged_secs > 0 {
            redis.check_permissions(Needs::Fleet).await?;
        }
    }
    let live = redis.live().await?;
    let in_redis = redis.record(&promoted.id).await?;
    let (opts, record_at) = (
        req.switch.options(dest),
        plan::record_key_in_target(from, to, &promoted.id)?,
    );
    // As a deploy: the target's lock before any write there; what the
    // target holds is read under it, so no prune there deletes it meanwhile.
    let lock = !req.switch.dry_run && !is_live(&live, &promoted, &in_redis);
    let (plan, executed, copied) = super::with_lock(dest, &mut redis, lock, async |redis, lock| {
        // The same storage holds the objects just checked: only the
        // target's mutable files are looked at there.
        let objects = if same_storage {
            let mutable = dst_store
                .mutable_objects(&promoted, to.check_concurrency, dest.observer.as_ref())
                .await?;
            ReleaseObjects {
                found: in_source.clone(),
                mutable,
            }
        } else {
            ReleaseObjects::gather(dest, &dst_store, &promoted, &live, &in_redis, &dst_meta).await?
        };
        let copies = if same_storage {
            Vec::new()
        } else {
            plan::copies(&objects.found, &record, from, to)?
        };
        let copied = Counted {
            files: copies.len(),
            bytes: copies_bytes(&copies, &record),
        };
        let facts = SwitchFacts {
            action: Action::Promote,
            record: &promoted,
            in_redis: &in_redis,
            live: &live,
            several: redis.several(),
            objects: &objects.found,
            mutable: &objects.mutable,
            meta_prefix: &dst_meta,
            bucket: dst_store.bucket(),
            live_record: None,
        };
        let plan = plan::promote(copies, record_at, &facts, &opts)?;
        let executed = switch::run_steps(dest, &dst_store, redis, lock, &plan).await?;
        Ok((plan, executed, copied))
    })
    .await?;
    let already_there = record
        .files
        .as_ref()
        .map_or(0, Vec::len)
        .saturating_sub(copied.files);
    let steps = dest.describe(dst_store.bucket(), redis.keys(), &plan.steps);
    let head = dest.head("promote", Some(req.switch.dry_run))?;
    let out = switch::Outcome::of(
        head,
        dest.redis_targets(),
        &promoted.id,
        &live,
        plan,
        steps,
        executed.as_ref(),
    )?;
    Ok(Outcome {
        head: out.head,
        outcome: out.outcome,
        release: out.release,
        from_environment: req.from,
        to_environment: req.to,
        copied,
        already_there,
        live_before: out.from,
        steps: out.steps,
        pinned: out.pinned,
        targets: out.targets,
        fleet: out.fleet,
        about: About::of(&promoted, req.switch.message),
    })
}

fn copies_bytes(copies: &[ObjectCopy], record: &ReleaseRecord) -> u64 {
    let sizes: std::collections::HashMap<&str, u64> = record
        .files
        .iter()
        .flatten()
        .map(|f| (f.sha256.as_str(), f.size))
        .collect();
    copies
        .iter()
        .map(|c| sizes.get(c.sha256.as_str()).copied().unwrap_or(0))
        .sum()
}

impl Render for Outcome {
    fn text(&self) -> String {
        self.result_text()
            + &super::on_redis(self.outcome.verb(), &self.targets)
            + &super::fleet_line(self.fleet.as_ref())
    }
}

/// A promote that switched the target tells `promoted`.
impl Notable for Outcome {
    fn happened(&self) -> Option<Happened> {
        (self.outcome == Ending::Activated).then(|| Happened {
            kind: Kind::Promoted,
            release: Some(self.release.clone()),
            previous: self.live_before.clone(),
            about: self.about.clone(),
        })
    }

    /// `--wait-converged`: where the fleet stood when every process served it.
    fn convergence(&self) -> Option<crate::notify::Convergence> {
        self.fleet.as_ref().map(Into::into)
    }
}

impl Outcome {
    fn result_text(&self) -> String {
        let (id, app) = (&self.release, &self.head.app);
        let (from, to) = (&self.from_environment, &self.to_environment);
        let copied = format!(
            "{} copied from {from} ({}), {} already there",
            count(self.copied.files, "object"),
            bytes(self.copied.bytes),
            self.already_there
        );
        match self.outcome {
            Ending::Planned => {
                let mut t = format!(
                    "dry run: nothing will be changed\nwould promote {id} from {from} to {to} for {app} (live there now: {}); \
                     {} to copy ({}), {} already there\nwrites, in order ({}):\n",
                    self.live_before.as_deref().unwrap_or("none"),
                    count(self.copied.files, "object"),
                    bytes(self.copied.bytes),
                    self.already_there,
                    count(self.steps.len(), "step")
                );
                for (i, s) in self.steps.iter().enumerate() {
                    t.push_str(&format!("  {}. {s}\n", i + 1));
                }
                t
            }
            Ending::Recorded => format!(
                "release {id} promoted from {from} and recorded in {to}, but NOT activated: {to} is pinned ({}); \
                 `cutover activate {id} --unpin --env {to}` makes it live\n{copied}\n",
                self.pinned
                    .as_ref()
                    .map(crate::contract::Pin::describe)
                    .unwrap_or_default()
            ),
            Ending::AlreadyLive => format!("release {id} is already live in {to}; nothing to do\n"),
            Ending::Repaired | Ending::Activated => format!(
                "release {id} promoted from {from}: live in {to} for {app} (was {})\n{copied}\n",
                self.live_before.as_deref().unwrap_or("none")
            ),
        }
    }
}
