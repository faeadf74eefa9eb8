//! `cutover diff [A] [B]`: what changes between two releases, from their
//! S3 records: manifest entries and files, with sizes. By default the live
//! release against the newest recorded one (what the next activation does).

use std::collections::BTreeMap;

use serde::Serialize;

use super::{resolve_release, Ctx, Head};
use crate::build::manifest::{diff, ManifestDiff};
use crate::error::Failure;
use crate::render::{bytes, count, Render};

#[derive(Debug, Clone, Serialize)]
pub struct FileChange {
    pub path: String,
    /// Size in A (absent when added).
    pub from_size: Option<u64>,
    /// Size in B (absent when removed).
    pub to_size: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct Outcome {
    #[serde(flatten)]
    pub head: Head,
    pub from: String,
    pub to: String,
    pub manifest_diff: ManifestDiff,
    pub files_added: Vec<FileChange>,
    pub files_removed: Vec<FileChange>,
    /// Same path, other bytes.
    pub files_changed: Vec<FileChange>,
    pub files_unchanged: usize,
    /// Bytes of B minus bytes of A.
    pub bytes_delta: i64,
}

pub async fn run(ctx: &Ctx, a: Option<&str>, b: Option<&str>) -> anyhow::Result<Outcome> {
    let config = &ctx.config;
    let app = config.app()?.to_string();
    let (store, mut redis) = ctx.connect().await?;
    let a = match a {
        Some(a) => a.to_string(),
        None => redis.live().await?.current.ok_or_else(|| {
            Failure::input(format!(
                "no release is live for {app}; name two releases: `cutover diff A B`"
            ))
        })?,
    };
    let b = match b {
        Some(b) => b.to_string(),
        None => redis
            .release_ids(1)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| Failure::input(format!("no releases recorded for {app}")))?,
    };
    let a = resolve_release(config, &mut redis, &store, &a, false)
        .await?
        .record;
    let b = resolve_release(config, &mut redis, &store, &b, false)
        .await?
        .record;
    let files = |r: &crate::release::ReleaseRecord| -> BTreeMap<String, (u64, String)> {
        r.files
            .iter()
            .flatten()
            .map(|f| (f.path.clone(), (f.size, f.sha256.clone())))
            .collect()
    };
    let (fa, fb) = (files(&a), files(&b));
    let mut out = Outcome {
        head: ctx.head("diff", None)?,
        from: a.id.clone(),
        to: b.id.clone(),
        manifest_diff: diff(Some(&a.manifest), &b.manifest),
        files_added: Vec::new(),
        files_removed: Vec::new(),
        files_changed: Vec::new(),
        files_unchanged: 0,
        bytes_delta: b.bytes as i64 - a.bytes as i64,
    };
    for (path, (size, sha)) in &fb {
        let change = |from: Option<u64>| FileChange {
            path: path.clone(),
            from_size: from,
            to_size: Some(*size),
        };
        match fa.get(path) {
            None => out.files_added.push(change(None)),
            Some((old, old_sha)) if old_sha != sha => out.files_changed.push(change(Some(*old))),
            Some(_) => out.files_unchanged += 1,
        }
    }
    for (path, (size, _)) in &fa {
        if !fb.contains_key(path) {
            out.files_removed.push(FileChange {
                path: path.clone(),
                from_size: Some(*size),
                to_size: None,
            });
        }
    }
    Ok(out)
}

impl Render for Outcome {
    fn text(&self) -> String {
        let d = &self.manifest_diff;
        let mut t = format!(
            "{} -> {} ({}): {} of {}\n",
            self.from,
            self.to,
            self.head.app,
            if self.bytes_delta >= 0 { "+" } else { "-" },
            bytes(self.bytes_delta.unsigned_abs())
        );
        t.push_str(&format!(
            "manifest: {} added, {} changed, {} removed, {} unchanged\n",
            d.added.len(),
            d.changed.len(),
            d.removed.len(),
            d.unchanged
        ));
        for e in &d.added {
            t.push_str(&format!("  + {} -> {}\n", e.entry, e.url));
        }
        for c in &d.changed {
            t.push_str(&format!("  ~ {}: {} -> {}\n", c.entry, c.from, c.to));
        }
        for e in &d.removed {
            t.push_str(&format!("  - {} (was {})\n", e.entry, e.url));
        }
        t.push_str(&format!(
            "files: {} added, {} changed, {} removed, {} unchanged\n",
            self.files_added.len(),
            self.files_changed.len(),
            self.files_removed.len(),
            self.files_unchanged
        ));
        let size = |s: Option<u64>| s.map(bytes).unwrap_or_default();
        for f in &self.files_added {
            t.push_str(&format!("  + {}  {}\n", f.path, size(f.to_size)));
        }
        for f in &self.files_changed {
            t.push_str(&format!(
                "  ~ {}  {} -> {}\n",
                f.path,
                size(f.from_size),
                size(f.to_size)
            ));
        }
        for f in &self.files_removed {
            t.push_str(&format!("  - {}  {}\n", f.path, size(f.from_size)));
        }
        if self.files_added.is_empty()
            && self.files_changed.is_empty()
            && self.files_removed.is_empty()
            && d.added.is_empty()
            && d.changed.is_empty()
            && d.removed.is_empty()
        {
            t.push_str(&format!(
                "no differences ({} compared)\n",
                count(self.files_unchanged, "file")
            ));
        }
        t
    }
}
