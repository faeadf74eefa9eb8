//! Planning a prune, pure: which releases to keep and why, which objects no
//! kept release references, and the writes that delete them.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::Step;
use crate::contract::{object_key, record_key, ActivationEvent};
use crate::release::ReleaseRecord;
use crate::state::Listing;

/// What to keep, as asked.
#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// Keep the newest N releases.
    pub keep: usize,
    /// Keep releases live within this many days, and releases recorded (never
    /// activated) younger than this.
    pub keep_days: u64,
    /// Never delete an object younger than this (an in-flight deploy's uploads).
    pub grace_ms: i64,
    /// Also delete objects no release ever referenced (uploaded by other tools).
    pub include_unreferenced: bool,
}

/// The facts a prune is planned from.
pub struct PruneInput<'a> {
    /// Every release recorded in S3, with its file list.
    pub records: &'a [ReleaseRecord],
    /// One listing of the public prefix.
    pub listing: &'a Listing,
    pub history: &'a [ActivationEvent],
    /// The live release of each Redis target (several differ while split).
    pub live: Vec<&'a str>,
    /// The release live under the pin, if pinned.
    pub pinned: Option<&'a str>,
    pub bucket: &'a str,
    pub prefix: &'a str,
    pub meta_prefix: &'a str,
    pub now_ms: i64,
}

/// A release and why it is kept (empty: it goes).
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub id: String,
    pub created_at: String,
    pub kept_because: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PrunePlan {
    pub releases: Vec<Verdict>,
    /// Objects only dropped releases reference, old enough to delete.
    pub delete: Vec<String>,
    /// Objects no release references: deleted only with `--include-unreferenced`.
    pub unreferenced: Vec<String>,
    /// Objects that could go but are younger than the grace period.
    pub too_young: Vec<String>,
    pub bytes: u64,
}

impl PrunePlan {
    pub fn dropped(&self) -> impl Iterator<Item = &Verdict> {
        self.releases.iter().filter(|v| v.kept_because.is_empty())
    }

    /// The writes: delete the objects, then the dropped releases' records
    /// (S3 and Redis).
    pub fn steps(&self, meta_prefix: &str) -> Vec<Step> {
        let mut steps = Vec::new();
        if !self.delete.is_empty() {
            steps.push(Step::Delete(self.delete.clone()));
        }
        let ids: Vec<String> = self.dropped().map(|v| v.id.clone()).collect();
        if !ids.is_empty() {
            steps.push(Step::DeleteRecords {
                keys: ids.iter().map(|id| record_key(meta_prefix, id)).collect(),
                ids,
            });
        }
        steps
    }
}

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// Decide what a prune keeps and deletes.
pub fn prune(input: &PruneInput, opts: &PruneOptions) -> PrunePlan {
    let window_start = input.now_ms - opts.keep_days as i64 * DAY_MS;
    let live_recently = live_since(input.history, window_start);
    let mut by_age: Vec<&ReleaseRecord> = input.records.iter().collect();
    by_age.sort_by_key(|r| std::cmp::Reverse(r.created_at_ms));
    let activated: BTreeSet<&str> = input
        .history
        .iter()
        .flat_map(|e| std::iter::once(e.release.as_str()).chain(e.previous.as_deref()))
        .collect();

    let mut releases = Vec::new();
    for (rank, r) in by_age.iter().enumerate() {
        let mut why = Vec::new();
        if input.live.contains(&r.id.as_str()) {
            why.push("live".to_string());
        }
        if input.pinned == Some(r.id.as_str()) {
            why.push("pinned".to_string());
        }
        if rank < opts.keep {
            why.push(format!("among the newest {}", opts.keep));
        }
        if live_recently.contains(r.id.as_str()) {
            why.push(format!("live within {} days", opts.keep_days));
        }
        if !activated.contains(r.id.as_str()) && r.created_at_ms >= window_start {
            why.push(format!(
                "recorded, never activated, younger than {} days",
                opts.keep_days
            ));
        }
        if r.bucket != input.bucket || r.prefix != input.prefix {
            why.push(format!("recorded for s3://{}/{}", r.bucket, r.prefix));
        }
        releases.push(Verdict {
            id: r.id.clone(),
            created_at: r.created_at.clone(),
            kept_because: why,
        });
    }
    let kept: BTreeSet<&str> = releases
        .iter()
        .filter(|v| !v.kept_because.is_empty())
        .map(|v| v.id.as_str())
        .collect();

    // key -> referenced by a kept release?
    let mut referenced: BTreeMap<String, bool> = BTreeMap::new();
    for r in input.records {
        let keep = kept.contains(r.id.as_str());
        for f in r.files.iter().flatten() {
            let e = referenced
                .entry(object_key(&r.prefix, &f.path))
                .or_insert(false);
            *e |= keep;
        }
    }
    let mut plan = PrunePlan {
        releases,
        delete: Vec::new(),
        unreferenced: Vec::new(),
        too_young: Vec::new(),
        bytes: 0,
    };
    for (key, obj) in input.listing {
        if key.starts_with(input.meta_prefix) {
            continue;
        }
        let old_enough = obj.modified_ms < input.now_ms - opts.grace_ms;
        match referenced.get(key) {
            Some(true) => {}
            Some(false) | None if !old_enough => plan.too_young.push(key.clone()),
            Some(false) => {
                plan.bytes += obj.size;
                plan.delete.push(key.clone());
            }
            None if opts.include_unreferenced => {
                plan.bytes += obj.size;
                plan.delete.push(key.clone());
            }
            None => plan.unreferenced.push(key.clone()),
        }
    }
    plan.delete.sort();
    plan.unreferenced.sort();
    plan.too_young.sort();
    plan
}

