//! `cutover promote RELEASE --from staging --to production`: the release
//! that was tested, byte for byte, made live in another environment.
//!
//! The release record comes from the source's S3 records; its objects are
//! checked there (exit 4 if any is missing or corrupt). When the target
//! stores files elsewhere (bucket, prefix) they are copied server-side,
//! exactly the missing ones; when it serves them from another base URL,
//! the build's public path must allow it (relative, or already the
//! target's: it is baked into the bundles). The target's record keeps the
//! id and says where the release came from; then the target switches as
//! `activate` does, respecting its lock, and as a deploy does for its pin.

use serde::Serialize;

use super::objects::{classify, verify_release, Found};
use super::switch::{self, Ending};
use super::{resolve_in_s3, Ctx, Resolved};
use crate::config::Config;
use crate::contract::{mutable_key, record_key, Action};
use crate::error::Failure;
use crate::exec::describe;
use crate::plan::{ObjectCopy, Step};
use crate::release::{now, PromotedFrom, ReleaseFile, ReleaseRecord};
use crate::render::{bytes, count, some, Render};
use crate::store::lock::LockGuard;
use crate::store::redis::Needs;
use crate::store::s3::S3Store;
use crate::store::targets::Targets;

pub struct Request {
    pub release: String,
    /// The environments' names.
    pub from: String,
    pub to: String,
    pub switch: switch::Request,
}

#[derive(Debug, Serialize)]
pub struct Outcome {
    pub command: &'static str,
    pub app: String,
    pub dry_run: bool,
    pub outcome: Ending,
    pub release: String,
    pub from_environment: String,
    pub to_environment: String,
    /// Objects copied (or, in a dry run, to copy) into the target's storage.
    pub copied: Counted,
    /// Objects the target's storage already held with the release's bytes.
    pub already_there: usize,
    /// The release live in the target before (or, in a dry run, now).
    pub live_before: Option<String>,
    /// The writes, in order.
    pub steps: Vec<String>,
    pub pinned: Option<crate::contract::Pin>,
}

#[derive(Debug, Default, Serialize)]
pub struct Counted {
    pub files: usize,
    pub bytes: u64,
}

/// Promote with `source` and `target` the two environments' contexts.
pub async fn run(source: &Ctx, target: &Ctx, req: Request) -> anyhow::Result<Outcome> {
    let (from, to) = (&source.config, &target.config);
    let app = to.app()?.to_string();
    let (src_store, dst_store) = tokio::join!(S3Store::connect(from), S3Store::connect(to));
    let (src_store, dst_store) = (src_store?, dst_store?);

    let record = resolve_in_s3(from, &src_store, &req.release).await?;
    verify_release(
        &src_store,
        &record,
        &from.meta_prefix()?,
        from.concurrency,
        source.observer.as_ref(),
    )
    .await
    .map_err(|e| {
        Failure::verification(format!(
            "in {}: {}; nothing was promoted",
            req.from,
            crate::error::one_line(&e)
        ))
    })?;
    let promoted = for_target(&record, from, to, &req.from)?;

    // What the target's storage lacks, found before anything is written.
    let copies = if same_storage(from, to) {
        Vec::new()
    } else {
        copies_needed(target, &dst_store, &promoted, &record, from, to).await?
    };
    let mut pre: Vec<Step> = Vec::new();
    if !copies.is_empty() {
        pre.push(Step::Copy(copies.clone()));
    }
    let (src_meta, dst_meta) = (from.meta_prefix()?, to.meta_prefix()?);
    if from.bucket()? != to.bucket()? || src_meta != dst_meta {
        pre.push(Step::PutRecord {
            key: record_key(&dst_meta, &promoted.id),
            record: std::sync::Arc::new(promoted.clone()),
        });
    }

    let mut registry = Targets::connect(to).await?;
    if !req.switch.dry_run {
        registry.check_permissions(Needs::Switch).await?;
    }
    let live = registry.live().await?;
    let in_redis = registry.record(&promoted.id).await?;
    let copied = Counted {
        files: copies.len(),
        bytes: copies_bytes(&copies, &record),
    };
    let already_there = record
        .files
        .as_ref()
        .map_or(0, Vec::len)
        .saturating_sub(copies.len());
    let target_of = target.target(dst_store.bucket(), registry.keys());
    let pre_steps: Vec<String> = pre.iter().map(|s| describe(s, &target_of)).collect();
    // As a deploy: the target's lock before any write there.
    let lock = if req.switch.dry_run {
        None
    } else {
        Some(LockGuard::acquire(to, &registry, &to.actor(), target.observer.as_ref()).await?)
    };
    let resolved = Resolved {
        record: promoted,
        in_redis,
    };
    let result = promote_under(
        target,
        &dst_store,
        &mut registry,
        pre,
        lock.as_ref(),
        resolved,
        live,
        !copies.is_empty(),
        req.switch,
    )
    .await;
    if let Some(lock) = lock {
        lock.release().await;
    }
    let out = result?;
    Ok(Outcome {
        command: "promote",
        app,
        dry_run: out.dry_run,
        outcome: out.outcome,
        release: out.release,
        from_environment: req.from,
        to_environment: req.to,
        copied,
        already_there,
        live_before: out.from,
        steps: pre_steps.into_iter().chain(out.steps).collect(),
        pinned: out.pinned,
    })
}

