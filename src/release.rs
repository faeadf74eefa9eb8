//! Releases: a content-derived id and the immutable record of a build.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::build::headers::Headers;

/// One file of a release, as the S3 copy of the record lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseFile {
    pub path: String,
    pub size: u64,
    pub sha256: String,
    /// MD5 of the bytes (hex); absent in records written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub md5: Option<String>,
    /// The ETag S3 gives the object: the MD5 of the bytes, or the MD5 of
    /// the parts' MD5s with `-N`, or, where S3's ETags are neither
    /// (SSE-KMS), the one S3 gave the upload or listed for the object once
    /// its bytes were proven. A listing with this ETag and size settles it.
    pub etag: String,
    /// Uploaded in parts: S3's composite SHA-256 checksum of the upload (the
    /// SHA-256 of the parts' SHA-256s, hex, `-N`), what a HEAD shows instead
    /// of the SHA-256 of the bytes. Absent for single-part uploads and in
    /// records written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub composite_sha256: Option<String>,
    /// The headers it is served with; absent in records written before they were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Headers>,
    /// A `[[mutable]]` file: its bytes are kept at `META/mutable/<sha256>`,
    /// and activating the release restores them at its key.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mutable: bool,
}

impl ReleaseFile {
    /// The MD5 of the bytes, when known.
    pub fn md5(&self) -> Option<&str> {
        self.md5
            .as_deref()
            .or_else(|| (!self.etag.contains('-')).then_some(self.etag.as_str()))
    }
}

/// The release record (docs/how-it-works.md, "Releases").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseRecord {
    pub id: String,
    pub app: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub created_at_ms: i64,
    pub file_count: usize,
    pub bytes: u64,
    pub git_sha: Option<String>,
    pub git_branch: Option<String>,
    /// When `git_sha` was committed (RFC 3339, UTC): the stale-deploy guard
    /// compares it with the live release's. Absent in records written
    /// before it was kept, and when it is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_committed_at: Option<String>,
    pub build_url: Option<String>,
    pub deployed_by: Option<String>,
    pub message: Option<String>,
    pub bucket: String,
    pub prefix: String,
    pub cdn_url: String,
    /// The live manifest activation publishes.
    pub manifest: Value,
    /// Where the build's files expect to be served from (absent in records
    /// written before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_path: Option<crate::build::manifest::PublicPath>,
    /// Set on a release promoted from another environment: where it was
    /// tested. Its files are byte for byte that release's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promoted_from: Option<PromotedFrom>,
    /// The release's signature (docs/redis.md, "Signed releases"): the value
    /// every activation of it writes to `cutover:{APP}:signature`. Absent:
    /// unsigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// Every object of the release; kept in the S3 copy, left out of the Redis copy.
    /// Shared (not copied) with the deploy plan that made the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<std::sync::Arc<ReleaseFile>>>,
}

/// Where a promoted release came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromotedFrom {
    /// The source environment (`[environments.NAME]`).
    pub environment: String,
    pub bucket: String,
    pub prefix: String,
    pub cdn_url: String,
    /// When and by whom it was promoted.
    pub at: String,
    pub by: Option<String>,
}

impl ReleaseRecord {
    /// The record without its file list, as Redis keeps it.
    /// Built field by field: cloning the whole record first would copy its
    /// file list (about 20 MB at 50,000 files) only to drop it.
    pub fn summary(&self) -> ReleaseRecord {
        let ReleaseRecord {
            id,
            app,
            created_at,
            created_at_ms,
            file_count,
            bytes,
            git_sha,
            git_branch,
            git_committed_at,
            build_url,
            deployed_by,
            message,
            bucket,
            prefix,
            cdn_url,
            manifest,
            public_path,
            promoted_from,
            signature,
            files: _,
        } = self;
        ReleaseRecord {
            id: id.clone(),
            app: app.clone(),
            created_at: created_at.clone(),
            created_at_ms: *created_at_ms,
            file_count: *file_count,
            bytes: *bytes,
            git_sha: git_sha.clone(),
            git_branch: git_branch.clone(),
            git_committed_at: git_committed_at.clone(),
            build_url: build_url.clone(),
            deployed_by: deployed_by.clone(),
            message: message.clone(),
            bucket: bucket.clone(),
            prefix: prefix.clone(),
            cdn_url: cdn_url.clone(),
            manifest: manifest.clone(),
            public_path: public_path.clone(),
            promoted_from: promoted_from.clone(),
            signature: signature.clone(),
            files: None,
        }
    }

