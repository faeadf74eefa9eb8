//! `cutover deploy DIR`: hash, plan, upload, record, activate.
//!
//! [`gather`] reads the facts (the build, S3's listing, the release
//! records, the live state) and answers the plan's questions (MD5s, closer
//! looks); [`crate::plan::deploy`] decides; the executor runs the steps,
//! under the deploy lock when Redis is used; [`outcome`] reports.

mod gather;
mod outcome;

pub use outcome::{Counted, Ending, Outcome, Timings};

use std::path::PathBuf;
use std::time::Instant;

use super::Ctx;
use crate::contract::Pin;
use crate::error::{one_line, Failure};
use crate::events::Event;
use crate::exec::Executed;
use crate::plan::{self, Decision, DeployOptions, DeployPlan, Step};
use crate::render::{count, some};
use gather::{Gathered, RedisUse};

pub struct Request {
    pub dir: PathBuf,
    pub dry_run: bool,
    pub no_activate: bool,
    pub force: bool,
    pub message: Option<String>,
    /// Switch only if the CDN serves the entrypoints correctly.
    pub verify_cdn: bool,
    /// Activate although the build is from an older commit than the live release's.
    pub allow_older: bool,
    /// `--rollout N`: roll the release out to N % instead of activating it.
    pub rollout: Option<crate::canary::Percent>,
    /// Wait for CloudFront invalidations to complete.
    pub wait: bool,
    /// Do not try Redis: record the release in S3 only (needs `no_activate`).
    pub no_redis: bool,
    /// Say in the text output how long each phase took.
    pub timings: bool,
}

/// A deploy carried out (or, in a dry run, planned): the plan, its steps,
/// and what running them did.
pub(super) struct Deployed {
    pub plan: DeployPlan,
    pub steps: Vec<Step>,
    /// None in a dry run.
    pub executed: Option<Executed>,
}

pub async fn run(ctx: &Ctx, req: Request) -> anyhow::Result<Outcome> {
    let config = &ctx.config;
    // Fail on missing settings before any work.
    config.app()?;
    config.bucket()?;
    config.cdn_url()?;
    // Before anything is read or written: a release that must be signed
    // cannot be made without the key.
    config.check_can_sign()?;
    let started = Instant::now();
    let mut timings = Timings::default();

    let redis = if req.no_redis {
        RedisUse::Skip
    } else if req.no_activate {
        RedisUse::IfReachable
    } else {
        RedisUse::Required
    };
    let mut gathered = Gathered::read(ctx, &req.dir, !req.dry_run, redis, &mut timings).await?;
    let redis = gathered.redis.take();
    let registered = redis.is_some();
    let deployed = match redis {
        // Writes go under the lock: the live state (and, if another deploy
        // held the lock first, the listing) read again, then planned.
        Some(mut redis) if !req.dry_run => {
            super::with_lock(ctx, &mut redis, true, async |redis, lock| {
                let lock = lock.expect("with_lock(.., true, ..) holds the lock");
                gathered.refresh(ctx, redis, lock.waited).await?;
                let (plan, steps) = make_plan(ctx, &req, &mut gathered, &mut timings).await?;
                let executed = ctx
                    .executor(
                        Some(&gathered.store),
                        Some(redis),
                        Some(&gathered.build.root),
                        Some(lock),
                    )
                    .run(&steps)
                    .await?;
                Ok(Deployed {
                    plan,
                    steps,
                    executed: Some(executed),
                })
            })
            .await?
        }
        // A dry run, or no Redis: no lock to take.
        _ => {
            let (plan, steps) = make_plan(ctx, &req, &mut gathered, &mut timings).await?;
            let executed = match req.dry_run {
                true => None,
                false => Some(
                    ctx.executor(
                        Some(&gathered.store),
                        None,
                        Some(&gathered.build.root),
                        None,
                    )
                    .run(&steps)
                    .await?,
                ),
            };
            Deployed {
                plan,
                steps,
                executed,
            }
        }
    };
    if let Some(executed) = &deployed.executed {
        timings.add_steps(&executed.timings);
    }
    timings.total = started.elapsed().as_secs_f64();
    let out = Outcome::of(ctx, &req, &gathered, deployed, registered, timings)?;
    if let (false, Some(pin)) = (req.dry_run, &out.pinned) {
        ctx.observer
            .event(Event::Warning(pinned_notice(pin, &out.release.id)));
    }
    Ok(out)
}