/// Copy and record in the target (unless a dry run), then switch it.
#[allow(clippy::too_many_arguments)]
async fn promote_under(
    target: &Ctx,
    store: &S3Store,
    registry: &mut Targets,
    pre: Vec<Step>,
    lock: Option<&LockGuard>,
    resolved: Resolved,
    live: crate::state::LiveState,
    copying: bool,
    req: switch::Request,
) -> anyhow::Result<switch::Outcome> {
    if let (Some(lock), false) = (lock, pre.is_empty()) {
        target
            .executor(Some(store), None, None, Some(lock))
            .run(&pre)
            .await?;
    }
    let req = switch::Request {
        objects_planned: copying,
        ..req
    };
    switch::switch_to(
        target,
        store,
        registry,
        resolved,
        live,
        Action::Promote,
        req,
        lock,
    )
    .await
}

/// The same bucket and prefix (and endpoint): the objects are there.
fn same_storage(from: &Config, to: &Config) -> bool {
    from.bucket == to.bucket && from.prefix == to.prefix && from.s3_endpoint == to.s3_endpoint
}

/// The record as the target keeps it: the same id and files, the target's
/// storage and CDN, the live manifest pointing at the target's CDN, and
/// where it came from. Refused (exit 2) when the build's public path ties
/// it to the source's CDN.
fn for_target(
    record: &ReleaseRecord,
    from: &Config,
    to: &Config,
    from_env: &str,
) -> anyhow::Result<ReleaseRecord> {
    let (src_base, dst_base) = (from.public_url("")?, to.public_url("")?);
    if src_base != dst_base {
        match &record.public_path {
            None => {
                return Err(Failure::input(format!(
                    "release {} was recorded by a cutover that did not keep the build's public path, so it cannot be \
                     served from another CDN safely ({dst_base} instead of {src_base}); deploy the build to this environment",
                    record.id
                )))
            }
            Some(p) if !p.serves_from(&dst_base) => {
                let shown = match p {
                    crate::build::manifest::PublicPath::Page(p)
                    | crate::build::manifest::PublicPath::Asset(p) => p.as_str(),
                    crate::build::manifest::PublicPath::Unknown => "",
                };
                return Err(Failure::input(format!(
                    "release {} was built to be served from {shown:?} (its public path, baked into its files), \
                     but the target serves it from {dst_base}; build with a relative (auto) public path to promote \
                     between CDNs, or deploy a build made for the target",
                    record.id
                )));
            }
            Some(_) => {}
        }
    }
    let mut manifest = record.manifest.clone();
    crate::build::manifest::rewrite_strings(&mut manifest, None, &mut |s, _| {
        s.strip_prefix(&src_base)
            .map(|rest| format!("{dst_base}{rest}"))
    });
    Ok(ReleaseRecord {
        app: to.app()?.to_string(),
        bucket: to.bucket()?.to_string(),
        prefix: to.prefix.clone(),
        cdn_url: to.cdn_url()?.to_string(),
        manifest,
        promoted_from: Some(PromotedFrom {
            environment: from_env.to_string(),
            bucket: from.bucket()?.to_string(),
            prefix: from.prefix.clone(),
            cdn_url: from.cdn_url()?.to_string(),
            at: now().0,
            by: to.deployed_by.clone(),
        }),
        ..record.clone()
    })
}

