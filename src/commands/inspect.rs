//! `cutover status` and `cutover releases`: read-only views of Redis.

use serde::Serialize;

use super::{Ctx, Head};
use crate::contract::{ActivationEvent, Pin};
use crate::release::ReleaseRecord;
use crate::render::{bytes, count, table, Render};
use crate::signing::SignatureState;
use crate::state::Stored;
use crate::store::registries::Registries;

#[derive(Debug, Serialize)]
pub struct Status {
    #[serde(flatten)]
    pub head: Head,
    pub current: Option<String>,
    pub record: Option<ReleaseRecord>,
    pub last_event: Option<ActivationEvent>,
    /// Set while the app is pinned: deploys record but do not activate.
    pub pin: Option<Pin>,
    /// The running rollout's canary (null when none).
    pub canary: Option<crate::canary::Canary>,
    /// Whether the live release is signed, and by which key (null: no
    /// release is live).
    pub signature: Option<SignatureState>,
    /// What is wrong with the live state in Redis, and how to repair it.
    pub problems: Vec<String>,
    /// With several Redis targets: what each serves (absent with one).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<TargetRow>,
    /// What the reader processes report they serve (docs/redis.md, "The fleet").
    pub fleet: crate::fleet::View,
}

/// What one Redis target of several serves.
#[derive(Debug, Serialize)]
pub struct TargetRow {
    /// Its URL, password masked.
    pub target: String,
    pub current: Option<String>,
    /// Its live manifest is there and is JSON.
    pub manifest: bool,
}

