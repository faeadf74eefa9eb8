//! The executor: carries out a plan's [`Step`]s, in order, and nothing else.
//! [`describe`] prints the same steps for `--dry-run`, so what a dry run
//! shows is what a run does.

mod describe;
pub use describe::{describe, Destinations};

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use futures::stream::{self, StreamExt, TryStreamExt};
use serde::Serialize;

use crate::contract::{ActivationEvent, CanaryMode, Pin};
use crate::error::Failure;
use crate::events::{Event, Observer, Phase};
use crate::plan::{CanaryWrite, Decision, PlannedFile, Rollout, Step, Switch};
use crate::release::now;
use crate::render::some;
use crate::store::cdn::Cdn;
use crate::store::cloudfront::{collapse, CloudFront};
use crate::store::lock::LockGuard;
use crate::store::redis::{Activation, RolloutApplied};
use crate::store::registries::Registries;
use crate::store::s3::{CopySpec, PutOutcome, PutSpec, S3Store};

/// What the executor needs to carry out steps.
pub struct Executor<'a> {
    /// None for steps that touch Redis only.
    pub store: Option<&'a S3Store>,
    /// None for a deploy recorded in S3 only (no Redis reachable).
    pub redis: Option<&'a mut Registries>,
    /// The build directory, for uploads.
    pub root: Option<&'a Path>,
    pub concurrency: usize,
    pub multipart_threshold: u64,
    /// Held while the steps run; checked again right before the switch.
    pub lock: Option<&'a LockGuard>,
    /// Bound on each CDN request.
    pub cdn_timeout: std::time::Duration,
    /// For clients made on demand (CloudFront).
    pub config: &'a crate::config::Config,
    pub observer: &'a dyn Observer,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct UploadStats {
    pub files: u64,
    pub bytes: u64,
    /// Files another deploy put there with the same bytes since planning.
    pub already_there: u64,
    pub seconds: f64,
}

/// How a switch step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Switched {
    /// Live now; `previous` was live before.
    Applied { previous: Option<String> },
    /// The app is pinned and the switch respects pins: nothing changed.
    Pinned(Pin),
    /// A rollout runs (its canary, as stored) and the switch does not
    /// replace it (deploy, activate, promote): nothing changed.
    RolloutRunning(String),
}

/// What running the steps did.
#[derive(Debug, Default, Clone)]
pub struct Executed {
    pub upload: Option<UploadStats>,
    /// Set when a switch step ran.
    pub switched: Option<Switched>,
    /// Seconds per step kind, in order.
    pub timings: Vec<(&'static str, f64)>,
    /// `--wait-converged`: the fleet once every live process reported the release.
    pub fleet: Option<crate::fleet::Convergence>,
    /// Set when a rollout step ran: the canary's release before ('' none).
    pub rolled_out: Option<String>,
    /// The ETags S3 gave uploads, by build path, where they differ from the
    /// ETag planned (the MD5 of the bytes, or of the parts' MD5s).
    pub etags: HashMap<String, String>,
}

impl<'a> Executor<'a> {
    /// Run every step in order; stop at the first failure. SIGINT/SIGTERM
    /// before the switch abort open multipart uploads and end with exit 130,
    /// nothing switched; the switch itself is one atomic call and is never
    /// cut off halfway (a signal during it is handled after it).
    pub async fn run(&mut self, steps: &[Step]) -> anyhow::Result<Executed> {
        let mut done = Executed::default();
        let mut shutdown = Shutdown::listen();
        // Set once the switch applied: what follows cannot undo it.
        let mut switched_to: Option<&str> = None;
        for step in steps {
            let started = Instant::now();
            if let Some(release) = switched_to {
                self.after_switch(release, step, &mut done, &mut shutdown)
                    .await?;
            } else if let Step::Switch(switch) = step {
                if let Some(lock) = self.lock {
                    lock.check()?;
                }
                let switched = self.switch(switch).await?;
                if matches!(switched, Switched::Applied { .. }) {
                    switched_to = Some(&switch.release);
                }
                done.switched = Some(switched);
            } else if let Step::Rollout(rollout) = step {
                if let Some(lock) = self.lock {
                    lock.check()?;
                }
                done.rolled_out = Some(self.rollout(rollout).await?);
            } else {
                let store = self.store;
                tokio::select! {
                    r = self.write(step, &mut done) => r?,
                    _ = shutdown.signalled() => {
                        if let Some(store) = store {
                            store.abort_in_flight().await;
                        }
                        return Err(Failure::interrupted(
                            "interrupted; nothing was switched. The next deploy uploads only what is still missing",
                        ));
                    }
                }
            }
            done.timings
                .push((step.name(), started.elapsed().as_secs_f64()));
        }
        Ok(done)
    }