/// Server-side copies of the objects the target's storage lacks (mutable
/// files: their content-addressed copies, which activation restores).
/// Other bytes at a key the release needs are a conflict (exit 3), as for
/// a deploy; other bytes at a content-addressed copy are corruption (4).
async fn copies_needed(
    ctx: &Ctx,
    store: &S3Store,
    promoted: &ReleaseRecord,
    record: &ReleaseRecord,
    from: &Config,
    to: &Config,
) -> anyhow::Result<Vec<ObjectCopy>> {
    let (src_meta, dst_meta) = (from.meta_prefix()?, to.meta_prefix()?);
    let found = classify(
        store,
        promoted,
        &dst_meta,
        to.concurrency,
        false,
        ctx.observer.as_ref(),
    )
    .await?;
    let mut copies = Vec::new();
    let mut conflicts = Vec::new();
    for (key, file, state) in found {
        match state {
            Found::Intact => {}
            Found::Missing => copies.push(copy_of(file, key, record, &src_meta, from)?),
            Found::Other(_) if file.mutable => {
                return Err(Failure::verification(format!(
                    "{key} in s3://{} holds other bytes than its name says (sha256 {}); delete it, then promote again",
                    store.bucket(),
                    file.sha256
                )))
            }
            Found::Other(_) => conflicts.push(key),
        }
    }
    if !conflicts.is_empty() {
        return Err(Failure::refused(format!(
            "{} in s3://{} would be overwritten with other bytes: {}; nothing was promoted",
            count(conflicts.len(), "object"),
            store.bucket(),
            some(&conflicts, 10)
        )));
    }
    Ok(copies)
}

/// The copy that puts `file` at `key` in the target, from the source.
fn copy_of(
    file: &ReleaseFile,
    key: String,
    record: &ReleaseRecord,
    src_meta: &str,
    from: &Config,
) -> anyhow::Result<ObjectCopy> {
    let headers = file.headers.clone().ok_or_else(|| {
        Failure::input(format!(
            "release {} was recorded without the headers of its files, so they cannot be copied faithfully; \
             deploy the build to this environment",
            record.id
        ))
    })?;
    let source = if file.mutable {
        mutable_key(src_meta, &file.sha256)
    } else {
        crate::contract::object_key(&record.prefix, &file.path)
    };
    Ok(ObjectCopy {
        from_bucket: Some(from.bucket()?.to_string()),
        from: source,
        to: key,
        headers,
        sha256: file.sha256.clone(),
        if_match: None,
    })
}

fn copies_bytes(copies: &[ObjectCopy], record: &ReleaseRecord) -> u64 {
    let sizes: std::collections::HashMap<&str, u64> = record
        .files
        .iter()
        .flatten()
        .map(|f| (f.sha256.as_str(), f.size))
        .collect();
    copies
        .iter()
        .map(|c| sizes.get(c.sha256.as_str()).copied().unwrap_or(0))
        .sum()
}

impl Render for Outcome {
    fn text(&self) -> String {
        let (id, app) = (&self.release, &self.app);
        let (from, to) = (&self.from_environment, &self.to_environment);
        let copied = format!(
            "{} copied from {from} ({}), {} already there",
            count(self.copied.files, "object"),
            bytes(self.copied.bytes),
            self.already_there
        );
        match self.outcome {
            Ending::Planned => {
                let mut t = format!(
                    "dry run: nothing will be changed\nwould promote {id} from {from} to {to} for {app} (live there now: {}); \
                     {} to copy ({}), {} already there\nwrites, in order ({}):\n",
                    self.live_before.as_deref().unwrap_or("none"),
                    count(self.copied.files, "object"),
                    bytes(self.copied.bytes),
                    self.already_there,
                    count(self.steps.len(), "step")
                );
                for (i, s) in self.steps.iter().enumerate() {
                    t.push_str(&format!("  {}. {s}\n", i + 1));
                }
                t
            }
            Ending::Recorded => format!(
                "release {id} promoted from {from} and recorded in {to}, but NOT activated: {to} is pinned ({}); \
                 `cutover activate {id} --unpin --env {to}` makes it live\n{copied}\n",
                self.pinned
                    .as_ref()
                    .map(super::pin::describe_pin)
                    .unwrap_or_default()
            ),
            Ending::AlreadyLive => format!("release {id} is already live in {to}; nothing to do\n"),
            Ending::Repaired | Ending::Activated => format!(
                "release {id} promoted from {from}: live in {to} for {app} (was {})\n{copied}\n",
                self.live_before.as_deref().unwrap_or("none")
            ),
        }
    }
}
