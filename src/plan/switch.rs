//! A switch's plan, pure: which release `rollback` goes to, whether the
//! release to make live is intact, and the steps that make it live
//! (activate, rollback, and promote's switch); the pin's and the lock's
//! small plans beside them.

use std::collections::HashMap;

use crate::build::headers::{content_type, Headers};
use crate::build::manifest::{diff, ManifestDiff};
use crate::contract::{
    mutable_key, object_key, Action, ActivationEvent, CanaryMode, Pin, PinChange,
};
use crate::error::Failure;
use crate::release::{ReleaseFile, ReleaseRecord};
use crate::render::some;
use crate::state::{Found, Inspected, LiveState, Stored};

use super::{invalidation_path, ObjectCopy, Step, Switch};

/// Everything a switch plans from, read before planning.
pub struct SwitchFacts<'a> {
    pub action: Action,
    /// The release to make live, with its file list.
    pub record: &'a ReleaseRecord,
    /// What Redis holds for it (the first target).
    pub in_redis: &'a Stored<ReleaseRecord>,
    pub live: &'a LiveState,
    /// More than one Redis target.
    pub several: bool,
    /// What S3 holds at each object of the release (see
    /// `S3Store::release_objects`); not looked at when it is live already.
    pub objects: &'a [(String, &'a ReleaseFile, Found)],
    /// What the public keys of its mutable files hold now (see
    /// `S3Store::mutable_objects`).
    pub mutable: &'a HashMap<String, Inspected>,
    pub meta_prefix: &'a str,
    pub bucket: &'a str,
    /// The live release's record, for the stale-deploy guard (None: none
    /// live, or it cannot be read).
    pub live_record: Option<&'a ReleaseRecord>,
}

/// How the switch was asked for.
#[derive(Debug, Clone, Default)]
pub struct SwitchOptions {
    /// Switch even if the live release changed since planning.
    pub force: bool,
    /// `activate --unpin`: switch although pinned, and clear the pin.
    pub unpin: bool,
    pub message: Option<String>,
    pub by: Option<String>,
    /// Now: when the pin a rollback sets was set.
    pub at: String,
    /// Check the release's entrypoints through the CDN before the switch.
    pub verify_cdn: bool,
    /// CloudFront distribution to invalidate restored mutable files on,
    /// and whether to wait for it.
    pub invalidate: Option<(String, bool)>,
    /// `require_signature`: refuse to make an unsigned release live.
    pub require_signature: bool,
    /// `--wait-converged`: seconds to wait after the switch for the fleet
    /// (0: no wait).
    pub wait_converged: u64,
    /// `--allow-older`: make live a release built from a commit older than
    /// the live one's.
    pub allow_older: bool,
}

/// The stale-deploy guard: a deploy or an activation may not replace the
/// live release with one built from an older commit (a CI run that ran
/// late), exit 3 naming both, unless `allow_older`. A release (or a live
/// one) without a commit time is never refused: Ok(Some(why)) says so.
pub fn not_older(
    release: &ReleaseRecord,
    live: Option<&ReleaseRecord>,
    allow_older: bool,
) -> anyhow::Result<Option<String>> {
    let Some(live) = live.filter(|l| l.id != release.id) else {
        return Ok(None);
    };
    let time = |r: &ReleaseRecord| {
        r.git_committed_at
            .as_deref()
            .and_then(|t| crate::release::epoch_ms(t).map(|ms| (t.to_string(), ms)))
    };
    let (Some((new_t, new_ms)), Some((live_t, live_ms))) = (time(release), time(live)) else {
        return Ok(Some(format!(
            "not checked whether {} is older than the live {}: {} no commit time",
            release.id,
            live.id,
            if time(release).is_none() {
                "it has"
            } else {
                "the live release has"
            }
        )));
    };
    if new_ms >= live_ms || allow_older {
        return Ok(None);
    }
    let commit = |r: &ReleaseRecord| r.git_sha.clone().unwrap_or_else(|| "unknown".into());
    Err(Failure::refused(format!(
        "release {} is built from commit {} ({new_t}), older than commit {} ({live_t}) of the live release {}: \
         a deploy that ran late would replace a newer one; nothing was switched. \
         `--allow-older` makes it live anyway (rollback needs no flag)",
        release.id,
        commit(release),
        commit(live),
        live.id
    )))
}