    /// A step after the switch (the CloudFront invalidation): bounded; when
    /// it fails, hangs past its bound or is interrupted, the switch stands
    /// and the command says so (exit 6), never "nothing was switched".
    async fn after_switch(
        &mut self,
        release: &str,
        step: &Step,
        done: &mut Executed,
        shutdown: &mut Shutdown,
    ) -> anyhow::Result<()> {
        let bound = step_bound(step, self.config);
        let what = match step {
            Step::Invalidate { .. } => "the CloudFront invalidation",
            Step::AwaitFleet { .. } => "the fleet",
            _ => "a step after the switch",
        };
        let failed = tokio::select! {
            r = tokio::time::timeout(bound, self.write(step, done)) => match r {
                Ok(Ok(())) => return Ok(()),
                // The fleet's wait says itself how it ended, with the counts.
                Ok(Err(e)) if matches!(e.downcast_ref::<Failure>(), Some(Failure::NotConverged { .. })) => {
                    return Err(e)
                }
                Ok(Err(e)) => format!("failed: {}", crate::error::one_line(&e)),
                Err(_) => format!("did not answer within {}s", bound.as_secs()),
            },
            _ = shutdown.signalled() => "was interrupted".to_string(),
        };
        Err(Failure::after_switch(format!(
            "switched to {release}; {what} {failed}. The switch stands: `cutover status` shows it"
        )))
    }
    fn registries(&mut self) -> anyhow::Result<&mut Registries> {
        self.redis.as_deref_mut().ok_or_else(|| {
            Failure::operation("internal error: a Redis step without a Redis connection")
        })
    }

    fn s3(&self) -> anyhow::Result<&'a S3Store> {
        self.store.ok_or_else(|| {
            Failure::operation("internal error: an S3 step without an S3 connection")
        })
    }

