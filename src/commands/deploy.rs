//! `cutover deploy DIR`: hash, plan, upload, record, activate.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use super::objects::{cdn_checks, inspect_all};
use super::Ctx;
use crate::build::headers::Headers;
use crate::build::manifest::{Format, Manifest, ManifestDiff};
use crate::build::Build;
use crate::contract::Pin;
use crate::error::{one_line, Failure};
use crate::events::{Event, Observer};
use crate::exec::{describe, Switched, UploadStats};
use crate::plan::{self, Decision, DeployOptions, DeployPlan, ObjectCopy, PlannedFile, Provenance};
use crate::release::{now, ReleaseRecord};
use crate::render::{bytes, count, some, Render};
use crate::state::{ContentIndex, Listing, LiveState};
use crate::store::lock::LockGuard;
use crate::store::records;
use crate::store::redis::Needs;
use crate::store::s3::S3Store;
use crate::store::targets::Targets;
use futures::stream::{self, StreamExt, TryStreamExt};

pub struct Request {
    pub dir: PathBuf,
    pub dry_run: bool,
    pub no_activate: bool,
    pub force: bool,
    pub message: Option<String>,
    /// Switch only if the CDN serves the entrypoints correctly.
    pub verify_cdn: bool,
    /// Wait for CloudFront invalidations to complete.
    pub wait: bool,
    /// Do not try Redis: record the release in S3 only (needs `no_activate`).
    pub no_redis: bool,
    /// Say in the text output how long each phase took.
    pub timings: bool,
}

/// How the deploy ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// Dry run: what would happen.
    Planned,
    /// Dry run: objects in S3 hold other bytes; a real deploy would refuse (exit 3).
    Conflict,
    Activated,
    /// Uploaded and recorded, not switched (`--no-activate`).
    Recorded,
    /// The build is the live release (its missing objects, if any, restored).
    AlreadyLive,
    /// The build was the live release, but Redis no longer held its manifest
    /// intact: written again.
    Repaired,
}

#[derive(Debug, Serialize)]
pub struct Counted {
    pub files: usize,
    pub bytes: u64,
}

/// Seconds spent in each phase (absent: the phase did not run).
#[derive(Debug, Default, Serialize)]
pub struct Timings {
    pub scan: f64,
    pub list: f64,
    pub plan: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub register: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub switch: Option<f64>,
    pub total: f64,
}

#[derive(Debug, Serialize)]
pub struct Outcome {
    pub command: &'static str,
    pub app: String,
    pub dry_run: bool,
    pub outcome: Ending,
    pub activated: bool,
    /// The release record (without its file list).
    pub release: ReleaseRecord,
    pub live_before: Option<String>,
    pub live_after: Option<String>,
    pub upload: Counted,
    pub skip: Counted,
    /// Files `exclude` left out of the upload and the release.
    pub excluded: Counted,
    pub conflicts: Vec<PlannedFile>,
    /// The files to upload, with their headers.
    pub objects: Vec<PlannedFile>,
    /// The manifest's format (chosen by `manifest_format`, or detected).
    pub manifest_format: Format,
    pub manifest_diff: ManifestDiff,
    /// The writes, in order (a dry run: the writes a deploy would make).
    pub steps: Vec<String>,
    /// What the upload did (absent when nothing was uploaded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uploaded: Option<UploadStats>,
    pub warnings: Vec<String>,
    /// The pin that kept this deploy from activating (null when not pinned).
    pub pinned: Option<Pin>,
    /// Whether the release is registered in Redis (false: recorded in S3
    /// only; `cutover activate ID` registers it).
    pub registered: bool,
    pub timings: Timings,
    #[serde(skip)]
    verbose: bool,
    /// `--timings`: the text output ends with them.
    #[serde(skip)]
    show_timings: bool,
}

/// At most this many files per kind in text output, unless `--verbose`.
const SHOWN: usize = 10;

