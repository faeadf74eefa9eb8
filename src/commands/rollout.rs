//! `cutover rollout`: serve a release to a share of the requests first.
//! `rollout RELEASE --percent N` starts one (checked as an activation),
//! `rollout --percent N` changes it, `rollout abort` takes the canary off:
//! gather (the live state and, to start, the release and its objects) →
//! [`plan::rollout`] → execute under the lock → [`Outcome`].
//! `rollout complete` is a switch ([`super::switch::complete`]).

use serde::Serialize;

use super::{resolve_release, Ctx, Head, Resolved};
use crate::canary::{new_salt, Canary, Percent};
use crate::notify::{About, Happened, Kind, Notable};
use crate::plan::rollout::{self as plan, Ask, Candidate, RolloutOptions, RolloutPlan};
use crate::release::now;
use crate::render::Render;
use crate::state::Stored;
use crate::store::redis::Needs;

pub struct Request {
    pub dry_run: bool,
    pub message: Option<String>,
    pub allow_older: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    Planned,
    /// A canary set (a new rollout, or another release in its place).
    Started,
    /// The running canary's percent changed.
    Changed,
    Aborted,
    /// Nothing to do: the canary is so already, or none runs to abort.
    Unchanged,
}

#[derive(Debug, Serialize)]
pub struct Outcome {
    #[serde(flatten)]
    pub head: Head,
    pub outcome: Ending,
    /// The live release, which everyone not on the canary gets.
    pub live: Option<String>,
    /// The canary after (or, in a dry run, that would be).
    pub canary: Option<Canary>,
    /// The canary before.
    pub previous: Option<Canary>,
    pub steps: Vec<String>,
    /// The Redis targets written (or, in a dry run, to write).
    pub targets: Vec<String>,
    /// `--wait-converged`: every live reader process serves the canary
    /// (or, after an abort, no longer does).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fleet: Option<crate::fleet::Convergence>,
    #[serde(skip)]
    pub about: About,
}

/// Start a rollout of `release` (id or unique prefix) at `percent`.
pub async fn start(
    ctx: &Ctx,
    release: &str,
    percent: Percent,
    req: Request,
) -> anyhow::Result<Outcome> {
    run(ctx, Some(release), Ask::Start(percent), req).await
}

/// Change the running rollout's percent, or abort it.
pub async fn change(ctx: &Ctx, ask: Ask, req: Request) -> anyhow::Result<Outcome> {
    run(ctx, None, ask, req).await
}

async fn run(ctx: &Ctx, release: Option<&str>, ask: Ask, req: Request) -> anyhow::Result<Outcome> {
    let config = &ctx.config;
    let app = config.app()?.to_string();
    let (store, mut redis) = ctx.connect().await?;
    if !req.dry_run {
        redis.check_permissions(Needs::Switch).await?;
        if config.wait_converged_secs > 0 {
            redis.check_permissions(Needs::Fleet).await?;
        }
    }
    let live = redis.live().await?;
    let resolved = match release {
        Some(wanted) => Some(resolve_release(config, &mut redis, &store, wanted, true).await?),
        None => None,
    };
    plan::refusals(&app, &live, ask, resolved.as_ref().map(|r| &r.record))?;
    let live_record = match &live.current {
        Some(id) if resolved.is_some() => match redis.record(id).await? {
            Stored::Valid(r) => Some(r),
            _ => None,
        },
        _ => None,
    };
    let opts = RolloutOptions {
        by: config.deployed_by.clone(),
        message: req.message.clone(),
        at: now().0,
        salt: new_salt(),
        require_signature: config.require_signature,
        allow_older: req.allow_older,
        wait_converged: config.wait_converged_secs,
    };
    let meta = config.meta_prefix()?;
    // The objects are checked under the lock, so that no prune deletes them
    // between the check and the rollout.
    let (plan, ran) = super::with_lock(ctx, &mut redis, !req.dry_run, async |redis, lock| {
        let objects = match &resolved {
            Some(Resolved { record, .. })
                if live.canary.as_ref().map(|c| &c.release) != Some(&record.id) =>
            {
                let n = ctx.config.check_concurrency;
                store
                    .release_objects(record, &meta, n, false, ctx.observer.as_ref())
                    .await?
            }
            _ => Vec::new(),
        };
        let candidate = resolved.as_ref().map(|r| Candidate {
            record: &r.record,
            in_redis: &r.in_redis,
            objects: &objects,
            live_record: live_record.as_ref(),
        });
        let plan = plan::rollout(&app, &live, ask, candidate.as_ref(), &opts)?;
        let ran = match lock {
            Some(lock) if !plan.steps.is_empty() => Some(
                ctx.executor(Some(&store), Some(redis), None, Some(lock))
                    .run(&plan.steps)
                    .await?,
            ),
            _ => None,
        };
        Ok((plan, ran))
    })
    .await?;
    let RolloutPlan {
        before,
        after,
        steps,
    } = plan;
    let fleet = ran.as_ref().and_then(|r| r.fleet.clone());
    let outcome = match (steps.is_empty(), ran.is_some(), ask) {
        (true, _, _) => Ending::Unchanged,
        (false, false, _) => Ending::Planned,
        (false, true, Ask::Abort) => Ending::Aborted,
        (false, true, _)
            if before.as_ref().map(|b| &b.release) == after.as_ref().map(|a| &a.release) =>
        {
            Ending::Changed
        }
        (false, true, _) => Ending::Started,
    };
    let about = match &resolved {
        Some(r) => About::of(&r.record, req.message.clone()),
        None => About {
            message: req.message.clone(),
            ..About::default()
        },
    };
    Ok(Outcome {
        head: ctx.head("rollout", Some(req.dry_run))?,
        outcome,
        live: live.current.clone(),
        steps: ctx.describe(store.bucket(), redis.keys(), &steps),
        canary: after,
        previous: before,
        targets: ctx.redis_targets(),
        fleet,
        about,
    })
}

