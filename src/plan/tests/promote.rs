//! Promote's plan: the target's manifest is built from where the release
//! was recorded and holds only the target's URLs; copies between S3
//! endpoints are refused up front.

use serde_json::json;

use crate::config::{load, Config, FlagValues};
use crate::error::exit_code;
use crate::plan::promote::{copies, for_target};
use crate::release::ReleaseRecord;
use crate::state::Found;

fn env_config(cdn: &str, endpoint: &str) -> Config {
    let env = |k: &str| match k {
        "CUTOVER_APP" => Some("shop".to_string()),
        "CUTOVER_BUCKET" => Some("assets".to_string()),
        "CUTOVER_CDN_URL" => Some(cdn.to_string()),
        "CUTOVER_S3_ENDPOINT" => Some(endpoint.to_string()),
        _ => None,
    };
    load(&FlagValues::new(), &env, None).unwrap()
}

fn record(manifest: serde_json::Value) -> ReleaseRecord {
    serde_json::from_value(json!({
        "id": "2e3", "app": "shop", "created_at": "", "created_at_ms": 0, "file_count": 1,
        "bytes": 3, "git_sha": null, "git_branch": null, "build_url": null, "deployed_by": null,
        "message": null, "bucket": "staging", "prefix": "packs", "cdn_url": "https://cdn.old.example",
        "manifest": manifest,
        "public_path": {"kind": "unknown"},
        "files": [{"path": "js/a.js", "size": 3, "sha256": "aa", "md5": "a1", "etag": "a1",
                   "headers": {"content_type": "text/javascript; charset=utf-8", "cache_control": "immutable"}}],
    }))
    .unwrap()
}

#[test]
fn the_target_manifest_is_rewritten_from_the_record_and_holds_only_target_urls() {
    let (from, to) = (
        env_config("https://cdn.new.example", "http://127.0.0.1:1"),
        env_config("https://cdn.prod.example", "http://127.0.0.1:1"),
    );
    let r = record(json!({"a.js": "https://cdn.old.example/packs/js/a.js"}));
    let promoted = for_target(&r, &from, &to, "staging").unwrap();
    assert_eq!(
        promoted.manifest,
        json!({"a.js": "https://cdn.prod.example/packs/js/a.js"})
    );
    // A URL the rewrite does not reach (another host) is refused.
    let r = record(
        json!({"a.js": "https://cdn.old.example/packs/js/a.js", "x.js": "https://evil.example/x.js"}),
    );
    let e = for_target(&r, &from, &to, "staging").unwrap_err();
    assert_eq!(exit_code(&e), 2);
    assert!(e.to_string().contains("https://evil.example/x.js"), "{e}");
}

#[test]
fn copies_between_s3_endpoints_are_refused_up_front() {
    let (from, to) = (
        env_config("https://cdn.old.example", "http://127.0.0.1:1"),
        env_config("https://cdn.prod.example", "http://127.0.0.1:2"),
    );
    let r = record(json!({}));
    let file = &r.files.as_ref().unwrap()[0];
    let found = vec![("packs/js/a.js".to_string(), &**file, Found::Missing)];
    let e = copies(&found, &r, &from, &to).unwrap_err();
    assert_eq!(exit_code(&e), 2);
    assert!(e.to_string().contains("different S3 endpoints"), "{e}");
    // Behind one endpoint, the copy is planned.
    let same = env_config("https://cdn.prod.example", "http://127.0.0.1:1");
    assert_eq!(copies(&found, &r, &from, &same).unwrap().len(), 1);
}