pub async fn run(ctx: &Ctx, req: Request) -> anyhow::Result<Outcome> {
    let config = &ctx.config;
    // Fail on missing settings before any work.
    config.app()?;
    config.bucket()?;
    config.cdn_url()?;
    let meta = config.meta_prefix()?;
    let started = Instant::now();
    let mut timings = Timings::default();
    let observer = ctx.observer.as_ref();

    let redis = if req.no_redis {
        RedisUse::Skip
    } else if req.no_activate {
        RedisUse::IfReachable
    } else {
        RedisUse::Required
    };
    let (mut build, manifest, store, registry, remote, live, records) =
        gather(ctx, &req.dir, !req.dry_run, redis, &mut timings).await?;
    let known = Known::new(store.bucket(), records);
    let keys = crate::contract::Keys::new(config.app()?);
    let Some(mut registry) = registry else {
        return record_only(
            ctx,
            &req,
            &store,
            (&mut build, &manifest),
            (&remote, &known),
            &keys,
            started,
            timings,
        )
        .await;
    };

    let planning = Instant::now();
    if req.dry_run {
        let plan = make_plan(
            ctx,
            &store,
            (&mut build, &manifest),
            (&remote, &known),
            &live,
            &req,
        )
        .await?;
        timings.plan = planning.elapsed().as_secs_f64();
        let steps = plan.steps(&meta, &options(&req, &live, &plan, config));
        let conflicted = plan.count(Decision::Conflict).0 > 0;
        if conflicted {
            observer.event(Event::Warning(one_line(&conflict_error(
                &plan,
                store.bucket(),
            ))));
        }
        let ending = if conflicted {
            Ending::Conflict
        } else if plan.already_live {
            Ending::AlreadyLive
        } else {
            Ending::Planned
        };
        let described = describe_steps(ctx, &store, &keys, &steps);
        timings.total = started.elapsed().as_secs_f64();
        let mut out = outcome(
            ctx,
            &plan,
            ending,
            described,
            None,
            plan.live_release.clone(),
            timings,
            true,
            manifest.format,
        );
        out.pinned = live.pin.filter(|_| !req.no_activate);
        out.show_timings = req.timings;
        return Ok(out);
    }

    let lock = LockGuard::acquire(config, &registry, &config.actor(), observer).await?;
    let result = deploy_locked(
        ctx,
        &req,
        &store,
        &mut registry,
        (&mut build, &manifest),
        (remote, &known),
        &lock,
        &mut timings,
    )
    .await;
    lock.release().await;
    let (plan, steps, executed, mut pinned) = result?;
    let described = describe_steps(ctx, &store, &keys, &steps);
    let was_current = plan.live_release.as_deref() == Some(plan.release.id.as_str());
    let mut live_before = plan.live_release.clone();
    let (ending, live_after) = match &executed.switched {
        Some(Switched::Applied { previous }) => {
            live_before = previous.clone();
            let ending = if was_current {
                Ending::Repaired
            } else {
                Ending::Activated
            };
            (ending, Some(plan.release.id.clone()))
        }
        // Pinned between planning and the switch: recorded, not activated.
        Some(Switched::Pinned(pin)) => {
            pinned = Some(pin.clone());
            (Ending::Recorded, plan.live_release.clone())
        }
        None if plan.already_live => (Ending::AlreadyLive, plan.live_release.clone()),
        None => (Ending::Recorded, plan.live_release.clone()),
    };
    if let Some(pin) = &pinned {
        observer.event(Event::Warning(pinned_notice(pin, &plan.release.id)));
    }
    for (name, secs) in &executed.timings {
        match *name {
            "upload" => timings.upload = Some(*secs),
            "record" => timings.record = Some(*secs),
            "register" => timings.register = Some(*secs),
            "switch" => timings.switch = Some(*secs),
            _ => {}
        }
    }
    timings.total = started.elapsed().as_secs_f64();
    let mut out = outcome(
        ctx,
        &plan,
        ending,
        described,
        executed.upload,
        live_after,
        timings,
        false,
        manifest.format,
    );
    out.live_before = live_before;
    out.pinned = pinned;
    out.show_timings = req.timings;
    Ok(out)
}

