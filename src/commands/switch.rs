//! `cutover activate RELEASE` and `cutover rollback [--to RELEASE]`: make an
//! uploaded release live, after checking every object of it is in S3.
//! Gather (the live state, the release, its objects) → [`plan::switch`] →
//! execute under the lock → [`Outcome`].

use std::collections::HashMap;

use serde::Serialize;

use super::{resolve_release, Ctx, Head, Resolved};
use crate::build::manifest::ManifestDiff;
use crate::contract::{Action, Pin};
use crate::error::Failure;
use crate::exec::{Executed, Switched};
use crate::notify::{About, Happened, Kind, Notable};
use crate::plan::switch::{self as plan, SwitchFacts, SwitchOptions, SwitchPlan};
use crate::release::{now, ReleaseFile};
use crate::render::{count, Render};
use crate::state::{Found, Inspected, LiveState};
use crate::store::lock::LockGuard;
use crate::store::redis::Needs;
use crate::store::registries::Registries;
use crate::store::s3::S3Store;

/// Flags shared by the commands that switch the live release.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub dry_run: bool,
    pub force: bool,
    pub message: Option<String>,
    /// `activate --unpin`: switch although pinned, and clear the pin.
    pub unpin: bool,
    /// Switch only if the CDN serves the release's entrypoints correctly.
    pub verify_cdn: bool,
    /// Wait for CloudFront invalidations to complete.
    pub wait: bool,
    /// Make live a release built from an older commit than the live one's.
    pub allow_older: bool,
}

