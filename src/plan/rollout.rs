//! A rollout's plan, pure: start one (or replace the canary), change its
//! percent, or abort it. `rollout complete` is a switch
//! ([`super::switch::switch`] with [`Action::RolloutComplete`]).

use crate::canary::{Canary, Percent};
use crate::contract::Action;
use crate::error::Failure;
use crate::release::{ReleaseFile, ReleaseRecord};
use crate::render::some;
use crate::state::{Found, LiveState, Stored};

use super::step::{CanaryWrite, Rollout, Step};
use super::switch::{not_older, problems, signature_of};

/// What `cutover rollout` was asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// `rollout RELEASE --percent N` (`deploy --rollout N`): make the
    /// release the canary.
    Start(Percent),
    /// `rollout --percent N`: the running canary at another percent.
    Set(Percent),
    /// `rollout abort`: take the canary off.
    Abort,
}

/// The release a rollout starts, with what was read about it.
pub struct Candidate<'a> {
    pub record: &'a ReleaseRecord,
    /// What Redis holds for it (the first target).
    pub in_redis: &'a Stored<ReleaseRecord>,
    /// What S3 holds at each of its objects.
    pub objects: &'a [(String, &'a ReleaseFile, Found)],
    /// The live release's record, for the stale-deploy guard.
    pub live_record: Option<&'a ReleaseRecord>,
}

/// How the rollout was asked for, by whom, now.
#[derive(Debug, Clone, Default)]
pub struct RolloutOptions {
    pub by: Option<String>,
    pub message: Option<String>,
    /// Now (RFC 3339).
    pub at: String,
    /// The salt a new rollout gets (a raise keeps the running one's).
    pub salt: String,
    pub require_signature: bool,
    pub allow_older: bool,
    /// `--wait-converged`: seconds to wait after the rollout until every
    /// live reader process serves the canary (or, for an abort, no longer
    /// does); 0: no wait.
    pub wait_converged: u64,
}

/// What a rollout will do.
#[derive(Debug, Clone)]
pub struct RolloutPlan {
    /// The canary before.
    pub before: Option<Canary>,
    /// The canary after (None: aborted, or none was running).
    pub after: Option<Canary>,
    /// The steps; empty when there is nothing to do.
    pub steps: Vec<Step>,
}

/// What refuses a rollout before anything is looked at in S3: a pin
/// (exit 3, except for an abort), or a release to start that is live
/// already (exit 2).
pub fn refusals(
    app: &str,
    live: &LiveState,
    ask: Ask,
    record: Option<&ReleaseRecord>,
) -> anyhow::Result<()> {
    if let (Some(pin), Ask::Start(_) | Ask::Set(_)) = (&live.pin, ask) {
        return Err(Failure::refused(format!(
            "{app} is pinned ({}); a rollout would change what it serves. `cutover unpin` first",
            pin.describe()
        )));
    }
    match record {
        Some(r) if live.current.as_deref() == Some(r.id.as_str()) => Err(Failure::input(format!(
            "release {} is live for {app} already; roll out another release, or `cutover rollout abort`",
            r.id
        ))),
        _ => Ok(()),
    }
}

