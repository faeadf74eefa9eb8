//! Planning: what a deploy would do, decided from the scanned build, one
//! listing of the bucket and the live state in Redis. Pure: no I/O here.

use std::collections::HashMap;

use serde::Serialize;

use crate::config::Config;
use crate::headers::{headers_for, is_fingerprinted, Headers};
use crate::manifest::{diff, Manifest, ManifestDiff};
use crate::release::{release_id, IdInput, ReleaseFile, ReleaseRecord};
use crate::scan::{Build, BuildFile};

/// An object as one listing of the bucket shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteObject {
    pub size: u64,
    /// Without quotes.
    pub etag: String,
}

/// What a closer look (HEAD, or reading the object) found out about an
/// object whose ETag alone did not prove its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspected {
    pub sha256_hex: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Not in S3: upload it.
    Upload,
    /// Already in S3 with the same bytes.
    Skip,
    /// In S3 with other bytes: never overwritten.
    Conflict,
    /// Same size, but the listing cannot prove the bytes (e.g. an ETag that is
    /// not an MD5): needs a closer look before the plan is final.
    Inspect,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlannedFile {
    pub path: String,
    pub key: String,
    pub size: u64,
    pub sha256: String,
    #[serde(skip)]
    pub etag: String,
    #[serde(flatten)]
    pub headers: Headers,
    pub action: Action,
    /// For conflicts: what S3 holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
}

/// Live state of the app in Redis, as read before planning.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveState {
    pub current: Option<String>,
    pub manifest: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub release: ReleaseRecord,
    pub files: Vec<PlannedFile>,
    pub manifest_diff: ManifestDiff,
    /// The release live when the plan was made (activation compares-and-sets against it).
    pub live_release: Option<String>,
    pub already_live: bool,
    pub not_fingerprinted: Vec<String>,
    pub warnings: Vec<String>,
}

impl Plan {
    pub fn count(&self, action: Action) -> (usize, u64) {
        self.files
            .iter()
            .filter(|f| f.action == action)
            .fold((0, 0), |(n, b), f| (n + 1, b + f.size))
    }
    pub fn conflicts(&self) -> impl Iterator<Item = &PlannedFile> {
        self.files.iter().filter(|f| f.action == Action::Conflict)
    }
    pub fn uploads(&self) -> impl Iterator<Item = &PlannedFile> {
        self.files.iter().filter(|f| f.action == Action::Upload)
    }
    pub fn needs_inspection(&self) -> impl Iterator<Item = &PlannedFile> {
        self.files.iter().filter(|f| f.action == Action::Inspect)
    }

    /// Settle the files that needed a closer look.
    pub fn resolve(&mut self, inspected: &HashMap<String, Inspected>) {
        for f in &mut self.files {
            if f.action != Action::Inspect {
                continue;
            }
            match inspected.get(&f.key) {
                Some(i) if i.sha256_hex == f.sha256 => {
                    f.action = Action::Skip;
                    f.remote = None;
                }
                Some(i) => {
                    f.action = Action::Conflict;
                    f.remote = Some(format!("sha256 {}", i.sha256_hex));
                }
                None => {}
            }
        }
    }
}

/// Metadata about who and why, filled from config.
pub struct Provenance<'a> {
    pub config: &'a Config,
    pub message: Option<String>,
    pub created: (String, i64),
}

