//! What a closer look at a listed object decides. The listing alone could
//! not prove these objects' bytes (an ETag that is not an MD5, as with
//! SSE-KMS), so each was inspected; the plan must follow what the
//! inspection found.

use std::collections::HashMap;

use super::config;
use crate::build::headers::MutableRule;
use crate::events::Quiet;
use crate::plan::{deploy, to_inspect, Decision, DeployFacts, Provenance};
use crate::state::{ContentIndex, Inspected, Listing, LiveState, RemoteObject};

#[test]
fn an_inspected_object_is_skipped_only_with_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let names = ["same", "other", "gone", "mutable"];
    std::fs::create_dir_all(dir.path().join("js")).unwrap();
    let mut manifest = serde_json::Map::new();
    for n in names {
        let path = format!("js/{n}-0a1b2c3d4e5f.js");
        std::fs::write(dir.path().join(&path), format!("console.log('{n}')")).unwrap();
        manifest.insert(format!("{n}.js"), format!("/packs/{path}").into());
    }
    std::fs::write(
        dir.path().join("manifest.json"),
        serde_json::Value::Object(manifest).to_string(),
    )
    .unwrap();
    let mut config = config();
    config.mutable = vec![MutableRule {
        glob: "js/mutable-*".into(),
        matcher: globset::Glob::new("js/mutable-*")
            .unwrap()
            .compile_matcher(),
    }];
    let mut build = crate::build::scan::scan(dir.path(), &config.exclude, &Quiet).unwrap();
    let all: Vec<String> = build.files.iter().map(|f| f.path.clone()).collect();
    crate::build::scan::add_md5s(&mut build, &all, u64::MAX, &Quiet).unwrap();
    let manifest =
        crate::build::manifest::load(&build, "manifest.json", &|p| config.public_url(p).unwrap())
            .unwrap();
    let key = |n: &str| format!("packs/js/{n}-0a1b2c3d4e5f.js");
    // Every file listed, same size, an ETag that proves nothing.
    let remote: Listing = names
        .iter()
        .map(|n| {
            let object = RemoteObject {
                size: format!("console.log('{n}')").len() as u64,
                etag: "kms-0123".into(),
                modified_ms: 0,
            };
            (key(n), object)
        })
        .collect();
    let sha = |n: &str| {
        build
            .files
            .iter()
            .find(|f| f.path == format!("js/{n}-0a1b2c3d4e5f.js"))
            .unwrap()
            .digests
            .sha256_hex()
    };
    let other = "0".repeat(64);
    let mut seen = HashMap::new();
    seen.insert(key("same"), Inspected::Sha256(sha("same")));
    seen.insert(key("other"), Inspected::Sha256(other.clone()));
    seen.insert(key("mutable"), Inspected::Sha256(other.clone()));
    // "gone": deleted since the listing.
    let (index, live, heads) = (
        ContentIndex::default(),
        LiveState::default(),
        HashMap::new(),
    );
    let facts = DeployFacts {
        build: &build,
        manifest: &manifest,
        remote: &remote,
        index: &index,
        live: &live,
        inspected: &seen,
        heads: &heads,
    };
    let mut asked = to_inspect(&config, &facts).unwrap();
    asked.sort();
    let mut expected: Vec<String> = names.iter().map(|n| key(n)).collect();
    // The mutable file's content-addressed copy is looked at too.
    expected.push(crate::contract::mutable_key(
        &config.meta_prefix().unwrap(),
        &sha("mutable"),
    ));
    expected.sort();
    assert_eq!(asked, expected, "every listed file is looked at closer");
    let who = Provenance {
        committed_at: None,
        message: None,
        created: crate::release::now(),
    };
    let p = deploy(&config, &facts, who).unwrap();
    let decided: HashMap<String, (Decision, Option<String>)> = p
        .files
        .iter()
        .map(|f| (f.key.clone(), (f.decision, f.remote.clone())))
        .collect();
    assert_eq!(decided[&key("same")], (Decision::Skip, None));
    assert_eq!(
        decided[&key("other")],
        (Decision::Conflict, Some(format!("sha256 {other}"))),
        "other bytes at a key the build needs are a conflict"
    );
    assert_eq!(decided[&key("gone")], (Decision::Upload, None));
    assert_eq!(decided[&key("mutable")].0, Decision::Replace);
    // A conflict stands: no write is planned.
    assert!(p.steps("_cutover/shop/", &Default::default()).is_empty());
}