impl Render for Outcome {
    fn text(&self) -> String {
        self.result_text() + &super::fleet_line(self.fleet.as_ref())
    }
}

impl Outcome {
    fn result_text(&self) -> String {
        let app = &self.head.app;
        let live = self.live.as_deref().unwrap_or("no release");
        let canary = |c: &Option<Canary>| {
            c.as_ref()
                .map(|c| format!("{} at {}", c.release, c.percent))
                .unwrap_or_else(|| "none".into())
        };
        let on = |verb: &str| super::on_redis(verb, &self.targets);
        match self.outcome {
            Ending::Unchanged => match &self.canary {
                Some(c) => format!(
                    "{} is rolling out to {} of {app} already; nothing to do\n",
                    c.release, c.percent
                ),
                None => format!("no rollout is running for {app}; nothing to abort\n"),
            },
            Ending::Planned => format!(
                "dry run: nothing will be changed\nwould change the canary of {app} from {} to {} (live: {live})\nwrites, in order:\n{}",
                canary(&self.previous),
                canary(&self.canary),
                self.steps
                    .iter()
                    .enumerate()
                    .map(|(i, s)| format!("  {}. {s}\n", i + 1))
                    .collect::<String>()
            ),
            Ending::Started => format!(
                "rolling out {} to {app}: {} of the keys get it, the others {live}{}; \
                 `cutover rollout --percent N` changes the share, `cutover rollout complete` makes it live, `cutover rollout abort` takes it off\n",
                self.canary.as_ref().map(|c| c.release.as_str()).unwrap_or_default(),
                self.canary.as_ref().map(|c| c.percent.to_string()).unwrap_or_default(),
                self.previous
                    .as_ref()
                    .filter(|p| self.canary.as_ref().is_some_and(|c| c.release != p.release))
                    .map(|p| format!(" (it replaces the canary {} at {})", p.release, p.percent))
                    .unwrap_or_default()
            ) + &on("rolled out"),
            Ending::Changed => format!(
                "{} now rolls out to {} of {app} (was {}); every key on it stays on it as the share rises\n",
                self.canary.as_ref().map(|c| c.release.as_str()).unwrap_or(""),
                self.canary.as_ref().map(|c| c.percent.to_string()).unwrap_or_default(),
                self.previous.as_ref().map(|c| c.percent.to_string()).unwrap_or_default()
            ) + &on("changed"),
            Ending::Aborted => format!(
                "aborted the rollout of {} for {app}: every request gets {live} again\n",
                self.previous
                    .as_ref()
                    .map(|c| c.release.as_str())
                    .unwrap_or("an unreadable canary")
            ) + &on("aborted"),
        }
    }
}

/// `rollout_started`, `rollout_changed` and `rollout_aborted`.
impl Notable for Outcome {
    fn happened(&self) -> Option<Happened> {
        let (kind, canary) = match self.outcome {
            Ending::Started => (Kind::RolloutStarted, &self.canary),
            Ending::Changed => (Kind::RolloutChanged, &self.canary),
            Ending::Aborted => (Kind::RolloutAborted, &self.previous),
            Ending::Planned | Ending::Unchanged => return None,
        };
        Some(Happened {
            kind,
            release: canary.as_ref().map(|c| c.release.clone()),
            previous: self.live.clone(),
            about: self.about.clone(),
        })
    }

    /// `--wait-converged`: where the fleet stood when it converged.
    fn convergence(&self) -> Option<crate::notify::Convergence> {
        self.fleet.as_ref().map(Into::into)
    }
}
