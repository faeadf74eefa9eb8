//! `cutover unlock`: show who holds the deploy lock (exit 0: showing it is
//! its job) and, with `--force`, clear it (a deploy killed with its lock, a
//! lock without expiry, or a lock key something else wrote another type to).

use serde::Serialize;

use super::{Ctx, Head};
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
    /// Without `--force`: who holds it, and how to clear it.
    Held,
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
    /// The lock key holds this type of value, not a string (something else
    /// wrote it); `--force` deletes it. Absent when it is a lock.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wrong_type: Option<String>,
    pub steps: Vec<String>,
}

pub async fn run(ctx: &Ctx, req: Request) -> anyhow::Result<Outcome> {
    let mut redis = Registries::connect(&ctx.config).await?;
    let holder = redis.lock_holder().await?;
    let mut out = Outcome {
        head: ctx.head("unlock", Some(req.dry_run))?,
        outcome: Ending::NotHeld,
        key: redis.keys().lock.clone(),
        owner: holder.as_ref().map(|h| h.owner.clone()),
        ttl_ms: holder.as_ref().and_then(|h| h.ttl_ms),
        wrong_type: holder.as_ref().and_then(|h| h.wrong_type.clone()),
        steps: Vec::new(),
    };
    let Some(holder) = holder else {
        return Ok(out);
    };
    let steps = crate::plan::switch::unlock(&holder.owner, holder.wrong_type.as_deref());
    let bucket = ctx.config.bucket.clone().unwrap_or_default();
    out.steps = ctx.describe(&bucket, redis.keys(), &steps);
    if req.dry_run {
        out.outcome = Ending::Planned;
        return Ok(out);
    }
    if !req.force {
        out.outcome = Ending::Held;
        return Ok(out);
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
            wrong_type: self.wrong_type.clone(),
        };
        let app = &self.head.app;
        let held = match &self.wrong_type {
            Some(kind) => format!(
                "the deploy lock key {} holds a {kind}, not a lock: something else wrote it, and no deploy can take the lock until it goes ({})",
                self.key,
                expires(&holder)
            ),
            None => format!(
                "the deploy lock of {app} is held by {owner:?} ({})",
                expires(&holder)
            ),
        };
        match self.outcome {
            Ending::Held => {
                format!("{held}\nif no deploy is running, `cutover unlock --force` clears it\n")
            }
            Ending::NotHeld => format!(
                "nobody holds the deploy lock of {} ({})\n",
                self.head.app, self.key
            ),
            Ending::Planned => format!(
                "dry run: nothing will be changed\n{held}; `--force` would:\n  1. {}\n",
                self.steps.join("\n  ")
            ),
            Ending::Cleared => match &self.wrong_type {
                Some(kind) => format!(
                    "cleared the deploy lock key of {app} (it held a {kind}, not a lock, {})\n",
                    expires(&holder)
                ),
                None => format!(
                    "cleared the deploy lock of {app} (was held by {owner:?}, {})\n",
                    expires(&holder)
                ),
            },
        }
    }
}