/// What a switch will do.
#[derive(Debug, Clone)]
pub struct SwitchPlan {
    /// The release serves already, with its manifest and record: no steps.
    pub already_live: bool,
    /// The release is `current`, but Redis lost (or damaged) its manifest or
    /// record: the steps write them again.
    pub repair: bool,
    /// The live manifest against the release's (None when already live).
    pub manifest_diff: Option<ManifestDiff>,
    pub steps: Vec<Step>,
    /// The pin once the switch is done (rollback pins, `--unpin` clears).
    pub pin_after: Option<Pin>,
}

/// Is the release live with its own manifest and its own, intact record in
/// Redis, on every target? Then there is nothing to check or write. A
/// record of another release under its key is damage like unreadable JSON.
pub fn is_live(live: &LiveState, record: &ReleaseRecord, in_redis: &Stored<ReleaseRecord>) -> bool {
    matches!(in_redis, Stored::Valid(r) if r.id == record.id)
        && live.serves(&record.id, &record.manifest, record.signature.as_deref())
}

/// The signature a switch writes: the record's own, which must fit the
/// release (exit 4 otherwise: readers would reject it). An unsigned
/// release under `require_signature` is refused (exit 3).
pub fn signature_of(record: &ReleaseRecord, require: bool) -> anyhow::Result<Option<String>> {
    match &record.signature {
        Some(s) => {
            let manifest = crate::contract::manifest_text(&record.manifest);
            crate::signing::Signature::parse(s)
                .and_then(|sig| sig.fits(&record.id, manifest.as_bytes()))
                .map_err(|why| {
                    Failure::verification(format!(
                        "the signature in the record of release {} does not fit it ({why}); nothing was switched. \
                         Deploy its build again with signing_key to sign it anew",
                        record.id
                    ))
                })?;
            Ok(Some(s.clone()))
        }
        None if require => Err(Failure::refused(format!(
            "release {} is unsigned and require_signature is set: readers with verify_keys would not serve it; \
             nothing was switched. Deploy its build again with signing_key to sign it",
            record.id
        ))),
        None => Ok(None),
    }
}

/// The plan of a switch: refused while pinned (activate without
/// `--unpin`), refused unless every object of the release is intact (exit
/// 4), else the steps: register the record where Redis lacks it, restore
/// mutable files, check the CDN, switch atomically, invalidate.
pub fn switch(facts: &SwitchFacts, opts: &SwitchOptions) -> anyhow::Result<SwitchPlan> {
    let (record, live, action) = (facts.record, facts.live, facts.action);
    check_pin(live, action, opts, &record.id)?;
    check_rollout(live, action, &record.id)?;
    let repair = live.current.as_deref() == Some(record.id.as_str());
    if is_live(live, record, facts.in_redis) {
        return Ok(SwitchPlan {
            already_live: true,
            repair: false,
            manifest_diff: None,
            steps: Vec::new(),
            pin_after: live.pin.clone(),
        });
    }
    let signature = signature_of(record, opts.require_signature)?;
    if action == Action::Activate {
        not_older(record, facts.live_record, opts.allow_older)?;
    }
    let problems = problems(facts.objects);
    if !problems.is_empty() {
        return Err(Failure::verification(format!(
            "release {} is not intact in s3://{}: {}; nothing was switched. Deploy its build again to restore the objects",
            record.id,
            facts.bucket,
            some(&problems, 10)
        )));
    }
    let restores = restores(record, facts.meta_prefix, facts.mutable);
    let mut steps = Vec::new();
    let own = matches!(facts.in_redis, Stored::Valid(r) if r.id == record.id);
    if !own || facts.several {
        // Redis lost the record (or holds a damaged one): restore it from the
        // S3 copy first. With several targets, any may have lost it (a
        // restarted Redis): registering keeps a record that is there.
        steps.push(Step::Register {
            record: Box::new(record.summary()),
            replace_broken: !own && !matches!(facts.in_redis, Stored::Missing),
        });
    }
    if !restores.is_empty() {
        steps.push(Step::Copy(restores.clone()));
    }
    if opts.verify_cdn {
        steps.push(Step::VerifyCdn(record.cdn_checks(0)));
    }
    // Rollback pins the release it goes to; activate --unpin clears the pin.
    let pin = match action {
        Action::Rollback => PinChange::Set(Pin {
            release: Some(record.id.clone()),
            by: opts.by.clone(),
            at: opts.at.clone(),
            message: opts.message.clone(),
        }),
        _ if opts.unpin => PinChange::Clear,
        _ => PinChange::Respect,
    };
    let pin_after = match &pin {
        PinChange::Set(p) => Some(p.clone()),
        PinChange::Clear => None,
        PinChange::Respect => live.pin.clone(),
    };
    steps.push(Step::Switch(Box::new(Switch {
        expect: live.expectations(&record.id, &record.manifest, signature.as_deref()),
        release: record.id.clone(),
        manifest: record.manifest.clone(),
        action,
        by: opts.by.clone(),
        message: opts.message.clone(),
        force: opts.force,
        pin,
        rolled_back_from: live
            .current
            .clone()
            .filter(|c| action == Action::Rollback && c != &record.id),
        signature,
        canary: CanaryMode::of(action),
    })));
    if let (Some((distribution, wait)), false) = (&opts.invalidate, restores.is_empty()) {
        steps.push(Step::Invalidate {
            distribution: distribution.clone(),
            paths: restores
                .iter()
                .map(|c| invalidation_path(&record.cdn_url, &c.to))
                .collect(),
            wait: *wait,
        });
    }
    if opts.wait_converged > 0 {
        steps.push(Step::AwaitFleet {
            release: record.id.clone(),
            within: opts.wait_converged,
            serves: crate::fleet::Serves::Live,
        });
    }
    Ok(SwitchPlan {
        already_live: false,
        repair,
        manifest_diff: Some(diff(live.manifest.as_ref(), &record.manifest)),
        steps,
        pin_after,
    })
}

