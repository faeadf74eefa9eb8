//! What a deploy learns before it plans: the build (scanned and hashed),
//! S3's listing, the newest release records (a content index) and the live
//! state, read at once ([`Gathered::read`]); read again under the lock
//! ([`Gathered::refresh`]); then the answers to the plan's questions
//! ([`Gathered::answer_questions`]). The plan itself is made from
//! [`Gathered::facts`], without I/O.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use super::{Request, Timings};
use crate::build::headers::Headers;
use crate::build::manifest::Manifest;
use crate::build::Build;
use crate::commands::Ctx;
use crate::error::{one_line, Failure};
use crate::events::{Event, Observer};
use crate::plan::{self, DeployFacts, Provenance};
use crate::release::now;
use crate::state::{ContentIndex, Inspected, Listing, LiveState};
use crate::store::records;
use crate::store::redis::Needs;
use crate::store::registries::Registries;
use crate::store::s3::S3Store;

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

/// Everything a deploy read, and the connections it read it through.
pub(super) struct Gathered {
    pub build: Build,
    pub manifest: Manifest,
    pub store: S3Store,
    /// None: the release is recorded in S3 only (`--no-redis`, or Redis
    /// unreachable under `--no-activate`).
    pub redis: Option<Registries>,
    pub redis_skipped: bool,
    pub remote: Listing,
    pub index: ContentIndex,
    pub live: LiveState,
    pub inspected: HashMap<String, Inspected>,
    pub heads: HashMap<String, (Headers, String)>,
}

