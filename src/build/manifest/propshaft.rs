//! Propshaft's `.manifest.json` (1.2 and later): `"application.js":
//! {"digested_path": "application-7eeb1a2c.js", "integrity": "sha384-..."}`
//! per logical path (`integrity` null unless
//! `config.assets.integrity_hash_algorithm` is set); older versions wrote
//! `"application.js": "application-7eeb1a2c.js"`, which Propshaft still reads.
//! `digested_path` (or the string) is an asset path relative to the build
//! directory (`public/assets`); `integrity` is checked; other keys are kept.

use std::collections::BTreeMap;

use serde_json::Value;

use super::Check;

pub const MANIFEST: &str = ".manifest.json";

/// Every value `{"digested_path": ...}` or a string, at least one of them
/// an object, or all strings in a file called `.manifest.json`.
pub(super) fn shape(raw: &Value, path: &str) -> bool {
    let Some(top) = raw.as_object().filter(|m| !m.is_empty()) else {
        return false;
    };
    let entry = |v: &Value| v.get("digested_path").is_some_and(Value::is_string);
    let named = path.rsplit('/').next() == Some(MANIFEST);
    top.values().all(|v| entry(v) || v.is_string()) && (named || top.values().any(entry))
}

pub(super) fn rewrite(check: &mut Check, mut raw: Value) -> Value {
    let Value::Object(top) = &mut raw else {
        return raw;
    };
    for (logical, entry) in top.iter_mut() {
        match entry {
            Value::String(digested) => url(check, logical, digested, None),
            Value::Object(fields) => {
                let integrity = match fields.get("integrity") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(other) => {
                        check.problem(format!(
                            "{logical:?}: integrity is {other}, not an SRI string"
                        ));
                        None
                    }
                };
                if let Some(Value::String(digested)) = fields.get_mut("digested_path") {
                    url(check, logical, digested, integrity.as_deref());
                }
            }
            _ => {}
        }
    }
    raw
}

/// Propshaft names a file by its digest unless the logical path already
/// carries one (`-[digest].digested.js`), so a digested path that differs
/// from its logical path, or that is already digested, is fingerprinted.
fn url(check: &mut Check, logical: &str, digested: &mut String, integrity: Option<&str>) {
    if digested != logical || already_digested(digested) {
        check.fingerprinted(digested);
    }
    if let Some(u) = check.url(digested, integrity) {
        *digested = u;
    }
}

/// Propshaft's `-([0-9a-zA-Z_-]{7,128})\.digested`.
pub(super) fn already_digested(path: &str) -> bool {
    path.match_indices(".digested").any(|(i, _)| {
        let before = &path[..i];
        let run = before
            .bytes()
            .rev()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
            .count();
        // Some `-` inside the run, with 7 to 128 allowed characters after it.
        let run = &before[before.len() - run..];
        run.char_indices()
            .any(|(j, c)| c == '-' && (7..=128).contains(&(run.len() - j - 1)))
    })
}

/// logical path → URL.
pub(super) fn entries(live: &Value) -> BTreeMap<String, String> {
    live.as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| {
            let url = v.as_str().or_else(|| v.get("digested_path")?.as_str())?;
            Some((k.clone(), url.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn already_digested_follows_propshaft() {
        assert!(already_digested("chunk-55SGLZG7.digested.js"));
        assert!(already_digested("js/report-N46JRVOQ.digested.js.map"));
        assert!(!already_digested("chunk-55SG.digested.js"));
        assert!(!already_digested("application.js"));
        assert!(!already_digested("chunk55SGLZG7.digested.js"));
    }
}
