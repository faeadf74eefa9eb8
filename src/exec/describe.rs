//! One line for each write a step makes: what `--dry-run` prints, made
//! from the same [`Step`]s the executor runs.

use crate::contract::{CanaryMode, Keys, PinChange};
use crate::plan::{CanaryWrite, Step, Switch};
use crate::render::{bytes, count, some};
use crate::store::cloudfront::collapse;

/// Where the steps write, for describing them.
pub struct Destinations<'a> {
    pub bucket: &'a str,
    pub keys: &'a Keys,
    pub history_limit: usize,
    /// How many Redis targets Redis steps write to.
    pub redis_targets: usize,
}

/// One line per write a step makes (uploads: one line for them all; the
/// caller lists the files).
pub fn describe(step: &Step, t: &Destinations) -> String {
    let line = describe_one(step, t);
    let fanned_out = matches!(
        step,
        Step::Register { .. }
            | Step::Pin(_)
            | Step::Unlock { .. }
            | Step::DeleteRecords { .. }
            | Step::MarkPruned(_)
    );
    if fanned_out && t.redis_targets > 1 {
        format!("{line} (on each of the {} Redis targets)", t.redis_targets)
    } else {
        line
    }
}

fn describe_one(step: &Step, t: &Destinations) -> String {
    match step {
        Step::Upload(files) => format!(
            "S3 PUT {} ({}) under s3://{}/, each with If-None-Match: * and its SHA-256",
            count(files.len(), "object"),
            bytes(files.iter().map(|f| f.file.size).sum()),
            t.bucket
        ),
        Step::PutRecord { key, signs, .. } => format!(
            "S3 PUT s3://{}/{key} (release record, with the file list{})",
            t.bucket,
            if *signs {
                "; replaces the unsigned record: the release gains its signature"
            } else {
                ""
            }
        ),
        Step::Register {
            record: r,
            replace_broken,
        } => format!(
            "Redis EVAL register: SET {} ({}); ZADD {} NX {} {}",
            t.keys.release(&r.id),
            if *replace_broken {
                "replacing the damaged record there"
            } else {
                "release record, unless one is there"
            },
            t.keys.releases,
            r.created_at_ms,
            r.id
        ),
        Step::Pin(Some(p)) => format!(
            "Redis SET {} (pinned: {} by {})",
            t.keys.pin,
            p.release.as_deref().unwrap_or("the live release"),
            p.by.as_deref().unwrap_or("unknown")
        ),
        Step::Pin(None) => format!("Redis DEL {}", t.keys.pin),
        Step::Copy(copies) => format!(
            "S3 CopyObject: {} server-side, same bytes, the release's headers ({})",
            count(copies.len(), "object"),
            some(
                &copies
                    .iter()
                    .map(|c| match &c.from_bucket {
                        Some(b) => format!("{} from s3://{b}/{}", c.to, c.from),
                        None if c.from == c.to => format!("{} (headers)", c.to),
                        None => format!("{} from {}", c.to, c.from),
                    })
                    .collect::<Vec<_>>(),
                3
            )
        ),
        Step::Invalidate {
            distribution,
            paths,
            wait,
        } => format!(
            "CloudFront CreateInvalidation on {distribution}: {}{}",
            some(&collapse(paths), 5),
            if *wait { " (and wait for it)" } else { "" }
        ),
        Step::AwaitFleet {
            release,
            within,
            serves,
        } => format!(
            "wait up to {within}s until every live reader process reports {} ({} on each Redis target)",
            match serves {
                crate::fleet::Serves::Live => release.clone(),
                other => other.describe(release),
            },
            t.keys.fleet
        ),
        Step::MarkPruned(_) => format!(
            "Redis SET {} (a deploy that listed the bucket before this prune lists it again)",
            t.keys.pruned
        ),
        Step::Delete(keys) => format!(
            "S3 DeleteObjects: {} under s3://{}/ ({} requests)",
            count(keys.len(), "object"),
            t.bucket,
            keys.len().div_ceil(1000)
        ),
        Step::DeleteRecords { ids, .. } => format!(
            "Redis DEL {} (and {} more records); ZREM {} and SREM {} those ids; S3 DeleteObjects: their record copies",
            ids.first().map(|id| t.keys.release(id)).unwrap_or_default(),
            ids.len().saturating_sub(1),
            t.keys.releases,
            t.keys.rolled_back
        ),
        Step::VerifyCdn(checks) => format!(
            "check (no write): GET {} through the CDN ({}...); switch only if each has its bytes and headers",
            count(checks.len(), "file"),
            checks.first().map(|c| c.url.as_str()).unwrap_or("")
        ),
        Step::Unlock {
            wrong_type: Some(kind),
            ..
        } => format!(
            "Redis EVAL unlock: DEL {} if it still holds a {kind}",
            t.keys.lock
        ),
        Step::Unlock { owner, .. } => format!(
            "Redis EVAL unlock: DEL {} if it still holds {owner:?}",
            t.keys.lock
        ),
        Step::Rollout(r) => {
            let on = match r.expect.as_slice() {
                [one] => format!(
                    "if {} is {} and {} is {}",
                    t.keys.current,
                    one.current.as_deref().unwrap_or("unset"),
                    t.keys.canary,
                    one.canary.as_deref().unwrap_or("unset")
                ),
                many => format!(
                    "on {} Redis targets at once, each atomically if it still serves what it served when planned",
                    many.len()
                ),
            };
            let write = match &r.write {
                CanaryWrite::Set {
                    canary, manifest, ..
                } => format!(
                    "SET {} ({} at {}, a new salt); SET {} ({} of JSON); SET or DEL {}",
                    t.keys.canary,
                    canary.release,
                    canary.percent,
                    t.keys.canary_manifest,
                    bytes(crate::contract::manifest_text(manifest).len() as u64),
                    t.keys.canary_signature
                ),
                CanaryWrite::Raise(canary) => format!(
                    "SET {} ({} at {}, the same salt: every key on the canary stays on it when the percent rises)",
                    t.keys.canary, canary.release, canary.percent
                ),
                CanaryWrite::Abort { release } => format!(
                    "DEL {} {} {}; ZADD {} {}",
                    t.keys.canary,
                    t.keys.canary_manifest,
                    t.keys.canary_signature,
                    t.keys.retired,
                    release.as_deref().unwrap_or("(the unreadable canary: nothing)")
                ),
            };
            format!(
                "Redis EVAL rollout: check key types;{} {on}: PUBLISH {} ({} event); {write}; LPUSH {} (capped at {})",
                match r.write {
                    CanaryWrite::Abort { .. } => String::new(),
                    _ => format!(" unless {} is set,", t.keys.pin),
                },
                t.keys.channel,
                r.action.as_str(),
                t.keys.history,
                t.history_limit
            )
        }
        Step::Switch(s) if s.expect.len() > 1 => {
            let each: Vec<String> = s
                .expect
                .iter()
                .map(|e| match (&e.current, e.serves) {
                    (_, true) => format!("{} serves it already: left alone", e.target),
                    (Some(c), false) => format!("{} if it still serves {c}", e.target),
                    (None, false) => format!("{} if it serves no release", e.target),
                })
                .collect();
            let one = Step::Switch(Box::new(Switch {
                expect: Vec::new(),
                ..(**s).clone()
            }));
            format!(
                "on {} Redis targets at once, each atomically ({}): {}",
                s.expect.len(),
                each.join("; "),
                describe_one(&one, t)
            )
        }
        Step::Switch(s) => format!(
            "Redis EVAL activate: check key types;{respect} if {current} is {expected}{force}: PUBLISH {channel} ({action} event); \
             SET {current} {id}; SET {manifest} ({size} of JSON); {signed}{canary}; ZADD {retired} (the release no longer live); LPUSH {history} (capped at {cap}){pin}{marked}",
            signed = match s
                .signature
                .as_deref()
                .and_then(|t| crate::signing::Signature::parse(t).ok())
            {
                Some(sig) => format!("SET {} (signed by key {})", t.keys.signature, sig.key),
                None => format!("DEL {} (unsigned)", t.keys.signature),
            },
            respect = if s.pin == PinChange::Respect {
                format!(" unless {} is set,", t.keys.pin)
            } else {
                String::new()
            },
            pin = match &s.pin {
                PinChange::Respect => String::new(),
                PinChange::Set(_) => format!("; SET {} (pinned)", t.keys.pin),
                PinChange::Clear => format!("; DEL {}", t.keys.pin),
            },
            marked = s
                .rolled_back_from
                .as_ref()
                .map(|r| format!("; SADD {} {r}", t.keys.rolled_back))
                .unwrap_or_default(),
            current = t.keys.current,
            expected = if s.expect.is_empty() {
                "what it was when planned"
            } else {
                s.expected().unwrap_or("unset")
            },
            force = match s.canary {
                CanaryMode::Refuse => format!(
                    "{} and no rollout runs ({} unset)",
                    if s.force { " (or --force)" } else { "" },
                    t.keys.canary
                ),
                CanaryMode::Clear => if s.force { " (or --force)" } else { "" }.to_string(),
                CanaryMode::Complete => format!(
                    "{} and {} is still {}",
                    if s.force { " (or --force)" } else { "" },
                    t.keys.canary,
                    s.release
                ),
            },
            canary = match s.canary {
                CanaryMode::Refuse => String::new(),
                _ => format!(
                    "; DEL {} {} {} (the rollout ends)",
                    t.keys.canary, t.keys.canary_manifest, t.keys.canary_signature
                ),
            },
            retired = t.keys.retired,
            id = s.release,
            manifest = t.keys.manifest,
            size = bytes(crate::contract::manifest_text(&s.manifest).len() as u64),
            history = t.keys.history,
            action = s.action.as_str(),
            cap = t.history_limit,
            channel = t.keys.channel,
        ),
    }
}
