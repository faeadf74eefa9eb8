//! `cutover deploy DIR`: hash, plan, upload, record, activate. What it
//! learns before planning is in [`gather`]; what it reports, in [`outcome`].

mod gather;
mod outcome;

use gather::*;
use outcome::outcome;
pub use outcome::{Counted, Ending, Outcome, Timings};

use std::path::PathBuf;
use std::time::Instant;

use super::objects::cdn_checks;
use super::Ctx;
use crate::build::manifest::Manifest;
use crate::build::Build;
use crate::contract::Pin;
use crate::error::{one_line, Failure};
use crate::events::Event;
use crate::exec::{describe, Switched};
use crate::plan::{self, Decision, DeployOptions, DeployPlan};
use crate::render::{count, some};
use crate::state::{ContentIndex, Listing, LiveState};
use crate::store::lock::LockGuard;
use crate::store::s3::S3Store;
use crate::store::targets::Targets;

pub struct Request {
    pub dir: PathBuf,
    pub dry_run: bool,
    pub no_activate: bool,
    pub force: bool,
    pub message: Option<String>,
    /// Switch only if the CDN serves the entrypoints correctly.
    pub verify_cdn: bool,
    /// Wait for CloudFront invalidations to complete.
    pub wait: bool,
    /// Do not try Redis: record the release in S3 only (needs `no_activate`).
    pub no_redis: bool,
    /// Say in the text output how long each phase took.
    pub timings: bool,
}

pub async fn run(ctx: &Ctx, req: Request) -> anyhow::Result<Outcome> {
    let config = &ctx.config;
    // Fail on missing settings before any work.
    config.app()?;
    config.bucket()?;
    config.cdn_url()?;
    let meta = config.meta_prefix()?;
    let started = Instant::now();
    let mut timings = Timings::default();
    let observer = ctx.observer.as_ref();

    let redis = if req.no_redis {
        RedisUse::Skip
    } else if req.no_activate {
        RedisUse::IfReachable
    } else {
        RedisUse::Required
    };
    let (mut build, manifest, store, registry, remote, live, records) =
        gather(ctx, &req.dir, !req.dry_run, redis, &mut timings).await?;
    let known = ContentIndex::new(store.bucket(), records);
    let keys = crate::contract::Keys::new(config.app()?);
    let Some(mut registry) = registry else {
        return record_only(
            ctx,
            &req,
            &store,
            (&mut build, &manifest),
            (&remote, &known),
            &keys,
            started,
            timings,
        )
        .await;
    };

    let planning = Instant::now();
    if req.dry_run {
        let plan = make_plan(
            ctx,
            &store,
            (&mut build, &manifest),
            (&remote, &known),
            &live,
            &req,
        )
        .await?;
        timings.plan = planning.elapsed().as_secs_f64();
        let steps = plan.steps(&meta, &options(&req, &live, &plan, config));
        let conflicted = plan.count(Decision::Conflict).0 > 0;
        if conflicted {
            observer.event(Event::Warning(one_line(&conflict_error(
                &plan,
                store.bucket(),
            ))));
        }
        let ending = if conflicted {
            Ending::Conflict
        } else if plan.already_live {
            Ending::AlreadyLive
        } else {
            Ending::Planned
        };
        let described = describe_steps(ctx, &store, &keys, &steps);
        timings.total = started.elapsed().as_secs_f64();
        let mut out = outcome(
            ctx,
            &plan,
            ending,
            described,
            None,
            plan.live_release.clone(),
            timings,
            true,
            manifest.format,
        );
        out.pinned = live.pin.filter(|_| !req.no_activate);
        out.show_timings = req.timings;
        return Ok(out);
    }

    let lock = LockGuard::acquire(config, &registry, &config.actor(), observer).await?;
    let result = deploy_locked(
        ctx,
        &req,
        &store,
        &mut registry,
        (&mut build, &manifest),
        (remote, &known),
        &lock,
        &mut timings,
    )
    .await;
    lock.release().await;
    let (plan, steps, executed, mut pinned) = result?;
    let described = describe_steps(ctx, &store, &keys, &steps);
    let was_current = plan.live_release.as_deref() == Some(plan.release.id.as_str());
    let mut live_before = plan.live_release.clone();
    let (ending, live_after) = match &executed.switched {
        Some(Switched::Applied { previous }) => {
            live_before = previous.clone();
            let ending = if was_current {
                Ending::Repaired
            } else {
                Ending::Activated
            };
            (ending, Some(plan.release.id.clone()))
        }
        // Pinned between planning and the switch: recorded, not activated.
        Some(Switched::Pinned(pin)) => {
            pinned = Some(pin.clone());
            (Ending::Recorded, plan.live_release.clone())
        }
        None if plan.already_live => (Ending::AlreadyLive, plan.live_release.clone()),
        None => (Ending::Recorded, plan.live_release.clone()),
    };
    if let Some(pin) = &pinned {
        observer.event(Event::Warning(pinned_notice(pin, &plan.release.id)));
    }
    timings.add_steps(&executed.timings);
    timings.total = started.elapsed().as_secs_f64();
    let mut out = outcome(
        ctx,
        &plan,
        ending,
        described,
        executed.upload,
        live_after,
        timings,
        false,
        manifest.format,
    );
    out.live_before = live_before;
    out.pinned = pinned;
    out.show_timings = req.timings;
    Ok(out)
}

