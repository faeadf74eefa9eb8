//! Shakapacker / webpack-assets-manifest: `"application.js": {"src":
//! "/packs/js/application-7eeb.js", "integrity": "sha384-..."}` (or a plain
//! string), plus `entrypoints` (`{"application": {"assets": {"js": [...],
//! "css": [...]}}}`, entries strings or `{src, integrity}` objects).
//! Every string but an `integrity` is an asset path; a `src`'s sibling
//! `integrity` is checked.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{rewrite_strings, Check};

pub(super) fn shape(raw: &Value) -> bool {
    let Value::Object(top) = raw else {
        return false;
    };
    top.iter().any(|(k, v)| {
        (k == "entrypoints" && v.is_object()) || v.get("src").is_some_and(Value::is_string)
    }) && !top.values().any(|v| v.get("file").is_some())
}

pub(super) fn rewrite(check: &mut Check, mut raw: Value) -> Value {
    rewrite_strings(&mut raw, None, &mut |value, integrity| {
        check.url(value, integrity)
    });
    raw
}

/// `name` → URL of every top-level entry (strings and `{src}` objects).
pub(super) fn entries(live: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Value::Object(top) = live {
        for (k, v) in top {
            if k == "entrypoints" {
                continue;
            }
            let src = v.as_str().or_else(|| v.get("src").and_then(Value::as_str));
            if let Some(src) = src {
                out.insert(k.clone(), src.to_string());
            }
        }
    }
    out
}
