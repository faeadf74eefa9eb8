//! The build's `manifest.json`: read both formats, check it against the
//! build, and produce the live manifest (same shape, CDN URLs).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::Build;
use crate::error::Failure;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// Shakapacker / webpack-assets-manifest: `{"src": ..., "integrity": ...}` plus `entrypoints`.
    AssetsManifest,
    /// webpack-manifest-plugin: `"name": "/packs/path"`.
    Flat,
}

#[derive(Debug, Clone)]
pub struct Manifest {
    pub format: Format,
    /// The manifest file's path inside the build.
    pub path: String,
    /// Every build file the manifest names.
    pub referenced: Vec<String>,
    /// The public path the build was made with (`/packs/`, `https://cdn/packs/`, or "" for auto).
    pub public_path: String,
    /// The live manifest: same JSON, every asset path an absolute CDN URL.
    pub live: Value,
}

/// Read and check the manifest of a scanned build. `public_url` maps a path
/// inside the build to its CDN URL.
pub fn load(
    build: &Build,
    manifest_path: &str,
    public_url: &dyn Fn(&str) -> String,
) -> anyhow::Result<Manifest> {
    let full = build.root.join(manifest_path);
    let text = match std::fs::read(&full) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Failure::input(format!(
                "no {manifest_path} in {}; let webpack write one (webpack-assets-manifest) or pass --manifest with its path inside the build",
                build.root.display()
            )))
        }
        Err(e) => return Err(Failure::input(format!("cannot read manifest {}: {e}", full.display()))),
    };
    // A byte-order mark is not JSON, but editors write one; it means nothing.
    let text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&text);
    let raw = strict_json(text).map_err(|e| {
        Failure::input(format!(
            "manifest {} is not valid JSON ({e}); rebuild it with webpack",
            full.display()
        ))
    })?;
    parse(build, manifest_path, raw, public_url)
}

/// Check a parsed manifest against the build and rewrite it (pure).
pub fn parse(
    build: &Build,
    manifest_path: &str,
    raw: Value,
    public_url: &dyn Fn(&str) -> String,
) -> anyhow::Result<Manifest> {
    let bad = |what: String| {
        Failure::input(format!(
            "manifest {manifest_path}: {what}; rebuild it with webpack"
        ))
    };
    let Value::Object(top) = &raw else {
        return Err(bad("expected a JSON object of entries".into()));
    };
    if top.is_empty() {
        return Err(bad("it has no entries".into()));
    }
    let format = if top
        .iter()
        .any(|(k, v)| k == "entrypoints" || v.get("src").is_some())
    {
        Format::AssetsManifest
    } else {
        Format::Flat
    };

    let mut referenced = Vec::new();
    let mut public_paths: BTreeMap<String, usize> = BTreeMap::new();
    let mut live = raw.clone();
    let mut problems = Vec::new();
    rewrite(
        &mut live,
        None,
        &mut |value: &str, integrity: Option<&str>| {
            let (file, public_path) = match resolve(build, value) {
                Ok(r) => r,
                Err(msg) => {
                    problems.push(msg);
                    return None;
                }
            };
            if file
                .strip_suffix(".gz")
                .or(file.strip_suffix(".br"))
                .unwrap_or(&file)
                == manifest_path
            {
                problems.push(format!(
                    "an entry names the manifest itself ({value:?}), which is published through Redis and never uploaded; remove that entry"
                ));
                return None;
            }
            if let Some(sri) = integrity {
                let f = build.get(&file).expect("resolved files exist");
                if f.digests.matches_sri(sri) == Some(false) {
                    problems.push(format!(
                    "integrity of {file} does not match its bytes (manifest says {sri}, file is {}): the build is inconsistent",
                    f.digests.sri()
                ));
                }
            }
            *public_paths.entry(public_path).or_default() += 1;
            let url = public_url(&file);
            referenced.push(file);
            Some(url)
        },
    );
    if let Some(first) = problems.first() {
        let more = if problems.len() > 1 {
            format!(" (and {} more)", problems.len() - 1)
        } else {
            String::new()
        };
        return Err(bad(format!("{first}{more}")));
    }
    referenced.sort();
    referenced.dedup();
    let public_path = public_paths
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .map(|(p, _)| p)
        .unwrap_or_default();
    Ok(Manifest {
        format,
        path: manifest_path.to_string(),
        referenced,
        public_path,
        live,
    })
}