/// How a deploy ends as asked: activate unless `--no-activate` or pinned.
fn options(
    req: &Request,
    live: &LiveState,
    plan: &DeployPlan,
    config: &crate::config::Config,
) -> DeployOptions {
    DeployOptions {
        activate: !req.no_activate && live.pin.is_none(),
        force: req.force,
        message: req.message.clone(),
        cdn_checks: req.verify_cdn.then(|| cdn_checks(&plan.release, 0)),
        invalidate: config
            .cloudfront_distribution_id
            .clone()
            .map(|d| (d, req.wait)),
        cdn_url: plan.release.cdn_url.clone(),
        s3_only: false,
    }
}

/// Without Redis (`--no-redis`, or unreachable with `--no-activate`): upload
/// and record the release in S3, take no lock (there is none to take), and
/// say how to register it.
#[allow(clippy::too_many_arguments)]
async fn record_only(
    ctx: &Ctx,
    req: &Request,
    store: &S3Store,
    (build, manifest): (&mut Build, &Manifest),
    remote: (&Listing, &Known),
    keys: &crate::contract::Keys,
    started: Instant,
    mut timings: Timings,
) -> anyhow::Result<Outcome> {
    let live = LiveState::default();
    let planning = Instant::now();
    let plan = make_plan(ctx, store, (build, manifest), remote, &live, req).await?;
    timings.plan = planning.elapsed().as_secs_f64();
    if plan.count(Decision::Conflict).0 > 0 && !req.dry_run {
        return Err(conflict_error(&plan, store.bucket()));
    }
    let mut opts = options(req, &live, &plan, &ctx.config);
    opts.s3_only = true;
    let steps = plan.steps(&ctx.config.meta_prefix()?, &opts);
    let described = describe_steps(ctx, store, keys, &steps);
    let uploaded = if req.dry_run {
        None
    } else {
        let executed = ctx
            .executor(Some(store), None, Some(&build.root), None)
            .run(&steps)
            .await?;
        for (name, secs) in &executed.timings {
            match *name {
                "upload" => timings.upload = Some(*secs),
                "record" => timings.record = Some(*secs),
                _ => {}
            }
        }
        executed.upload
    };
    timings.total = started.elapsed().as_secs_f64();
    let ending = if req.dry_run {
        Ending::Planned
    } else {
        Ending::Recorded
    };
    let mut out = outcome(
        ctx,
        &plan,
        ending,
        described,
        uploaded,
        None,
        timings,
        req.dry_run,
        manifest.format,
    );
    out.live_before = None;
    out.registered = false;
    out.show_timings = req.timings;
    Ok(out)
}

/// The one line a pinned deploy says (a GitHub Actions annotation in CI).
fn pinned_notice(pin: &Pin, id: &str) -> String {
    format!(
        "pinned since {} by {}{}: recorded {id}, not activated; `cutover activate {id} --unpin` makes it live, `cutover unpin` lets the next deploy",
        pin.at,
        pin.by.as_deref().unwrap_or("unknown"),
        pin.message
            .as_deref()
            .map(|m| format!(" ({m})"))
            .unwrap_or_default()
    )
}

type Gathered = (
    Build,
    Manifest,
    S3Store,
    Option<Targets>,
    Listing,
    LiveState,
    Vec<ReleaseRecord>,
);

/// What the release records say: the content index of the keys they name,
/// and the records themselves (the live one's headers matter).
struct Known {
    index: ContentIndex,
    records: Vec<ReleaseRecord>,
}

impl Known {
    fn new(bucket: &str, records: Vec<ReleaseRecord>) -> Known {
        Known {
            index: ContentIndex::from_records(bucket, &records),
            records,
        }
    }

