//! `cutover activate RELEASE` and `cutover rollback [--to RELEASE]`: make an
//! uploaded release live, after checking every object of it is in S3.

use serde::Serialize;

use super::objects::{cdn_checks, mutable_restores, verify_release};
use super::{resolve_release, Ctx, Resolved};
use crate::build::manifest::{diff, ManifestDiff};
use crate::contract::{Action, Pin, PinChange};
use crate::error::Failure;
use crate::exec::{describe, Switched};
use crate::plan::{invalidation_path, Step, Switch};
use crate::release::now;
use crate::render::{count, Render};
use crate::state::{LiveState, Stored};
use crate::store::lock::LockGuard;
use crate::store::redis::Needs;
use crate::store::s3::S3Store;
use crate::store::targets::Targets;

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
    /// The release's objects are planned to be copied first (a promote's
    /// dry run): do not look for them yet.
    pub objects_planned: bool,
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
    pub command: &'static str,
    pub app: String,
    pub dry_run: bool,
    pub outcome: Ending,
    pub release: String,
    /// The release live before (or, in a dry run, now).
    pub from: Option<String>,
    pub manifest_diff: Option<ManifestDiff>,
    /// The writes, in order.
    pub steps: Vec<String>,
    /// The pin after this command (rollback pins; activate --unpin clears).
    pub pinned: Option<Pin>,
}

pub async fn activate(ctx: &Ctx, release: &str, req: Request) -> anyhow::Result<Outcome> {
    run(ctx, Action::Activate, Some(release), req).await
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
    let app = ctx.config.app()?.to_string();
    let (store, mut registry) = ctx.connect().await?;
    if !req.dry_run {
        registry.check_permissions(Needs::Switch).await?;
    }
    let live = registry.live().await?;
    let wanted = match wanted {
        Some(id) => id.to_string(),
        None => previous_release(&app, &mut registry, &live, ctx.config.history_limit).await?,
    };
    let target = resolve_release(&ctx.config, &mut registry, &store, &wanted).await?;
    switch_to(ctx, &store, &mut registry, target, live, action, req, None).await
}

/// The newest release that was live before the current one and was not
/// itself rolled back from: repeated rollbacks walk further back.
async fn previous_release(
    app: &str,
    registry: &mut Targets,
    live: &LiveState,
    history_limit: usize,
) -> anyhow::Result<String> {
    let current = live.current.clone().ok_or_else(|| {
        Failure::input(format!(
            "no release is live for {app}; nothing to roll back (see `cutover releases`)"
        ))
    })?;
    let history = registry.history(history_limit).await?;
    if !history.iter().any(|e| e.release == current) {
        return Err(Failure::input(format!(
            "the history of {app} does not say what was live before {current}; use `cutover rollback --to RELEASE`"
        )));
    }
    let skipped = registry.rolled_back().await?;
    // Releases in the order they were last live, newest first.
    let was_live = history
        .iter()
        .flat_map(|e| std::iter::once(Some(&e.release)).chain(std::iter::once(e.previous.as_ref())))
        .flatten();
    for id in was_live {
        if id != &current && !skipped.contains(id) {
            return Ok(id.clone());
        }
    }
    Err(Failure::input(format!(
        "no release before {current} of {app} is left to roll back to (the ones before it were rolled back from); \
         use `cutover rollback --to RELEASE` (see `cutover releases`)"
    )))
}

/// Refuse to activate while pinned, unless `--unpin` (exit 3).
fn check_pin(live: &LiveState, action: Action, req: &Request, id: &str) -> anyhow::Result<()> {
    match &live.pin {
        Some(pin) if action == Action::Activate && !req.unpin => Err(Failure::refused(format!(
            "{} is pinned since {} by {}{}; `cutover activate {id} --unpin` switches and clears the pin, `cutover unpin` clears it alone",
            pin.release.as_deref().unwrap_or("the live release"),
            pin.at,
            pin.by.as_deref().unwrap_or("unknown"),
            pin.message
                .as_deref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default()
        ))),
        _ => Ok(()),
    }
}