/// Decide, for every file of the build, what the deploy does.
pub fn plan(
    build: &Build,
    manifest: &Manifest,
    remote: &HashMap<String, RemoteObject>,
    live: &LiveState,
    who: Provenance,
) -> anyhow::Result<Plan> {
    let config = who.config;
    let mut files = Vec::with_capacity(build.files.len());
    let mut not_fingerprinted = Vec::new();
    // The manifest (and webpack's compressed copies of it) is published
    // through Redis, not served from the bucket.
    let manifest_copies = [
        manifest.path.clone(),
        format!("{}.gz", manifest.path),
        format!("{}.br", manifest.path),
    ];
    for f in build
        .files
        .iter()
        .filter(|f| !manifest_copies.contains(&f.path))
    {
        let key = config.object_key(&f.path);
        let (action, remote_desc) = classify(f, remote.get(&key));
        if !is_fingerprinted(&f.path) {
            not_fingerprinted.push(f.path.clone());
        }
        files.push(PlannedFile {
            path: f.path.clone(),
            key,
            size: f.size,
            sha256: f.digests.sha256_hex(),
            etag: f.digests.expected_etag(),
            headers: headers_for(f, config),
            action,
            remote: remote_desc,
        });
    }

    let bucket = config.bucket()?;
    let cdn_url = config.cdn_url()?;
    let id_files: Vec<(&str, &str, &Headers)> = files
        .iter()
        .map(|f| (f.path.as_str(), f.sha256.as_str(), &f.headers))
        .collect();
    let id = release_id(&IdInput {
        bucket,
        prefix: &config.prefix,
        cdn_url,
        files: &id_files,
        manifest: &manifest.live,
    });
    let release = ReleaseRecord {
        id: id.clone(),
        app: config.app()?.to_string(),
        created_at: who.created.0,
        created_at_ms: who.created.1,
        file_count: files.len(),
        bytes: files.iter().map(|f| f.size).sum(),
        git_sha: config.git_sha.clone(),
        git_branch: config.git_branch.clone(),
        build_url: config.build_url.clone(),
        deployed_by: config.deployed_by.clone(),
        message: who.message,
        bucket: bucket.to_string(),
        prefix: config.prefix.clone(),
        cdn_url: cdn_url.to_string(),
        manifest: manifest.live.clone(),
        files: Some(
            files
                .iter()
                .map(|f| ReleaseFile {
                    path: f.path.clone(),
                    size: f.size,
                    sha256: f.sha256.clone(),
                    etag: f.etag.clone(),
                })
                .collect(),
        ),
    };

    let mut warnings = Vec::new();
    let expected_public = format!(
        "{}/",
        config
            .public_url("")
            .unwrap_or_default()
            .trim_end_matches('/')
    );
    if !manifest.public_path.is_empty() && manifest.public_path != expected_public {
        warnings.push(format!(
            "the build's public path is {:?} but its files will be served from {expected_public}: lazy-loaded chunks would \
             load from the wrong host; build with the CDN as webpack's publicPath (Shakapacker: SHAKAPACKER_ASSET_HOST={cdn_url})",
            manifest.public_path
        ));
    }
    if !not_fingerprinted.is_empty() {
        let shown: Vec<&str> = not_fingerprinted
            .iter()
            .take(5)
            .map(String::as_str)
            .collect();
        let more = if not_fingerprinted.len() > 5 {
            format!(" and {} more", not_fingerprinted.len() - 5)
        } else {
            String::new()
        };
        warnings.push(format!(
            "{} file(s) have no content hash in their name ({}{more}): they get `{}` and a change to them in a later build \
             will be a conflict; add [contenthash] to their webpack file names",
            not_fingerprinted.len(),
            shown.join(", "),
            config.cache_control
        ));
    }

    Ok(Plan {
        manifest_diff: diff(live.manifest.as_ref(), &manifest.live),
        already_live: live.current.as_deref() == Some(id.as_str()),
        live_release: live.current.clone(),
        release,
        files,
        not_fingerprinted,
        warnings,
    })
}

/// What one listing entry says about an object we expect to hold `size`
/// bytes whose upload would have one of `etags`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listed {
    Same,
    OtherSize,
    /// Same size, but the ETag proves nothing (SSE-KMS, other servers, none
    /// in the listing): needs a closer look.
    Unsure,
}

pub fn compare_listed(obj: &RemoteObject, size: u64, etags: &[&str]) -> Listed {
    if obj.size != size {
        return Listed::OtherSize;
    }
    let etag = obj.etag.trim_matches('"');
    if etags.iter().any(|e| etag.eq_ignore_ascii_case(e)) {
        Listed::Same
    } else {
        Listed::Unsure
    }
}

