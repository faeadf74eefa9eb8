//! `cutover pin` and `cutover unpin`: hold the live release. While pinned,
//! deploys upload and record but do not activate; `rollback` pins by itself.

use serde::Serialize;

use super::{Ctx, Head};
use crate::contract::Pin;
use crate::notify::{About, Happened, Kind, Notable};
use crate::plan::switch as plan;
use crate::release::now;
use crate::render::Render;
use crate::store::redis::Needs;
use crate::store::registries::Registries;

pub struct Request {
    pub dry_run: bool,
    pub message: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    Planned,
    Pinned,
    Unpinned,
    /// `unpin` when nothing was pinned.
    NotPinned,
}

#[derive(Debug, Serialize)]
pub struct Outcome {
    #[serde(flatten)]
    pub head: Head,
    pub outcome: Ending,
    /// The pin now (or, in a dry run, after).
    pub pin: Option<Pin>,
    /// The pin before.
    pub previous: Option<Pin>,
    pub steps: Vec<String>,
    /// The Redis targets written (or, in a dry run, to write), each as
    /// `host:port/db`.
    pub targets: Vec<String>,
}

/// Pin the live release (`pin = true`) or clear the pin.
pub async fn run(ctx: &Ctx, pin: bool, req: Request) -> anyhow::Result<Outcome> {
    let config = &ctx.config;
    let mut redis = Registries::connect(config).await?;
    let live = redis.live().await?;
    let wanted = pin.then(|| (config.deployed_by.clone(), now().0, req.message.clone()));
    let (new_pin, steps) = plan::pin(config.app()?, &live, wanted)?;
    let bucket = config.bucket.clone().unwrap_or_default();
    let mut out = Outcome {
        head: ctx.head(if pin { "pin" } else { "unpin" }, Some(req.dry_run))?,
        outcome: Ending::Planned,
        pin: new_pin,
        previous: live.pin.clone(),
        steps: ctx.describe(&bucket, redis.keys(), &steps),
        targets: ctx.redis_targets(),
    };
    if steps.is_empty() {
        out.outcome = Ending::NotPinned;
        return Ok(out);
    }
    if req.dry_run {
        return Ok(out);
    }
    redis.check_permissions(Needs::Switch).await?;
    ctx.executor(None, Some(&mut redis), None, None)
        .run(&steps)
        .await?;
    out.outcome = if pin {
        Ending::Pinned
    } else {
        Ending::Unpinned
    };
    Ok(out)
}

impl Render for Outcome {
    fn text(&self) -> String {
        let on = match self.outcome {
            Ending::NotPinned => String::new(),
            Ending::Planned => {
                super::on_redis(&format!("would {}", self.head.command), &self.targets)
            }
            Ending::Pinned => super::on_redis("pinned", &self.targets),
            Ending::Unpinned => super::on_redis("unpinned", &self.targets),
        };
        self.result_text() + &on
    }
}

/// `pinned` (the release held) or `unpinned` (the release that was).
impl Notable for Outcome {
    fn happened(&self) -> Option<Happened> {
        let (kind, pin) = match self.outcome {
            Ending::Pinned => (Kind::Pinned, self.pin.as_ref()),
            Ending::Unpinned => (Kind::Unpinned, self.previous.as_ref()),
            Ending::Planned | Ending::NotPinned => return None,
        };
        Some(Happened {
            kind,
            release: pin.and_then(|p| p.release.clone()),
            previous: None,
            about: About {
                message: if kind == Kind::Pinned {
                    pin.and_then(|p| p.message.clone())
                } else {
                    None
                },
                ..About::default()
            },
        })
    }
}

impl Outcome {
    fn result_text(&self) -> String {
        let app = &self.head.app;
        match (self.outcome, &self.pin) {
            (Ending::NotPinned, _) => format!("{app} is not pinned; nothing to do\n"),
            (Ending::Planned, _) => format!(
                "dry run: nothing will be changed\nwould {} {app}:\n  1. {}\n",
                self.head.command,
                self.steps.join("\n  ")
            ),
            (Ending::Pinned, Some(p)) => format!(
                "pinned {app} to {}; deploys record but do not activate until `cutover unpin` or `cutover activate <id> --unpin`\n",
                p.describe()
            ),
            _ => format!("unpinned {app}; the next deploy activates as usual\n"),
        }
    }
}