impl Gathered {
    /// Hash the build while connecting, listing the bucket, reading the
    /// newest release records and the live state: they do not depend on
    /// each other. A bad build is reported first, without waiting on S3 or
    /// Redis.
    pub async fn read(
        ctx: &Ctx,
        dir: &std::path::Path,
        writes: bool,
        redis: RedisUse,
        timings: &mut Timings,
    ) -> anyhow::Result<Gathered> {
        let started = Instant::now();
        let services = async {
            let (store, mut redis) = connect(ctx, redis).await?;
            if let (true, Some(r)) = (writes, redis.as_mut()) {
                // Before anything is uploaded: a user who may not switch finds out now.
                r.check_permissions(Needs::Switch).await?;
                if ctx.config.wait_converged_secs > 0 {
                    r.check_permissions(Needs::Fleet).await?;
                }
            }
            let meta = ctx.config.meta_prefix()?;
            let state = async {
                match redis.as_mut() {
                    Some(r) => remote_state(ctx, &store, r).await,
                    None => Ok((
                        store
                            .list(&ctx.config.list_prefix(), ctx.observer.as_ref())
                            .await?,
                        LiveState::default(),
                    )),
                }
            };
            let (state, records) =
                tokio::join!(state, records::newest(&store, &meta, INDEX_RECORDS));
            let (remote, live) = state?;
            let index = ContentIndex::new(store.bucket(), records);
            let index = with_live_record(&store, &meta, index, &live).await;
            anyhow::Ok((
                store,
                redis,
                remote,
                live,
                index,
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
        let (store, redis, remote, live, index, list_secs) = services?;
        timings.scan = scan_secs;
        timings.list = list_secs;
        Ok(Gathered {
            build,
            manifest,
            store,
            redis_skipped: redis.is_none(),
            redis,
            remote,
            index,
            live,
            inspected: HashMap::new(),
            heads: HashMap::new(),
        })
    }

    /// Under the lock: the live state again, and the listing too if another
    /// deploy held the lock first (`waited`) or a prune ran since it was
    /// read (objects the plan would reuse may be gone); otherwise the listing
    /// stands (conditional PUTs catch any late object).
    pub async fn refresh(
        &mut self,
        ctx: &Ctx,
        redis: &mut Registries,
        waited: bool,
    ) -> anyhow::Result<()> {
        let live = redis.live().await?;
        let meta = ctx.config.meta_prefix()?;
        let index = if live.pruned != self.live.pruned {
            // A prune ran since: objects and records the plan would trust may
            // be gone. Read both again.
            let prefix = ctx.config.list_prefix();
            let (remote, records) = tokio::join!(
                self.store.list(&prefix, ctx.observer.as_ref()),
                records::newest(&self.store, &meta, INDEX_RECORDS)
            );
            self.remote = remote?;
            ContentIndex::new(self.store.bucket(), records)
        } else {
            if waited {
                self.remote = self
                    .store
                    .list(&ctx.config.list_prefix(), ctx.observer.as_ref())
                    .await?;
            }
            std::mem::take(&mut self.index)
        };
        self.live = live;
        self.index = with_live_record(&self.store, &meta, index, &self.live).await;
        Ok(())
    }

    /// What the plan needs to know that the first reads did not tell: the
    /// MD5s of the files it asks for, then a closer look (HEAD) at the keys
    /// the listing could not decide and at the headers of objects whose
    /// header rules changed, at once.
    pub async fn answer_questions(&mut self, ctx: &Ctx) -> anyhow::Result<()> {
        let config = &ctx.config;
        let needed = plan::md5_needed(config, &self.facts());
        add_md5s(ctx, &mut self.build, needed).await?;
        let facts = self.facts();
        let (inspect, heads) = (
            plan::to_inspect(config, &facts)?,
            plan::header_checks(config, &facts),
        );
        let (n, observer) = (config.check_concurrency, ctx.observer.as_ref());
        let (inspected, heads) = tokio::join!(
            self.store.inspect_all(inspect, n, observer),
            self.store.headers_all(heads, n, observer)
        );
        (self.inspected, self.heads) = (inspected?, heads?);
        Ok(())
    }

    /// The facts the plan is made from.
    pub fn facts(&self) -> DeployFacts<'_> {
        DeployFacts {
            build: &self.build,
            manifest: &self.manifest,
            remote: &self.remote,
            index: &self.index,
            live: &self.live,
            inspected: &self.inspected,
            heads: &self.heads,
        }
    }

    /// Who and why, as of now.
    pub fn provenance(&self, ctx: &Ctx, req: &Request) -> Provenance {
        let config = &ctx.config;
        Provenance {
            message: req.message.clone(),
            committed_at: config
                .git_commit_time
                .clone()
                .or_else(|| config.git_sha.as_deref().and_then(commit_time)),
            created: now(),
        }
    }
}

/// The index with the live release's record in it: its headers and its
/// files decide what a header rule change rewrites. A record that cannot
/// be read leaves the index as it is.
async fn with_live_record(
    store: &S3Store,
    meta: &str,
    index: ContentIndex,
    live: &LiveState,
) -> ContentIndex {
    let Some(id) = live.current.as_deref() else {
        return index;
    };
    if index.record(id).is_some() {
        return index;
    }
    match records::read(store, meta, id).await {
        Ok(Some(record)) => index.with(store.bucket(), record),
        _ => index,
    }
}

/// Connect to S3, and to Redis as `redis` says: an unreachable Redis under
/// `--no-activate` is said on one line, and the deploy goes on without it.
async fn connect(ctx: &Ctx, redis: RedisUse) -> anyhow::Result<(S3Store, Option<Registries>)> {
    let registries = async {
        match redis {
            RedisUse::Skip => Ok(None),
            RedisUse::Required => Registries::connect(&ctx.config).await.map(Some),
            RedisUse::IfReachable => match Registries::connect(&ctx.config).await {
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
    let (store, registries) = tokio::join!(S3Store::connect(&ctx.config), registries);
    Ok((store?, registries?))
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
async fn remote_state(
    ctx: &Ctx,
    store: &S3Store,
    redis: &mut Registries,
) -> anyhow::Result<(Listing, LiveState)> {
    let prefix = ctx.config.list_prefix();
    let (remote, live) = tokio::join!(store.list(&prefix, ctx.observer.as_ref()), redis.live());
    Ok((remote?, live?))
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

/// When `sha` was committed: from git in the working directory (CI checks
/// the repository out there), else from GitHub's event payload
/// (`GITHUB_EVENT_PATH`, a push's `head_commit`). None when neither knows.
fn commit_time(sha: &str) -> Option<String> {
    let from_git = std::process::Command::new("git")
        .args(["log", "-1", "--format=%cI", sha, "--"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| crate::release::utc_time(&String::from_utf8_lossy(&o.stdout)));
    from_git.or_else(|| {
        let path = std::env::var_os("GITHUB_EVENT_PATH")?;
        let event: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
        let head = &event["head_commit"];
        (head["id"].as_str()? == sha)
            .then(|| crate::release::utc_time(head["timestamp"].as_str()?))
            .flatten()
    })
}