fn classify(file: &BuildFile, remote: Option<&RemoteObject>) -> (Action, Option<String>) {
    let Some(obj) = remote else {
        return (Action::Upload, None);
    };
    // Ours (MD5, or the multipart MD5-of-MD5s), or a single-part upload by someone else.
    let etags = [file.digests.expected_etag(), hex::encode(file.digests.md5)];
    match compare_listed(obj, file.size, &[&etags[0], &etags[1]]) {
        Listed::OtherSize => (Action::Conflict, Some(format!("{} bytes", obj.size))),
        Listed::Same => (Action::Skip, None),
        Listed::Unsure => (
            Action::Inspect,
            Some(format!("etag {}", obj.etag.trim_matches('"'))),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load, FlagValues};
    use crate::events::Quiet;
    use serde_json::json;

    fn config() -> Config {
        let env = |k: &str| match k {
            "CUTOVER_APP" => Some("shop".to_string()),
            "CUTOVER_BUCKET" => Some("assets".to_string()),
            "CUTOVER_CDN_URL" => Some("https://cdn.example.com".to_string()),
            _ => None,
        };
        load(&FlagValues::new(), &env, None).unwrap()
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        build: Build,
        manifest: Manifest,
    }

    fn fixture(files: &[(&str, &[u8])], manifest: serde_json::Value) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        for (p, b) in files {
            let full = dir.path().join(p);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, b).unwrap();
        }
        std::fs::write(dir.path().join("manifest.json"), manifest.to_string()).unwrap();
        let build = crate::scan::scan(dir.path(), u64::MAX, &Quiet).unwrap();
        let c = config();
        let manifest =
            crate::manifest::load(&build, "manifest.json", &|p| c.public_url(p).unwrap()).unwrap();
        Fixture {
            _dir: dir,
            build,
            manifest,
        }
    }

    fn who(c: &Config) -> Provenance<'_> {
        Provenance {
            config: c,
            message: None,
            created: ("2026-01-01T00:00:00Z".into(), 0),
        }
    }

    #[test]
    fn upload_skip_conflict_inspect() {
        let fx = fixture(
            &[
                ("js/a-0a1b2c3d4e.js", b"aaa"),
                ("js/b-0a1b2c3d4e.js", b"bbb"),
                ("js/c-0a1b2c3d4e.js", b"ccc"),
                ("js/d-0a1b2c3d4e.js", b"ddd"),
                ("robots.txt", b"r"),
            ],
            json!({"a.js": "https://cdn.example.com/packs/js/a-0a1b2c3d4e.js"}),
        );
        let md5 = |p: &str| hex::encode(fx.build.get(p).unwrap().digests.md5);
        let mut remote = HashMap::new();
        remote.insert(
            "packs/js/a-0a1b2c3d4e.js".to_string(),
            RemoteObject {
                size: 3,
                etag: format!("\"{}\"", md5("js/a-0a1b2c3d4e.js")),
            },
        );
        remote.insert(
            "packs/js/b-0a1b2c3d4e.js".to_string(),
            RemoteObject {
                size: 4,
                etag: "x".into(),
            },
        );
        remote.insert(
            "packs/js/c-0a1b2c3d4e.js".to_string(),
            RemoteObject {
                size: 3,
                etag: "kms-etag".into(),
            },
        );
        remote.insert(
            "packs/manifest.json".to_string(),
            RemoteObject {
                size: 1,
                etag: "x".into(),
            },
        );
        let c = config();
        let mut p = plan(
            &fx.build,
            &fx.manifest,
            &remote,
            &LiveState::default(),
            who(&c),
        )
        .unwrap();
        let actions: Vec<(&str, Action)> = p
            .files
            .iter()
            .map(|f| (f.path.as_str(), f.action))
            .collect();
        assert_eq!(
            actions,
            [
                ("js/a-0a1b2c3d4e.js", Action::Skip),
                ("js/b-0a1b2c3d4e.js", Action::Conflict),
                ("js/c-0a1b2c3d4e.js", Action::Inspect),
                ("js/d-0a1b2c3d4e.js", Action::Upload),
                ("robots.txt", Action::Upload),
            ]
        );
        assert_eq!(p.not_fingerprinted, ["robots.txt"]);
        assert_eq!(p.release.file_count, 5);
        assert!(p.warnings.iter().any(|w| w.contains("robots.txt")));
        let c_sha = p.files[2].sha256.clone();
        let mut seen = HashMap::new();
        seen.insert(
            "packs/js/c-0a1b2c3d4e.js".to_string(),
            Inspected { sha256_hex: c_sha },
        );
        p.resolve(&seen);
        assert_eq!(p.files[2].action, Action::Skip);
        assert_eq!(p.count(Action::Upload), (2, 4));
    }

    #[test]
    fn diff_and_already_live_and_public_path_warning() {
        let fx = fixture(
            &[("js/a-0a1b2c3d4e.js", b"aaa")],
            json!({"a.js": "/packs/js/a-0a1b2c3d4e.js"}),
        );
        let c = config();
        let first = plan(
            &fx.build,
            &fx.manifest,
            &HashMap::new(),
            &LiveState::default(),
            who(&c),
        )
        .unwrap();
        assert!(!first.already_live);
        assert_eq!(first.manifest_diff.added.len(), 1);
        assert!(
            first
                .warnings
                .iter()
                .any(|w| w.contains("public path is \"/packs/\"")),
            "{:?}",
            first.warnings
        );
        let live = LiveState {
            current: Some(first.release.id.clone()),
            manifest: Some(first.release.manifest.clone()),
        };
        let again = plan(&fx.build, &fx.manifest, &HashMap::new(), &live, who(&c)).unwrap();
        assert!(again.already_live);
        assert_eq!(again.release.id, first.release.id);
        assert_eq!(again.manifest_diff.unchanged, 1);
    }
}