/// What a running rollout allows: a rollback (which ends it), and
/// `rollout complete` of the canary; not another activation or promotion
/// (exit 3). No canary: complete has nothing to complete (exit 2).
fn check_rollout(live: &LiveState, action: Action, id: &str) -> anyhow::Result<()> {
    let running = live
        .canary
        .as_ref()
        .map(|c| format!("canary {}", c.describe()));
    let running = running.or_else(|| live.canary_damage.clone());
    match (CanaryMode::of(action), running) {
        (CanaryMode::Refuse, Some(what)) if action != Action::Deploy => Err(Failure::refused(format!(
            "a rollout is running ({what}); nothing was switched. `cutover rollout complete` makes the canary live, \
             `cutover rollout abort` takes it off; then {} {id}",
            action.as_str()
        ))),
        (CanaryMode::Complete, _) if live.canary.as_ref().map(|c| c.release.as_str()) != Some(id) => {
            Err(Failure::input(format!(
                "no rollout of {id} is running; nothing to complete (see `cutover status`)"
            )))
        }
        _ => Ok(()),
    }
}

/// Refuse to activate (or complete a rollout) while pinned, unless
/// `--unpin` (exit 3).
fn check_pin(
    live: &LiveState,
    action: Action,
    opts: &SwitchOptions,
    id: &str,
) -> anyhow::Result<()> {
    let held = matches!(action, Action::Activate | Action::RolloutComplete);
    match &live.pin {
        Some(pin) if held && !opts.unpin => Err(Failure::refused(format!(
            "{} is pinned {}; `cutover activate {id} --unpin` switches and clears the pin, `cutover unpin` clears it alone",
            pin.release.as_deref().unwrap_or("the live release"),
            pin.since()
        ))),
        _ => Ok(()),
    }
}

/// What is wrong with a release's objects, one line each: missing, or with
/// other bytes.
pub fn problems(objects: &[(String, &ReleaseFile, Found)]) -> Vec<String> {
    objects
        .iter()
        .filter_map(|(key, f, state)| match state {
            Found::Intact => None,
            Found::Missing => Some(format!("{key}: missing")),
            Found::Other(what) => Some(format!(
                "{key}: other bytes ({what}, expected sha256 {})",
                f.sha256
            )),
        })
        .collect()
}