/// How a deploy ends as asked: activate unless `--no-activate` or pinned.
fn options(
    req: &Request,
    live: &LiveState,
    plan: &DeployPlan,
    config: &crate::config::Config,
) -> DeployOptions {
    DeployOptions {
        activate: !req.no_activate && live.pin.is_none(),
        force: req.force,
        message: req.message.clone(),
        cdn_checks: req.verify_cdn.then(|| cdn_checks(&plan.release, 0)),
        invalidate: config
            .cloudfront_distribution_id
            .clone()
            .map(|d| (d, req.wait)),
        cdn_url: plan.release.cdn_url.clone(),
        s3_only: false,
    }
}

/// Without Redis (`--no-redis`, or unreachable with `--no-activate`): upload
/// and record the release in S3, take no lock (there is none to take), and
/// say how to register it.
#[allow(clippy::too_many_arguments)]
async fn record_only(
    ctx: &Ctx,
    req: &Request,
    store: &S3Store,
    (build, manifest): (&mut Build, &Manifest),
    remote: (&Listing, &ContentIndex),
    keys: &crate::contract::Keys,
    started: Instant,
    mut timings: Timings,
) -> anyhow::Result<Outcome> {
    let live = LiveState::default();
    let planning = Instant::now();
    let plan = make_plan(ctx, store, (build, manifest), remote, &live, req).await?;
    timings.plan = planning.elapsed().as_secs_f64();
    if plan.count(Decision::Conflict).0 > 0 && !req.dry_run {
        return Err(conflict_error(&plan, store.bucket()));
    }
    let mut opts = options(req, &live, &plan, &ctx.config);
    opts.s3_only = true;
    let steps = plan.steps(&ctx.config.meta_prefix()?, &opts);
    let described = describe_steps(ctx, store, keys, &steps);
    let uploaded = if req.dry_run {
        None
    } else {
        let executed = ctx
            .executor(Some(store), None, Some(&build.root), None)
            .run(&steps)
            .await?;
        timings.add_steps(&executed.timings);
        executed.upload
    };
    timings.total = started.elapsed().as_secs_f64();
    let ending = if req.dry_run {
        Ending::Planned
    } else {
        Ending::Recorded
    };
    let mut out = outcome(
        ctx,
        &plan,
        ending,
        described,
        uploaded,
        None,
        timings,
        req.dry_run,
        manifest.format,
    );
    out.live_before = None;
    out.registered = false;
    out.show_timings = req.timings;
    Ok(out)
}

/// The one line a pinned deploy says (a GitHub Actions annotation in CI).
fn pinned_notice(pin: &Pin, id: &str) -> String {
    format!(
        "pinned since {} by {}{}: recorded {id}, not activated; `cutover activate {id} --unpin` makes it live, `cutover unpin` lets the next deploy",
        pin.at,
        pin.by.as_deref().unwrap_or("unknown"),
        pin.message
            .as_deref()
            .map(|m| format!(" ({m})"))
            .unwrap_or_default()
    )
}

type Deployed = (
    DeployPlan,
    Vec<plan::Step>,
    crate::exec::Executed,
    Option<Pin>,
);

/// Under the lock: plan (against a fresh listing if another deploy held the
/// lock first), then execute.
#[allow(clippy::too_many_arguments)]
async fn deploy_locked(
    ctx: &Ctx,
    req: &Request,
    store: &S3Store,
    registry: &mut Targets,
    (build, manifest): (&mut Build, &Manifest),
    (remote, known): (Listing, &ContentIndex),
    lock: &LockGuard,
    timings: &mut Timings,
) -> anyhow::Result<Deployed> {
    let planning = Instant::now();
    // If another deploy held the lock, list again; otherwise the listing
    // stands (conditional PUTs catch any late object) and only the live
    // state is read again.
    let (remote, live) = if lock.waited {
        remote_state(ctx, store, registry).await?
    } else {
        (remote, registry.live().await?)
    };
    let plan = make_plan(ctx, store, (build, manifest), (&remote, known), &live, req).await?;
    timings.plan = planning.elapsed().as_secs_f64();
    if plan.count(Decision::Conflict).0 > 0 {
        return Err(conflict_error(&plan, store.bucket()));
    }
    let opts = options(req, &live, &plan, &ctx.config);
    let steps = plan.steps(&ctx.config.meta_prefix()?, &opts);
    let executed = ctx
        .executor(Some(store), Some(registry), Some(&build.root), Some(lock))
        .run(&steps)
        .await?;
    let pinned = live.pin.filter(|_| !req.no_activate);
    Ok((plan, steps, executed, pinned))
}

fn describe_steps(
    ctx: &Ctx,
    store: &S3Store,
    keys: &crate::contract::Keys,
    steps: &[plan::Step],
) -> Vec<String> {
    let target = ctx.target(store.bucket(), keys);
    steps.iter().map(|s| describe(s, &target)).collect()
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
