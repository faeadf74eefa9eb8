//! Planning a prune, pure: which releases to keep and why, which objects no
//! kept release references, and the writes that delete them.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::Step;
use crate::contract::{key_of_url, object_key, record_key, ActivationEvent};
use crate::error::Failure;
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
    /// Every release recorded in S3 that could be read, with its file list.
    pub records: &'a [ReleaseRecord],
    /// The ids of records that could not be read: kept, with every object
    /// they may reference (they could reference any).
    pub unreadable: &'a [String],
    /// The manifest each Redis target serves: every URL in it under the CDN
    /// is a reference, whatever the records say.
    pub live_manifests: Vec<&'a serde_json::Value>,
    /// The CDN base URL the live manifests point at.
    pub cdn_url: &'a str,
    /// The release `cutover rollback` would go to now.
    pub rollback_target: Option<&'a str>,
    /// One listing of the public prefix.
    pub listing: &'a Listing,
    pub history: &'a [ActivationEvent],
    /// The live release of each Redis target (several differ while split).
    pub live: Vec<&'a str>,
    /// The release live under the pin, if pinned.
    pub pinned: Option<&'a str>,
    /// Releases reader processes report serving (docs/redis.md, "The
    /// fleet"), live or gone, with one such process described each: a
    /// process may still serve a release Redis no longer names.
    pub served: BTreeMap<String, String>,
    /// The canary of a running rollout.
    pub canary: Option<&'a str>,
    /// Releases that stopped being served, and when (ms): kept while
    /// younger than `skew_max_age_ms` (pages rendered with one may still
    /// ask for its assets).
    pub retired: BTreeMap<String, i64>,
    pub skew_max_age_ms: i64,
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
    /// Dropped releases whose records stay until their objects that are
    /// younger than the grace period can go too (a later prune deletes
    /// them; without the record they would look unreferenced).
    pub records_kept: Vec<String>,
    pub bytes: u64,
    /// Why `--include-unreferenced` deletes nothing this time, if so.
    pub warnings: Vec<String>,
}

impl PrunePlan {
    /// The releases whose records go.
    pub fn dropped(&self) -> impl Iterator<Item = &Verdict> {
        self.releases
            .iter()
            .filter(|v| v.kept_because.is_empty() && !self.records_kept.contains(&v.id))
    }

