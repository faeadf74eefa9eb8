//! Planning, through the library (no server): what a closer look at a
//! listed object decides. The listing alone could not prove these objects'
//! bytes (an ETag that is not an MD5, as with SSE-KMS), so each was
//! inspected; the plan must follow what the inspection found.

use std::collections::HashMap;

use cutover::plan::Decision;
use cutover::state::{Inspected, Listing, RemoteObject};

fn plan(dir: &std::path::Path) -> cutover::plan::DeployPlan {
    use cutover::events::Quiet;
    let names = ["same", "other", "gone", "mutable"];
    std::fs::create_dir_all(dir.join("js")).unwrap();
    let mut manifest = serde_json::Map::new();
    for n in names {
        let path = format!("js/{n}-0a1b2c3d4e5f.js");
        std::fs::write(dir.join(&path), format!("console.log('{n}')")).unwrap();
        manifest.insert(format!("{n}.js"), format!("/packs/{path}").into());
    }
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::Value::Object(manifest).to_string(),
    )
    .unwrap();
    let env: HashMap<&str, &str> = [
        ("CUTOVER_APP", "shop"),
        ("CUTOVER_BUCKET", "shop-assets"),
        ("CUTOVER_CDN_URL", "https://cdn.example.com"),
    ]
    .into_iter()
    .collect();
    let config = cutover::config::load(
        &Default::default(),
        &|k| env.get(k).map(|v| v.to_string()),
        None,
    )
    .unwrap();
    let build = cutover::build::scan::scan(dir, &config.exclude, &Quiet).unwrap();
    let manifest =
        cutover::build::manifest::load(&build, "manifest.json", &|p| config.public_url(p).unwrap())
            .unwrap();
    // Every file listed, same size, an ETag that proves nothing.
    let remote: Listing = names
        .iter()
        .map(|n| {
            (
                format!("packs/js/{n}-0a1b2c3d4e5f.js"),
                RemoteObject {
                    size: format!("console.log('{n}')").len() as u64,
                    etag: "kms-0123".into(),
                    modified_ms: 0,
                },
            )
        })
        .collect();
    let who = cutover::plan::Provenance {
        message: None,
        created: cutover::release::now(),
    };
    cutover::plan::deploy(
        &config,
        &build,
        &manifest,
        &remote,
        &Default::default(),
        &Default::default(),
        who,
    )
    .unwrap()
}

#[test]
fn an_inspected_object_is_skipped_only_with_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = plan(dir.path());
    let key = |n: &str| format!("packs/js/{n}-0a1b2c3d4e5f.js");
    assert!(
        p.files.iter().all(|f| f.decision == Decision::Inspect),
        "{:?}",
        p.files
    );
    let sha = |n: &str| {
        p.files
            .iter()
            .find(|f| f.key == key(n))
            .unwrap()
            .file
            .sha256
            .clone()
    };
    let other = "0".repeat(64);
    let mut seen = HashMap::new();
    seen.insert(key("same"), Inspected::Sha256(sha("same")));
    seen.insert(key("other"), Inspected::Sha256(other.clone()));
    seen.insert(key("mutable"), Inspected::Sha256(other.clone()));
    // "gone": deleted since the listing.
    for f in p.files.iter_mut() {
        let f = std::sync::Arc::make_mut(f);
        std::sync::Arc::make_mut(&mut f.file).mutable = f.key == key("mutable");
    }
    p.resolve(&seen);
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
