//! Every manifest format (issue 14), on the real builds in
//! tests/fixtures/builds: deployed with the right headers, its manifest
//! files kept out of S3, the live manifest in Redis resolving every asset
//! URL through a CDN (nginx) to the build's bytes, integrity mismatches
//! refused with nothing changed, and `manifest_format = auto` choosing
//! each format and saying so.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use crate::support::fixtures::files_of;
use crate::support::{fixture, http, nginx, rt, Ctx};

/// A fixture build, the prefix it is served under, its format and manifest.
struct Case {
    build: &'static str,
    prefix: &'static str,
    format: &'static str,
    manifest: &'static str,
}

const CASES: &[Case] = &[
    Case {
        build: "vite",
        prefix: "vite",
        format: "vite",
        manifest: ".vite/manifest.json",
    },
    Case {
        build: "propshaft",
        prefix: "assets",
        format: "propshaft",
        manifest: ".manifest.json",
    },
    Case {
        build: "sprockets",
        prefix: "assets",
        format: "sprockets",
        manifest: ".sprockets-manifest-5687c8a0b23eefd26291d806589b41ef.json",
    },
    Case {
        build: "shakapacker",
        prefix: "packs",
        format: "shakapacker",
        manifest: "manifest.json",
    },
    Case {
        build: "flat",
        prefix: "packs",
        format: "webpack",
        manifest: "manifest.json",
    },
];

/// Manifest files, by the formats' names: never uploaded.
fn is_manifest_file(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap();
    let name = name
        .strip_suffix(".gz")
        .or(name.strip_suffix(".br"))
        .unwrap_or(name);
    path.starts_with(".vite/")
        || name == "manifest.json"
        || name == ".manifest.json"
        || name.starts_with(".sprockets-manifest-")
}

/// Content-Type and Content-Encoding a file must be served with.
fn expected_type(path: &str) -> (&'static str, Option<&'static str>) {
    let (original, encoding) = match (path.strip_suffix(".gz"), path.strip_suffix(".br")) {
        (Some(o), _) => (o, Some("gzip")),
        (_, Some(o)) => (o, Some("br")),
        _ => (path, None),
    };
    let ext = original.rsplit('.').next().unwrap();
    let t = match ext {
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "map" => "application/json; charset=utf-8",
        "svg" => "image/svg+xml; charset=utf-8",
        "png" => "image/png",
        "woff2" => "font/woff2",
        other => panic!("no expected type for .{other} ({path})"),
    };
    (t, encoding)
}

/// Every string of the live manifest (values, and object keys: Sprockets
/// keys `files` by path) that is a URL on the CDN.
fn cdn_urls(v: &Value, cdn: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::String(s) if s.starts_with(cdn) => {
            out.insert(s.clone());
        }
        Value::Array(items) => items.iter().for_each(|i| cdn_urls(i, cdn, out)),
        Value::Object(map) => {
            for (k, child) in map {
                if k.starts_with(cdn) {
                    out.insert(k.clone());
                }
                cdn_urls(child, cdn, out);
            }
        }
        _ => {}
    }
}

#[test]
fn each_format_deploys_with_its_headers_and_its_live_manifest_resolves_through_a_cdn() {
    for case in CASES {
        let ctx = Ctx::new(&format!("fmt-{}", case.build));
        let cdn = nginx::start(&ctx.s3_endpoint, &ctx.bucket);
        let dir = fixture(case.build);
        let run = ctx
            .cutover(&["deploy", dir.to_str().unwrap(), "--json"])
            .env("CUTOVER_PREFIX", case.prefix)
            .env("CUTOVER_CDN_URL", &cdn.url)
            .run();
        run.expect(0).stderr_has(&[&format!(
            "manifest {}: {} format (manifest_format = auto",
            case.manifest, case.format
        )]);
        let out = run.json();
        assert_eq!(out["manifest_format"], case.format, "{}", case.build);
        assert_eq!(out["outcome"], "activated");
        let warnings = out["warnings"].to_string();
        assert!(
            !warnings.contains("without a content hash"),
            "{}: every file of these builds is fingerprinted: {warnings}",
            case.build
        );

        // S3 holds exactly the build without its manifest files, each with
        // its type, encoding and the immutable Cache-Control.
        let build_files = files_of(&dir);
        let uploadable: BTreeSet<String> = build_files
            .iter()
            .filter(|p| !is_manifest_file(p))
            .map(|p| format!("{}/{p}", case.prefix))
            .collect();
        assert!(build_files.len() > uploadable.len(), "{}", case.build);
        let keys: BTreeSet<String> = rt()
            .block_on(ctx.objects())
            .into_keys()
            .filter(|k| !k.starts_with("_cutover/"))
            .collect();
        assert_eq!(keys, uploadable, "{}: S3 holds the build", case.build);
        rt().block_on(async {
            let s3 = ctx.s3().await;
            for key in &keys {
                let head = s3
                    .head_object()
                    .bucket(&ctx.bucket)
                    .key(key)
                    .send()
                    .await
                    .unwrap();
                let (t, enc) = expected_type(key);
                assert_eq!(head.content_type(), Some(t), "{key}");
                assert_eq!(head.content_encoding(), enc, "{key}");
                assert_eq!(
                    head.cache_control(),
                    Some("public, max-age=31536000, immutable"),
                    "{key}"
                );
            }
        });

        // The live manifest: every asset URL resolves through the CDN to
        // the bytes of the build file it names.
        let live: Value = rt()
            .block_on(async { serde_json::from_str(&ctx.get("manifest").await.unwrap()).unwrap() });
        assert_eq!(live, out["release"]["manifest"], "{}", case.build);
        let mut urls = BTreeSet::new();
        cdn_urls(&live, &cdn.url, &mut urls);
        assert!(urls.len() >= 3, "{}: {urls:?}", case.build);
        let base = format!("{}/{}/", cdn.url, case.prefix);
        for url in &urls {
            let path = url.strip_prefix(&base).unwrap_or_else(|| panic!("{url}"));
            let path = percent_encoding::percent_decode_str(path)
                .decode_utf8()
                .unwrap();
            let got = http::get(url);
            assert_eq!(got.status, 200, "GET {url}");
            assert_eq!(
                got.body,
                std::fs::read(dir.join(path.as_ref())).unwrap(),
                "GET {url} returned other bytes than {path}"
            );
        }
    }
}