/// Replace every asset path string in the manifest (every string that is not
/// an `integrity`) by what `f` returns; `f` gets the sibling integrity if any.
fn rewrite(
    v: &mut Value,
    integrity: Option<&str>,
    f: &mut dyn FnMut(&str, Option<&str>) -> Option<String>,
) {
    match v {
        Value::String(s) => {
            if let Some(new) = f(s, integrity) {
                *s = new;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| rewrite(i, None, f)),
        Value::Object(map) => {
            let sri = map
                .get("integrity")
                .and_then(Value::as_str)
                .map(str::to_string);
            for (k, child) in map.iter_mut() {
                if k == "integrity" {
                    continue;
                }
                let sibling = if k == "src" { sri.as_deref() } else { None };
                rewrite(child, sibling, f);
            }
        }
        _ => {}
    }
}

/// Find the build file a manifest value names: the longest `/`-suffix of the
/// value (without query or fragment) that is a file of the build.
/// Returns (file path, public path before it).
///
/// The value is tried as written (a file may have `#` or `?` in its name),
/// then without a query or fragment, each also percent-decoded.
fn resolve(build: &Build, value: &str) -> Result<(String, String), String> {
    let clean = value.split(['?', '#']).next().unwrap_or(value);
    let candidates = [
        value.to_string(),
        percent_decode(value),
        clean.to_string(),
        percent_decode(clean),
    ];
    if candidates
        .iter()
        .any(|c| c.split('/').any(|seg| seg == ".."))
    {
        return Err(format!(
            "asset path {value:?} contains `..`; every asset must be inside the build directory"
        ));
    }
    for candidate in candidates.iter().map(String::as_str) {
        let mut start = 0;
        loop {
            let rest = &candidate[start..];
            if !rest.is_empty() && build.get(rest).is_some() {
                return Ok((rest.to_string(), candidate[..start].to_string()));
            }
            match rest.find('/') {
                Some(i) => start += i + 1,
                None => break,
            }
        }
    }
    Err(format!(
        "it names {value:?}, which is not a file in the build"
    ))
}

/// Parse JSON, refusing an object with the same key twice (JSON parsers
/// keep one of them silently; which one the app would read is a guess).
fn strict_json(text: &[u8]) -> Result<Value, String> {
    use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
    struct Strict(Value);
    impl<'de> Deserialize<'de> for Strict {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Strict, D::Error> {
            d.deserialize_any(StrictVisitor)
        }
    }
    struct StrictVisitor;
    impl<'de> Visitor<'de> for StrictVisitor {
        type Value = Strict;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_bool<E>(self, v: bool) -> Result<Strict, E> {
            Ok(Strict(Value::Bool(v)))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Strict, E> {
            Ok(Strict(v.into()))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Strict, E> {
            Ok(Strict(v.into()))
        }
        fn visit_f64<E>(self, v: f64) -> Result<Strict, E> {
            Ok(Strict(v.into()))
        }
        fn visit_str<E>(self, v: &str) -> Result<Strict, E> {
            Ok(Strict(v.into()))
        }
        fn visit_string<E>(self, v: String) -> Result<Strict, E> {
            Ok(Strict(v.into()))
        }
        fn visit_unit<E>(self) -> Result<Strict, E> {
            Ok(Strict(Value::Null))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
            let mut items = Vec::new();
            while let Some(Strict(v)) = seq.next_element()? {
                items.push(v);
            }
            Ok(Strict(Value::Array(items)))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
            let mut out = serde_json::Map::new();
            while let Some((k, Strict(v))) = map.next_entry::<String, Strict>()? {
                if out.contains_key(&k) {
                    return Err(serde::de::Error::custom(format!(
                        "the key {k:?} appears twice in one object"
                    )));
                }
                out.insert(k, v);
            }
            Ok(Strict(Value::Object(out)))
        }
    }
    let mut de = serde_json::Deserializer::from_slice(text);
    let parsed = Strict::deserialize(&mut de).and_then(|Strict(v)| de.end().map(|()| v));
    parsed.map_err(|e| format!("line {}, column {}: {e}", e.line(), e.column()))
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Logical entries of a live manifest (`application.js` → URL), for diffs.
pub fn entries(live: &Value) -> BTreeMap<String, String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Quiet;
    use serde_json::json;

    fn build(files: &[(&str, &[u8])]) -> (tempfile::TempDir, Build) {
        let dir = tempfile::tempdir().unwrap();
        for (p, b) in files {
            let full = dir.path().join(p);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, b).unwrap();
        }
        let b = crate::build::scan::scan(dir.path(), u64::MAX, &Quiet).unwrap();
        (dir, b)
    }

    fn cdn(p: &str) -> String {
        format!("https://cdn.example.com/packs/{p}")
    }

    #[test]
    fn assets_manifest_is_checked_and_rewritten() {
        let (_d, b) = build(&[
            ("js/app-0a1b2c3d4e.js", b"app"),
            ("css/app-0a1b2c3d4e.css", b"css"),
        ]);
        let sri = b.get("js/app-0a1b2c3d4e.js").unwrap().digests.sri();
        let raw = json!({
            "application.js": {"src": "/packs/js/app-0a1b2c3d4e.js", "integrity": sri},
            "application.css": {"src": "/packs/css/app-0a1b2c3d4e.css", "integrity": "sha512-unchecked"},
            "entrypoints": {"application": {"assets": {"js": ["/packs/js/app-0a1b2c3d4e.js"], "css": ["/packs/css/app-0a1b2c3d4e.css"]}}}
        });
        let m = parse(&b, "manifest.json", raw, &cdn).unwrap();
        assert_eq!(m.format, Format::AssetsManifest);
        assert_eq!(m.public_path, "/packs/");
        assert_eq!(
            m.referenced,
            ["css/app-0a1b2c3d4e.css", "js/app-0a1b2c3d4e.js"]
        );
        assert_eq!(
            m.live["application.js"]["src"],
            "https://cdn.example.com/packs/js/app-0a1b2c3d4e.js"
        );
        assert_eq!(m.live["application.js"]["integrity"], sri.as_str());
        assert_eq!(
            m.live["entrypoints"]["application"]["assets"]["css"][0],
            "https://cdn.example.com/packs/css/app-0a1b2c3d4e.css"
        );
        // Key order is kept: the app may rely on it.
        let keys: Vec<&String> = m.live.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["application.js", "application.css", "entrypoints"]);
    }

    #[test]
    fn flat_manifest_and_auto_public_path() {
        let (_d, b) = build(&[("js/a b-0a1b2c3d4e.js", b"a")]);
        let m = parse(
            &b,
            "manifest.json",
            json!({"a.js": "js/a%20b-0a1b2c3d4e.js"}),
            &cdn,
        )
        .unwrap();
        assert_eq!(m.format, Format::Flat);
        assert_eq!(m.public_path, "");
        assert_eq!(
            m.live["a.js"],
            "https://cdn.example.com/packs/js/a b-0a1b2c3d4e.js"
        );
    }

    #[test]
    fn errors_missing_file_dotdot_and_integrity() {
        let (_d, b) = build(&[("js/a.js", b"a")]);
        let msg = |raw: Value| {
            parse(&b, "manifest.json", raw, &cdn)
                .unwrap_err()
                .to_string()
        };
        assert!(msg(json!({"x.js": "/packs/js/gone.js"}))
            .contains("\"/packs/js/gone.js\", which is not a file in the build"));
        assert!(msg(json!({"x.js": "/packs/../etc/passwd"})).contains("contains `..`"));
        assert!(
            msg(json!({"a.js": {"src": "/packs/js/a.js", "integrity": "sha384-AAAA"}}))
                .contains("integrity of js/a.js does not match")
        );
        assert!(msg(json!([1, 2])).contains("expected a JSON object"));
    }

    #[test]
    fn byte_order_mark_duplicates_and_self_reference() {
        let (dir, b) = build(&[("js/a-0a1b2c3d4e.js", b"a"), ("manifest.json", b"{}")]);
        let write = |text: &[u8]| std::fs::write(dir.path().join("manifest.json"), text).unwrap();
        let load = || load(&b, "manifest.json", &cdn).map(|m| m.live);
        write(b"\xEF\xBB\xBF{\"a.js\": \"/packs/js/a-0a1b2c3d4e.js\"}");
        assert_eq!(load().unwrap()["a.js"], cdn("js/a-0a1b2c3d4e.js"));
        write(br#"{"a.js": "/packs/js/a-0a1b2c3d4e.js", "a.js": "/packs/js/b.js"}"#);
        let err = load().unwrap_err().to_string();
        assert!(
            err.contains("\"a.js\" appears twice") && err.contains("line 1"),
            "{err}"
        );
        write(br#"{"a.js": "/packs/js/a-0a1b2c3d4e.js", "m": "/packs/manifest.json"}"#);
        let err = load().unwrap_err().to_string();
        assert!(err.contains("names the manifest itself"), "{err}");
    }

    #[test]
    fn file_names_with_hash_and_question_marks_resolve() {
        let (_d, b) = build(&[
            ("js/a#b-0a1b2c3d4e.js", b"a"),
            ("js/q?x-0a1b2c3d4e.js", b"q"),
        ]);
        let m = parse(
            &b,
            "manifest.json",
            json!({"a.js": "/packs/js/a#b-0a1b2c3d4e.js", "q.js": "/packs/js/q%3Fx-0a1b2c3d4e.js"}),
            &cdn,
        )
        .unwrap();
        assert_eq!(
            m.referenced,
            ["js/a#b-0a1b2c3d4e.js", "js/q?x-0a1b2c3d4e.js"]
        );
    }

    #[test]
    fn diff_entries() {
        let old = json!({"a.js": "u1", "b.js": {"src": "u2"}, "c.js": "u3", "entrypoints": {}});
        let new = json!({"a.js": "u1", "b.js": {"src": "u9"}, "d.js": "u4"});
        let d = diff(Some(&old), &new);
        let entry = |e: &str, u: &str| Entry {
            entry: e.into(),
            url: u.into(),
        };
        assert_eq!(d.added, vec![entry("d.js", "u4")]);
        assert_eq!(
            d.changed,
            vec![Change {
                entry: "b.js".into(),
                from: "u2".into(),
                to: "u9".into()
            }]
        );
        assert_eq!(d.removed, vec![entry("c.js", "u3")]);
        assert_eq!(d.unchanged, 1);
        assert_eq!(diff(None, &new).added.len(), 3);
    }
}