impl Request {
    /// The plan's options, as asked for, by whom, now.
    pub fn options(&self, ctx: &Ctx) -> SwitchOptions {
        SwitchOptions {
            force: self.force,
            unpin: self.unpin,
            message: self.message.clone(),
            by: ctx.config.deployed_by.clone(),
            at: now().0,
            verify_cdn: self.verify_cdn,
            invalidate: ctx
                .config
                .cloudfront_distribution_id
                .clone()
                .map(|d| (d, self.wait)),
            require_signature: ctx.config.require_signature,
            wait_converged: ctx.config.wait_converged_secs,
            allow_older: self.allow_older,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    Planned,
    Activated,
    AlreadyLive,
    /// The release was live, but its manifest (or record) in Redis was
    /// missing or damaged: written again.
    Repaired,
    /// Promoted while the target is pinned: recorded there, not activated
    /// (as a deploy while pinned).
    Recorded,
}

#[derive(Debug, Serialize)]
pub struct Outcome {
    #[serde(flatten)]
    pub head: Head,
    pub outcome: Ending,
    pub release: String,
    /// The release live before (or, in a dry run, now).
    pub from: Option<String>,
    pub manifest_diff: Option<ManifestDiff>,
    /// The writes, in order.
    pub steps: Vec<String>,
    /// The pin after this command (rollback pins; activate --unpin clears).
    pub pinned: Option<Pin>,
    /// The Redis targets switched (or, in a dry run, to switch), each as
    /// `host:port/db`.
    pub targets: Vec<String>,
    /// `--wait-converged`: every live reader process serves the release.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fleet: Option<crate::fleet::Convergence>,
    /// For a notification: the message, and the release's git sha and CI
    /// build (from its record).
    #[serde(skip)]
    pub about: About,
}

pub async fn activate(ctx: &Ctx, release: &str, req: Request) -> anyhow::Result<Outcome> {
    run(ctx, Action::Activate, Some(release), req).await
}

/// `rollout complete`: make the running canary live for everyone and end
/// the rollout, in one atomic step.
pub async fn complete(ctx: &Ctx, req: Request) -> anyhow::Result<Outcome> {
    run(ctx, Action::RolloutComplete, None, req).await
}

/// Roll back to `to`, or to the release live before the current one.
pub async fn rollback(ctx: &Ctx, to: Option<&str>, req: Request) -> anyhow::Result<Outcome> {
    run(ctx, Action::Rollback, to, req).await
}

async fn run(
    ctx: &Ctx,
    action: Action,
    wanted: Option<&str>,
    req: Request,
) -> anyhow::Result<Outcome> {
    let config = &ctx.config;
    let app = config.app()?.to_string();
    let (store, mut redis) = ctx.connect().await?;
    if !req.dry_run {
        redis.check_permissions(Needs::Switch).await?;
        if ctx.config.wait_converged_secs > 0 {
            redis.check_permissions(Needs::Fleet).await?;
        }
    }
    let live = redis.live().await?;
    let wanted = match wanted {
        Some(id) => id.to_string(),
        None if action == Action::RolloutComplete => match (&live.canary, &live.canary_damage) {
            (Some(c), _) => c.release.clone(),
            (None, Some(why)) => return Err(Failure::refused(format!("{why}; nothing to complete"))),
            (None, None) => {
                return Err(Failure::input(format!(
                    "no rollout is running for {app}; nothing to complete (`cutover rollout RELEASE --percent N` starts one)"
                )))
            }
        },
        None => {
            let history = redis.history(config.history_limit).await?;
            plan::rollback_target(&app, &live, &history, &redis.rolled_back().await?)?
        }
    };
    let Resolved { record, in_redis } =
        resolve_release(config, &mut redis, &store, &wanted, true).await?;
    // The live release's record, for the stale-deploy guard (activate).
    let live_record = match (&live.current, action) {
        (Some(id), Action::Activate) => match redis.record(id).await? {
            crate::state::Stored::Valid(r) => Some(r),
            _ => None,
        },
        _ => None,
    };
    let (meta, opts) = (config.meta_prefix()?, req.options(ctx));
    // The objects are checked under the lock, so that no prune deletes them
    // between the check and the switch; a release live already needs
    // neither (nothing to check or write).
    let lock = !req.dry_run && !plan::is_live(&live, &record, &in_redis);
    let (plan, executed) = super::with_lock(ctx, &mut redis, lock, async |redis, lock| {
        let objects = ReleaseObjects::gather(ctx, &store, &record, &live, &in_redis, &meta).await?;
        let facts = SwitchFacts {
            action,
            record: &record,
            in_redis: &in_redis,
            live: &live,
            several: redis.several(),
            objects: &objects.found,
            mutable: &objects.mutable,
            meta_prefix: &meta,
            bucket: store.bucket(),
            live_record: live_record.as_ref(),
        };
        let plan = plan::switch(&facts, &opts)?;
        let executed = run_steps(ctx, &store, redis, lock, &plan).await?;
        Ok((plan, executed))
    })
    .await?;
    let steps = ctx.describe(store.bucket(), redis.keys(), &plan.steps);
    let mut out = Outcome::of(
        ctx.head(
            if action == Action::RolloutComplete {
                "rollout"
            } else {
                action.as_str()
            },
            Some(req.dry_run),
        )?,
        ctx.redis_targets(),
        &record.id,
        &live,
        plan,
        steps,
        executed.as_ref(),
    )?;
    out.about = About::of(&record, req.message);
    Ok(out)
}

/// Run a switch's steps under `lock`; without it (a dry run, or a release
/// live already) nothing runs.
pub(crate) async fn run_steps(
    ctx: &Ctx,
    store: &S3Store,
    redis: &mut Registries,
    lock: Option<&LockGuard>,
    plan: &SwitchPlan,
) -> anyhow::Result<Option<Executed>> {
    let Some(lock) = lock else {
        return Ok(None);
    };
    let executed = ctx
        .executor(Some(store), Some(redis), None, Some(lock))
        .run(&plan.steps)
        .await?;
    Ok(Some(executed))
}

/// What S3 holds for a release about to go live: each of its objects, and
/// the public keys of its mutable files. Not looked at when the release is
/// live already (nothing will be checked or written).
pub(crate) struct ReleaseObjects<'r> {
    pub found: Vec<(String, &'r ReleaseFile, Found)>,
    pub mutable: HashMap<String, Inspected>,
}

impl<'r> ReleaseObjects<'r> {
    pub async fn gather(
        ctx: &Ctx,
        store: &S3Store,
        record: &'r crate::release::ReleaseRecord,
        live: &LiveState,
        in_redis: &crate::state::Stored<crate::release::ReleaseRecord>,
        meta: &str,
    ) -> anyhow::Result<ReleaseObjects<'r>> {
        if plan::is_live(live, record, in_redis) {
            return Ok(ReleaseObjects {
                found: Vec::new(),
                mutable: HashMap::new(),
            });
        }
        let (n, observer) = (ctx.config.check_concurrency, ctx.observer.as_ref());
        let found = store
            .release_objects(record, meta, n, false, observer)
            .await?;
        let mutable = store.mutable_objects(record, n, observer).await?;
        Ok(ReleaseObjects { found, mutable })
    }
}

impl Outcome {
    /// The outcome of a switch planned as `plan` (against `live`) and, unless
    /// a dry run or already live, `executed`. A switch the pin stopped is
    /// refused (exit 3), except for promote, which then records only.
    pub(crate) fn of(
        head: Head,
        targets: Vec<String>,
        id: &str,
        live: &LiveState,
        plan: SwitchPlan,
        steps: Vec<String>,
        executed: Option<&Executed>,
    ) -> anyhow::Result<Outcome> {
        let mut out = Outcome {
            outcome: Ending::AlreadyLive,
            release: id.to_string(),
            from: live.current.clone(),
            manifest_diff: plan.manifest_diff,
            steps,
            pinned: live.pin.clone(),
            targets,
            fleet: executed.and_then(|e| e.fleet.clone()),
            head,
            about: About::default(),
        };
        if plan.already_live {
            return Ok(out);
        }
        let Some(executed) = executed else {
            out.outcome = Ending::Planned;
            return Ok(out);
        };
        match &executed.switched {
            Some(Switched::Applied { previous }) => out.from = previous.clone(),
            Some(Switched::Pinned(p)) if out.head.command == Action::Promote.as_str() => {
                out.outcome = Ending::Recorded;
                out.pinned = Some(p.clone());
                return Ok(out);
            }
            Some(Switched::RolloutRunning(_)) => {
                return Err(Failure::operation(
                    "internal error: a switch held by a rollout outside a deploy; nothing was switched",
                ))
            }
            Some(Switched::Pinned(p)) => {
                return Err(Failure::refused(format!(
                    "the app was pinned by {} while this {} ran; nothing was switched. `cutover activate {id} --unpin` switches and clears the pin",
                    p.by.as_deref().unwrap_or("unknown"),
                    out.head.command,
                )))
            }
            None => {}
        }
        out.pinned = plan.pin_after;
        out.outcome = if plan.repair {
            Ending::Repaired
        } else {
            Ending::Activated
        };
        Ok(out)
    }
}

impl Ending {
    /// What was done on the Redis targets, for the line that names them.
    pub(crate) fn verb(self) -> &'static str {
        match self {
            Ending::Planned => "would switch",
            Ending::Activated => "switched",
            Ending::Repaired => "repaired",
            Ending::Recorded => "recorded",
            Ending::AlreadyLive => "live",
        }
    }
}