    /// One step that writes objects or records.
    async fn write(&mut self, step: &Step, done: &mut Executed) -> anyhow::Result<()> {
        match step {
            Step::Upload(files) => {
                let (stats, etags) = self.upload(files).await?;
                done.upload = Some(stats);
                done.etags.extend(etags);
            }
            Step::PutRecord { key, record, signs } => {
                // With the ETags S3 gave the uploads where they are not the
                // ones planned (SSE-KMS), so that later listings settle them.
                let patched = record.with_etags(&done.etags);
                let record = patched.as_ref().unwrap_or(record);
                self.s3()?.put_record(key, record, *signs).await?
            }
            Step::Register {
                record,
                replace_broken,
            } => self.registries()?.register(record, *replace_broken).await?,
            Step::Unlock { owner, wrong_type } => {
                let redis = self.registries()?;
                if !redis.unlock(owner, wrong_type.as_deref()).await? {
                    return Err(Failure::refused(format!(
                        "the deploy lock {} changed since it was read (no longer {owner:?}); nothing was deleted. Look again with `cutover unlock`",
                        redis.keys().lock
                    )));
                }
            }
            Step::Pin(pin) => {
                self.registries()?.set_pin(pin.as_ref()).await?;
            }
            Step::MarkPruned(mark) => self.registries()?.mark_pruned(mark).await?,
            Step::Delete(keys) => self.s3()?.delete_objects(keys).await?,
            Step::Copy(copies) => {
                let s3 = self.s3()?;
                stream::iter(copies)
                    .map(|c| {
                        s3.copy_object(CopySpec {
                            from_bucket: c.from_bucket.as_deref(),
                            from: &c.from,
                            to: &c.to,
                            headers: &c.headers,
                            sha256_hex: &c.sha256,
                            if_match: c.if_match.as_deref(),
                        })
                    })
                    .buffer_unordered(self.concurrency)
                    .try_collect::<Vec<()>>()
                    .await?;
            }
            Step::Invalidate {
                distribution,
                paths,
                wait,
            } => {
                let id = CloudFront::connect(self.config)
                    .await?
                    .invalidate(distribution, paths, *wait)
                    .await?;
                self.observer.event(Event::Info(format!(
                    "invalidation {id} on {distribution}: {}",
                    some(&collapse(paths), 5)
                )));
            }
            Step::DeleteRecords { ids, keys } => {
                self.registries()?.unregister(ids).await?;
                self.s3()?.delete_objects(keys).await?;
            }
            Step::VerifyCdn(checks) => {
                let cdn = Cdn::new(self.cdn_timeout)?;
                let problems = cdn.check(checks, self.concurrency).await;
                if !problems.is_empty() {
                    return Err(Failure::verification(format!(
                        "the CDN does not serve the release as uploaded ({} of {} files): {}; nothing was switched. \
                         Check cdn_url and the CDN's origin, then run again",
                        problems.len(),
                        checks.len(),
                        some(&problems, 5)
                    )));
                }
            }
            // After a switch that did not apply (pinned), there is nothing to wait for.
            Step::AwaitFleet {
                release,
                within,
                serves,
            } => {
                if matches!(done.switched, Some(Switched::Applied { .. }))
                    || done.rolled_out.is_some()
                {
                    done.fleet = Some(self.await_fleet(release, *within, *serves).await?)
                }
            }
            Step::Switch(_) | Step::Rollout(_) => unreachable!("the switch runs on its own"),
        }
        Ok(())
    }

