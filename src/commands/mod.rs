//! The commands, one file per family. Each that changes something goes
//! one way: gather the facts it needs (reads from S3 and Redis), make a
//! plan (`plan`, pure: the writes as steps), hand the steps to the executor
//! under the deploy lock (not in a dry run: see [`with_lock`]), and return
//! a typed outcome that renders itself as text or JSON.

pub mod deploy;
pub mod diff;
pub mod doctor;
pub mod inspect;
pub mod keygen;
pub mod pin;
pub mod promote;
pub mod prune;
pub mod settings;
pub mod switch;
pub mod unlock;
pub mod verify;

use std::sync::Arc;

use crate::config::Config;
use crate::contract::Keys;
use crate::error::Failure;
use crate::events::Observer;
use crate::exec::Destinations;
use crate::release::ReleaseRecord;
use crate::state::Stored;
use crate::store::lock::LockGuard;
use crate::store::records;
use crate::store::registries::Registries;
use crate::store::s3::S3Store;

/// What every command gets.
pub struct Ctx {
    pub config: Config,
    pub observer: Arc<dyn Observer>,
    /// List every file in text output, not the first few.
    pub verbose: bool,
}

impl Ctx {
    /// Connect to S3 and Redis at once.
    pub async fn connect(&self) -> anyhow::Result<(S3Store, Registries)> {
        let (store, redis) = tokio::join!(
            S3Store::connect(&self.config),
            Registries::connect(&self.config)
        );
        Ok((store?, redis?))
    }

    /// The head of an outcome of `command`.
    pub fn head(&self, command: &'static str, dry_run: Option<bool>) -> anyhow::Result<Head> {
        Ok(Head {
            command,
            app: self.config.app()?.to_string(),
            dry_run,
        })
    }

    /// An executor for steps that write to `redis` (and `store`, for
    /// uploads and records from `root`), under `lock` when one is held.
    pub fn executor<'a>(
        &'a self,
        store: Option<&'a S3Store>,
        redis: Option<&'a mut Registries>,
        root: Option<&'a std::path::Path>,
        lock: Option<&'a LockGuard>,
    ) -> crate::exec::Executor<'a> {
        crate::exec::Executor {
            store,
            redis,
            root,
            concurrency: self.config.concurrency,
            multipart_threshold: self.config.multipart_threshold,
            lock,
            cdn_timeout: self.config.cdn_timeout(),
            config: &self.config,
            observer: self.observer.as_ref(),
        }
    }

    /// One line per step, as `--dry-run` prints them (and `--json` lists
    /// them): what each writes, to `bucket` and the Redis keys `keys`.
    pub fn describe(&self, bucket: &str, keys: &Keys, steps: &[crate::plan::Step]) -> Vec<String> {
        let dest = Destinations {
            bucket,
            keys,
            history_limit: self.config.history_limit,
            redis_targets: self.config.redis_urls.len(),
        };
        steps
            .iter()
            .map(|s| crate::exec::describe(s, &dest))
            .collect()
    }
}

/// The fields every outcome starts with, in this order (docs/output.md, "JSON"); flattened into each command's outcome.
#[derive(Debug, serde::Serialize)]
pub struct Head {
    pub command: &'static str,
    pub app: String,
    /// Commands that change something say whether this was a dry run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
}

impl Head {
    pub fn dry_run(&self) -> bool {
        self.dry_run == Some(true)
    }
}

/// Run `work` under the deploy lock on every Redis target, and give the
/// lock back whatever `work` returns; without the lock when `lock` is false
/// (a dry run, which writes nothing).
pub async fn with_lock<T>(
    ctx: &Ctx,
    redis: &mut Registries,
    lock: bool,
    work: impl AsyncFnOnce(&mut Registries, Option<&LockGuard>) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    if !lock {
        return work(redis, None).await;
    }
    let config = &ctx.config;
    let guard = LockGuard::acquire(config, redis, &config.actor(), ctx.observer.as_ref()).await?;
    let result = work(redis, Some(&guard)).await;
    guard.release().await;
    result
}

/// The build's manifest: at the configured path, or the format's own (found
/// by name under `manifest_format = auto`), checked against the build.
pub fn manifest_of(
    config: &Config,
    build: &crate::build::Build,
) -> anyhow::Result<crate::build::manifest::Manifest> {
    let wanted = crate::build::manifest::Wanted {
        path: config
            .origins
            .contains_key("manifest")
            .then_some(config.manifest.as_str()),
        format: config.manifest_format,
    };
    crate::build::manifest::find(build, wanted, &|p| config.public_url(p).unwrap_or_default())
}

/// A release found by id or unique prefix: its full record (from S3, with
/// the file list) and what Redis holds for it. Read-only.
pub struct Resolved {
    pub record: ReleaseRecord,
    pub in_redis: Stored<ReleaseRecord>,
}

/// Resolve a release id or unique prefix against Redis, then the S3 records.
pub async fn resolve_release(
    config: &Config,
    redis: &mut Registries,
    store: &S3Store,
    wanted: &str,
) -> anyhow::Result<Resolved> {
    let wanted = checked_id(wanted)?;
    let meta = config.meta_prefix()?;
    let mut matches: Vec<String> = redis
        .release_ids(0)
        .await?
        .into_iter()
        .filter(|id| id.starts_with(wanted))
        .collect();
    if matches.is_empty() {
        // Redis may have lost its data: look for S3 records.
        matches = records::ids(store, &meta, wanted).await?;
    }
    let id = pick_one(config, wanted, matches)?;
    // The S3 copy has the file list needed to verify the objects.
    let record = full_record(store, &meta, &id).await?;
    let in_redis = redis.record(&id).await?;
    Ok(Resolved { record, in_redis })
}

/// Resolve a release id or unique prefix against the S3 records alone (no
/// Redis): the full record.
pub async fn resolve_in_s3(
    config: &Config,
    store: &S3Store,
    wanted: &str,
) -> anyhow::Result<ReleaseRecord> {
    let wanted = checked_id(wanted)?;
    let meta = config.meta_prefix()?;
    let matches = records::ids(store, &meta, wanted).await?;
    let id = pick_one(config, wanted, matches)?;
    full_record(store, &meta, &id).await
}

/// A release id or prefix as typed, checked.
fn checked_id(wanted: &str) -> anyhow::Result<&str> {
    let wanted = wanted.trim();
    if wanted.is_empty() || !wanted.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Failure::input(format!(
            "{wanted:?} is not a release id; release ids are hex, see `cutover releases`"
        )));
    }
    Ok(wanted)
}

/// The one release `wanted` names among `matches`.
fn pick_one(config: &Config, wanted: &str, mut matches: Vec<String>) -> anyhow::Result<String> {
    match matches.len() {
        0 => Err(Failure::input(format!(
            "no release {wanted} for app {}; see `cutover releases`",
            config.app()?
        ))),
        1 => Ok(matches.remove(0)),
        n => Err(Failure::input(format!(
            "{wanted:?} matches {n} releases ({}); give more characters of the id",
            crate::render::some(&matches, 5)
        ))),
    }
}

/// A release's record with its file list, from S3.
async fn full_record(store: &S3Store, meta: &str, id: &str) -> anyhow::Result<ReleaseRecord> {
    records::read(store, meta, id).await?.ok_or_else(|| {
        Failure::verification(format!(
            "release {id} has no record in s3://{}/{}; it never finished uploading. Deploy its build again",
            store.bucket(),
            crate::contract::record_key(meta, id)
        ))
    })
}