    fn record(&self, id: &str) -> Option<&ReleaseRecord> {
        self.records.iter().find(|r| r.id == id)
    }
}

/// How many of the newest release records make the content index: a
/// redeploy shares most files with the releases just before it.
const INDEX_RECORDS: usize = 3;

/// How a deploy uses Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RedisUse {
    Required,
    /// `--no-activate`: Redis if reachable, else S3 only.
    IfReachable,
    /// `--no-redis`: do not try.
    Skip,
}

/// Hash the build while connecting, listing the bucket, reading the newest
/// release records and the live state: they do not depend on each other. A
/// bad build is reported first, without waiting on S3 or Redis.
async fn gather(
    ctx: &Ctx,
    dir: &std::path::Path,
    writes: bool,
    redis: RedisUse,
    timings: &mut Timings,
) -> anyhow::Result<Gathered> {
    let started = Instant::now();
    let services = async {
        let (store, mut registry) = connect(ctx, redis).await?;
        if let (true, Some(r)) = (writes, registry.as_mut()) {
            // Before anything is uploaded: a user who may not switch finds out now.
            r.check_permissions(Needs::Switch).await?;
        }
        let meta = ctx.config.meta_prefix()?;
        let state = async {
            match registry.as_mut() {
                Some(r) => remote_state(ctx, &store, r).await,
                None => Ok((
                    store
                        .list(&ctx.config.list_prefix(), ctx.observer.as_ref())
                        .await?,
                    LiveState::default(),
                )),
            }
        };
        let (state, mut records) =
            tokio::join!(state, records::newest(&store, &meta, INDEX_RECORDS));
        let (remote, live) = state?;
        // The live release's record too: its headers, and its files.
        if let Some(id) = live.current.as_deref() {
            if !records.iter().any(|r| r.id == id) {
                records.extend(records::read(&store, &meta, id).await.ok().flatten());
            }
        }
        anyhow::Ok((
            store,
            registry,
            remote,
            live,
            records,
            started.elapsed().as_secs_f64(),
        ))
    };
    let scanned = async {
        let r = scan_build(ctx, dir).await;
        (r, started.elapsed().as_secs_f64())
    };
    tokio::pin!(scanned, services);
    let mut services_done = None;
    let (scanned, scan_secs) = loop {
        tokio::select! {
            s = &mut scanned => break s,
            r = &mut services, if services_done.is_none() => services_done = Some(r),
        }
    };
    let (build, manifest) = scanned?;
    let services = match services_done {
        Some(r) => r,
        None => services.await,
    };
    let (store, registry, remote, live, records, list_secs) = services?;
    timings.scan = scan_secs;
    timings.list = list_secs;
    Ok((build, manifest, store, registry, remote, live, records))
}

/// Connect to S3, and to Redis as `redis` says: an unreachable Redis under
/// `--no-activate` is said on one line, and the deploy goes on without it.
async fn connect(ctx: &Ctx, redis: RedisUse) -> anyhow::Result<(S3Store, Option<Targets>)> {
    let registry = async {
        match redis {
            RedisUse::Skip => Ok(None),
            RedisUse::Required => Targets::connect(&ctx.config).await.map(Some),
            RedisUse::IfReachable => match Targets::connect(&ctx.config).await {
                Ok(r) => Ok(Some(r)),
                // Unreachable (exit 1); a bad URL or password is still an error.
                Err(e) if crate::error::exit_code(&e) == 1 => {
                    ctx.observer.event(Event::Warning(format!(
                        "release recorded in S3 only ({}); `cutover activate <id>` registers it",
                        one_line(&e)
                    )));
                    Ok(None)
                }
                Err(e) => Err(e),
            },
        }
    };
    let (store, registry) = tokio::join!(S3Store::connect(&ctx.config), registry);
    Ok((store?, registry?))
}