/// Verify the target's objects, plan the switch, and run it unless a dry
/// run: under `held` when the caller holds the lock, else under its own.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn switch_to(
    ctx: &Ctx,
    store: &S3Store,
    registry: &mut Targets,
    target: Resolved,
    live: LiveState,
    action: Action,
    req: Request,
    held: Option<&LockGuard>,
) -> anyhow::Result<Outcome> {
    let config = &ctx.config;
    let record = target.record;
    check_pin(&live, action, &req, &record.id)?;
    let mut out = Outcome {
        command: action.as_str(),
        app: config.app()?.to_string(),
        dry_run: req.dry_run,
        outcome: Ending::AlreadyLive,
        release: record.id.clone(),
        from: live.current.clone(),
        manifest_diff: None,
        steps: Vec::new(),
        pinned: live.pin.clone(),
    };
    // Live means current, manifest and record agree; otherwise repair them.
    let in_redis = matches!(target.in_redis, Stored::Valid(_));
    let repair = live.current.as_deref() == Some(record.id.as_str());
    if repair && in_redis && live.serves(&record.id, &record.manifest) {
        return Ok(out);
    }
    let meta = config.meta_prefix()?;
    let restores = if req.dry_run && req.objects_planned {
        Vec::new()
    } else {
        verify_release(
            store,
            &record,
            &meta,
            config.concurrency,
            ctx.observer.as_ref(),
        )
        .await?;
        mutable_restores(
            store,
            &record,
            &meta,
            config.concurrency,
            ctx.observer.as_ref(),
        )
        .await?
    };
    out.manifest_diff = Some(diff(live.manifest.as_ref(), &record.manifest));
    let mut steps = Vec::new();
    if !in_redis || registry.several() {
        // Redis lost the record (or holds a damaged one): restore it from the
        // S3 copy first. With several targets, any may have lost it (a
        // restarted Redis): registering keeps a record that is there.
        steps.push(Step::Register {
            record: Box::new(record.summary()),
            replace_broken: matches!(target.in_redis, Stored::Broken(_)),
        });
    }
    if !restores.is_empty() {
        steps.push(Step::Copy(restores.clone()));
    }
    if req.verify_cdn {
        steps.push(Step::VerifyCdn(cdn_checks(&record, 0)));
    }
    // Rollback pins the release it goes to; activate --unpin clears the pin.
    let pin = match action {
        Action::Rollback => PinChange::Set(Pin {
            release: Some(record.id.clone()),
            by: config.deployed_by.clone(),
            at: now().0,
            message: req.message.clone(),
        }),
        _ if req.unpin => PinChange::Clear,
        _ => PinChange::Respect,
    };
    let rolled_back_from = live
        .current
        .clone()
        .filter(|c| action == Action::Rollback && c != &record.id);
    steps.push(Step::Switch(Switch {
        targets: live.expectations(&record.id, &record.manifest),
        release: record.id.clone(),
        manifest: record.manifest.clone(),
        action,
        by: config.deployed_by.clone(),
        message: req.message.clone(),
        force: req.force,
        pin: pin.clone(),
        rolled_back_from,
    }));
    if let (Some(distribution), false) = (&config.cloudfront_distribution_id, restores.is_empty()) {
        steps.push(Step::Invalidate {
            distribution: distribution.clone(),
            paths: restores
                .iter()
                .map(|c| invalidation_path(&record.cdn_url, &c.to))
                .collect(),
            wait: req.wait,
        });
    }
    let target = ctx.target(store.bucket(), registry.keys());
    out.steps = steps.iter().map(|s| describe(s, &target)).collect();
    if req.dry_run {
        out.outcome = Ending::Planned;
        return Ok(out);
    }
    let result = match held {
        Some(lock) => {
            ctx.executor(Some(store), Some(registry), None, Some(lock))
                .run(&steps)
                .await
        }
        None => {
            let lock = LockGuard::acquire(config, registry, &config.actor(), ctx.observer.as_ref())
                .await?;
            let result = ctx
                .executor(Some(store), Some(registry), None, Some(&lock))
                .run(&steps)
                .await;
            lock.release().await;
            result
        }
    };
    match result?.switched {
        Some(Switched::Applied { previous }) => out.from = previous,
        Some(Switched::Pinned(p)) if action == Action::Promote => {
            out.outcome = Ending::Recorded;
            out.pinned = Some(p);
            return Ok(out);
        }
        Some(Switched::Pinned(p)) => {
            return Err(Failure::refused(format!(
                "the app was pinned by {} while this {} ran; nothing was switched. `cutover activate {} --unpin` switches and clears the pin",
                p.by.as_deref().unwrap_or("unknown"),
                action.as_str(),
                record.id
            )))
        }
        None => {}
    }
    out.pinned = match pin {
        PinChange::Set(p) => Some(p),
        PinChange::Clear => None,
        PinChange::Respect => live.pin,
    };
    out.outcome = if repair {
        Ending::Repaired
    } else {
        Ending::Activated
    };
    Ok(out)
}

impl Render for Outcome {
    fn text(&self) -> String {
        let (id, app) = (&self.release, &self.app);
        match self.outcome {
            Ending::AlreadyLive => {
                format!("release {id} is already live for {app}; nothing to do\n")
            }
            Ending::Recorded => format!(
                "release {id} is recorded for {app} but NOT activated: the app is pinned ({}); `cutover activate {id} --unpin` makes it live\n",
                self.pinned
                    .as_ref()
                    .map(super::pin::describe_pin)
                    .unwrap_or_default()
            ),
            Ending::Repaired => format!(
                "release {id} was live for {app} but Redis no longer held its manifest or record intact; wrote them again\n"
            ),
            Ending::Activated => format!(
                "release {id} is live for {app} (was {}; {})\n",
                self.from.as_deref().unwrap_or("none"),
                self.command
            ),
            Ending::Planned => {
                let mut t = format!(
                    "dry run: nothing will be changed\nwould switch {app} from {} to {id} ({}); all its objects are in S3\n",
                    self.from.as_deref().unwrap_or("none"),
                    self.command
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