    /// The record with the ETags S3 gave some of its files (by path) in
    /// place of the planned ones; None when `etags` changes none of them.
    /// The other entries are shared, not copied.
    pub fn with_etags(&self, etags: &HashMap<String, String>) -> Option<ReleaseRecord> {
        let files = self.files.as_ref()?;
        if !files.iter().any(|f| etags.contains_key(&f.path)) {
            return None;
        }
        let files = files
            .iter()
            .map(|f| match etags.get(&f.path) {
                Some(etag) => Arc::new(ReleaseFile {
                    etag: etag.clone(),
                    ..(**f).clone()
                }),
                None => Arc::clone(f),
            })
            .collect();
        Some(ReleaseRecord {
            files: Some(files),
            ..self.summary()
        })
    }
}

impl ReleaseRecord {
    /// The files to fetch through the CDN: every file the manifest's
    /// entrypoints name (or, without entrypoints, every script and
    /// stylesheet it names), plus `sample` others spread over the rest.
    pub fn cdn_checks(&self, sample: usize) -> Vec<CdnCheck> {
        let files = self.files.as_deref().unwrap_or_default();
        let url_of = |f: &ReleaseFile| {
            format!(
                "{}/{}",
                self.cdn_url,
                crate::contract::url_path(&crate::contract::object_key(&self.prefix, &f.path))
            )
        };
        let by_url: std::collections::HashMap<String, &ReleaseFile> =
            files.iter().map(|f| (url_of(f), &**f)).collect();
        let mut urls = Vec::new();
        match self.manifest.get("entrypoints") {
            Some(entrypoints) => collect_strings(entrypoints, &mut urls),
            None => urls.extend(
                crate::build::manifest::entries(&self.manifest)
                    .into_values()
                    .filter(|u| u.ends_with(".js") || u.ends_with(".css")),
            ),
        }
        let mut chosen: Vec<&ReleaseFile> = Vec::new();
        for url in &urls {
            if let Some(f) = by_url.get(url) {
                if !chosen.iter().any(|c| c.path == f.path) {
                    chosen.push(f);
                }
            }
        }
        let rest: Vec<&ReleaseFile> = files
            .iter()
            .map(|f| &**f)
            .filter(|f| !chosen.iter().any(|c| c.path == f.path))
            .collect();
        if sample > 0 && !rest.is_empty() {
            let step = (rest.len() as f64 / sample.min(rest.len()) as f64).max(1.0);
            for i in 0..sample.min(rest.len()) {
                chosen.push(rest[(i as f64 * step) as usize]);
            }
        }
        chosen
            .into_iter()
            .map(|f| CdnCheck {
                url: url_of(f),
                path: f.path.clone(),
                sha256: f.sha256.clone(),
                headers: f.headers.clone(),
            })
            .collect()
    }
}

/// What a record read back must agree with: a record is input (anyone who
/// can write the bucket, or Redis, can write one), checked like any other.
#[derive(Debug, Clone, Copy)]
pub struct RecordExpect<'a> {
    /// The id it was read as (its key, and the id asked for).
    pub id: &'a str,
    /// The configured key prefix every object of a release is under.
    pub prefix: &'a str,
    /// The configured CDN URL: every URL of the record is on its origin.
    pub cdn_url: &'a str,
}

impl ReleaseRecord {
    /// Why this record cannot be used as release `expect.id`: another id
    /// inside, an object key that is not a normalised key under the
    /// configured prefix (`..`, `.`, `//`, a leading `/`, control
    /// characters), a digest that is not one, or a URL (its `cdn_url`, any
    /// in its manifest) off the configured CDN origin. The first few
    /// problems, or none.
    pub fn problems(&self, expect: &RecordExpect) -> Vec<String> {
        let mut problems = Vec::new();
        if self.id != expect.id {
            problems.push(format!("it says it is release {:?}", self.id));
        }
        let under = format!("{}/", expect.prefix.trim_matches('/'));
        if let Some(files) = &self.files {
            for f in files {
                if problems.len() >= 5 {
                    break;
                }
                let key = crate::contract::object_key(&self.prefix, &f.path);
                if !normalised_key(&key) || !key.starts_with(&under) || key.len() == under.len() {
                    problems.push(format!(
                        "file {:?} gives the key {:?}, not a normalised key under {under}",
                        f.path, key
                    ));
                } else if f.sha256.len() != 64 || !f.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                    problems.push(format!("file {:?} has no SHA-256 ({:?})", f.path, f.sha256));
                }
            }
        }
        match url::Url::parse(expect.cdn_url) {
            Ok(cdn) => {
                let origin = cdn.origin();
                let off = |u: &str| {
                    let parsed = if u.starts_with("//") {
                        cdn.join(u)
                    } else {
                        url::Url::parse(u)
                    };
                    match parsed {
                        Ok(p) => p.origin() != origin,
                        // Not a URL (a name, a digest, a relative path): not a host.
                        Err(url::ParseError::RelativeUrlWithoutBase) => false,
                        Err(_) => true,
                    }
                };
                if off(&self.cdn_url) || !self.cdn_url.contains("://") {
                    problems.push(format!(
                        "its cdn_url {:?} is not on {}",
                        self.cdn_url,
                        origin.ascii_serialization()
                    ));
                }
                let mut strings = Vec::new();
                all_strings(&self.manifest, &mut strings);
                if let Some(u) = strings.into_iter().find(|u| off(u)) {
                    problems.push(format!(
                        "its manifest names {u:?}, not on {}",
                        origin.ascii_serialization()
                    ));
                }
            }
            Err(e) => problems.push(format!("the configured cdn_url is not a URL ({e})")),
        }
        problems
    }
}

