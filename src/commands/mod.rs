//! The commands, one file per family. Each that changes something goes
//! one way: gather the facts it needs (reads from S3 and Redis), make a
//! plan (`plan`, pure: the writes as steps), hand the steps to the executor
//! under the deploy lock (not in a dry run: see [`with_lock`]), and return
//! a typed outcome that renders itself as text or JSON.

pub mod deploy;
pub mod diff;
pub mod doctor;
pub mod fleet;
pub mod inspect;
pub mod keygen;
pub mod pin;
pub mod policy;
pub mod promote;
pub mod prune;
pub mod rollout;
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

    /// Where this command reads and switches: each Redis target as
    /// `host:port/db`, never its credentials (outcomes' `targets`).
    pub fn redis_targets(&self) -> Vec<String> {
        self.config
            .redis_urls
            .iter()
            .map(|u| crate::config::redis_target(u))
            .collect()
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

/// The line naming where a command switched (or would): "switched on
/// Redis 127.0.0.1:6380/0, 127.0.0.1:6381/0", so that a wrong target shows
/// in the CI log. Empty without targets.
pub fn on_redis(what: &str, targets: &[String]) -> String {
    if targets.is_empty() {
        return String::new();
    }
    format!("{what} on Redis {}\n", targets.join(", "))
}

/// `--wait-converged`'s line: `every reader process serves B (5 processes)`.
pub fn fleet_line(fleet: Option<&crate::fleet::Convergence>) -> String {
    match fleet {
        Some(c) => format!(
            "{} ({})\n",
            match c.serves {
                crate::fleet::Serves::Live => format!("every reader process serves {}", c.release),
                crate::fleet::Serves::Canary => format!(
                    "every reader process serves canary {} to its keys",
                    c.release
                ),
                crate::fleet::Serves::NoCanary => {
                    format!("no reader process serves canary {} any more", c.release)
                }
            },
            crate::fleet::processes(c.processes)
        ),
        None => String::new(),
    }
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
/// `publishes`: the command makes its manifest live, so the record must be
/// on the configured CDN (see [`record_expect`]).
pub async fn resolve_release(
    config: &Config,
    redis: &mut Registries,
    store: &S3Store,
    wanted: &str,
    publishes: bool,
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
    let record = full_record(config, store, &meta, &id, publishes).await?;
    // Redis's copy is input too: one that is not this release's sound
    // record (another id, a URL off the CDN) is damage, like unreadable
    // JSON: a switch writes the S3 record (checked above) over it.
    let mut in_redis = redis.record(&id).await?;
    if let Stored::Valid(r) = &in_redis {
        let problems = r.problems(&record_expect(config, &id, &record, publishes));
        if !problems.is_empty() {
            in_redis = Stored::Broken(format!(
                "the record of release {id} in Redis ({}) is not its own: {}",
                redis.keys().release(&id),
                problems.join("; ")
            ));
        }
    }
    Ok(Resolved { record, in_redis })
}

/// Resolve a release id or unique prefix against the S3 records alone (no
/// Redis): the full record (promote's source: its manifest is rebased onto
/// the target's CDN, which checks what it publishes).
pub async fn resolve_in_s3(
    config: &Config,
    store: &S3Store,
    wanted: &str,
) -> anyhow::Result<ReleaseRecord> {
    let wanted = checked_id(wanted)?;
    let meta = config.meta_prefix()?;
    let matches = records::ids(store, &meta, wanted).await?;
    let id = pick_one(config, wanted, matches)?;
    full_record(config, store, &meta, &id, false).await
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

/// A release's record with its file list, from S3, checked like any input
/// ([`ReleaseRecord::problems`]): exit 4 naming the record and what is wrong.
async fn full_record(
    config: &Config,
    store: &S3Store,
    meta: &str,
    id: &str,
    publishes: bool,
) -> anyhow::Result<ReleaseRecord> {
    let key = crate::contract::record_key(meta, id);
    let record = records::read(store, meta, id).await?.ok_or_else(|| {
        Failure::verification(format!(
            "release {id} has no record in s3://{}/{key}; it never finished uploading. Deploy its build again",
            store.bucket(),
        ))
    })?;
    let problems = record.problems(&record_expect(config, id, &record, publishes));
    if problems.is_empty() {
        return Ok(record);
    }
    let hint = if publishes && !problems.iter().all(|p| !p.contains("cdn_url")) {
        format!(
            "If cdn_url changed since release {id} was recorded, deploy its build again for the new CDN \
             (or run with --cdn-url {} to use it as recorded); otherwise it was written by hand or by another tool: \
             delete it and deploy the build of release {id} again",
            record.cdn_url
        )
    } else {
        format!(
            "It was written by hand or by another tool: delete it and deploy the build of release {id} again"
        )
    };
    Err(Failure::verification(format!(
        "the record s3://{}/{key} cannot be used: {}; nothing was changed. {hint}",
        store.bucket(),
        problems.join("; ")
    )))
}

/// What a record read as release `id` must agree with: the configured
/// prefix, and one CDN origin for its `cdn_url` and every URL of its
/// manifest: the configured one when the command publishes the manifest
/// (activate, rollback), else the record's own (verify, diff, promote's
/// source), so a CDN that moved since does not make old records unreadable.
fn record_expect<'a>(
    config: &'a Config,
    id: &'a str,
    record: &'a ReleaseRecord,
    publishes: bool,
) -> crate::release::RecordExpect<'a> {
    let cdn_url = match (publishes, config.cdn_url.as_deref()) {
        (true, Some(configured)) => configured,
        _ => &record.cdn_url,
    };
    crate::release::RecordExpect {
        id,
        prefix: &config.prefix,
        cdn_url,
    }
}
