//! `cutover pin` and `cutover unpin`: hold the live release. While pinned,
//! deploys upload and record but do not activate; `rollback` pins by itself.

use serde::Serialize;

use super::Ctx;
use crate::contract::Pin;
use crate::error::Failure;
use crate::exec::describe;
use crate::plan::Step;
use crate::release::now;
use crate::render::Render;
use crate::store::redis::Needs;
use crate::store::targets::Targets;

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
    pub command: &'static str,
    pub app: String,
    pub dry_run: bool,
    pub outcome: Ending,
    /// The pin now (or, in a dry run, after).
    pub pin: Option<Pin>,
    /// The pin before.
    pub previous: Option<Pin>,
    pub steps: Vec<String>,
}

/// Pin the live release (`pin = true`) or clear the pin.
pub async fn run(ctx: &Ctx, pin: bool, req: Request) -> anyhow::Result<Outcome> {
    let config = &ctx.config;
    let app = config.app()?.to_string();
    let mut registry = Targets::connect(config).await?;
    let live = registry.live().await?;
    let new_pin = if pin {
        let current = live.current.clone().ok_or_else(|| {
            Failure::input(format!(
                "no release is live for {app}; there is nothing to pin (see `cutover releases`)"
            ))
        })?;
        Some(Pin {
            release: Some(current),
            by: config.deployed_by.clone(),
            at: now().0,
            message: req.message.clone(),
        })
    } else {
        None
    };
    let mut out = Outcome {
        command: if pin { "pin" } else { "unpin" },
        app,
        dry_run: req.dry_run,
        outcome: Ending::Planned,
        pin: new_pin.clone(),
        previous: live.pin.clone(),
        steps: Vec::new(),
    };
    if !pin && live.pin.is_none() {
        out.outcome = Ending::NotPinned;
        return Ok(out);
    }
    let steps = vec![Step::Pin(new_pin)];
    let bucket = config.bucket.clone().unwrap_or_default();
    out.steps = steps
        .iter()
        .map(|s| describe(s, &ctx.target(&bucket, registry.keys())))
        .collect();
    if req.dry_run {
        return Ok(out);
    }
    registry.check_permissions(Needs::Switch).await?;
    ctx.executor(None, Some(&mut registry), None, None)
        .run(&steps)
        .await?;
    out.outcome = if pin {
        Ending::Pinned
    } else {
        Ending::Unpinned
    };
    Ok(out)
}

/// "release X, since T by B (message)"
pub fn describe_pin(pin: &Pin) -> String {
    format!(
        "{} since {} by {}{}",
        pin.release.as_deref().unwrap_or("the live release"),
        pin.at,
        pin.by.as_deref().unwrap_or("unknown"),
        pin.message
            .as_deref()
            .map(|m| format!(" ({m})"))
            .unwrap_or_default()
    )
}

impl Render for Outcome {
    fn text(&self) -> String {
        let app = &self.app;
        match (self.outcome, &self.pin) {
            (Ending::NotPinned, _) => format!("{app} is not pinned; nothing to do\n"),
            (Ending::Planned, _) => format!(
                "dry run: nothing will be changed\nwould {} {app}:\n  1. {}\n",
                self.command,
                self.steps.join("\n  ")
            ),
            (Ending::Pinned, Some(p)) => format!(
                "pinned {app} to {}; deploys record but do not activate until `cutover unpin` or `cutover activate <id> --unpin`\n",
                describe_pin(p)
            ),
            _ => format!("unpinned {app}; the next deploy activates as usual\n"),
        }
    }
}