/// Releases that were live at some time since `since_ms`, from the history.
fn live_since(history: &[ActivationEvent], since_ms: i64) -> BTreeSet<&str> {
    let mut out = BTreeSet::new();
    for e in history {
        let at = time::OffsetDateTime::parse(&e.at, &time::format_description::well_known::Rfc3339)
            .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
            .unwrap_or(i64::MAX);
        if at >= since_ms {
            // Live from this event on, and the one it replaced until then.
            out.insert(e.release.as_str());
            if let Some(p) = e.previous.as_deref() {
                out.insert(p);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::ReleaseFile;
    use crate::state::RemoteObject;

    fn record(id: &str, created_ms: i64, paths: &[&str]) -> ReleaseRecord {
        ReleaseRecord {
            id: id.into(),
            app: "shop".into(),
            created_at: format!("t{created_ms}"),
            created_at_ms: created_ms,
            file_count: paths.len(),
            bytes: 0,
            git_sha: None,
            git_branch: None,
            build_url: None,
            deployed_by: None,
            message: None,
            bucket: "b".into(),
            prefix: "packs".into(),
            cdn_url: "https://cdn".into(),
            manifest: serde_json::json!({}),
            public_path: None,
            promoted_from: None,
            signature: None,
            files: Some(
                paths
                    .iter()
                    .map(|p| ReleaseFile {
                        path: p.to_string(),
                        size: 1,
                        sha256: String::new(),
                        md5: None,
                        etag: String::new(),
                        headers: None,
                        mutable: false,
                    })
                    .map(std::sync::Arc::new)
                    .collect(),
            ),
        }
    }

    fn event(release: &str, previous: Option<&str>, at: &str) -> ActivationEvent {
        ActivationEvent {
            release: release.into(),
            previous: previous.map(str::to_string),
            action: "deploy".into(),
            at: at.into(),
            by: None,
            message: None,
        }
    }

    #[test]
    fn keeps_what_must_stay_and_deletes_only_old_unshared_objects() {
        let now = 100 * DAY_MS;
        let old = now - 30 * DAY_MS;
        let records = vec![
            record("a", old, &["shared.js", "a.js"]),
            record("b", old + 1, &["shared.js", "b.js"]),
            record("c", old + 2, &["shared.js", "c.js"]),
            record("d", now - DAY_MS, &["d.js"]),
        ];
        let listed = |ms| RemoteObject {
            size: 10,
            etag: String::new(),
            modified_ms: ms,
        };
        let listing: Listing = [
            ("packs/shared.js", old),
            ("packs/a.js", old),
            ("packs/b.js", old),
            ("packs/c.js", now - 60_000),
            ("packs/d.js", now - DAY_MS),
            ("packs/robots.txt", old),
            ("_cutover/shop/releases/a.json", old),
        ]
        .into_iter()
        .map(|(k, ms)| (k.to_string(), listed(ms)))
        .collect();
        // c was live 40 days ago; b is live; d was recorded, never activated.
        let history = vec![
            event("b", Some("c"), "1970-02-10T00:00:00Z"),
            event("c", Some("a"), "1970-02-09T00:00:00Z"),
        ];
        let input = PruneInput {
            records: &records,
            listing: &listing,
            history: &history,
            live: vec!["b"],
            pinned: None,
            bucket: "b",
            prefix: "packs",
            meta_prefix: "_cutover/shop/",
            now_ms: now,
        };
        let opts = PruneOptions {
            keep: 1,
            keep_days: 7,
            grace_ms: 3_600_000,
            include_unreferenced: false,
        };
        let plan = prune(&input, &opts);
        let dropped: Vec<&str> = plan.dropped().map(|v| v.id.as_str()).collect();
        assert_eq!(dropped, ["c", "a"]);
        // a.js is old and only a used it; c.js is too young; shared.js is b's too.
        assert_eq!(plan.delete, ["packs/a.js"]);
        assert_eq!(plan.too_young, ["packs/c.js"]);
        assert_eq!(plan.unreferenced, ["packs/robots.txt"]);
        let why = |id: &str| {
            plan.releases
                .iter()
                .find(|v| v.id == id)
                .unwrap()
                .kept_because
                .join(", ")
        };
        assert_eq!(why("b"), "live");
        assert!(why("d").contains("among the newest 1") && why("d").contains("never activated"));
        let steps = plan.steps("_cutover/shop/");
        assert!(matches!(&steps[0], Step::Delete(k) if k == &["packs/a.js"]));
        assert!(
            matches!(&steps[1], Step::DeleteRecords { ids, keys } if ids == &["c", "a"] && keys[0] == "_cutover/shop/releases/c.json")
        );

        // Within the window, c stays; unreferenced objects go when asked.
        let wide = PruneOptions {
            keep_days: 60,
            include_unreferenced: true,
            ..opts
        };
        let plan = prune(&input, &wide);
        assert!(plan.dropped().all(|v| v.id == "a"));
        assert!(plan.delete.contains(&"packs/robots.txt".to_string()));
    }
}