/// Scan and hash the build on the blocking pool, then check its manifest.
async fn scan_build(ctx: &Ctx, dir: &std::path::Path) -> anyhow::Result<(Build, Manifest)> {
    let config = &ctx.config;
    let dir = dir.to_path_buf();
    let exclude = config.exclude.clone();
    let observer: Arc<dyn Observer> = ctx.observer.clone();
    let build = tokio::task::spawn_blocking(move || {
        crate::build::scan::scan(&dir, &exclude, observer.as_ref())
    })
    .await
    .map_err(|e| Failure::operation(format!("hashing failed: {e}")))??;
    let manifest = super::manifest_of(config, &build)?;
    if manifest.detected {
        ctx.observer.event(Event::Info(format!(
            "manifest {}: {} format (manifest_format = auto)",
            manifest.path,
            manifest.format.name()
        )));
    }
    Ok((build, manifest))
}

/// One listing of the public prefix and the live state in Redis, read at once.
async fn remote_state(
    ctx: &Ctx,
    store: &S3Store,
    registry: &mut Targets,
) -> anyhow::Result<(Listing, LiveState)> {
    let prefix = ctx.config.list_prefix();
    let (remote, live) = tokio::join!(store.list(&prefix, ctx.observer.as_ref()), registry.live());
    Ok((remote?, live?))
}

/// Plan against the remote state (the listing, with the records as a
/// content index), after hashing with MD5 the files whose decision or record
/// needs it; then settle the files neither could decide (HEAD, or reading
/// the object). Read-only.
async fn make_plan(
    ctx: &Ctx,
    store: &S3Store,
    (build, manifest): (&mut Build, &Manifest),
    (remote, known): (&Listing, &Known),
    live: &LiveState,
    req: &Request,
) -> anyhow::Result<DeployPlan> {
    let needed = plan::md5_needed(&ctx.config, build, manifest, remote, &known.index);
    add_md5s(ctx, build, needed).await?;
    let who = Provenance {
        message: req.message.clone(),
        created: now(),
    };
    let mut plan = plan::deploy(
        &ctx.config,
        build,
        manifest,
        remote,
        &known.index,
        live,
        who,
    )?;
    let unsure: Vec<String> = plan.unsure().map(str::to_string).collect();
    let found = inspect_all(store, unsure, ctx.config.concurrency, ctx.observer.as_ref()).await?;
    plan.resolve(&found);
    plan.recorded = known.record(&plan.release.id).is_some();
    plan.header_updates = header_updates(ctx, store, &plan, live, known).await?;
    for w in &plan.warnings {
        ctx.observer.event(Event::Warning(w.clone()));
    }
    Ok(plan)
}

/// Hash `paths` of the build with MD5 too, on the blocking pool.
async fn add_md5s(ctx: &Ctx, build: &mut Build, paths: Vec<String>) -> anyhow::Result<()> {
    if paths.is_empty() {
        return Ok(());
    }
    let mut part = Build {
        root: build.root.clone(),
        files: std::mem::take(&mut build.files),
        exclude: Default::default(),
        excluded: Vec::new(),
    };
    let threshold = ctx.config.multipart_threshold;
    let observer: Arc<dyn Observer> = ctx.observer.clone();
    let (part, result) = tokio::task::spawn_blocking(move || {
        let r = crate::build::scan::add_md5s(&mut part, &paths, threshold, observer.as_ref());
        (part, r)
    })
    .await
    .map_err(|e| Failure::operation(format!("hashing failed: {e}")))?;
    build.files = part.files;
    result
}

