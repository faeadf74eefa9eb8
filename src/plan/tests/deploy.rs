//! The deploy plan: decisions from the listing, the records and closer
//! looks; the questions asked before it; the steps it makes.

use super::config;
use crate::build::manifest::Manifest;
use crate::build::Build;
use crate::events::Quiet;
use crate::plan::*;
use crate::release::ReleaseRecord;
use crate::state::{ContentIndex, Inspected, Listing, LiveState, RemoteObject};
use serde_json::json;
use std::collections::HashMap;

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
    let mut build = crate::build::scan::scan(dir.path(), &Default::default(), &Quiet).unwrap();
    let all: Vec<String> = build.files.iter().map(|f| f.path.clone()).collect();
    crate::build::scan::add_md5s(&mut build, &all, u64::MAX, &Quiet).unwrap();
    let c = config();
    let manifest =
        crate::build::manifest::load(&build, "manifest.json", &|p| c.public_url(p).unwrap())
            .unwrap();
    Fixture {
        _dir: dir,
        build,
        manifest,
    }
}

fn who() -> Provenance {
    Provenance {
        committed_at: None,
        message: None,
        created: ("2026-01-01T00:00:00Z".into(), 0),
    }
}

fn listed(size: u64, etag: &str) -> RemoteObject {
    RemoteObject {
        size,
        etag: etag.into(),
        modified_ms: 0,
    }
}

/// The facts of a build against `remote`, `index` and `live`, with what
/// closer looks found.
fn facts<'a>(
    build: &'a Build,
    manifest: &'a Manifest,
    remote: &'a Listing,
    index: &'a ContentIndex,
    live: &'a LiveState,
    inspected: &'a HashMap<String, Inspected>,
) -> DeployFacts<'a> {
    static NO_HEADS: std::sync::OnceLock<
        HashMap<String, (crate::build::headers::Headers, String)>,
    > = std::sync::OnceLock::new();
    DeployFacts {
        build,
        manifest,
        remote,
        index,
        live,
        inspected,
        heads: NO_HEADS.get_or_init(HashMap::new),
    }
}