    /// The writes: mark the prune (a deploy that listed before lists
    /// again), delete the objects, then the dropped releases' records (S3
    /// and Redis).
    pub fn steps(&self, meta_prefix: &str, mark: &str) -> Vec<Step> {
        let mut steps = Vec::new();
        let ids: Vec<String> = self.dropped().map(|v| v.id.clone()).collect();
        if !self.delete.is_empty() || !ids.is_empty() {
            steps.push(Step::MarkPruned(mark.to_string()));
        }
        if !self.delete.is_empty() {
            steps.push(Step::Delete(self.delete.clone()));
        }
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

/// Decide what a prune keeps and deletes. Refused (exit 3) when the
/// records cannot account for a live release's files: its record missing
/// or without its file list, an object it uses could look unreferenced.
pub fn prune(input: &PruneInput, opts: &PruneOptions) -> anyhow::Result<PrunePlan> {
    for live in &input.live {
        let accounted = input
            .records
            .iter()
            .any(|r| r.id == *live && r.files.is_some());
        if !accounted {
            return Err(Failure::refused(format!(
                "the live release {live} has no readable record with its file list in the records prefix \
                 ({}), so prune cannot tell which objects it uses; nothing was deleted. \
                 `cutover deploy` of its build writes the record again",
                input.meta_prefix
            )));
        }
    }
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
        if input.rollback_target == Some(r.id.as_str()) {
            why.push("`cutover rollback` goes to it".to_string());
        }
        if input.canary == Some(r.id.as_str()) {
            why.push("the canary of the running rollout".to_string());
        }
        if let Some(at) = input.retired.get(&r.id) {
            if input.now_ms - at < input.skew_max_age_ms {
                why.push(format!(
                    "retired {} ago, inside skew_max_age ({}s): pages rendered with it may still ask for its assets",
                    crate::render::duration_ms(input.now_ms - at),
                    input.skew_max_age_ms / 1000
                ));
            }
        }
        if let Some(process) = input.served.get(&r.id) {
            why.push(format!("a reader process serves it: {process}"));
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
    for id in input.unreadable {
        releases.push(Verdict {
            id: id.clone(),
            created_at: String::new(),
            kept_because: vec!["its record cannot be read".to_string()],
        });
    }
    let kept: BTreeSet<&str> = releases
        .iter()
        .filter(|v| !v.kept_because.is_empty())
        .map(|v| v.id.as_str())
        .collect();

    // key -> referenced by a kept release? And which releases reference it.
    let mut referenced: BTreeMap<String, bool> = BTreeMap::new();
    let mut users: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for r in input.records {
        let keep = kept.contains(r.id.as_str());
        for f in r.files.iter().flatten() {
            let key = object_key(&r.prefix, &f.path);
            users.entry(key.clone()).or_default().push(r.id.as_str());
            *referenced.entry(key).or_insert(false) |= keep;
        }
        // A kept release's manifest references what it names, whatever its
        // file list says.
        if keep {
            for key in manifest_keys(&r.manifest, &r.cdn_url) {
                referenced.insert(key, true);
            }
        }
    }
    // What Redis serves is referenced, whatever the records say.
    for manifest in &input.live_manifests {
        for key in manifest_keys(manifest, input.cdn_url) {
            referenced.insert(key, true);
        }
    }
    let mut plan = PrunePlan {
        releases,
        delete: Vec::new(),
        unreferenced: Vec::new(),
        too_young: Vec::new(),
        records_kept: Vec::new(),
        bytes: 0,
        warnings: Vec::new(),
    };
    // An unreadable record may reference any object no readable one does.
    let unreferenced_may_go = opts.include_unreferenced && input.unreadable.is_empty();
    if opts.include_unreferenced && !unreferenced_may_go {
        plan.warnings.push(format!(
            "--include-unreferenced deletes nothing this time: {} cannot be read ({}), and may reference any object",
            crate::render::count(input.unreadable.len(), "release record"),
            crate::render::some(input.unreadable, 5)
        ));
    }
    let mut young_users: BTreeSet<&str> = BTreeSet::new();
    for (key, obj) in input.listing {
        if key.starts_with(input.meta_prefix) {
            continue;
        }
        let old_enough = obj.modified_ms < input.now_ms - opts.grace_ms;
        match referenced.get(key) {
            Some(true) => {}
            Some(false) | None if !old_enough => {
                plan.too_young.push(key.clone());
                young_users.extend(users.get(key).into_iter().flatten());
            }
            Some(false) => {
                plan.bytes += obj.size;
                plan.delete.push(key.clone());
            }
            None if unreferenced_may_go => {
                plan.bytes += obj.size;
                plan.delete.push(key.clone());
            }
            None => plan.unreferenced.push(key.clone()),
        }
    }
    plan.records_kept = plan
        .releases
        .iter()
        .filter(|v| v.kept_because.is_empty() && young_users.contains(v.id.as_str()))
        .map(|v| v.id.clone())
        .collect();
    plan.delete.sort();
    plan.unreferenced.sort();
    plan.too_young.sort();
    Ok(plan)
}

/// The keys of the objects a manifest names: every string in it that is a
/// URL under `cdn_url`, whatever the format.
fn manifest_keys(manifest: &serde_json::Value, cdn_url: &str) -> Vec<String> {
    fn walk(v: &serde_json::Value, cdn_url: &str, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) => out.extend(key_of_url(cdn_url, s)),
            serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, cdn_url, out)),
            serde_json::Value::Object(map) => map.values().for_each(|i| walk(i, cdn_url, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(manifest, cdn_url, &mut out);
    out
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
            git_committed_at: None,
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
                        composite_sha256: None,
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
            percent: None,
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
            unreadable: &[],
            live_manifests: Vec::new(),
            cdn_url: "https://cdn",
            rollback_target: None,
            listing: &listing,
            history: &history,
            live: vec!["b"],
            pinned: None,
            served: BTreeMap::new(),
            canary: None,
            retired: BTreeMap::new(),
            skew_max_age_ms: 86_400_000,
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
        let plan = prune(&input, &opts).unwrap();
        // c goes too, but its record stays until its young c.js can go:
        // without it, c.js would look unreferenced to every later prune.
        let dropped: Vec<&str> = plan.dropped().map(|v| v.id.as_str()).collect();
        assert_eq!(dropped, ["a"]);
        assert_eq!(plan.records_kept, ["c"]);
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
        let steps = plan.steps("_cutover/shop/", "mark");
        assert!(matches!(&steps[0], Step::MarkPruned(m) if m == "mark"));
        assert!(matches!(&steps[1], Step::Delete(k) if k == &["packs/a.js"]));
        assert!(
            matches!(&steps[2], Step::DeleteRecords { ids, keys } if ids == &["a"] && keys[0] == "_cutover/shop/releases/a.json")
        );

        // Within the window, c stays; unreferenced objects go when asked.
        let wide = PruneOptions {
            keep_days: 60,
            include_unreferenced: true,
            ..opts
        };
        let plan = prune(&input, &wide).unwrap();
        assert!(plan.dropped().all(|v| v.id == "a"));
        assert!(plan.delete.contains(&"packs/robots.txt".to_string()));

        // What Redis serves is never deleted, whatever the records say:
        // robots.txt is in the live manifest (percent-encoded as published).
        let live_manifest = serde_json::json!({"robots.txt": "https://cdn/packs/robots%2Etxt"});
        let serving = PruneInput {
            live_manifests: vec![&live_manifest],
            ..input
        };
        let plan = prune(&serving, &wide).unwrap();
        assert!(
            !plan.delete.contains(&"packs/robots.txt".to_string()),
            "{:?}",
            plan.delete
        );

        // The release `rollback` would go to is kept, and says why.
        let rollback = PruneInput {
            rollback_target: Some("a"),
            ..serving
        };
        let plan = prune(&rollback, &opts).unwrap();
        assert!(plan.dropped().all(|v| v.id != "a"));
        assert!(plan.delete.is_empty(), "{:?}", plan.delete);

        // A release a reader process still serves is kept, naming it.
        let served = PruneInput {
            served: BTreeMap::from([("a".to_string(), "web-3:1234 (on a)".to_string())]),
            rollback_target: None,
            ..rollback
        };
        let plan = prune(&served, &opts).unwrap();
        assert!(plan.dropped().all(|v| v.id != "a"));
        assert!(plan.delete.is_empty(), "{:?}", plan.delete);
        let a = plan.releases.iter().find(|v| v.id == "a").unwrap();
        assert_eq!(
            a.kept_because,
            ["a reader process serves it: web-3:1234 (on a)"]
        );
        let rollback = PruneInput {
            served: BTreeMap::new(),
            canary: None,
            retired: BTreeMap::new(),
            skew_max_age_ms: 86_400_000,
            rollback_target: Some("a"),
            ..served
        };

        // An unreadable record is kept, and may reference any object no
        // readable one does: nothing unreferenced goes.
        let unreadable = ["zz".to_string()];
        let blind = PruneInput {
            unreadable: &unreadable,
            rollback_target: None,
            ..rollback
        };
        let plan = prune(&blind, &wide).unwrap();
        assert!(plan
            .releases
            .iter()
            .any(|v| v.id == "zz" && !v.kept_because.is_empty()));
        assert!(!plan.delete.contains(&"packs/robots.txt".to_string()));
        assert_eq!(plan.warnings.len(), 1, "{:?}", plan.warnings);

        // A live release whose record lost its file list: refused (exit 3).
        let mut listless = records.clone();
        listless.iter_mut().find(|r| r.id == "b").unwrap().files = None;
        let unaccounted = PruneInput {
            records: &listless,
            ..blind
        };
        let e = prune(&unaccounted, &opts).unwrap_err();
        assert_eq!(crate::error::exit_code(&e), 3);
        assert!(e.to_string().contains("live release b"), "{e}");
    }
}
