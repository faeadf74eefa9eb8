//! What a deploy learns before it plans: the build (scanned and hashed),
//! S3's listing, the newest release records (a content index) and the live
//! state, read at once; then the plan made from them.

use std::sync::Arc;
use std::time::Instant;

use crate::build::headers::Headers;
use crate::build::manifest::Manifest;
use crate::build::Build;
use crate::commands::objects::inspect_all;
use crate::commands::Ctx;
use crate::error::{one_line, Failure};
use crate::events::{Event, Observer};
use crate::plan::{self, Decision, DeployPlan, ObjectCopy, PlannedFile, Provenance};
use crate::release::{now, ReleaseRecord};
use crate::state::{ContentIndex, Listing, LiveState};
use crate::store::records;
use crate::store::redis::Needs;
use crate::store::s3::S3Store;
use crate::store::targets::Targets;
use futures::stream::{self, StreamExt, TryStreamExt};

use super::*;

pub(super) type Gathered = (
    Build,
    Manifest,
    S3Store,
    Option<Targets>,
    Listing,
    LiveState,
    Vec<ReleaseRecord>,
);

/// How many of the newest release records make the content index: a
/// redeploy shares most files with the releases just before it.
pub(super) const INDEX_RECORDS: usize = 3;

/// How a deploy uses Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RedisUse {
    Required,
    /// `--no-activate`: Redis if reachable, else S3 only.
    IfReachable,
    /// `--no-redis`: do not try.
    Skip,
}

/// Hash the build while connecting, listing the bucket, reading the newest
/// release records and the live state: they do not depend on each other. A
/// bad build is reported first, without waiting on S3 or Redis.
pub(super) async fn gather(
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
pub(super) async fn connect(
    ctx: &Ctx,
    redis: RedisUse,
) -> anyhow::Result<(S3Store, Option<Targets>)> {
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
pub(super) async fn scan_build(
    ctx: &Ctx,
    dir: &std::path::Path,
) -> anyhow::Result<(Build, Manifest)> {
    let config = &ctx.config;
    let dir = dir.to_path_buf();
    let exclude = config.exclude.clone();
    let observer: Arc<dyn Observer> = ctx.observer.clone();
    let build = tokio::task::spawn_blocking(move || {
        crate::build::scan::scan(&dir, &exclude, observer.as_ref())
    })
    .await
    .map_err(|e| Failure::operation(format!("hashing failed: {e}")))??;
    let manifest = crate::commands::manifest_of(config, &build)?;
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
pub(super) async fn remote_state(
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
pub(super) async fn make_plan(
    ctx: &Ctx,
    store: &S3Store,
    (build, manifest): (&mut Build, &Manifest),
    (remote, known): (&Listing, &ContentIndex),
    live: &LiveState,
    req: &Request,
) -> anyhow::Result<DeployPlan> {
    let needed = plan::md5_needed(&ctx.config, build, manifest, remote, known);
    add_md5s(ctx, build, needed).await?;
    let who = Provenance {
        message: req.message.clone(),
        created: now(),
    };
    let mut plan = plan::deploy(&ctx.config, build, manifest, remote, known, live, who)?;
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
pub(super) async fn add_md5s(
    ctx: &Ctx,
    build: &mut Build,
    paths: Vec<String>,
) -> anyhow::Result<()> {
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
pub(super) async fn header_updates(
    ctx: &Ctx,
    store: &S3Store,
    plan: &DeployPlan,
    live: &LiveState,
    known: &ContentIndex,
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
            recorded.get(f.file.path.as_str()).is_some_and(|(sha, h)| {
                *sha == f.file.sha256 && h.is_some_and(|h| h != f.headers())
            })
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
            (actual != *f.headers()).then(|| ObjectCopy {
                from_bucket: None,
                from: f.key.clone(),
                to: f.key.clone(),
                headers: f.headers().clone(),
                sha256: f.file.sha256.clone(),
                if_match: Some(etag),
            })
        })
        .collect())
}