/// An S3 key as cutover writes them: segments that are neither empty, `.`
/// nor `..`, no leading `/`, no backslash and no control characters.
fn normalised_key(key: &str) -> bool {
    !key.is_empty()
        && !key.contains('\\')
        && !key.chars().any(char::is_control)
        && key
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

/// Every string value of a JSON document.
fn all_strings<'v>(v: &'v Value, out: &mut Vec<&'v str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|i| all_strings(i, out)),
        Value::Object(map) => map.values().for_each(|i| all_strings(i, out)),
        _ => {}
    }
}

fn collect_strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|i| collect_strings(i, out)),
        Value::Object(map) => map
            .iter()
            .filter(|(k, _)| k.as_str() != "integrity")
            .for_each(|(_, i)| collect_strings(i, out)),
        _ => {}
    }
}

/// One file to fetch through the CDN, and what it must be.
#[derive(Debug, Clone, Serialize)]
pub struct CdnCheck {
    pub url: String,
    pub path: String,
    pub sha256: String,
    /// The headers it must be served with, when the record knows them.
    pub headers: Option<Headers>,
}

/// What the id is derived from: every uploaded file with its headers, where
/// it goes, and the manifest activation will publish.
pub struct IdInput<'a> {
    pub bucket: &'a str,
    pub prefix: &'a str,
    pub cdn_url: &'a str,
    pub files: &'a [(&'a str, &'a str, &'a Headers)],
    pub manifest: &'a Value,
}

/// Content-derived release id: the same build and settings always give the
/// same id. 16 hex characters (64 bits) of SHA-256.
pub fn release_id(input: &IdInput) -> String {
    let mut h = Sha256::new();
    h.update(b"cutover release v1\n");
    for part in [input.bucket, input.prefix, input.cdn_url] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    for (path, sha256, headers) in input.files {
        for part in [
            *path,
            *sha256,
            headers.content_type.as_str(),
            headers.content_encoding.as_deref().unwrap_or(""),
            headers.cache_control.as_str(),
        ] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        h.update(b"\n");
    }
    h.update(serde_json::to_vec(input.manifest).expect("JSON values serialize"));
    hex::encode(&h.finalize()[..8])
}

/// Now, as (RFC 3339 string, milliseconds since the epoch).
/// A time as RFC 3339 in UTC, from RFC 3339 (any offset) or seconds
/// since the epoch; None for anything else.
pub fn utc_time(value: &str) -> Option<String> {
    use time::format_description::well_known::Rfc3339;
    let v = value.trim();
    let t = if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        time::OffsetDateTime::from_unix_timestamp(v.parse().ok()?).ok()?
    } else {
        time::OffsetDateTime::parse(v, &Rfc3339).ok()?
    };
    t.to_offset(time::UtcOffset::UTC).format(&Rfc3339).ok()
}