/// The rows of the targets, and a problem when they disagree.
fn target_rows(live: &crate::state::LiveState, problems: &mut Vec<String>) -> Vec<TargetRow> {
    if live.targets.is_empty() {
        return Vec::new();
    }
    if live.split() {
        let first = live.current.as_deref().unwrap_or("<id>");
        problems.push(format!(
            "the Redis targets are split: {}; `cutover activate {first}` brings every target to one release",
            live.each()
                .map(|(name, current, _)| format!("{name} serves {}", current.unwrap_or("no release")))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    for t in &live.targets {
        if let (Some(id), None) = (&t.current, &t.manifest) {
            problems.push(format!(
                "{} has no readable live manifest; `cutover activate {id}` writes it again",
                t.name
            ));
        }
    }
    live.targets
        .iter()
        .map(|t| TargetRow {
            target: t.name.clone(),
            current: t.current.clone(),
            manifest: t.manifest.is_some(),
        })
        .collect()
}

pub async fn status(ctx: &Ctx) -> anyhow::Result<Status> {
    let head = ctx.head("status", None)?;
    let mut redis = Registries::connect(&ctx.config).await?;
    let live = redis.live().await?;
    let mut problems = Vec::new();
    let (record, last_event) = match &live.current {
        Some(id) => {
            let record = match redis.record(id).await? {
                Stored::Valid(r) => Some(r),
                Stored::Missing => {
                    problems.push(format!(
                        "the record of {id} is missing from Redis; `cutover activate {id}` restores it from S3"
                    ));
                    None
                }
                Stored::Broken(why) => {
                    problems.push(format!(
                        "the record of {id} in Redis is {why}; `cutover activate {id}` restores it from S3"
                    ));
                    None
                }
            };
            (record, redis.history(1).await?.into_iter().next())
        }
        None => (None, None),
    };
    if let (Some(id), Some(damage)) = (&live.current, &live.damage) {
        problems.push(format!(
            "{damage}: the app cannot read the live release; `cutover activate {id}` writes it again"
        ));
    } else if let (Some(id), Some(r), Some(m)) = (&live.current, &record, &live.manifest) {
        if &r.manifest != m {
            problems.push(format!(
                "the live manifest is not {id}'s own; `cutover activate {id}` writes it again"
            ));
        }
    }
    if let Some(damage) = &live.canary_damage {
        problems.push(damage.clone());
    }
    let targets = target_rows(&live, &mut problems);
    if let Some(r) = &record {
        problems.extend(target_signature_problems(&live, r));
    }
    let fleet = crate::fleet::View::of(redis.fleets().await?, live.current.as_deref());
    let known = ctx.config.signing_key.as_ref().map(|k| k.verify_key());
    let signature = live.signature_state(known.as_ref());
    problems.extend(signature_problems(
        &ctx.config,
        live.current.as_deref(),
        signature.as_ref(),
        record.as_ref(),
        live.signature.as_deref(),
    ));
    Ok(Status {
        head,
        current: live.current,
        record,
        last_event,
        pin: live.pin,
        canary: live.canary,
        signature,
        problems,
        targets,
        fleet,
    })
}

/// With several Redis targets, each one's signature beyond the first's (the
/// first is checked with the live state): a target serving `record`'s
/// release with a signature that is not its record's is refused by readers
/// with verify_keys there; `activate` writes the record's (status, verify,
/// doctor).
pub fn target_signature_problems(
    live: &crate::state::LiveState,
    record: &ReleaseRecord,
) -> Vec<String> {
    let id = &record.id;
    live.targets
        .iter()
        .skip(1)
        .filter(|t| {
            t.current.as_deref() == Some(id.as_str())
                && t.signature.as_deref() != record.signature.as_deref()
        })
        .map(|t| {
            format!(
                "{}'s signature of {id} is not its record's ({}): readers with verify_keys there refuse it; \
                 `cutover activate {id}` writes the record's",
                t.name,
                if t.signature.is_some() { "a different one" } else { "missing" }
            )
        })
        .collect()
}

/// What is wrong with the live signature, and how to repair it (status,
/// doctor): it does not fit or verify, it is not the record's, or the
/// release is unsigned under `require_signature`.
pub fn signature_problems(
    config: &crate::config::Config,
    current: Option<&str>,
    state: Option<&SignatureState>,
    record: Option<&ReleaseRecord>,
    live_signature: Option<&str>,
) -> Vec<String> {
    let (Some(id), Some(state)) = (current, state) else {
        return Vec::new();
    };
    let mut problems = Vec::new();
    if let Some(p) = &state.problem {
        problems.push(format!(
            "{p}: readers with verify_keys keep their last good release; `cutover activate {id}` writes the record's signature again"
        ));
    } else if let Some(r) = record.filter(|r| r.signature.as_deref() != live_signature) {
        problems.push(format!(
            "the live signature is not the one in the record of {id} ({}); `cutover activate {id}` writes the record's",
            if r.signature.is_some() { "signed" } else { "unsigned" }
        ));
    }
    if !state.signed && config.require_signature {
        problems.push(format!(
            "release {id} is unsigned and require_signature is set: readers with verify_keys do not serve it; \
             deploy its build again with signing_key"
        ));
    }
    problems
}

impl Render for Status {
    fn text(&self) -> String {
        let mut t = match &self.current {
            Some(id) => format!("live release of {}: {id}\n", self.head.app),
            None => format!("no release is live for {}\n", self.head.app),
        };
        for row in &self.targets {
            t.push_str(&format!(
                "  {}: {}{}\n",
                row.target,
                row.current.as_deref().unwrap_or("no release"),
                if row.manifest || row.current.is_none() {
                    ""
                } else {
                    " (manifest missing)"
                }
            ));
        }
        if self.current.is_none() {
            for p in &self.problems {
                t.push_str(&format!("  PROBLEM: {p}\n"));
            }
            for line in self.fleet.lines() {
                t.push_str(&format!("  {line}\n"));
            }
            return t;
        }
        if let Some(p) = &self.pin {
            t.push_str(&format!(
                "  PINNED: {}; deploys record but do not activate (`cutover unpin`)\n",
                p.describe()
            ));
        }
        if let Some(r) = &self.record {
            t.push_str(&record_lines(r));
        }
        if let Some(c) = &self.canary {
            t.push_str(&format!(
                "  canary:   {} at {} since {} by {}: that share of the keys gets it (`cutover rollout --percent N`, `complete`, `abort`)\n",
                c.release,
                c.percent,
                c.since,
                c.by.as_deref().unwrap_or("unknown")
            ));
        }
        if let Some(s) = &self.signature {
            t.push_str(&format!("  {}\n", s.describe()));
        }
        for p in &self.problems {
            t.push_str(&format!("  PROBLEM: {p}\n"));
        }
        if let Some(e) = &self.last_event {
            t.push_str(&format!(
                "  last change: {} at {} by {} (previous {})\n",
                e.action,
                e.at,
                e.by.as_deref().unwrap_or("unknown"),
                e.previous.as_deref().unwrap_or("none")
            ));
        }
        for line in self.fleet.lines() {
            t.push_str(&format!("  {line}\n"));
        }
        t
    }
}

fn record_lines(r: &ReleaseRecord) -> String {
    let mut t = format!(
        "  created {} by {}\n  {}, {}\n",
        r.created_at,
        r.deployed_by.as_deref().unwrap_or("unknown"),
        count(r.file_count, "file"),
        bytes(r.bytes)
    );
    if let Some(sha) = &r.git_sha {
        let branch = r
            .git_branch
            .as_deref()
            .map(|b| format!(" ({b})"))
            .unwrap_or_default();
        t.push_str(&format!("  git {sha}{branch}\n"));
    }
    if let Some(u) = &r.build_url {
        t.push_str(&format!("  build {u}\n"));
    }
    if let Some(m) = &r.message {
        t.push_str(&format!("  message: {m}\n"));
    }
    if let Some(p) = &r.promoted_from {
        t.push_str(&format!(
            "  promoted from {} (s3://{}/{}, {}) at {} by {}\n",
            p.environment,
            p.bucket,
            p.prefix,
            p.cdn_url,
            p.at,
            p.by.as_deref().unwrap_or("unknown")
        ));
    }
    t
}

#[derive(Debug, Serialize)]
pub struct Row {
    pub id: String,
    pub live: bool,
    /// Live under the current pin.
    pub pinned: bool,
    /// It was rolled back from: `rollback` skips it.
    pub rolled_back: bool,
    /// The canary of the running rollout: its percent (absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary: Option<crate::canary::Percent>,
    /// With several Redis targets: those serving it (absent with one).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub live_on: Vec<String>,
    pub record: Option<ReleaseRecord>,
    /// Why the record cannot be shown (missing, unreadable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Releases {
    #[serde(flatten)]
    pub head: Head,
    pub current: Option<String>,
    pub releases: Vec<Row>,
}

/// Releases, newest first; `limit` 0 lists them all.
pub async fn releases(ctx: &Ctx, limit: usize) -> anyhow::Result<Releases> {
    let head = ctx.head("releases", None)?;
    let mut redis = Registries::connect(&ctx.config).await?;
    let live = redis.live().await?;
    let serving = |id: &str| -> Vec<String> {
        live.targets
            .iter()
            .filter(|t| t.current.as_deref() == Some(id))
            .map(|t| t.name.clone())
            .collect()
    };
    let current = live.current.clone();
    let pinned = live.pin.clone().and_then(|p| p.release);
    let rolled_back = redis.rolled_back().await?;
    let ids = redis.release_ids(limit).await?;
    let records = redis.records(&ids).await?;
    let releases = ids
        .into_iter()
        .zip(records)
        .map(|(id, stored)| {
            let problem = match &stored {
                Stored::Valid(_) => None,
                Stored::Missing => Some("record missing".to_string()),
                Stored::Broken(why) => Some(format!("record unreadable: {why}")),
            };
            Row {
                live_on: serving(&id),
                live: current.as_deref() == Some(id.as_str()),
                pinned: pinned.as_deref() == Some(id.as_str()),
                rolled_back: rolled_back.contains(&id),
                canary: live
                    .canary
                    .as_ref()
                    .filter(|c| c.release == id)
                    .map(|c| c.percent),
                id,
                record: stored.valid(),
                problem,
            }
        })
        .collect();
    Ok(Releases {
        head,
        current,
        releases,
    })
}

impl Render for Releases {
    fn text(&self) -> String {
        if self.releases.is_empty() {
            return format!("no releases for {}\n", self.head.app);
        }
        let dash = || "-".to_string();
        let rows: Vec<Vec<String>> = self
            .releases
            .iter()
            .map(|row| {
                let partly = !row.live && !row.live_on.is_empty();
                let canary = row.canary.map(|p| format!("canary at {p}"));
                let live = [
                    (row.live, "live"),
                    (partly, "live on some targets"),
                    (row.pinned, "pinned"),
                    (row.rolled_back, "rolled back"),
                ]
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, word)| *word)
                .chain(canary.as_deref())
                .collect::<Vec<_>>()
                .join(", ");
                match &row.record {
                    Some(r) => vec![
                        live,
                        row.id.clone(),
                        r.created_at.clone(),
                        r.git_sha
                            .as_deref()
                            .map(|s| s.chars().take(10).collect())
                            .unwrap_or_else(dash),
                        r.git_branch.clone().unwrap_or_else(dash),
                        r.deployed_by.clone().unwrap_or_else(dash),
                        r.file_count.to_string(),
                        bytes(r.bytes),
                        match (&r.promoted_from, &r.message) {
                            (Some(p), Some(m)) => format!("promoted from {}: {m}", p.environment),
                            (Some(p), None) => format!("promoted from {}", p.environment),
                            (None, m) => m.clone().unwrap_or_default(),
                        },
                    ],
                    None => vec![
                        live,
                        row.id.clone(),
                        format!("({})", row.problem.as_deref().unwrap_or("record missing")),
                        dash(),
                        dash(),
                        dash(),
                        dash(),
                        dash(),
                        String::new(),
                    ],
                }
            })
            .collect();
        table(
            &[
                "STATE", "RELEASE", "CREATED", "GIT", "BRANCH", "BY", "FILES", "SIZE", "MESSAGE",
            ],
            &rows,
        )
    }
}

#[derive(Debug, Serialize)]
pub struct History {
    #[serde(flatten)]
    pub head: Head,
    /// Newest first (of the first Redis target, with several).
    pub events: Vec<ActivationEvent>,
    /// With several Redis targets: each one's log (absent with one).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<TargetHistory>,
}

#[derive(Debug, Serialize)]
pub struct TargetHistory {
    pub target: String,
    pub events: Vec<ActivationEvent>,
}

/// The activation log, newest first; `limit` 0 shows it all.
pub async fn history(ctx: &Ctx, limit: usize) -> anyhow::Result<History> {
    let head = ctx.head("history", None)?;
    let mut redis = Registries::connect(&ctx.config).await?;
    let events = redis.history(limit).await?;
    let mut targets = Vec::new();
    if redis.several() {
        for target in redis.each() {
            targets.push(TargetHistory {
                target: target.name().to_string(),
                events: target.history(limit).await?,
            });
        }
    }
    Ok(History {
        head,
        events,
        targets,
    })
}

impl Render for History {
    fn text(&self) -> String {
        if self.targets.is_empty() {
            return history_table(&self.head.app, &self.events);
        }
        self.targets
            .iter()
            .map(|t| {
                format!(
                    "{}:\n{}",
                    t.target,
                    history_table(&self.head.app, &t.events)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn history_table(app: &str, events: &[ActivationEvent]) -> String {
    if events.is_empty() {
        return format!("no activations of {app} yet\n");
    }
    let dash = || "-".to_string();
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            vec![
                e.at.clone(),
                match e.percent {
                    Some(p) => format!("{} {p}", e.action),
                    None => e.action.clone(),
                },
                e.previous.clone().unwrap_or_else(dash),
                e.release.clone(),
                e.by.clone().unwrap_or_else(dash),
                e.message.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(&["AT", "ACTION", "FROM", "TO", "BY", "MESSAGE"], &rows)
}
