//! `cutover prune`: delete what no kept release references. Keeps the live
//! release, the pinned one, the newest N, those live within D days and those
//! recorded (never activated) younger than D days; never touches objects
//! younger than the grace period; computes all of it from the S3 records
//! (the complete list), under the deploy lock.

use futures::stream::{self, StreamExt, TryStreamExt};
use serde::Serialize;

use super::{Ctx, Head};
use crate::error::Failure;
use crate::plan::prune::{prune, PruneInput, PruneOptions, Verdict};
use crate::release::{now, ReleaseRecord};
use crate::render::{bytes, count, some, Render};
use crate::store::records;
use crate::store::redis::Needs;

pub struct Request {
    pub options: PruneOptions,
    pub max_delete: usize,
    pub dry_run: bool,
}

#[derive(Debug, Serialize)]
pub struct Outcome {
    #[serde(flatten)]
    pub head: Head,
    /// Every release and why it is kept; those without reasons go.
    pub releases: Vec<Verdict>,
    pub deleted_objects: usize,
    pub deleted_bytes: u64,
    pub deleted_releases: Vec<String>,
    /// Objects under the prefix no release references (left alone unless
    /// `--include-unreferenced`).
    pub unreferenced: Vec<String>,
    /// Objects that could go but are younger than the grace period.
    pub too_young: usize,
    pub steps: Vec<String>,
    #[serde(skip)]
    over_limit: Option<usize>,
}

pub async fn run(ctx: &Ctx, req: Request) -> anyhow::Result<Outcome> {
    let config = &ctx.config;
    let meta = config.meta_prefix()?;
    let (store, mut redis) = ctx.connect().await?;
    if !req.dry_run {
        redis.check_permissions(Needs::Prune).await?;
    }
    let head = ctx.head("prune", Some(req.dry_run))?;
    super::with_lock(ctx, &mut redis, !req.dry_run, async |redis, lock| {
        // Gather: every record (the complete list), the listing, Redis's view.
        let ids = records::ids(&store, &meta, "").await?;
        let recs: Vec<ReleaseRecord> = stream::iter(ids)
            .map(|id| {
                let (store, meta) = (&store, &meta);
                async move { records::read(store, meta, &id).await }
            })
            .buffer_unordered(config.concurrency)
            .try_filter_map(|r| async move { Ok(r) })
            .try_collect()
            .await?;
        let listing = store
            .list(&config.list_prefix(), ctx.observer.as_ref())
            .await?;
        let history = redis.history(0).await?;
        let live = redis.live().await?;
        let pinned = live.pin.as_ref().and_then(|p| p.release.clone());
        // Plan.
        let input = PruneInput {
            records: &recs,
            listing: &listing,
            history: &history,
            live: live.each().filter_map(|(_, current, _)| current).collect(),
            pinned: pinned.as_deref(),
            bucket: config.bucket()?,
            prefix: &config.prefix,
            meta_prefix: &meta,
            now_ms: now().1,
        };
        let plan = prune(&input, &req.options);
        let steps = plan.steps(&meta);
        let described = ctx.describe(store.bucket(), redis.keys(), &steps);
        let over_limit = (plan.delete.len() > req.max_delete).then_some(req.max_delete);
        // Execute, unless a dry run or over the limit.
        match (over_limit, lock) {
            (Some(max), Some(_)) => {
                return Err(Failure::refused(format!(
                    "prune would delete {}, more than --max-delete {max}; nothing was deleted. \
                     Check `cutover prune --dry-run`, then raise --max-delete",
                    count(plan.delete.len(), "object")
                )))
            }
            (None, Some(lock)) => {
                ctx.executor(Some(&store), Some(redis), None, Some(lock))
                    .run(&steps)
                    .await?;
            }
            (_, None) => {}
        }
        Ok(Outcome {
            head,
            deleted_objects: plan.delete.len(),
            deleted_bytes: plan.bytes,
            deleted_releases: plan.dropped().map(|v| v.id.clone()).collect(),
            unreferenced: plan.unreferenced.clone(),
            too_young: plan.too_young.len(),
            releases: plan.releases,
            steps: described,
            over_limit,
        })
    })
    .await
}

impl Render for Outcome {
    fn text(&self) -> String {
        let mut t = String::new();
        let verb = if self.head.dry_run() {
            "would delete"
        } else {
            "deleted"
        };
        if self.head.dry_run() {
            t.push_str("dry run: nothing will be changed\n");
        }
        for v in &self.releases {
            if v.kept_because.is_empty() {
                t.push_str(&format!("  - {}  {}  ({verb})\n", v.id, v.created_at));
            } else {
                t.push_str(&format!(
                    "  = {}  {}  kept: {}\n",
                    v.id,
                    v.created_at,
                    v.kept_because.join(", ")
                ));
            }
        }
        t.push_str(&format!(
            "{verb} {} ({}) and {}\n",
            count(self.deleted_objects, "object"),
            bytes(self.deleted_bytes),
            count(self.deleted_releases.len(), "release record")
        ));
        if self.too_young > 0 {
            t.push_str(&format!(
                "kept {} younger than the grace period\n",
                count(self.too_young, "object")
            ));
        }
        if !self.unreferenced.is_empty() {
            t.push_str(&format!(
                "left {} no release references ({}); --include-unreferenced deletes them\n",
                count(self.unreferenced.len(), "object"),
                some(&self.unreferenced, 5)
            ));
        }
        if let Some(max) = self.over_limit {
            t.push_str(&format!(
                "a prune would refuse: more than --max-delete {max} objects (exit 3)\n"
            ));
        }
        if self.head.dry_run() && !self.steps.is_empty() {
            t.push_str("writes, in order:\n");
            for (i, s) in self.steps.iter().enumerate() {
                t.push_str(&format!("  {}. {s}\n", i + 1));
            }
        }
        t
    }

    fn exit_code(&self) -> u8 {
        if self.over_limit.is_some() {
            3
        } else {
            0
        }
    }
}
