//! `cutover prune`: delete what no kept release references. Keeps the live
//! release, the pinned one, the one `rollback` goes to, the newest N, those
//! live within D days and those recorded (never activated) younger than D
//! days, and any whose record cannot be read; never deletes what a live
//! manifest names or an object younger than the grace period; computes all
//! of it from the S3 records (the complete list), under the deploy lock, and
//! marks the prune first so that a deploy that listed before lists again.

use futures::stream::{self, StreamExt};
use serde::Serialize;

use super::{Ctx, Head};
use crate::error::Failure;
use crate::events::Event;
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
    /// Dropped releases whose records stay until their young objects can go.
    pub records_kept: Vec<String>,
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
        // Gather: every record (the complete list; one that cannot be read
        // is kept, with a warning), the listing, Redis's view.
        let ids = records::ids(&store, &meta, "").await?;
        let read: Vec<(String, anyhow::Result<Option<ReleaseRecord>>)> = stream::iter(ids)
            .map(|id| {
                let (store, meta) = (&store, &meta);
                async move {
                    let record = records::read(store, meta, &id).await;
                    (id, record)
                }
            })
            .buffer_unordered(config.concurrency)
            .collect()
            .await;
        let (mut recs, mut unreadable) = (Vec::new(), Vec::new());
        for (id, record) in read {
            match record {
                Ok(Some(r)) => recs.push(r),
                Ok(None) => {}
                // S3 unreachable is a failure; a record that does not parse is kept.
                Err(e) if crate::error::exit_code(&e) == 4 => {
                    ctx.observer.event(Event::Warning(format!(
                        "{}; release {id} is kept, with every object it may reference",
                        crate::error::one_line(&e)
                    )));
                    unreadable.push(id);
                }
                Err(e) => return Err(e),
            }
        }
        unreadable.sort();
        let listing = store
            .list(&config.list_prefix(), ctx.observer.as_ref())
            .await?;
        let history = redis.history(0).await?;
        let live = redis.live().await?;
        let pinned = live.pin.as_ref().and_then(|p| p.release.clone());
        let rolled_back = redis.rolled_back().await?;
        let rollback_target =
            crate::plan::switch::rollback_target(config.app()?, &live, &history, &rolled_back).ok();
        // What reader processes serve, live or gone (a stopped one may come back).
        let fleets = redis.fleets().await?;
        let fleet = crate::fleet::Fleet::merge(fleets.into_iter().map(|(_, f)| f));
        let served = fleet
            .serving()
            .into_iter()
            .map(|(release, r)| (release.to_string(), r.describe()))
            .collect();
        // Plan.
        let input = PruneInput {
            records: &recs,
            unreadable: &unreadable,
            live_manifests: live.each().filter_map(|(_, _, m)| m).collect(),
            cdn_url: config.cdn_url()?,
            rollback_target: rollback_target.as_deref(),
            listing: &listing,
            history: &history,
            live: live.each().filter_map(|(_, current, _)| current).collect(),
            pinned: pinned.as_deref(),
            served,
            canary: live.canary.as_ref().map(|c| c.release.as_str()),
            retired: redis.retired().await?,
            skew_max_age_ms: config.skew_max_age_secs as i64 * 1000,
            bucket: config.bucket()?,
            prefix: &config.prefix,
            meta_prefix: &meta,
            now_ms: now().1,
        };
        let plan = prune(&input, &req.options)?;
        for w in &plan.warnings {
            ctx.observer.event(Event::Warning(w.clone()));
        }
        let mark = format!("{} at {}", config.actor(), now().0);
        let steps = plan.steps(&meta, &mark);
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
            records_kept: plan.records_kept.clone(),
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
        if !self.records_kept.is_empty() {
            t.push_str(&format!(
                "kept the {} of {} until {} objects are older than the grace period ({})\n",
                if self.records_kept.len() == 1 {
                    "record"
                } else {
                    "records"
                },
                count(self.records_kept.len(), "dropped release"),
                if self.records_kept.len() == 1 {
                    "its"
                } else {
                    "their"
                },
                some(&self.records_kept, 5)
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