/// The mutable files of a release whose public object does not hold the
/// release's bytes (`mutable`: what those keys hold now): copies that
/// restore them from their content-addressed copies (same bytes, the
/// release's headers).
pub fn restores(
    record: &ReleaseRecord,
    meta_prefix: &str,
    mutable: &HashMap<String, Inspected>,
) -> Vec<ObjectCopy> {
    record
        .files
        .iter()
        .flatten()
        .filter(|f| f.mutable)
        .map(|f| (f, object_key(&record.prefix, &f.path)))
        .filter(|(f, key)| {
            !mutable
                .get(key)
                .is_some_and(|i| i.matches(&f.sha256, f.md5()))
        })
        .map(|(f, key)| ObjectCopy {
            from_bucket: None,
            from: mutable_key(meta_prefix, &f.sha256),
            to: key,
            headers: f.headers.clone().unwrap_or_else(|| Headers {
                content_type: content_type(&f.path),
                content_encoding: None,
                cache_control: "no-cache".into(),
            }),
            sha256: f.sha256.clone(),
            if_match: None,
        })
        .collect()
}

/// The release `rollback` goes to: the newest that was live before the
/// current one and was not itself rolled back from, so repeated rollbacks
/// walk further back. `history` is newest first; rollout events that did
/// not change the live release are looked past.
pub fn rollback_target(
    app: &str,
    live: &LiveState,
    history: &[ActivationEvent],
    rolled_back: &std::collections::BTreeSet<String>,
) -> anyhow::Result<String> {
    let current = live.current.clone().ok_or_else(|| {
        Failure::input(format!(
            "no release is live for {app}; nothing to roll back (see `cutover releases`)"
        ))
    })?;
    // A rollout's start, change or abort changed the canary, not the live
    // release: not a step to walk back.
    let history: Vec<&ActivationEvent> = history
        .iter()
        .filter(|e| Action::switches(&e.action))
        .collect();
    if !history.iter().any(|e| e.release == current) {
        return Err(Failure::input(format!(
            "the history of {app} does not say what was live before {current}; use `cutover rollback --to RELEASE`"
        )));
    }
    // Releases in the order they were last live, newest first.
    let was_live = history
        .iter()
        .flat_map(|e| std::iter::once(Some(&e.release)).chain(std::iter::once(e.previous.as_ref())))
        .flatten();
    let mut earlier = false;
    for id in was_live.filter(|id| *id != &current) {
        if !rolled_back.contains(id) {
            return Ok(id.clone());
        }
        earlier = true;
    }
    if !earlier {
        return Err(Failure::input(format!(
            "no release of {app} was live before {current}: there is nothing earlier to roll back to; \
             `cutover rollback --to RELEASE` goes to a release that was never live (see `cutover releases`)"
        )));
    }
    Err(Failure::input(format!(
        "no release before {current} of {app} is left to roll back to (the ones before it were rolled back from); \
         use `cutover rollback --to RELEASE` (see `cutover releases`)"
    )))
}

/// What `pin` (`pin = Some(by, at, message)`) or `unpin` (None) does: the
/// new pin and its one step; no step for `unpin` when nothing is pinned.
pub fn pin(
    app: &str,
    live: &LiveState,
    pin: Option<(Option<String>, String, Option<String>)>,
) -> anyhow::Result<(Option<Pin>, Vec<Step>)> {
    let new_pin = match pin {
        Some((by, at, message)) => Some(Pin {
            release: Some(live.current.clone().ok_or_else(|| {
                Failure::input(format!(
                    "no release is live for {app}; there is nothing to pin (see `cutover releases`)"
                ))
            })?),
            by,
            at,
            message,
        }),
        None if live.pin.is_none() => return Ok((None, Vec::new())),
        None => None,
    };
    Ok((new_pin.clone(), vec![Step::Pin(new_pin)]))
}

/// What `unlock --force` does: delete the lock if `owner` still holds it,
/// or, when the key holds a `wrong_type` of value, if it still does.
pub fn unlock(owner: &str, wrong_type: Option<&str>) -> Vec<Step> {
    vec![Step::Unlock {
        owner: owner.to_string(),
        wrong_type: wrong_type.map(str::to_string),
    }]
}