#[test]
fn the_live_manifest_keeps_each_formats_shape() {
    let ctx = Ctx::new("fmt-shape");
    let live_of = |build: &str, prefix: &str| -> Value {
        let run = ctx
            .cutover(&["deploy", fixture(build).to_str().unwrap(), "--json"])
            .env("CUTOVER_PREFIX", prefix)
            .run();
        run.expect(0);
        run.json()["release"]["manifest"].clone()
    };
    // Vite: file/css/assets are URLs; imports and dynamicImports are still
    // manifest keys; vite-plugin-ruby's manifest-assets.json is merged.
    let vite = live_of("vite", "vite");
    let app = &vite["entrypoints/application.js"];
    assert!(app["file"]
        .as_str()
        .unwrap()
        .starts_with("https://cdn.example.com/vite/assets/application-"));
    let shared = app["imports"][0].as_str().unwrap();
    assert!(vite[shared]["css"][0]
        .as_str()
        .unwrap()
        .starts_with("https://cdn.example.com/vite/assets/greeting-"));
    assert_eq!(app["dynamicImports"][0], "lazy/report.js");
    assert!(vite["lazy/report.js"]["file"]
        .as_str()
        .unwrap()
        .starts_with("https://"));
    assert!(vite["images/logo.svg"]["file"]
        .as_str()
        .unwrap()
        .starts_with("https://"));
    // Propshaft: digested_path a URL, integrity kept.
    let propshaft = live_of("propshaft", "assets");
    let raw: Value = serde_json::from_slice(
        &std::fs::read(fixture("propshaft").join(".manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        propshaft["application.js"]["digested_path"],
        format!(
            "https://cdn.example.com/assets/{}",
            raw["application.js"]["digested_path"].as_str().unwrap()
        )
    );
    assert_eq!(
        propshaft["application.js"]["integrity"],
        raw["application.js"]["integrity"]
    );
    // Sprockets: files[assets[name]] still joins.
    let sprockets = live_of("sprockets", "assets");
    let css = sprockets["assets"]["application.css"].as_str().unwrap();
    assert_eq!(sprockets["files"][css]["logical_path"], "application.css");
}

#[test]
fn vite_built_for_the_cdn_deploys_without_a_public_path_warning() {
    let ctx = Ctx::new("fmt-vite-base");
    let vite = fixture("vite");
    let dry = |prefix: &str| {
        let run = ctx
            .cutover(&["deploy", vite.to_str().unwrap(), "--dry-run", "--json"])
            .env("CUTOVER_PREFIX", prefix)
            .run();
        run.expect(0);
        run.json()["warnings"].clone()
    };
    // Built with base https://cdn.example.com/vite/ (the world's CDN_URL).
    assert_eq!(dry("vite"), Value::Array(vec![]));
    let warnings = dry("packs").to_string();
    assert!(
        warnings.contains("base is \\\"https://cdn.example.com/vite/\\\"")
            && warnings.contains("VITE_RUBY_ASSET_HOST"),
        "{warnings}"
    );
    // Propshaft's stylesheets name its files under /assets/.
    let run = ctx
        .cutover(&[
            "deploy",
            fixture("propshaft").to_str().unwrap(),
            "--dry-run",
            "--json",
        ])
        .run();
    let warnings = run.expect(0).json()["warnings"].to_string();
    assert!(warnings.contains("under \\\"/assets/\\\""), "{warnings}");
}

/// Deploy a good build, then a broken copy: exit 2 naming the problem, and
/// nothing changed in S3 or Redis.
fn refused(case: &Case, break_it: impl Fn(&Path), needles: &[&str]) {
    let ctx = Ctx::new(&format!("fmt-bad-{}", case.build));
    ctx.cutover(&["deploy", fixture(case.build).to_str().unwrap()])
        .env("CUTOVER_PREFIX", case.prefix)
        .run()
        .expect(0);
    let copy = ctx.build_copy(case.build);
    break_it(&copy);
    let before = ctx.world();
    ctx.cutover(&["deploy", copy.to_str().unwrap()])
        .env("CUTOVER_PREFIX", case.prefix)
        .run()
        .expect(2)
        .error_has(needles);
    ctx.assert_unchanged(&before, &format!("a refused {} deploy", case.build));
}

fn edit_json(path: &Path, f: impl Fn(&mut Value)) {
    let mut v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(path, serde_json::to_vec(&v).unwrap()).unwrap();
}

#[test]
fn integrity_mismatches_and_broken_manifests_are_refused_with_nothing_changed() {
    let case = |b: &str| CASES.iter().find(|c| c.build == b).unwrap();
    // Propshaft: an integrity that is not the file's.
    refused(
        case("propshaft"),
        |dir| {
            edit_json(&dir.join(".manifest.json"), |m| {
                let other = m["admin.css"]["integrity"].clone();
                m["application.css"]["integrity"] = other;
            })
        },
        &[
            "integrity of application-",
            "does not match its bytes",
            "Propshaft",
        ],
    );
    // Propshaft: a file changed after it was digested.
    refused(
        case("propshaft"),
        |dir| {
            let css = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| {
                    p.to_string_lossy().contains("/application-") && p.extension().unwrap() == "css"
                })
                .unwrap();
            std::fs::write(css, "body{}").unwrap();
        },
        &["integrity of application-", "does not match"],
    );
    // Sprockets: integrity, and its SHA-256 digest.
    refused(
        case("sprockets"),
        |dir| {
            edit_json(&dir.join(case("sprockets").manifest), |m| {
                for (_, file) in m["files"].as_object_mut().unwrap() {
                    file["integrity"] =
                        "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=".into();
                }
            })
        },
        &["integrity of", "does not match its bytes", "Sprockets"],
    );
    refused(
        case("sprockets"),
        |dir| {
            edit_json(&dir.join(case("sprockets").manifest), |m| {
                for (_, file) in m["files"].as_object_mut().unwrap() {
                    file["digest"] = "0".repeat(64).into();
                }
            })
        },
        &["digest of", "does not match its bytes"],
    );
    // Vite: an import naming no entry, and a chunk that is not in the build.
    refused(
        case("vite"),
        |dir| {
            edit_json(&dir.join(".vite/manifest.json"), |m| {
                m["entrypoints/admin.js"]["imports"] = serde_json::json!(["_gone.js"]);
            })
        },
        &["imports names \"_gone.js\", which is not an entry of the manifest"],
    );
    refused(
        case("vite"),
        |dir| {
            edit_json(&dir.join(".vite/manifest.json"), |m| {
                m["entrypoints/admin.js"]["file"] = "assets/admin-GONE1234.js".into();
            })
        },
        &["\"assets/admin-GONE1234.js\", which is not a file in the build"],
    );
}

#[test]
fn manifest_format_chooses_and_auto_refuses_to_guess() {
    let ctx = Ctx::new("fmt-choose");
    let vite = fixture("vite");
    // Set: used, and no "auto" line.
    let run = ctx
        .cutover(&["deploy", vite.to_str().unwrap(), "--dry-run", "--json"])
        .env("CUTOVER_PREFIX", "vite")
        .env("CUTOVER_MANIFEST_FORMAT", "vite")
        .run();
    run.expect(0);
    assert_eq!(run.json()["manifest_format"], "vite");
    assert!(!run.stderr.contains("manifest_format = auto"), "{run:?}");
    // The wrong format for the build: exit 2, nothing written.
    let before = ctx.world();
    ctx.run(&[
        "deploy",
        vite.to_str().unwrap(),
        "--manifest-format",
        "propshaft",
    ])
    .expect(2)
    .error_has(&["no .manifest.json in"]);
    ctx.run(&[
        "deploy",
        vite.to_str().unwrap(),
        "--manifest-format",
        "sprockets",
        "--manifest",
        ".vite/manifest.json",
    ])
    .expect(2)
    .error_has(&["not in the Sprockets format"]);
    ctx.run(&[
        "deploy",
        vite.to_str().unwrap(),
        "--manifest-format",
        "rollup",
    ])
    .expect(2)
    .error_has(&[
        "manifest_format",
        "auto, shakapacker, webpack, vite, propshaft, sprockets",
    ]);
    // Two builds in one directory: auto does not guess.
    let both = ctx.work.path().join("both");
    crate::support::fixtures::copy_dir(&fixture("propshaft"), &both);
    crate::support::fixtures::copy_dir(&fixture("vite"), &both);
    ctx.run(&["deploy", both.to_str().unwrap()])
        .expect(2)
        .error_has(&["manifests of several builds (.vite/manifest.json, .manifest.json)"]);
    ctx.assert_unchanged(&before, "refused deploys");
}
