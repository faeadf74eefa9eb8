//! `cutover unlock`: show who holds the deploy lock and, with `--force`,
//! clear it (a deploy killed with its lock, or a lock without expiry).

use serde::Serialize;

use super::{Ctx, Head};
use crate::error::Failure;
use crate::render::Render;
use crate::store::redis::{LockHolder, Needs};
use crate::store::registries::Registries;

pub struct Request {
    pub force: bool,
    pub dry_run: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// Nobody holds the lock.
    NotHeld,
    /// Dry run: what `--force` would delete.
    Planned,
    Cleared,
}

#[derive(Debug, Serialize)]
pub struct Outcome {
    #[serde(flatten)]
    pub head: Head,
    pub outcome: Ending,
    pub key: String,
    pub owner: Option<String>,
    /// Milliseconds left; null when the lock has no expiry (or is not held).
    pub ttl_ms: Option<i64>,
    pub steps: Vec<String>,
}

pub async fn run(ctx: &Ctx, req: Request) -> anyhow::Result<Outcome> {
    let app = ctx.config.app()?.to_string();
    let mut redis = Registries::connect(&ctx.config).await?;
    let holder = redis.lock_holder().await?;
    let mut out = Outcome {
        head: ctx.head("unlock", Some(req.dry_run))?,
        outcome: Ending::NotHeld,
        key: redis.keys().lock.clone(),
        owner: holder.as_ref().map(|h| h.owner.clone()),
        ttl_ms: holder.as_ref().and_then(|h| h.ttl_ms),
        steps: Vec::new(),
    };
    let Some(holder) = holder else {
        return Ok(out);
    };
    let steps = crate::plan::switch::unlock(&holder.owner);
    let bucket = ctx.config.bucket.clone().unwrap_or_default();
    out.steps = ctx.describe(&bucket, redis.keys(), &steps);
    if req.dry_run {
        out.outcome = Ending::Planned;
        return Ok(out);
    }
    if !req.force {
        return Err(Failure::refused(format!(
            "the deploy lock of {app} is held by {:?} ({}); if no deploy is running, clear it with `cutover unlock --force`",
            holder.owner,
            expires(&holder)
        )));
    }
    redis.check_permissions(Needs::Unlock).await?;
    ctx.executor(None, Some(&mut redis), None, None)
        .run(&steps)
        .await?;
    out.outcome = Ending::Cleared;
    Ok(out)
}

fn expires(holder: &LockHolder) -> String {
    match holder.ttl_ms {
        Some(ms) => format!("expires in {}s", (ms + 999) / 1000),
        None => "no expiry: it will never clear by itself".to_string(),
    }
}

impl Render for Outcome {
    fn text(&self) -> String {
        let owner = self.owner.as_deref().unwrap_or_default();
        let holder = LockHolder {
            owner: owner.to_string(),
            ttl_ms: self.ttl_ms,
        };
        match self.outcome {
            Ending::NotHeld => format!("nobody holds the deploy lock of {} ({})\n", self.head.app, self.key),
            Ending::Planned => format!(
                "dry run: nothing will be changed\nthe deploy lock of {} is held by {owner:?} ({}); `--force` would:\n  1. {}\n",
                self.head.app,
                expires(&holder),
                self.steps.join("\n  ")
            ),
            Ending::Cleared => format!(
                "cleared the deploy lock of {} (was held by {owner:?}, {})\n",
                self.head.app,
                expires(&holder)
            ),
        }
    }
}
