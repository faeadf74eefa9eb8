//! The live manifest's entries, and what changes between two of them.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::{propshaft, shakapacker, sprockets, vite, Format};

/// Logical entries of a live manifest (`application.js` → URL), for diffs.
/// The format is read from the shape: a live manifest of an older release
/// may be of another format than the build's.
pub fn entries(live: &Value) -> BTreeMap<String, String> {
    match Format::detect(live, "") {
        Some(Format::Sprockets) => sprockets::entries(live),
        Some(Format::Vite) => vite::entries(live),
        Some(Format::Propshaft) => propshaft::entries(live),
        _ => shakapacker::entries(live),
    }
}

/// A manifest entry and its URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub entry: String,
    pub url: String,
}

/// A manifest entry whose URL changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub entry: String,
    pub from: String,
    pub to: String,
}

/// What changes in the live manifest, entry by entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ManifestDiff {
    pub added: Vec<Entry>,
    pub changed: Vec<Change>,
    pub removed: Vec<Entry>,
    pub unchanged: usize,
}

pub fn diff(old: Option<&Value>, new: &Value) -> ManifestDiff {
    let old = old.map(entries).unwrap_or_default();
    let new = entries(new);
    let mut d = ManifestDiff::default();
    for (k, v) in &new {
        match old.get(k) {
            None => d.added.push(Entry {
                entry: k.clone(),
                url: v.clone(),
            }),
            Some(o) if o != v => d.changed.push(Change {
                entry: k.clone(),
                from: o.clone(),
                to: v.clone(),
            }),
            Some(_) => d.unchanged += 1,
        }
    }
    for (k, v) in &old {
        if !new.contains_key(k) {
            d.removed.push(Entry {
                entry: k.clone(),
                url: v.clone(),
            });
        }
    }
    d
}