impl Render for Outcome {
    fn text(&self) -> String {
        self.result_text()
            + &super::on_redis(self.outcome.verb(), &self.targets)
            + &super::fleet_line(self.fleet.as_ref())
    }
}

/// A switch tells `activated` (`rolled_back` for a rollback); the other
/// endings changed nothing for the app's users.
impl Notable for Outcome {
    fn happened(&self) -> Option<Happened> {
        if self.outcome != Ending::Activated {
            return None;
        }
        Some(Happened {
            kind: if self.head.command == Action::Rollback.as_str() {
                Kind::RolledBack
            } else {
                Kind::Activated
            },
            release: Some(self.release.clone()),
            previous: self.from.clone(),
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
        match self.outcome {
            Ending::AlreadyLive => {
                format!("release {id} is already live for {app}; nothing to do\n")
            }
            Ending::Recorded => format!(
                "release {id} is recorded for {app} but NOT activated: the app is pinned ({}); `cutover activate {id} --unpin` makes it live\n",
                self.pinned
                    .as_ref()
                    .map(Pin::describe)
                    .unwrap_or_default()
            ),
            Ending::Repaired => format!(
                "release {id} was live for {app} but Redis no longer held its manifest or record intact; wrote them again\n"
            ),
            Ending::Activated => format!(
                "release {id} is live for {app} (was {}; {})\n",
                self.from.as_deref().unwrap_or("none"),
                self.head.command
            ),
            Ending::Planned => {
                let mut t = format!(
                    "dry run: nothing will be changed\nwould switch {app} from {} to {id} ({}); all its objects are in S3\n",
                    self.from.as_deref().unwrap_or("none"),
                    self.head.command
                );
                if let Some(d) = &self.manifest_diff {
                    t.push_str(&format!(
                        "manifest: {} added, {} changed, {} removed\n",
                        d.added.len(),
                        d.changed.len(),
                        d.removed.len()
                    ));
                }
                t.push_str(&format!(
                    "writes, in order ({}):\n",
                    count(self.steps.len(), "step")
                ));
                for (i, s) in self.steps.iter().enumerate() {
                    t.push_str(&format!("  {}. {s}\n", i + 1));
                }
                t
            }
        }
    }
}