/// The plan of `fx` against `remote` and `live`, without release records
/// or closer looks.
fn plan_of(fx: &Fixture, remote: &Listing, live: &LiveState) -> DeployPlan {
    let (index, none) = (ContentIndex::default(), HashMap::new());
    let facts = facts(&fx.build, &fx.manifest, remote, &index, live, &none);
    deploy(&config(), &facts, who()).unwrap()
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
    let md5 = |p: &str| hex::encode(fx.build.get(p).unwrap().digests.md5.as_ref().unwrap().md5);
    let remote: Listing = [
        (
            "packs/js/a-0a1b2c3d4e.js",
            listed(3, &format!("\"{}\"", md5("js/a-0a1b2c3d4e.js"))),
        ),
        ("packs/js/b-0a1b2c3d4e.js", listed(4, "x")),
        ("packs/js/c-0a1b2c3d4e.js", listed(3, "kms-etag")),
        ("packs/manifest.json", listed(1, "x")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let (index, live, none) = (
        ContentIndex::default(),
        LiveState::default(),
        HashMap::new(),
    );
    // The listing cannot tell c's bytes (an ETag that is not its MD5): the
    // one question before planning.
    let asked = facts(&fx.build, &fx.manifest, &remote, &index, &live, &none);
    assert_eq!(
        to_inspect(&config(), &asked).unwrap(),
        ["packs/js/c-0a1b2c3d4e.js"]
    );
    // Gone by the closer look: uploaded.
    let p = plan_of(&fx, &remote, &live);
    let decisions: Vec<(&str, Decision)> = p
        .files
        .iter()
        .map(|f| (f.file.path.as_str(), f.decision))
        .collect();
    assert_eq!(
        decisions,
        [
            ("js/a-0a1b2c3d4e.js", Decision::Skip),
            ("js/b-0a1b2c3d4e.js", Decision::Conflict),
            ("js/c-0a1b2c3d4e.js", Decision::Upload),
            ("js/d-0a1b2c3d4e.js", Decision::Upload),
            ("robots.txt", Decision::Upload),
        ]
    );
    assert_eq!(p.not_fingerprinted, ["robots.txt"]);
    assert_eq!(p.release.file_count, 5);
    assert!(p.warnings.iter().any(|w| w.contains("robots.txt")));
    // A conflict stands: nothing is written.
    assert!(p
        .steps("_cutover/shop/", &DeployOptions::default())
        .is_empty());

    // Found with its bytes by the closer look: skipped.
    let c_sha = p.files[2].file.sha256.clone();
    let mut seen = HashMap::new();
    seen.insert(
        "packs/js/c-0a1b2c3d4e.js".to_string(),
        Inspected::Sha256(c_sha),
    );
    let looked = facts(&fx.build, &fx.manifest, &remote, &index, &live, &seen);
    let p = deploy(&config(), &looked, who()).unwrap();
    assert_eq!(p.files[2].decision, Decision::Skip);
    assert_eq!(p.count(Decision::Upload), (2, 4));
    // Its record keeps the ETag S3 lists (proven to be these bytes), so the
    // next listing settles it without a closer look; a's keeps its MD5.
    assert_eq!(p.files[2].file.etag, "kms-etag");
    assert_eq!(p.files[0].file.etag, md5("js/a-0a1b2c3d4e.js"));
}

#[test]
fn steps_follow_the_options_and_end_with_the_switch() {
    let fx = fixture(
        &[("js/a-0a1b2c3d4e.js", b"aaa")],
        json!({"a.js": "https://cdn.example.com/packs/js/a-0a1b2c3d4e.js"}),
    );
    let p = plan_of(&fx, &Listing::new(), &LiveState::default());
    let names = |steps: Vec<Step>| -> Vec<&'static str> { steps.iter().map(Step::name).collect() };
    let activate = DeployOptions {
        activate: true,
        ..Default::default()
    };
    assert_eq!(
        names(p.steps("m/", &activate)),
        ["upload", "record", "register", "switch"]
    );
    assert_eq!(
        names(p.steps("m/", &DeployOptions::default())),
        ["upload", "record", "register"]
    );
    let Step::PutRecord { key, .. } = &p.steps("m/", &activate)[1] else {
        panic!()
    };
    assert_eq!(key, &format!("m/releases/{}.json", p.release.id));
}

#[test]
fn diff_and_already_live_and_public_path_warning() {
    let fx = fixture(
        &[("js/a-0a1b2c3d4e.js", b"aaa")],
        json!({"a.js": "/packs/js/a-0a1b2c3d4e.js"}),
    );
    let first = plan_of(&fx, &Listing::new(), &LiveState::default());
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
        ..LiveState::default()
    };
    // Several Redis targets, one of them behind: not live until all are.
    let split = LiveState {
        targets: vec![
            crate::state::TargetLive {
                name: "redis://a".into(),
                current: live.current.clone(),
                manifest: live.manifest.clone(),
                signature: None,
                canary: None,
                canary_stored: None,
            },
            crate::state::TargetLive {
                name: "redis://b".into(),
                current: Some("0ld".into()),
                manifest: None,
                signature: None,
                canary: None,
                canary_stored: None,
            },
        ],
        ..live.clone()
    };
    let behind = plan_of(&fx, &Listing::new(), &split);
    assert!(split.split() && !behind.already_live);
    assert_eq!(
        behind
            .expect
            .iter()
            .map(|t| (t.current.as_deref(), t.serves))
            .collect::<Vec<_>>(),
        [
            (Some(first.release.id.as_str()), true),
            (Some("0ld"), false)
        ]
    );
    let again = plan_of(&fx, &Listing::new(), &live);
    assert!(again.already_live);
    assert_eq!(again.release.id, first.release.id);
    assert_eq!(again.manifest_diff.unchanged, 1);
    // Already live with every object missing: only the repair.
    let opts = DeployOptions {
        activate: true,
        ..Default::default()
    };
    let steps = again.steps("m/", &opts);
    assert!(matches!(steps.as_slice(), [Step::Upload(f)] if f.len() == 1));
}

#[test]
fn records_settle_listed_files_without_md5_or_head() {
    let dir = tempfile::tempdir().unwrap();
    for (p, b) in [
        ("js/a-0a1b2c3d4e.js", &b"aaa"[..]),
        ("js/b-0a1b2c3d4e.js", b"bbb"),
        ("js/c-0a1b2c3d4e.js", b"ccc"),
        ("js/d-0a1b2c3d4e.js", b"ddd"),
    ] {
        std::fs::create_dir_all(dir.path().join("js")).unwrap();
        std::fs::write(dir.path().join(p), b).unwrap();
    }
    std::fs::write(
        dir.path().join("manifest.json"),
        json!({"a.js": "https://cdn.example.com/packs/js/a-0a1b2c3d4e.js"}).to_string(),
    )
    .unwrap();
    // SHA-256 only, as a deploy scans.
    let build = crate::build::scan::scan(dir.path(), &Default::default(), &Quiet).unwrap();
    let c = config();
    let manifest =
        crate::build::manifest::load(&build, "manifest.json", &|p| c.public_url(p).unwrap())
            .unwrap();
    let sha = |p: &str| build.get(p).unwrap().digests.sha256_hex();
    let previous: ReleaseRecord = serde_json::from_value(json!({
        "id": "0ld", "app": "shop", "created_at": "", "created_at_ms": 0, "file_count": 3,
        "bytes": 9, "git_sha": null, "git_branch": null, "build_url": null, "deployed_by": null,
        "message": null, "bucket": "assets", "prefix": "packs", "cdn_url": "https://cdn.example.com",
        "manifest": {},
        "files": [
            {"path": "js/a-0a1b2c3d4e.js", "size": 3, "sha256": sha("js/a-0a1b2c3d4e.js"), "md5": "aa", "etag": "aa"},
            {"path": "js/b-0a1b2c3d4e.js", "size": 3, "sha256": "0ther", "md5": "bb", "etag": "bb"},
            {"path": "js/c-0a1b2c3d4e.js", "size": 3, "sha256": sha("js/c-0a1b2c3d4e.js"), "md5": "cc", "etag": "cc"},
        ],
    }))
    .unwrap();
    let index = ContentIndex::new("assets", vec![previous]);
    // Listed without ETags (as s3s-fs lists): a by the record; b's
    // record says other bytes; c's listing disagrees with its record
    // (another size); d is not listed.
    let remote: Listing = [
        ("packs/js/a-0a1b2c3d4e.js", listed(3, "")),
        ("packs/js/b-0a1b2c3d4e.js", listed(3, "")),
        ("packs/js/c-0a1b2c3d4e.js", listed(3, "\"ffff\"")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let (live, none) = (LiveState::default(), HashMap::new());
    let facts = facts(&build, &manifest, &remote, &index, &live, &none);
    assert_eq!(
        md5_needed(&c, &facts),
        [
            "js/b-0a1b2c3d4e.js",
            "js/c-0a1b2c3d4e.js",
            "js/d-0a1b2c3d4e.js"
        ]
    );
    // b's record says other bytes, c's listing disagrees with its record:
    // both looked at closer.
    assert_eq!(
        to_inspect(&c, &facts).unwrap(),
        ["packs/js/b-0a1b2c3d4e.js", "packs/js/c-0a1b2c3d4e.js"]
    );
    let p = deploy(&c, &facts, who()).unwrap();
    let decisions: Vec<(&str, Decision, Option<&str>)> = p
        .files
        .iter()
        .map(|f| (f.file.path.as_str(), f.decision, f.file.md5.as_deref()))
        .collect();
    assert_eq!(
        decisions,
        [
            ("js/a-0a1b2c3d4e.js", Decision::Skip, Some("aa")),
            // Gone by the closer look (nothing found): uploaded.
            ("js/b-0a1b2c3d4e.js", Decision::Upload, None),
            ("js/c-0a1b2c3d4e.js", Decision::Upload, None),
            ("js/d-0a1b2c3d4e.js", Decision::Upload, None),
        ]
    );
    // The new record keeps what the old one proved.
    let recorded = &p.release.files.as_ref().unwrap()[0];
    assert_eq!(
        (recorded.md5.as_deref(), recorded.etag.as_str()),
        (Some("aa"), "aa")
    );
}

#[test]
fn a_redeploy_shares_the_entries_of_the_record_that_settles_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("js")).unwrap();
    for (p, b) in [
        ("js/a-0a1b2c3d4e.js", &b"aaa"[..]),
        ("js/b-0a1b2c3d4e.js", b"bbb"),
    ] {
        std::fs::write(dir.path().join(p), b).unwrap();
    }
    std::fs::write(
        dir.path().join("manifest.json"),
        json!({"a.js": "https://cdn.example.com/packs/js/a-0a1b2c3d4e.js"}).to_string(),
    )
    .unwrap();
    let build = crate::build::scan::scan(dir.path(), &Default::default(), &Quiet).unwrap();
    let c = config();
    let manifest =
        crate::build::manifest::load(&build, "manifest.json", &|p| c.public_url(p).unwrap())
            .unwrap();
    let (live, none) = (LiveState::default(), HashMap::new());
    let (empty, nothing) = (ContentIndex::default(), Listing::new());
    let first = deploy(
        &c,
        &facts(&build, &manifest, &nothing, &empty, &live, &none),
        who(),
    )
    .unwrap();
    // The first deploy's record, with the MD5s a real deploy computes for
    // what it uploads, and a listing of what it uploaded.
    let mut record = (*first.release).clone();
    for f in record.files.as_mut().unwrap() {
        use md5::Digest;
        let bytes = std::fs::read(dir.path().join(&f.path)).unwrap();
        let md5 = hex::encode(md5::Md5::digest(&bytes));
        let f = std::sync::Arc::make_mut(f);
        f.md5 = Some(md5.clone());
        f.etag = md5;
    }
    let remote: Listing = first
        .files
        .iter()
        .map(|f| (f.key.clone(), listed(f.file.size, "")))
        .collect();
    let index = ContentIndex::new("assets", vec![record]);
    let again = deploy(
        &c,
        &facts(&build, &manifest, &remote, &index, &live, &none),
        who(),
    )
    .unwrap();
    assert!(again.files.iter().all(|f| f.decision == Decision::Skip));
    for f in &again.files {
        let known = index.shared(&f.key).expect("indexed");
        assert!(
            std::sync::Arc::ptr_eq(&f.file, &known),
            "{} is a copy, not shared",
            f.key
        );
    }
}
