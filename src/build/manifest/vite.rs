//! Vite's manifest (`build.manifest: true`, `.vite/manifest.json` since
//! Vite 5), as vite_ruby reads it: one object per chunk or asset, keyed by
//! its source path relative to Vite's root:
//!
//! ```json
//! "entrypoints/application.js": {"file": "assets/application-B9Dv.js", "name": "...",
//!   "src": "entrypoints/application.js", "isEntry": true,
//!   "imports": ["_greeting-C9Zg.js"], "dynamicImports": ["lazy/report.js"],
//!   "css": ["assets/application-DcRR.css"], "assets": ["assets/logo-DYY8.svg"]}
//! ```
//!
//! `file`, `css` and `assets` are asset paths, relative to the build
//! directory (`outDir`); `imports` and `dynamicImports` name other keys of
//! the manifest (kept as they are, and checked to exist); `src`, `name`,
//! `names`, `isEntry`, `isDynamicEntry` and anything else are metadata.
//! vite-plugin-ruby writes `.vite/manifest-assets.json` beside it (the
//! images and other files of its `additionalEntrypoints`, same shape);
//! vite_ruby merges the two, and so does the live manifest.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{scan, Build, Check, PublicPath};

/// Where Vite 5+ writes the manifest inside `outDir`.
pub const MANIFEST: &str = ".vite/manifest.json";
/// The other manifest files Vite and vite-plugin-ruby write beside it. None
/// is uploaded: the first is published through the live manifest, the
/// second (`build.ssrManifest`) is for a server-side renderer's own build.
pub const COMPANIONS: [&str; 3] = ["manifest.json", "manifest-assets.json", "ssr-manifest.json"];
const ASSETS_MANIFEST: &str = "manifest-assets.json";

/// Every value an object with a `file`.
pub(super) fn shape(raw: &Value) -> bool {
    raw.as_object().is_some_and(|m| {
        !m.is_empty()
            && m.values()
                .all(|v| v.get("file").is_some_and(Value::is_string))
    })
}

/// The manifest, with vite-plugin-ruby's `manifest-assets.json` beside it
/// merged in (its keys win, as in vite_ruby's `Hash#merge`).
pub(super) fn with_companion(build: &Build, path: &str, raw: Value) -> anyhow::Result<Value> {
    let (dir, name) = match path.rsplit_once('/') {
        Some((d, n)) => (format!("{d}/"), n),
        None => (String::new(), path),
    };
    let companion = format!("{dir}{ASSETS_MANIFEST}");
    if name == ASSETS_MANIFEST || build.get(&companion).is_none() {
        return Ok(raw);
    }
    let extra = super::read_json(build, &companion)?;
    let (Value::Object(mut top), Value::Object(extra)) = (raw.clone(), extra) else {
        return Ok(raw);
    };
    for (k, v) in extra {
        top.insert(k, v);
    }
    Ok(Value::Object(top))
}

/// vite/rollup `[hash]`: the last 8 characters of the name before its
/// extension, after a `-` or `.`, base64url, not all lowercase letters.
fn rollup_hashed(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    let stem = match name.rfind('.') {
        Some(0) | None => return false,
        Some(i) => &name[..i],
    };
    let Some(split) = stem.len().checked_sub(9) else {
        return false;
    };
    let (sep, hash) = (stem.as_bytes()[split], &stem[split + 1..]);
    matches!(sep, b'-' | b'.')
        && hash
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !hash.bytes().all(|b| b.is_ascii_lowercase())
}

pub(super) fn rewrite(check: &mut Check, mut raw: Value) -> Value {
    let keys: BTreeSet<String> = raw
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let Value::Object(top) = &mut raw else {
        return raw;
    };
    for (key, entry) in top.iter_mut() {
        let Value::Object(entry) = entry else {
            continue;
        };
        for (field, value) in entry.iter_mut() {
            match (field.as_str(), value) {
                ("file", Value::String(s)) => url(check, s),
                ("css" | "assets", Value::Array(items)) => {
                    for item in items {
                        match item {
                            Value::String(s) => url(check, s),
                            other => {
                                check.problem(format!("{key:?}: {field} holds {other}, not a path"))
                            }
                        }
                    }
                }
                ("css" | "assets", other) => {
                    check.problem(format!("{key:?}: {field} is {other}, not a list of paths"))
                }
                ("imports" | "dynamicImports", Value::Array(items)) => {
                    for item in items.iter() {
                        if !item.as_str().is_some_and(|k| keys.contains(k)) {
                            check.problem(format!(
                                "{key:?}: {field} names {item}, which is not an entry of the manifest"
                            ));
                        }
                    }
                }
                ("imports" | "dynamicImports", other) => check.problem(format!(
                    "{key:?}: {field} is {other}, not a list of manifest entries"
                )),
                _ => {}
            }
        }
    }
    raw
}

fn url(check: &mut Check, s: &mut String) {
    if rollup_hashed(s) {
        check.fingerprinted(s);
    }
    if let Some(u) = check.url(s, None) {
        *s = u;
    }
}

/// Vite's `base`, as the build shows it: the preload helper of its chunks
/// (used in the page), else its stylesheets' `url()`s.
pub(super) fn public_path(build: &Build, live: &Value) -> PublicPath {
    let Value::Object(top) = live else {
        return PublicPath::Unknown;
    };
    // The live manifest holds URLs now; the build's own names are what
    // the URLs end with.
    let names = |field: &str| -> Vec<String> {
        top.values()
            .filter_map(|e| e.get(field))
            .flat_map(|v| match v {
                Value::String(s) => vec![s.clone()],
                Value::Array(a) => a
                    .iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect(),
                _ => vec![],
            })
            .filter_map(|url| super::resolve(build, &url).ok().map(|(f, _)| f))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    };
    let files = names("file");
    // Rollup puts the helper at the top of the chunk that holds it.
    for js in files
        .iter()
        .filter(|f| f.ends_with(".js"))
        .take(scan::MAX_FILES)
    {
        if let Some(base) = scan::text(build, js).and_then(|t| scan::vite_preload_base(&t)) {
            return if scan::is_absolute(&base) {
                PublicPath::Page(base)
            } else {
                PublicPath::Unknown
            };
        }
    }
    let mut css = names("css");
    css.extend(files.into_iter().filter(|f| f.ends_with(".css")));
    match super::most_common(scan::css_prefixes(build, css.iter().map(String::as_str))) {
        Some(p) if !p.is_empty() => PublicPath::Page(p),
        _ => PublicPath::Unknown,
    }
}

/// `key` → URL of its `file`, for every key.
pub(super) fn entries(live: &Value) -> BTreeMap<String, String> {
    live.as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.get("file")?.as_str()?.to_string())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollup_hashes_are_recognised() {
        for yes in [
            "assets/application-B9DvbQ2O.js",
            "assets/report-w-un2-Hk.js",
            "assets/application-DcRRUQW_.css",
            "assets/logo-DYY8erma.svg",
            "assets/index.1a0febdc.js",
            "assets/a-12345678.js",
        ] {
            assert!(rollup_hashed(yes), "{yes}");
        }
        for no in [
            "assets/app-settings.js",
            "assets/application.js",
            "robots.txt",
            ".vite/manifest.json",
        ] {
            assert!(!rollup_hashed(no), "{no}");
        }
    }
}