/// Objects this build keeps whose headers changed since the live release
/// recorded them (a header rule changed): rewritten in place, same bytes.
/// The live record says what was set; S3 (HEAD) says what is.
async fn header_updates(
    ctx: &Ctx,
    store: &S3Store,
    plan: &DeployPlan,
    live: &LiveState,
    known: &Known,
) -> anyhow::Result<Vec<ObjectCopy>> {
    let Some(current) = &live.current else {
        return Ok(Vec::new());
    };
    let read;
    let record = match known.record(current) {
        Some(r) => r,
        None => match records::read(store, &ctx.config.meta_prefix()?, current).await? {
            Some(r) => {
                read = r;
                &read
            }
            None => return Ok(Vec::new()),
        },
    };
    let recorded: std::collections::HashMap<&str, (&str, Option<&Headers>)> = record
        .files
        .iter()
        .flatten()
        .map(|f| (f.path.as_str(), (f.sha256.as_str(), f.headers.as_ref())))
        .collect();
    let changed: Vec<&PlannedFile> = plan
        .with(Decision::Skip)
        .filter(|f| {
            recorded
                .get(f.path.as_str())
                .is_some_and(|(sha, h)| *sha == f.sha256 && h.is_some_and(|h| h != &f.headers))
        })
        .collect();
    let heads: Vec<Option<(Headers, String)>> = stream::iter(&changed)
        .map(|f| store.head_headers(&f.key))
        .buffered(ctx.config.concurrency)
        .try_collect()
        .await?;
    Ok(changed
        .into_iter()
        .zip(heads)
        .filter_map(|(f, head)| {
            let (actual, etag) = head?;
            (actual != f.headers).then(|| ObjectCopy {
                from_bucket: None,
                from: f.key.clone(),
                to: f.key.clone(),
                headers: f.headers.clone(),
                sha256: f.sha256.clone(),
                if_match: Some(etag),
            })
        })
        .collect())
}

type Deployed = (
    DeployPlan,
    Vec<plan::Step>,
    crate::exec::Executed,
    Option<Pin>,
);

/// Under the lock: plan (against a fresh listing if another deploy held the
/// lock first), then execute.
#[allow(clippy::too_many_arguments)]
async fn deploy_locked(
    ctx: &Ctx,
    req: &Request,
    store: &S3Store,
    registry: &mut Targets,
    (build, manifest): (&mut Build, &Manifest),
    (remote, known): (Listing, &Known),
    lock: &LockGuard,
    timings: &mut Timings,
) -> anyhow::Result<Deployed> {
    let planning = Instant::now();
    // If another deploy held the lock, list again; otherwise the listing
    // stands (conditional PUTs catch any late object) and only the live
    // state is read again.
    let (remote, live) = if lock.waited {
        remote_state(ctx, store, registry).await?
    } else {
        (remote, registry.live().await?)
    };
    let plan = make_plan(ctx, store, (build, manifest), (&remote, known), &live, req).await?;
    timings.plan = planning.elapsed().as_secs_f64();
    if plan.count(Decision::Conflict).0 > 0 {
        return Err(conflict_error(&plan, store.bucket()));
    }
    let opts = options(req, &live, &plan, &ctx.config);
    let steps = plan.steps(&ctx.config.meta_prefix()?, &opts);
    let executed = ctx
        .executor(Some(store), Some(registry), Some(&build.root), Some(lock))
        .run(&steps)
        .await?;
    let pinned = live.pin.filter(|_| !req.no_activate);
    Ok((plan, steps, executed, pinned))
}

fn describe_steps(
    ctx: &Ctx,
    store: &S3Store,
    keys: &crate::contract::Keys,
    steps: &[plan::Step],
) -> Vec<String> {
    let target = ctx.target(store.bucket(), keys);
    steps.iter().map(|s| describe(s, &target)).collect()
}

/// The error for a plan with conflicts: names the files, says what to do.
fn conflict_error(plan: &DeployPlan, bucket: &str) -> anyhow::Error {
    let conflicts: Vec<String> = plan
        .with(Decision::Conflict)
        .map(|f| {
            format!(
                "{} (S3 has {}, build has {} bytes sha256 {})",
                f.key,
                f.remote.as_deref().unwrap_or("other bytes"),
                f.size,
                &f.sha256[..12]
            )
        })
        .collect();
    Failure::refused(format!(
        "{} in s3://{bucket} would be overwritten with other bytes: {}; nothing was uploaded. \
         Give changed files new names (webpack [contenthash]) or deploy to another prefix",
        count(conflicts.len(), "object"),
        some(&conflicts, 10)
    ))
}

