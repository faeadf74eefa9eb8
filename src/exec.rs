//! The executor: carries out a plan's [`Step`]s, in order, and nothing else.
//! [`describe`] prints the same steps for `--dry-run`, so what a dry run
//! shows is what a run does.

use std::path::Path;
use std::time::Instant;

use futures::stream::{self, StreamExt, TryStreamExt};
use serde::Serialize;

use crate::contract::{ActivationEvent, Keys, Pin, PinChange};
use crate::error::Failure;
use crate::events::{Event, Observer, Phase};
use crate::plan::{Decision, PlannedFile, Step, Switch};
use crate::release::now;
use crate::render::{bytes, count, some};
use crate::store::cdn::Cdn;
use crate::store::cloudfront::{collapse, CloudFront};
use crate::store::lock::LockGuard;
use crate::store::redis::{Activation, Registry};
use crate::store::s3::{PutOutcome, PutSpec, S3Store};

/// What the executor needs to carry out steps.
pub struct Executor<'a> {
    /// None for steps that touch Redis only.
    pub store: Option<&'a S3Store>,
    /// None for a deploy recorded in S3 only (no Redis reachable).
    pub registry: Option<&'a mut Registry>,
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
}

/// What running the steps did.
#[derive(Debug, Default, Clone)]
pub struct Executed {
    pub upload: Option<UploadStats>,
    /// Set when a switch step ran.
    pub switched: Option<Switched>,
    /// Seconds per step kind, in order.
    pub timings: Vec<(&'static str, f64)>,
}

impl<'a> Executor<'a> {
    /// Run every step in order; stop at the first failure. SIGINT/SIGTERM
    /// before the switch abort open multipart uploads and end with exit 130,
    /// nothing switched; the switch itself is one atomic call and is never
    /// cut off halfway (a signal during it is handled after it).
    pub async fn run(&mut self, steps: &[Step]) -> anyhow::Result<Executed> {
        let mut done = Executed::default();
        for step in steps {
            let started = Instant::now();
            if let Step::Switch(switch) = step {
                if let Some(lock) = self.lock {
                    lock.check()?;
                }
                done.switched = Some(self.switch(switch).await?);
            } else {
                let store = self.store;
                tokio::select! {
                    r = self.write(step, &mut done) => r?,
                    _ = shutdown_signal() => {
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
                .push((step_name(step), started.elapsed().as_secs_f64()));
        }
        Ok(done)
    }

    fn redis(&mut self) -> anyhow::Result<&mut Registry> {
        self.registry.as_deref_mut().ok_or_else(|| {
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
            Step::Upload(files) => done.upload = Some(self.upload(files).await?),
            Step::PutRecord { key, body } => self.s3()?.put_record(key, body.clone()).await?,
            Step::Register {
                record,
                replace_broken,
            } => self.redis()?.register(record, *replace_broken).await?,
            Step::Unlock { owner } => {
                let redis = self.redis()?;
                if !redis.unlock(owner).await? {
                    return Err(Failure::refused(format!(
                        "the deploy lock {} changed since it was read (no longer {owner:?}); nothing was deleted. Look again with `cutover unlock`",
                        redis.keys.lock
                    )));
                }
            }
            Step::Pin(pin) => {
                self.redis()?.set_pin(pin.as_ref()).await?;
            }
            Step::Delete(keys) => self.s3()?.delete_objects(keys).await?,
            Step::Copy(copies) => {
                let s3 = self.s3()?;
                stream::iter(copies)
                    .map(|c| {
                        s3.copy_object(&c.from, &c.to, &c.headers, &c.sha256, c.if_match.as_deref())
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
                self.redis()?.unregister(ids).await?;
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
            Step::Switch(_) => unreachable!("the switch runs on its own"),
        }
        Ok(())
    }

    /// Upload files, `concurrency` at a time. Stops at the first failure;
    /// multipart uploads still in flight are aborted.
    async fn upload(&self, files: &[PlannedFile]) -> anyhow::Result<UploadStats> {
        let root = self
            .root
            .expect("an upload step comes with the build directory");
        let total: u64 = files.iter().map(|f| f.size).sum();
        let started = Instant::now();
        self.observer.event(Event::Started {
            phase: Phase::Uploading,
            files: files.len() as u64,
            bytes: total,
        });
        let (store, observer, threshold) = (self.s3()?, self.observer, self.multipart_threshold);
        let results: anyhow::Result<Vec<(u64, PutOutcome)>> = stream::iter(files)
            .map(|f| async move {
                let path = root.join(&f.path);
                let spec = PutSpec {
                    key: &f.key,
                    path: &path,
                    size: f.size,
                    sha256_hex: &f.sha256,
                    md5_hex: &f.md5,
                    headers: &f.headers,
                    if_match: (f.decision == Decision::Replace)
                        .then_some(f.remote_etag.as_deref())
                        .flatten(),
                };
                let outcome = store.put_file(spec, threshold).await?;
                observer.event(Event::Advanced {
                    phase: Phase::Uploading,
                    files: 1,
                    bytes: f.size,
                });
                Ok((f.size, outcome))
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
        for (size, outcome) in results {
            match outcome {
                PutOutcome::Uploaded => {
                    stats.files += 1;
                    stats.bytes += size;
                }
                PutOutcome::AlreadyThere => stats.already_there += 1,
            }
        }
        Ok(stats)
    }

    /// The compare-and-set switch. A lost race is refused (exit 3).
    async fn switch(&mut self, s: &Switch) -> anyhow::Result<Switched> {
        let event = ActivationEvent {
            release: s.release.clone(),
            previous: s.expected.clone(),
            action: s.action.as_str().to_string(),
            at: now().0,
            by: s.by.clone(),
            message: s.message.clone(),
        };
        let outcome = self
            .redis()?
            .activate(
                s.expected.as_deref(),
                &s.release,
                &s.manifest,
                &event,
                s.force,
                &s.pin,
                s.rolled_back_from.as_deref(),
            )
            .await?;
        match outcome {
            Activation::Applied { previous } => Ok(Switched::Applied { previous }),
            Activation::Pinned(pin) => Ok(Switched::Pinned(pin)),
            Activation::LostRace { current } => Err(Failure::refused(format!(
                "the live release changed to {} while this {} ran (it planned against {}); nothing was switched. \
                 Run it again, or pass --force to switch anyway",
                current.as_deref().unwrap_or("none"),
                s.action.as_str(),
                s.expected.as_deref().unwrap_or("none")
            ))),
        }
    }
}

fn step_name(step: &Step) -> &'static str {
    match step {
        Step::Upload(_) => "upload",
        Step::PutRecord { .. } => "record",
        Step::Register { .. } => "register",
        Step::Switch(_) => "switch",
        Step::Unlock { .. } => "unlock",
        Step::Pin(_) => "pin",
        Step::VerifyCdn(_) => "verify_cdn",
        Step::Delete(_) => "delete",
        Step::Copy(_) => "copy",
        Step::Invalidate { .. } => "invalidate",
        Step::DeleteRecords { .. } => "delete_records",
    }
}

/// Where the steps write, for describing them.
pub struct Target<'a> {
    pub bucket: &'a str,
    pub keys: &'a Keys,
    pub history_limit: usize,
}

/// One line per write a step makes (uploads: one line for them all; the
/// caller lists the files).
pub fn describe(step: &Step, t: &Target) -> String {
    match step {
        Step::Upload(files) => format!(
            "S3 PUT {} ({}) under s3://{}/, each with If-None-Match: * and its SHA-256",
            count(files.len(), "object"),
            bytes(files.iter().map(|f| f.size).sum()),
            t.bucket
        ),
        Step::PutRecord { key, .. } => format!(
            "S3 PUT s3://{}/{key} (release record, with the file list)",
            t.bucket
        ),
        Step::Register {
            record: r,
            replace_broken,
        } => format!(
            "Redis EVAL register: SET {} ({}); ZADD {} NX {} {}",
            t.keys.release(&r.id),
            if *replace_broken {
                "replacing the unreadable record there"
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
            "S3 CopyObject: {} server-side, same bytes, new headers ({})",
            count(copies.len(), "object"),
            some(
                &copies
                    .iter()
                    .map(|c| if c.from == c.to {
                        format!("{} (headers)", c.to)
                    } else {
                        format!("{} from {}", c.to, c.from)
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
        Step::Unlock { owner } => format!(
            "Redis EVAL unlock: DEL {} if it still holds {owner:?}",
            t.keys.lock
        ),
        Step::Switch(s) => format!(
            "Redis EVAL activate: check key types;{respect} if {current} is {expected}{force}: PUBLISH {channel} ({action} event); \
             SET {current} {id}; SET {manifest} ({size} of JSON); LPUSH {history} (capped at {cap}){pin}{marked}",
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
            expected = s.expected.as_deref().unwrap_or("unset"),
            force = if s.force { " (or --force)" } else { "" },
            id = s.release,
            manifest = t.keys.manifest,
            size = bytes(serde_json::to_string(&s.manifest).map(|j| j.len()).unwrap_or(0) as u64),
            history = t.keys.history,
            action = s.action.as_str(),
            cap = t.history_limit,
            channel = t.keys.channel,
        ),
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM (a cancelled CI job).
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