/// Answer the plan's questions, then plan: the plan and its steps. A
/// conflict is refused (exit 3), or in a dry run said.
async fn make_plan(
    ctx: &Ctx,
    req: &Request,
    gathered: &mut Gathered,
    timings: &mut Timings,
) -> anyhow::Result<(DeployPlan, Vec<Step>)> {
    let planning = Instant::now();
    gathered.answer_questions(ctx).await?;
    let plan = plan::deploy(
        &ctx.config,
        &gathered.facts(),
        gathered.provenance(ctx, req),
    )?;
    timings.plan = planning.elapsed().as_secs_f64();
    for w in &plan.warnings {
        ctx.observer.event(Event::Warning(w.clone()));
    }
    if plan.count(Decision::Conflict).0 > 0 {
        let error = conflict_error(&plan, gathered.store.bucket());
        if !req.dry_run {
            return Err(error);
        }
        ctx.observer.event(Event::Warning(one_line(&error)));
    }
    let live = &gathered.live;
    let held = live.pin.is_some() || live.canary.is_some() || live.canary_damage.is_some();
    let mut opts = DeployOptions {
        activate: !req.no_activate && !held && req.rollout.is_none(),
        force: req.force,
        message: req.message.clone(),
        verify_cdn: req.verify_cdn,
        invalidate: ctx
            .config
            .cloudfront_distribution_id
            .clone()
            .map(|d| (d, req.wait)),
        s3_only: gathered.redis_skipped,
        wait_converged: ctx.config.wait_converged_secs,
        rollout: Vec::new(),
    };
    if let (Some(percent), false) = (req.rollout, opts.s3_only || plan.already_live) {
        opts.rollout = rollout_steps(ctx, req, gathered, &plan, percent)?;
    }
    // The stale-deploy guard, before anything is uploaded: only a deploy
    // that would switch is refused.
    if opts.activate && !opts.s3_only && !plan.already_live {
        let live = plan
            .live_release
            .as_deref()
            .and_then(|id| gathered.index.record(id));
        if let Some(why) = crate::plan::switch::not_older(&plan.release, live, req.allow_older)? {
            if ctx.verbose {
                ctx.observer.event(Event::Info(why));
            }
        }
    }
    let steps = plan.steps(&ctx.config.meta_prefix()?, &opts);
    Ok((plan, steps))
}

/// `deploy --rollout N`: the rollout step that makes the release the
/// canary, planned as `cutover rollout` plans it (refused while pinned, the
/// signature, the stale-deploy guard) from what the deploy read. Its
/// objects are what the deploy uploads: nothing to check.
fn rollout_steps(
    ctx: &Ctx,
    req: &Request,
    gathered: &Gathered,
    plan: &DeployPlan,
    percent: crate::canary::Percent,
) -> anyhow::Result<Vec<Step>> {
    use crate::plan::rollout::{rollout, Ask, Candidate, RolloutOptions};
    let config = &ctx.config;
    let in_redis = crate::state::Stored::Valid(plan.release.summary());
    let candidate = Candidate {
        record: &plan.release,
        in_redis: &in_redis,
        objects: &[],
        live_record: plan
            .live_release
            .as_deref()
            .and_then(|id| gathered.index.record(id)),
    };
    let opts = RolloutOptions {
        by: config.deployed_by.clone(),
        message: req.message.clone(),
        at: crate::release::now().0,
        salt: crate::canary::new_salt(),
        require_signature: config.require_signature,
        allow_older: req.allow_older,
        wait_converged: config.wait_converged_secs,
    };
    let planned = rollout(
        config.app()?,
        &gathered.live,
        Ask::Start(percent),
        Some(&candidate),
        &opts,
    )?;
    Ok(planned
        .steps
        .into_iter()
        .filter(|s| matches!(s, Step::Rollout(_) | Step::AwaitFleet { .. }))
        .collect())
}

/// The one line a pinned deploy says (a GitHub Actions annotation in CI).
fn pinned_notice(pin: &Pin, id: &str) -> String {
    format!(
        "pinned {}: recorded {id}, not activated; `cutover activate {id} --unpin` makes it live, `cutover unpin` lets the next deploy",
        pin.since()
    )
}

/// The error for a plan with conflicts: names the files, says what to do.
fn conflict_error(plan: &DeployPlan, bucket: &str) -> anyhow::Error {
    let conflicts: Vec<String> = plan
        .with(Decision::Conflict)
        .map(|f| {
            format!(
                "{} (S3 has {}, build has {} bytes sha256 {})",
                f.key,
                f.remote.as_deref().unwrap_or("other bytes"),
                f.file.size,
                &f.file.sha256[..12]
            )
        })
        .collect();
    Failure::refused(format!(
        "{} in s3://{bucket} would be overwritten with other bytes: {}; nothing was uploaded. \
         Give changed files new names (webpack [contenthash]) or deploy to another prefix",
        count(conflicts.len(), "object"),
        some(&conflicts, 10)
    ))
}