#[allow(clippy::too_many_arguments)]
fn outcome(
    ctx: &Ctx,
    plan: &DeployPlan,
    ending: Ending,
    steps: Vec<String>,
    uploaded: Option<UploadStats>,
    live_after: Option<String>,
    timings: Timings,
    dry_run: bool,
    manifest_format: Format,
) -> Outcome {
    let (up_n, up_b) = plan.count(Decision::Upload);
    let (skip_n, skip_b) = plan.count(Decision::Skip);
    Outcome {
        command: "deploy",
        app: plan.release.app.clone(),
        dry_run,
        outcome: ending,
        activated: matches!(ending, Ending::Activated | Ending::Repaired),
        release: plan.release.summary(),
        live_before: plan.live_release.clone(),
        live_after,
        upload: Counted {
            files: up_n,
            bytes: up_b,
        },
        skip: Counted {
            files: skip_n,
            bytes: skip_b,
        },
        excluded: Counted {
            files: plan.excluded.0,
            bytes: plan.excluded.1,
        },
        conflicts: plan.with(Decision::Conflict).cloned().collect(),
        objects: plan.with(Decision::Upload).cloned().collect(),
        manifest_format,
        manifest_diff: plan.manifest_diff.clone(),
        steps,
        uploaded,
        warnings: plan.warnings.clone(),
        pinned: None,
        registered: true,
        timings,
        verbose: ctx.verbose,
        show_timings: false,
    }
}

impl Timings {
    /// One line: each phase that ran, then the total.
    pub fn line(&self) -> String {
        let phases = [
            ("scan", Some(self.scan)),
            ("list", Some(self.list)),
            ("plan", Some(self.plan)),
            ("upload", self.upload),
            ("record", self.record),
            ("register", self.register),
            ("switch", self.switch),
        ];
        let parts: Vec<String> = phases
            .iter()
            .filter_map(|(name, secs)| secs.map(|s| format!("{name} {s:.3}s")))
            .collect();
        format!(
            "timings: {}; total {:.3}s (scan and list run at once)",
            parts.join(", "),
            self.total
        )
    }
}

impl Outcome {
    fn shown(&self) -> usize {
        if self.verbose {
            usize::MAX
        } else {
            SHOWN
        }
    }

    /// Lines for a list, the first few unless verbose, then "... and N more".
    fn listed<T>(&self, t: &mut String, items: &[T], line: impl Fn(&T) -> String) {
        for item in items.iter().take(self.shown()) {
            t.push_str(&line(item));
            t.push('\n');
        }
        if items.len() > self.shown() {
            t.push_str(&format!(
                "  ... and {} more (--verbose lists them all)\n",
                items.len() - self.shown()
            ));
        }
    }