/// The plan of a rollout. Refused while pinned (exit 3, except abort);
/// starting one checks the release as an activation does: its signature,
/// the stale-deploy guard, every object in S3 (exit 4).
pub fn rollout(
    app: &str,
    live: &LiveState,
    ask: Ask,
    candidate: Option<&Candidate>,
    opts: &RolloutOptions,
) -> anyhow::Result<RolloutPlan> {
    refusals(app, live, ask, candidate.map(|c| c.record))?;
    // The canary before: the first target's, or (after a split) another's.
    let before = live.canary_of(None).cloned();
    let (write, after) = match ask {
        Ask::Abort => (
            CanaryWrite::Abort {
                release: before.as_ref().map(|c| c.release.clone()),
            },
            None,
        ),
        Ask::Set(percent) => {
            let canary = before.clone().ok_or_else(|| {
                Failure::input(format!(
                    "no rollout is running for {app}; `cutover rollout RELEASE --percent N` starts one"
                ))
            })?;
            let after = Canary {
                percent,
                at: opts.at.clone(),
                by: opts.by.clone(),
                message: opts.message.clone(),
                ..canary
            };
            // Only the percent changes: every target must hold this canary
            // (its manifest) already.
            let behind: Vec<String> = live
                .rollout_expectations(None)
                .into_iter()
                .filter(|e| e.canary.as_deref() != Some(after.release.as_str()))
                .map(|e| e.target)
                .collect();
            if !behind.is_empty() {
                return Err(Failure::partial(format!(
                    "the rollout of {} is not on every Redis target ({} without it); nothing was changed. \
                     `cutover rollout {} --percent {}` brings every target to it",
                    after.release,
                    behind.join(", "),
                    after.release,
                    percent.to_string().trim_end_matches('%')
                )));
            }
            (CanaryWrite::Raise(after.clone()), Some(after))
        }
        Ask::Start(percent) => {
            let c = candidate.expect("a rollout that starts has its release");
            let record = c.record;
            let signature = signature_of(record, opts.require_signature)?;
            // Rolled out already (on some target, after a split): the same
            // salt and start, so that every key keeps its release.
            let after = match live.canary_of(Some(&record.id)) {
                Some(running) => Canary {
                    percent,
                    at: opts.at.clone(),
                    by: opts.by.clone(),
                    message: opts.message.clone(),
                    ..running.clone()
                },
                None => {
                    not_older(record, c.live_record, opts.allow_older)?;
                    Canary {
                        v: 1,
                        release: record.id.clone(),
                        percent,
                        salt: opts.salt.clone(),
                        since: opts.at.clone(),
                        at: opts.at.clone(),
                        by: opts.by.clone(),
                        message: opts.message.clone(),
                    }
                }
            };
            let problems = problems(c.objects);
            if !problems.is_empty() {
                return Err(Failure::verification(format!(
                    "release {} is not intact in s3://{}: {}; nothing was changed. Deploy its build again to restore the objects",
                    record.id,
                    record.bucket,
                    some(&problems, 10)
                )));
            }
            let write = CanaryWrite::Set {
                canary: after.clone(),
                manifest: record.manifest.clone(),
                signature,
            };
            (write, Some(after))
        }
    };
    let expect = live.rollout_expectations(after.as_ref());
    if expect.iter().all(|e| e.done) {
        return Ok(RolloutPlan {
            after: before.clone(),
            before,
            steps: Vec::new(),
        });
    }
    let mut steps = Vec::new();
    if let (Ask::Start(_), Some(c)) = (ask, candidate) {
        let own = matches!(c.in_redis, Stored::Valid(r) if r.id == c.record.id);
        if !own || live.targets.len() > 1 {
            steps.push(Step::Register {
                record: Box::new(c.record.summary()),
                replace_broken: !own && !matches!(c.in_redis, Stored::Missing),
            });
        }
    }
    let awaited = match (&write, opts.wait_converged) {
        (_, 0) => None,
        (CanaryWrite::Abort { release: Some(r) }, within) => {
            Some((r.clone(), within, crate::fleet::Serves::NoCanary))
        }
        (CanaryWrite::Abort { release: None }, _) => None,
        (CanaryWrite::Set { canary, .. } | CanaryWrite::Raise(canary), within) => {
            Some((canary.release.clone(), within, crate::fleet::Serves::Canary))
        }
    };
    steps.push(Step::Rollout(Box::new(Rollout {
        expect,
        action: match write {
            CanaryWrite::Abort { .. } => Action::RolloutAbort,
            _ => Action::Rollout,
        },
        write,
        by: opts.by.clone(),
        message: opts.message.clone(),
    })));
    if let Some((release, within, serves)) = awaited {
        steps.push(Step::AwaitFleet {
            release,
            within,
            serves,
        });
    }
    Ok(RolloutPlan {
        before,
        after,
        steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::Pin;

    fn canary(release: &str, percent: &str, salt: &str) -> Canary {
        Canary {
            v: 1,
            release: release.into(),
            percent: Percent::parse(percent).unwrap(),
            salt: salt.into(),
            since: "then".into(),
            at: "then".into(),
            by: None,
            message: None,
        }
    }

    fn live(canary: Option<Canary>) -> LiveState {
        LiveState {
            current: Some("a".into()),
            canary_stored: canary.as_ref().map(|c| c.release.clone()),
            canary,
            ..LiveState::default()
        }
    }

    fn opts() -> RolloutOptions {
        RolloutOptions {
            at: "now".into(),
            salt: "f".repeat(32),
            ..RolloutOptions::default()
        }
    }

    fn written(plan: &RolloutPlan) -> &Rollout {
        plan.steps
            .iter()
            .find_map(|s| match s {
                Step::Rollout(r) => Some(&**r),
                _ => None,
            })
            .expect("a rollout step")
    }

    #[test]
    fn a_change_keeps_the_salt_and_start_and_the_same_percent_writes_nothing() {
        let running = canary("b", "5", &"1".repeat(32));
        let state = live(Some(running.clone()));
        let p = rollout(
            "shop",
            &state,
            Ask::Set(Percent::parse("25").unwrap()),
            None,
            &opts(),
        )
        .unwrap();
        match &written(&p).write {
            CanaryWrite::Raise(c) => {
                assert_eq!(
                    (&c.salt, &c.since, c.percent.threshold()),
                    (&running.salt, &running.since, 2500)
                );
                assert_eq!(c.at, "now");
            }
            other => panic!("{other:?}"),
        }
        let same = rollout(
            "shop",
            &state,
            Ask::Set(Percent::parse("5").unwrap()),
            None,
            &opts(),
        )
        .unwrap();
        assert!(same.steps.is_empty());
        // Nothing running: exit 2; nothing to abort: no steps.
        let none = live(None);
        let e = rollout(
            "shop",
            &none,
            Ask::Set(Percent::parse("5").unwrap()),
            None,
            &opts(),
        )
        .unwrap_err();
        assert_eq!(crate::error::exit_code(&e), 2);
        assert!(rollout("shop", &none, Ask::Abort, None, &opts())
            .unwrap()
            .steps
            .is_empty());
    }

    #[test]
    fn a_pin_refuses_a_start_or_a_change_but_not_an_abort() {
        let mut state = live(Some(canary("b", "5", &"1".repeat(32))));
        state.pin = Some(Pin {
            release: Some("a".into()),
            by: None,
            at: "t".into(),
            message: Some("incident".into()),
        });
        let e = rollout(
            "shop",
            &state,
            Ask::Set(Percent::parse("25").unwrap()),
            None,
            &opts(),
        )
        .unwrap_err();
        assert_eq!(crate::error::exit_code(&e), 3);
        assert!(e.to_string().contains("incident"));
        let abort = rollout("shop", &state, Ask::Abort, None, &opts()).unwrap();
        assert!(
            matches!(written(&abort).write, CanaryWrite::Abort { release: Some(ref r) } if r == "b")
        );
        assert_eq!(written(&abort).action, Action::RolloutAbort);
    }
}