    /// Wait until every live reader process reports `release`, reading the
    /// fleet every 250 ms, up to `within` seconds. Processes that start
    /// reporting meanwhile count; one that goes silent for 3 heartbeats no
    /// longer does. Nobody reporting is not converged.
    async fn await_fleet(
        &mut self,
        release: &str,
        within: u64,
        serves: crate::fleet::Serves,
    ) -> anyhow::Result<crate::fleet::Convergence> {
        let deadline = Instant::now() + std::time::Duration::from_secs(within);
        loop {
            let fleets = self.registries()?.fleets().await?;
            let fleet = crate::fleet::Fleet::merge(fleets.into_iter().map(|(_, f)| f));
            let c = fleet.convergence_to(release, serves);
            self.observer.event(Event::Converging {
                on: c.on_release as u64,
                of: c.processes as u64,
                serves: serves.describe(release),
            });
            if c.converged() {
                return Ok(c);
            }
            if Instant::now() >= deadline {
                let how = if c.processes == 0 {
                    format!(
                        "is unknown: no reader process reported what it serves within {within}s \
                         (the readers report unless reporting is off or their Redis user may not write the fleet keys: docs/redis.md, \"The fleet\")"
                    )
                } else {
                    format!(
                        "did not converge within {within}s: {}; behind: {}",
                        c.progress(),
                        some(&c.behind, 10)
                    )
                };
                return Err(Failure::NotConverged {
                    message: format!(
                        "{}; the fleet {how}. {} stands: `cutover status` shows it",
                        match serves {
                            crate::fleet::Serves::Live => format!("switched to {release}"),
                            crate::fleet::Serves::Canary => format!("rolled out {release}"),
                            crate::fleet::Serves::NoCanary =>
                                format!("aborted the rollout of {release}"),
                        },
                        if serves == crate::fleet::Serves::Live {
                            "The switch"
                        } else {
                            "The rollout"
                        }
                    ),
                    convergence: c,
                }
                .into());
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    }

    /// Upload files, `concurrency` at a time. Stops at the first failure;
    /// multipart uploads still in flight are aborted. Returns what was
    /// uploaded, and the ETags S3 gave that differ from the planned ones, by
    /// build path: of each file at its key, and of a mutable file's
    /// content-addressed copy (where its release's checks look), not of
    /// its public key (which changes under its name).
    async fn upload(
        &self,
        files: &[Arc<PlannedFile>],
    ) -> anyhow::Result<(UploadStats, HashMap<String, String>)> {
        let root = self
            .root
            .expect("an upload step comes with the build directory");
        let total: u64 = files.iter().map(|f| f.file.size).sum();
        let started = Instant::now();
        self.observer.event(Event::Started {
            phase: Phase::Uploading,
            files: files.len() as u64,
            bytes: total,
        });
        let (store, observer, threshold) = (self.s3()?, self.observer, self.multipart_threshold);
        let results: anyhow::Result<Vec<(&PlannedFile, PutOutcome)>> = stream::iter(files)
            .map(|f| async move {
                let path = root.join(&f.file.path);
                let spec = PutSpec {
                    key: &f.key,
                    path: &path,
                    size: f.file.size,
                    sha256_hex: &f.file.sha256,
                    md5_hex: f.file.md5.as_deref(),
                    headers: f.headers(),
                    if_match: (f.decision == Decision::Replace)
                        .then_some(f.remote_etag.as_deref())
                        .flatten(),
                };
                let outcome = store.put_file(spec, threshold).await?;
                observer.event(Event::Advanced {
                    phase: Phase::Uploading,
                    files: 1,
                    bytes: f.file.size,
                });
                Ok((&**f, outcome))
            })
            .buffer_unordered(self.concurrency)
            .try_collect()
            .await;
        let results = match results {
            Ok(r) => r,
            Err(e) => {
                store.abort_in_flight().await;
                return Err(e);
            }
        };
        observer.event(Event::Finished {
            phase: Phase::Uploading,
        });
        let mut stats = UploadStats {
            seconds: started.elapsed().as_secs_f64(),
            ..Default::default()
        };
        let mut etags = HashMap::new();
        for (f, outcome) in results {
            match outcome {
                PutOutcome::Uploaded(etag) => {
                    stats.files += 1;
                    stats.bytes += f.file.size;
                    let etag =
                        etag.filter(|e| !f.file.mutable && !e.eq_ignore_ascii_case(&f.file.etag));
                    if let Some(etag) = etag {
                        etags.insert(f.file.path.clone(), etag);
                    }
                }
                PutOutcome::AlreadyThere => stats.already_there += 1,
            }
        }
        Ok((stats, etags))
    }

    /// The compare-and-set switch, on every Redis target that does not
    /// serve the release yet, all at once, each atomically. A lost race is
    /// refused (exit 3); some targets switched and others not is exit 5,
    /// naming what each serves.
    async fn switch(&mut self, s: &Switch) -> anyhow::Result<Switched> {
        let at = now().0;
        let targets = self.registries()?;
        if s.expect.len() != targets.names().len() {
            return Err(Failure::operation(format!(
                "internal error: the switch was planned for {} Redis targets, {} are connected; nothing was switched",
                s.expect.len(),
                targets.names().len()
            )));
        }
        let runs = targets.each().zip(&s.expect).map(|(reg, expect)| {
            let event = ActivationEvent {
                release: s.release.clone(),
                previous: expect.current.clone(),
                action: s.action.as_str().to_string(),
                at: at.clone(),
                by: s.by.clone(),
                message: s.message.clone(),
                percent: None,
            };
            async move {
                if expect.serves && !s.force && s.canary != CanaryMode::Complete {
                    return TargetSwitch::AlreadyLive;
                }
                let result = reg
                    .activate(
                        &event,
                        &s.manifest,
                        s.signature.as_deref(),
                        s.force,
                        &s.pin,
                        s.rolled_back_from.as_deref(),
                        s.canary,
                    )
                    .await;
                match result {
                    Ok(Activation::Applied { previous }) => TargetSwitch::Applied { previous },
                    Ok(Activation::Pinned(pin)) => TargetSwitch::Pinned(pin),
                    Ok(Activation::RolloutRunning(canary)) if s.action == crate::contract::Action::Deploy => {
                        TargetSwitch::Held(canary)
                    }
                    Ok(Activation::RolloutRunning(canary)) => TargetSwitch::Failed(Failure::refused(format!(
                        "a rollout started while this {} ran ({}); nothing was switched. \
                         `cutover rollout complete` or `cutover rollout abort` first",
                        s.action.as_str(),
                        describe_canary(&canary)
                    ))),
                    Ok(Activation::CanaryChanged(now)) => TargetSwitch::Failed(Failure::refused(format!(
                        "the rollout changed while this ran: the canary is {}, not {}; nothing was switched. See `cutover status`",
                        match now.as_str() { "" => "gone", "?" => "unreadable", other => other },
                        s.release
                    ))),
                    Ok(Activation::LostRace { current }) => TargetSwitch::Failed(Failure::refused(format!(
                        "the live release changed to {} while this {} ran (it planned against {}); nothing was switched. \
                         Run it again, or pass --force to switch anyway",
                        current.as_deref().unwrap_or("none"),
                        s.action.as_str(),
                        expect.current.as_deref().unwrap_or("none")
                    ))),
                    Err(e) => TargetSwitch::Failed(e),
                }
            }
        });
        let results = futures::future::join_all(runs).await;
        settle(s, &targets.names(), results)
    }
}

impl Executor<'_> {
    /// The rollout step, on every Redis target at once, each atomically
    /// with its own compare-and-set. A lost race is refused (exit 3); some
    /// targets written and others not is exit 5, naming each. Returns the
    /// canary's release before on the first target ('' none).
    async fn rollout(&mut self, r: &Rollout) -> anyhow::Result<String> {
        let at = now().0;
        let targets = self.registries()?;
        let names = targets.names();
        if r.expect.len() != names.len() {
            return Err(Failure::operation(format!(
                "internal error: the rollout was planned for {} Redis targets, {} are connected; nothing was changed",
                r.expect.len(),
                names.len()
            )));
        }
        let (canary, manifest, signature) = match &r.write {
            CanaryWrite::Set {
                canary,
                manifest,
                signature,
            } => (Some(canary), Some(manifest), signature.as_deref()),
            CanaryWrite::Raise(canary) => (Some(canary), None, None),
            CanaryWrite::Abort { .. } => (None, None, None),
        };
        let runs = targets.each().zip(&r.expect).map(|(reg, expect)| {
            let event = ActivationEvent {
                release: r.write.release().unwrap_or("?").to_string(),
                previous: expect.current.clone(),
                action: r.action.as_str().to_string(),
                at: at.clone(),
                by: r.by.clone(),
                message: r.message.clone(),
                percent: r.write.percent(),
            };
            async move {
                if expect.done {
                    return Ok(RolloutApplied::Applied {
                        canary_before: expect.canary.clone().unwrap_or_default(),
                    });
                }
                reg.rollout(
                    &event,
                    expect.current.as_deref().unwrap_or(""),
                    expect.canary.as_deref().unwrap_or(""),
                    canary,
                    manifest,
                    signature,
                )
                .await
            }
        });
        let results = futures::future::join_all(runs).await;
        let shown = |c: &str| match c {
            "" => "none".to_string(),
            "?" => "an unreadable one".to_string(),
            c => c.to_string(),
        };
        let failure = |expect: &crate::state::RolloutExpect,
                       result: &anyhow::Result<RolloutApplied>| {
            match result {
            Ok(RolloutApplied::Applied { .. }) => None,
            Ok(RolloutApplied::LostRace { current, canary }) => Some(Failure::refused(format!(
                "the live release or the rollout changed while this ran: live {}, canary {} (it planned against live {}, canary {}); nothing was changed. \
                 Look with `cutover status` and run it again",
                shown(current),
                shown(canary),
                expect.current.as_deref().unwrap_or("none"),
                shown(expect.canary.as_deref().unwrap_or(""))
            ))),
            Ok(RolloutApplied::Pinned(pin)) => Some(Failure::refused(format!(
                "the app was pinned while this ran ({}); nothing was changed. `cutover unpin` first",
                pin.describe()
            ))),
            Err(e) => Some(Failure::operation(crate::error::one_line(e))),
        }
        };
        if results.len() == 1 {
            return match results.into_iter().next().expect("one") {
                Ok(RolloutApplied::Applied { canary_before }) => Ok(canary_before),
                Err(e) => Err(e),
                other => Err(failure(&r.expect[0], &other).expect("not applied")),
            };
        }
        let written = results
            .iter()
            .filter(|x| matches!(x, Ok(RolloutApplied::Applied { .. })))
            .count();
        if written == results.len() {
            return match results.into_iter().next() {
                Some(Ok(RolloutApplied::Applied { canary_before })) => Ok(canary_before),
                _ => Ok(String::new()),
            };
        }
        let report: Vec<String> = names
            .iter()
            .zip(&r.expect)
            .zip(&results)
            .map(|((name, expect), x)| match failure(expect, x) {
                None => format!("{name} written"),
                Some(e) => format!("{name} NOT written ({})", crate::error::one_line(&e)),
            })
            .collect();
        if written == 0 {
            let refused = results
                .iter()
                .zip(&r.expect)
                .filter_map(|(x, e)| failure(e, x))
                .all(|e| crate::error::exit_code(&e) == 3);
            let msg = format!(
                "the {} did not apply on any Redis target: {}; nothing was changed",
                r.action.as_str(),
                report.join("; ")
            );
            return Err(if refused {
                Failure::refused(msg)
            } else {
                Failure::operation(msg)
            });
        }
        Err(Failure::partial(format!(
            "the Redis targets are split: {written} of {} took the {}: {}. Run this command again to bring every target to it",
            names.len(),
            r.action.as_str(),
            report.join("; ")
        )))
    }
}

/// How long a step after the switch may take before the command ends
/// (exit 6): an invalidation's retries while CloudFront has too many in
/// progress, and with `--wait` its 15 minutes, plus one request's time.
fn step_bound(step: &Step, config: &crate::config::Config) -> std::time::Duration {
    let request = std::time::Duration::from_secs(config.s3_timeout_secs * 4);
    match step {
        Step::Invalidate { wait: true, .. } => {
            request + std::time::Duration::from_secs(120 + 15 * 60)
        }
        Step::Invalidate { wait: false, .. } => request + std::time::Duration::from_secs(120),
        // The wait's own deadline ends it first; the bound is for a Redis
        // that stops answering meanwhile.
        Step::AwaitFleet { within, .. } => {
            std::time::Duration::from_secs(*within + config.redis_timeout_secs * 4 + 1)
        }
        _ => request,
    }
}

/// How the switch went on one Redis target.
enum TargetSwitch {
    Applied {
        previous: Option<String>,
    },
    /// It served the release already: left alone.
    AlreadyLive,
    Pinned(Pin),
    /// A deploy's switch while a rollout runs (the canary, as stored).
    Held(String),
    Failed(anyhow::Error),
}

/// A canary as stored, for a message: "B at 5% since T".
fn describe_canary(text: &str) -> String {
    crate::canary::Canary::parse(text)
        .map(|c| format!("canary {}", c.describe()))
        .unwrap_or_else(|_| "an unreadable canary".into())
}

/// One outcome for the switch across targets. One target: its own outcome.
/// Several: success only if every target serves the release; none switched
/// is the first failure (said per target); some is exit 5.
fn settle(s: &Switch, names: &[String], results: Vec<TargetSwitch>) -> anyhow::Result<Switched> {
    let previous = s.expected().map(str::to_string);
    if results.len() == 1 {
        return match results.into_iter().next().expect("one") {
            TargetSwitch::Applied { previous } => Ok(Switched::Applied { previous }),
            TargetSwitch::AlreadyLive => Ok(Switched::Applied { previous }),
            TargetSwitch::Pinned(pin) => Ok(Switched::Pinned(pin)),
            TargetSwitch::Held(canary) => Ok(Switched::RolloutRunning(canary)),
            TargetSwitch::Failed(e) => Err(e),
        };
    }
    let live_now =
        |r: &TargetSwitch| matches!(r, TargetSwitch::Applied { .. } | TargetSwitch::AlreadyLive);
    if results.iter().all(live_now) {
        let previous = match results.first() {
            Some(TargetSwitch::Applied { previous }) => previous.clone(),
            _ => previous,
        };
        return Ok(Switched::Applied { previous });
    }
    let switched = results
        .iter()
        .filter(|r| matches!(r, TargetSwitch::Applied { .. }))
        .count();
    let report: Vec<String> = names
        .iter()
        .zip(&s.expect)
        .zip(&results)
        .map(|((name, expect), r)| match r {
            TargetSwitch::Applied { .. } => format!("{name} switched, serves {}", s.release),
            TargetSwitch::AlreadyLive => format!("{name} serves {} already", s.release),
            TargetSwitch::Pinned(_) => format!(
                "{name} is pinned, still serves {}",
                expect.current.as_deref().unwrap_or("no release")
            ),
            TargetSwitch::Held(canary) => format!(
                "{name} runs a rollout ({}), still serves {}",
                describe_canary(canary),
                expect.current.as_deref().unwrap_or("no release")
            ),
            TargetSwitch::Failed(e) => format!(
                "{name} NOT switched, was serving {} ({})",
                expect.current.as_deref().unwrap_or("no release"),
                crate::error::one_line(e)
            ),
        })
        .collect();
    if switched == 0 {
        if results.iter().all(|r| {
            matches!(
                r,
                TargetSwitch::Pinned(_) | TargetSwitch::Held(_) | TargetSwitch::AlreadyLive
            )
        }) {
            match results
                .into_iter()
                .find(|r| matches!(r, TargetSwitch::Pinned(_) | TargetSwitch::Held(_)))
            {
                Some(TargetSwitch::Pinned(pin)) => return Ok(Switched::Pinned(pin)),
                Some(TargetSwitch::Held(canary)) => return Ok(Switched::RolloutRunning(canary)),
                _ => {}
            }
        } else {
            let code = results
                .iter()
                .find_map(|r| match r {
                    TargetSwitch::Failed(e) => Some(crate::error::exit_code(e)),
                    _ => None,
                })
                .unwrap_or(1);
            let msg = format!(
                "the switch to {} did not apply on any Redis target: {}; nothing was switched. Run it again",
                s.release,
                report.join("; ")
            );
            return Err(if code == 3 {
                Failure::refused(msg)
            } else {
                Failure::operation(msg)
            });
        }
    }
    Err(Failure::partial(format!(
        "the Redis targets are split: {switched} of {} switched to {}: {}. Run `cutover activate {}` (or this command again) to bring every target to it",
        names.len(),
        s.release,
        report.join("; "),
        s.release
    )))
}

/// SIGINT (Ctrl-C) and SIGTERM (a cancelled CI job), listened to from the
/// start of a run: a signal that arrives between two steps is kept until
/// the next step asks, not lost. (The notifications after a command listen
/// too: a signal abandons them.)
pub struct Shutdown {
    int: Option<tokio::signal::unix::Signal>,
    term: Option<tokio::signal::unix::Signal>,
}

impl Shutdown {
    pub fn listen() -> Shutdown {
        use tokio::signal::unix::{signal, SignalKind};
        Shutdown {
            int: signal(SignalKind::interrupt()).ok(),
            term: signal(SignalKind::terminate()).ok(),
        }
    }

    /// Resolves once either signal came (since `listen`).
    pub async fn signalled(&mut self) {
        async fn one(s: &mut Option<tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        tokio::select! {
            _ = one(&mut self.int) => {}
            _ = one(&mut self.term) => {}
        }
    }
}
