//! Sprockets' manifest (`public/assets/.sprockets-manifest-<32 hex>.json`;
//! Sprockets 2 wrote `manifest-<32 hex>.json`):
//!
//! ```json
//! {"files": {"application-<hex>.js": {"logical_path": "application.js", "mtime": "...",
//!            "size": 269, "digest": "<hex sha256>", "integrity": "sha256-..."}},
//!  "assets": {"application.js": "application-<hex>.js"}}
//! ```
//!
//! The keys of `files` and the values of `assets` are asset paths relative
//! to the build directory; both become CDN URLs, so `files[assets[name]]`
//! still finds a file's record. `integrity`, a SHA-256 `digest` and `size`
//! are checked against the bytes; the rest is kept.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{Build, Check};

pub const PATTERN: &str = ".sprockets-manifest-<hex>.json";

/// Sprockets' `MANIFEST_RE` (and Sprockets 2's `manifest-<hex>.json`).
fn is_manifest_name(name: &str) -> bool {
    let hex = |h: &str| h.len() == 32 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    [".sprockets-manifest-", "manifest-"].iter().any(|p| {
        name.strip_prefix(p)
            .and_then(|r| r.strip_suffix(".json"))
            .is_some_and(hex)
    })
}

/// The Sprockets manifests directly in `dir` (`""` or `"x/"`) of the
/// build, sorted: Sprockets reads the first.
pub(super) fn manifests(build: &Build, dir: &str) -> Vec<String> {
    let mut found: Vec<String> = build
        .files
        .iter()
        .filter_map(|f| f.path.strip_prefix(dir))
        .filter(|name| !name.contains('/') && is_manifest_name(name))
        .map(|name| format!("{dir}{name}"))
        .collect();
    // Sprockets 2's legacy name only counts when no current one is there.
    if found.iter().any(|p| p.contains(".sprockets-manifest-")) {
        found.retain(|p| p.contains(".sprockets-manifest-"));
    }
    found.sort();
    found
}

/// Several manifests: Sprockets reads the first by name, and so does cutover.
pub(super) fn several_warning(build: &Build, path: &str) -> Option<String> {
    let dir = path
        .rsplit_once('/')
        .map(|(d, _)| format!("{d}/"))
        .unwrap_or_default();
    let all = manifests(build, &dir);
    (all.len() > 1).then(|| {
        format!(
            "the build has {} Sprockets manifests ({}); {path} is read, as Sprockets reads the first by name. \
             None is uploaded; remove the stale ones (bin/rails assets:clobber before precompiling)",
            all.len(),
            all.join(", ")
        )
    })
}

/// `files` and `assets`, both objects.
pub(super) fn shape(raw: &Value) -> bool {
    raw.get("files").is_some_and(Value::is_object)
        && raw.get("assets").is_some_and(Value::is_object)
}

pub(super) fn rewrite(check: &mut Check, mut raw: Value) -> Value {
    if let Some(Value::Object(files)) = raw.get_mut("files") {
        let old = std::mem::take(files);
        let mut new = Map::new();
        for (digest_path, record) in old {
            let integrity = record.get("integrity").and_then(Value::as_str);
            let logical = record.get("logical_path").and_then(Value::as_str);
            if logical.is_some_and(|l| l != digest_path) {
                check.fingerprinted(&digest_path);
            }
            let Some(file) = check.file(&digest_path, integrity) else {
                continue;
            };
            let (path, size, sha256) = (file.path.clone(), file.size, file.digests.sha256_hex());
            if let Some(want) = record.get("size").and_then(Value::as_u64) {
                if want != size {
                    check.problem(format!(
                        "size of {path} is {size} bytes but the manifest says {want}: the build is inconsistent"
                    ));
                }
            }
            if let Some(digest) = record.get("digest").and_then(Value::as_str) {
                if digest.len() == 64 && !digest.eq_ignore_ascii_case(&sha256) {
                    check.problem(format!(
                        "digest of {path} does not match its bytes (manifest says {digest}, file is {sha256}): the build is inconsistent"
                    ));
                }
            }
            let url = check.url(&digest_path, None).unwrap_or_default();
            new.insert(url, record);
        }
        *files = new;
    }
    if let Some(Value::Object(assets)) = raw.get_mut("assets") {
        for (logical, digest_path) in assets.iter_mut() {
            match digest_path {
                Value::String(s) => {
                    if let Some(u) = check.url(s, None) {
                        *s = u;
                    }
                }
                other => check.problem(format!("assets {logical:?} is {other}, not a path")),
            }
        }
    }
    raw
}

/// `assets`: logical path → URL.
pub(super) fn entries(live: &Value) -> BTreeMap<String, String> {
    live.get("assets")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_names() {
        assert!(is_manifest_name(
            ".sprockets-manifest-5687c8a0b23eefd26291d806589b41ef.json"
        ));
        assert!(is_manifest_name(
            "manifest-5687c8a0b23eefd26291d806589b41ef.json"
        ));
        assert!(!is_manifest_name(".sprockets-manifest-5687c8a0.json"));
        assert!(!is_manifest_name("manifest.json"));
    }
}