    fn plan_text(&self, t: &mut String) {
        let r = &self.release;
        t.push_str(&format!(
            "upload {} ({}), skip {} already in S3 ({}), {}\n",
            count(self.upload.files, "file"),
            bytes(self.upload.bytes),
            count(self.skip.files, "file"),
            bytes(self.skip.bytes),
            count(self.conflicts.len(), "conflict")
        ));
        if self.excluded.files > 0 {
            t.push_str(&format!(
                "left out by exclude: {} ({})\n",
                count(self.excluded.files, "file"),
                bytes(self.excluded.bytes)
            ));
        }
        self.listed(t, &self.objects, |f| {
            format!(
                "  + s3://{}/{}  {}  {}  {}{}",
                r.bucket,
                f.key,
                bytes(f.size),
                f.headers.content_type,
                f.headers.cache_control,
                f.headers
                    .content_encoding
                    .as_deref()
                    .map(|e| format!("  encoding {e}"))
                    .unwrap_or_default()
            )
        });
        self.listed(t, &self.conflicts, |f| {
            format!(
                "  ! s3://{}/{}  S3 has {}, build has {} (sha256 {})",
                r.bucket,
                f.key,
                f.remote.as_deref().unwrap_or("other bytes"),
                bytes(f.size),
                f.sha256
            )
        });
        let d = &self.manifest_diff;
        t.push_str(&format!(
            "manifest against live ({}): {} added, {} changed, {} removed, {} unchanged\n",
            self.live_before.as_deref().unwrap_or("none"),
            d.added.len(),
            d.changed.len(),
            d.removed.len(),
            d.unchanged
        ));
        self.listed(t, &d.added, |e| format!("  + {} -> {}", e.entry, e.url));
        self.listed(t, &d.changed, |c| {
            format!("  ~ {}: {} -> {}", c.entry, c.from, c.to)
        });
        self.listed(t, &d.removed, |e| {
            format!("  - {} (was {})", e.entry, e.url)
        });
        if self.steps.is_empty() {
            let why = if self.outcome == Ending::Conflict {
                "a deploy would stop before writing anything (exit 3)"
            } else {
                "nothing to write"
            };
            t.push_str(&format!("writes: none, {why}\n"));
        } else {
            t.push_str("writes, in order:\n");
            for (i, s) in self.steps.iter().enumerate() {
                t.push_str(&format!("  {}. {s}\n", i + 1));
            }
        }
    }
}

impl Render for Outcome {
    fn text(&self) -> String {
        let mut t = self.result_text();
        if self.show_timings {
            t.push_str(&self.timings.line());
            t.push('\n');
        }
        t
    }

    fn exit_code(&self) -> u8 {
        if self.outcome == Ending::Conflict {
            3
        } else {
            0
        }
    }
}

impl Outcome {
    fn result_text(&self) -> String {
        let r = &self.release;
        let id = &r.id;
        let mut t = String::new();
        if self.dry_run {
            t.push_str("dry run: nothing will be changed\n");
            t.push_str(&format!(
                "release {id} of {}: {}, {}\n",
                r.app,
                count(r.file_count, "file"),
                bytes(r.bytes)
            ));
            if self.outcome == Ending::AlreadyLive {
                t.push_str("already live\n");
            }
            self.plan_text(&mut t);
            return t;
        }
        if let Some(u) = self.uploaded.as_ref().filter(|u| u.files > 0) {
            t.push_str(&format!(
                "uploaded {} ({}) in {:.1}s, skipped {} already in S3\n",
                count(u.files as usize, "file"),
                bytes(u.bytes),
                u.seconds,
                count(self.skip.files, "file")
            ));
        }
        let line = match self.outcome {
            Ending::AlreadyLive if self.uploaded.is_some() => {
                format!(
                    "release {id} is already live for {}; restored its missing objects",
                    r.app
                )
            }
            Ending::AlreadyLive => {
                format!("release {id} is already live for {}; nothing to do", r.app)
            }
            Ending::Recorded if !self.registered => format!(
                "recorded release {id} in S3 only (not registered in Redis); `cutover activate {id}` registers and activates it"
            ),
            Ending::Recorded if self.pinned.is_some() => format!(
                "recorded release {id} (not activated: {} is pinned); make it live with: cutover activate {id} --unpin",
                r.app
            ),
            Ending::Recorded => format!(
                "recorded release {id} (not activated); make it live with: cutover activate {id}"
            ),
            Ending::Repaired => format!(
                "release {id} was live for {} but Redis no longer held its manifest intact; wrote it again",
                r.app
            ),
            _ => format!(
                "release {id} is live for {} (was {})",
                r.app,
                self.live_before.as_deref().unwrap_or("none")
            ),
        };
        t.push_str(&line);
        t.push('\n');
        t
    }
}
