//! Every URL cutover publishes resolves, through a CDN (nginx in front of
//! the S3 server) to the object's key, whatever the file is called.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::support::{http, nginx, rt, Ctx};

/// Names a webpack build can produce: space, `%`, `#`, `?`, `+`, non-ASCII.
const NAMES: &[&str] = &[
    "js/a b-0a1b2c3d4e5f6a7b8c9d.js",
    "js/p%c-0a1b2c3d4e5f6a7b8c9d.js",
    "js/h#d-0a1b2c3d4e5f6a7b8c9d.js",
    "js/q?e-0a1b2c3d4e5f6a7b8c9d.js",
    "js/pl+us-0a1b2c3d4e5f6a7b8c9d.js",
    "js/ünï-çødé-0a1b2c3d4e5f6a7b8c9d.js",
    "css/a&b=c;d@e-0a1b2c3d4e5f6a7b8c9d.css",
];

#[test]
fn published_urls_resolve_through_a_cdn_to_the_object() {
    let ctx = Ctx::new("url-encoding");
    let build = ctx.work.path().join("build");
    let mut manifest = serde_json::Map::new();
    for (i, name) in NAMES.iter().enumerate() {
        let path = build.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format!("/* {i} {name} */")).unwrap();
        // As webpack-manifest-plugin writes them: the raw name.
        manifest.insert(format!("entry{i}"), format!("/packs/{name}").into());
    }
    std::fs::write(
        build.join("manifest.json"),
        Value::Object(manifest).to_string(),
    )
    .unwrap();
    let cdn = nginx::start(&ctx.s3_endpoint, &ctx.bucket);
    let run = ctx
        .cutover(&["deploy", build.to_str().unwrap()])
        .env("CUTOVER_CDN_URL", &cdn.url)
        .run();
    run.expect(0);
    let live: Value =
        rt().block_on(async { serde_json::from_str(&ctx.get("manifest").await.unwrap()).unwrap() });
    for (i, name) in NAMES.iter().enumerate() {
        let url = live[format!("entry{i}")].as_str().unwrap();
        assert!(url.starts_with(&format!("{}/packs/", cdn.url)), "{url}");
        assert!(
            !url.contains(' ') && !url.contains('#') && !url.contains('?') && url.is_ascii(),
            "not a valid URL: {url}"
        );
        let got = http::get(url);
        assert_eq!(got.status, 200, "GET {url} (for {name})");
        let kind = if name.ends_with(".css") {
            "text/css"
        } else {
            "text/javascript"
        };
        assert_eq!(
            got.header("content-type"),
            Some(format!("{kind}; charset=utf-8").as_str()),
            "served type of {name}"
        );
        let want = std::fs::read(build.join(name)).unwrap();
        assert_eq!(
            Sha256::digest(&got.body),
            Sha256::digest(&want),
            "GET {url} returned other bytes than {name}"
        );
    }
}

#[test]
fn a_manifest_that_encodes_its_paths_is_published_encoded_once() {
    // `a%23b` in a manifest names the file `a#b`: the published URL must
    // encode it again, not decode it into a fragment.
    let ctx = Ctx::new("url-double");
    let build = ctx.work.path().join("build");
    std::fs::create_dir_all(build.join("js")).unwrap();
    let name = "js/a#b-0a1b2c3d4e5f6a7b8c9d.js";
    std::fs::write(build.join(name), "x").unwrap();
    std::fs::write(
        build.join("manifest.json"),
        r#"{"a.js": "/packs/js/a%23b-0a1b2c3d4e5f6a7b8c9d.js"}"#,
    )
    .unwrap();
    let cdn = nginx::start(&ctx.s3_endpoint, &ctx.bucket);
    ctx.cutover(&["deploy", build.to_str().unwrap()])
        .env("CUTOVER_CDN_URL", &cdn.url)
        .run()
        .expect(0);
    let live: Value =
        rt().block_on(async { serde_json::from_str(&ctx.get("manifest").await.unwrap()).unwrap() });
    let url = live["a.js"].as_str().unwrap();
    assert!(
        url.ends_with("/packs/js/a%23b-0a1b2c3d4e5f6a7b8c9d.js"),
        "{url}"
    );
    assert_eq!(http::get(url).body, b"x");
}