/// Milliseconds since the epoch of an RFC 3339 time.
pub fn epoch_ms(rfc3339: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .ok()?;
    Some((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

pub fn now() -> (String, i64) {
    let t = time::OffsetDateTime::now_utc();
    let ms = (t.unix_timestamp_nanos() / 1_000_000) as i64;
    let t = t.replace_millisecond(t.millisecond()).unwrap_or(t);
    let text = t
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string());
    (text, ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn headers(cc: &str) -> Headers {
        Headers {
            content_type: "text/javascript; charset=utf-8".into(),
            content_encoding: None,
            cache_control: cc.into(),
        }
    }

    #[test]
    fn etags_s3_gave_replace_the_planned_ones_and_the_rest_is_shared() {
        let record: ReleaseRecord = serde_json::from_value(json!({
            "id": "0123456789abcdef", "app": "shop", "created_at": "", "created_at_ms": 0,
            "file_count": 2, "bytes": 2, "git_sha": null, "git_branch": null,
            "build_url": null, "deployed_by": null, "message": null, "bucket": "b",
            "prefix": "packs", "cdn_url": "https://cdn.example.com", "manifest": {},
            "files": [
                {"path": "js/a.js", "size": 1, "sha256": "aa", "md5": "m1", "etag": "m1"},
                {"path": "js/b.js", "size": 1, "sha256": "bb", "md5": "m2", "etag": "m2"},
            ],
        }))
        .unwrap();
        let none = HashMap::from([("js/other.js".to_string(), "x".to_string())]);
        assert!(record.with_etags(&none).is_none());
        let gave = HashMap::from([("js/b.js".to_string(), "kms".to_string())]);
        let patched = record.with_etags(&gave).unwrap();
        let (old, new) = (record.files.unwrap(), patched.files.unwrap());
        assert!(Arc::ptr_eq(&old[0], &new[0]));
        assert_eq!(new[1].etag, "kms");
        assert_eq!(new[1].md5.as_deref(), Some("m2"));
        assert_eq!((new[1].path.as_str(), new[1].size), ("js/b.js", 1));
        assert_eq!(patched.id, record.id);
    }

    #[test]
    fn a_record_read_back_is_checked_like_input() {
        let sha = "ab".repeat(32);
        let record = |id: &str, paths: &[&str], cdn: &str, url: &str| -> ReleaseRecord {
            serde_json::from_value(json!({
                "id": id, "app": "shop", "created_at": "", "created_at_ms": 0,
                "file_count": paths.len(), "bytes": 0, "git_sha": null, "git_branch": null,
                "build_url": null, "deployed_by": null, "message": null, "bucket": "b",
                "prefix": "packs", "cdn_url": cdn,
                "manifest": {"application.js": url, "integrity": "sha384-AAAA", "src": "app/main.ts"},
                "files": paths.iter().map(|p| json!({
                    "path": p, "size": 1, "sha256": sha, "etag": "",
                })).collect::<Vec<_>>(),
            }))
            .unwrap()
        };
        let expect = RecordExpect {
            id: "0123456789abcdef",
            prefix: "packs",
            cdn_url: "https://cdn.example.com/assets",
        };
        let good = record(
            "0123456789abcdef",
            &["js/a.js", "media/b c.png"],
            "https://cdn.example.com",
            "https://cdn.example.com/packs/js/a.js",
        );
        assert_eq!(good.problems(&expect), Vec::<String>::new());
        let bad = |r: ReleaseRecord, needle: &str| {
            let problems = r.problems(&expect);
            assert!(
                problems.iter().any(|p| p.contains(needle)),
                "{needle}: {problems:?}"
            );
        };
        let url = "https://cdn.example.com/packs/js/a.js";
        let cdn = "https://cdn.example.com";
        bad(
            record("fedcba9876543210", &["a.js"], cdn, url),
            "fedcba9876543210",
        );
        for path in [
            "../../_cutover/x/evil",
            "/abs/evil.js",
            "a//b.js",
            "./a.js",
            "a/\u{7}.js",
            "a\\..\\b",
        ] {
            bad(record(expect.id, &[path], cdn, url), "not a normalised key");
        }
        bad(
            record(expect.id, &["a.js"], cdn, "https://evil.example/a.js"),
            "evil.example",
        );
        bad(
            record(expect.id, &["a.js"], cdn, "//evil.example/a.js"),
            "evil.example",
        );
        bad(
            record(expect.id, &["a.js"], cdn, "javascript:alert(1)"),
            "javascript",
        );
        bad(
            record(expect.id, &["a.js"], "https://cdn.example.com:8443", url),
            "cdn_url",
        );
        let mut other_prefix = good.clone();
        other_prefix.prefix = "_cutover/shop".into();
        bad(other_prefix, "not a normalised key under packs/");
    }

    #[test]
    fn id_is_stable_and_sensitive_to_content_and_settings() {
        let h = headers("public");
        let m = json!({"a.js": "https://cdn/packs/a.js"});
        let files = [("a.js", "00ff", &h)];
        let base = IdInput {
            bucket: "b",
            prefix: "packs",
            cdn_url: "https://cdn",
            files: &files,
            manifest: &m,
        };
        let id = release_id(&base);
        assert_eq!(id.len(), 16);
        assert_eq!(id, release_id(&base));
        let other_bytes = [("a.js", "00fe", &h)];
        assert_ne!(
            id,
            release_id(&IdInput {
                files: &other_bytes,
                ..base
            })
        );
        assert_ne!(
            id,
            release_id(&IdInput {
                prefix: "assets",
                ..base
            })
        );
        let h2 = headers("no-cache");
        let other_headers = [("a.js", "00ff", &h2)];
        assert_ne!(
            id,
            release_id(&IdInput {
                files: &other_headers,
                ..base
            })
        );
        let m2 = json!({"b.js": "https://cdn/packs/a.js"});
        assert_ne!(
            id,
            release_id(&IdInput {
                manifest: &m2,
                ..base
            })
        );
    }
}
