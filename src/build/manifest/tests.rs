//! The adapters on hand-made manifests and on the committed fixture builds
//! (real webpack, Vite, esbuild + Propshaft and Sprockets output).

use serde_json::{json, Value};

use super::testing::{auto, build, cdn, fixture, fixture_excluding};
use super::*;

fn parse_auto(b: &Build, path: &str, raw: Value) -> anyhow::Result<Manifest> {
    let format = Format::detect(&raw, path).expect("a known shape");
    parse(b, path, format, raw, &cdn)
}

fn err(r: anyhow::Result<Manifest>) -> String {
    let e = r.unwrap_err();
    assert_eq!(crate::error::exit_code(&e), 2, "{e}");
    e.to_string()
}

// ------------------------------------------------------------ webpack formats

#[test]
fn assets_manifest_is_checked_and_rewritten() {
    let (_d, b) = build(&[
        ("js/app-0a1b2c3d4e.js", b"app"),
        ("css/app-0a1b2c3d4e.css", b"css"),
    ]);
    let sri = sri384(&b, "js/app-0a1b2c3d4e.js");
    let raw = json!({
        "application.js": {"src": "/packs/js/app-0a1b2c3d4e.js", "integrity": sri},
        "application.css": {"src": "/packs/css/app-0a1b2c3d4e.css", "integrity": "md5-not-sri"},
        "entrypoints": {"application": {"assets": {"js": ["/packs/js/app-0a1b2c3d4e.js"], "css": ["/packs/css/app-0a1b2c3d4e.css"]}}}
    });
    let m = parse_auto(&b, "manifest.json", raw).unwrap();
    assert_eq!(m.format, Format::Shakapacker);
    assert_eq!(m.public_path, PublicPath::Page("/packs/".into()));
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
    assert!(
        m.fingerprinted.is_empty(),
        "webpack names speak for themselves"
    );
}

#[test]
fn flat_manifest_and_auto_public_path() {
    let (_d, b) = build(&[("js/a b-0a1b2c3d4e.js", b"a")]);
    let m = parse_auto(
        &b,
        "manifest.json",
        json!({"a.js": "js/a%20b-0a1b2c3d4e.js"}),
    )
    .unwrap();
    assert_eq!(m.format, Format::Webpack);
    assert_eq!(m.public_path, PublicPath::Unknown);
    assert_eq!(
        m.live["a.js"],
        "https://cdn.example.com/packs/js/a b-0a1b2c3d4e.js"
    );
}

#[test]
fn errors_missing_file_dotdot_and_integrity() {
    let (_d, b) = build(&[("js/a.js", b"a")]);
    let msg = |raw: Value| err(parse_auto(&b, "manifest.json", raw));
    assert!(msg(json!({"x.js": "/packs/js/gone.js"}))
        .contains("\"/packs/js/gone.js\", which is not a file in the build"));
    assert!(msg(json!({"x.js": "/packs/../etc/passwd"})).contains("contains `..`"));
    assert!(
        msg(json!({"a.js": {"src": "/packs/js/a.js", "integrity": "sha384-AAAA"}}))
            .contains("integrity of js/a.js does not match")
    );
    assert!(
        err(parse(&b, "m.json", Format::Webpack, json!([1, 2]), &cdn))
            .contains("expected a JSON object")
    );
}

#[test]
fn byte_order_mark_duplicates_and_self_reference() {
    let (dir, b) = build(&[("js/a-0a1b2c3d4e.js", b"a"), ("manifest.json", b"{}")]);
    let write = |text: &[u8]| std::fs::write(dir.path().join("manifest.json"), text).unwrap();
    let load = || load(&b, "manifest.json", &cdn).map(|m| m.live);
    write(b"\xEF\xBB\xBF{\"a.js\": \"/packs/js/a-0a1b2c3d4e.js\"}");
    assert_eq!(load().unwrap()["a.js"], cdn("js/a-0a1b2c3d4e.js"));
    write(br#"{"a.js": "/packs/js/a-0a1b2c3d4e.js", "a.js": "/packs/js/b.js"}"#);
    let e = err(load().map(|_| unreachable!()));
    assert!(
        e.contains("\"a.js\" appears twice") && e.contains("line 1"),
        "{e}"
    );
    write(br#"{"a.js": "/packs/js/a-0a1b2c3d4e.js", "m": "/packs/manifest.json"}"#);
    let e = err(load().map(|_| unreachable!()));
    assert!(e.contains("names the manifest itself"), "{e}");
}

#[test]
fn file_names_with_hash_and_question_marks_resolve() {
    let (_d, b) = build(&[
        ("js/a#b-0a1b2c3d4e.js", b"a"),
        ("js/q?x-0a1b2c3d4e.js", b"q"),
    ]);
    let m = parse_auto(
        &b,
        "manifest.json",
        json!({"a.js": "/packs/js/a#b-0a1b2c3d4e.js", "q.js": "/packs/js/q%3Fx-0a1b2c3d4e.js"}),
    )
    .unwrap();
    assert_eq!(
        m.referenced,
        ["js/a#b-0a1b2c3d4e.js", "js/q?x-0a1b2c3d4e.js"]
    );
}

#[test]
fn shakapacker_fixture_is_found_and_excludes_its_compressed_copies() {
    let b = fixture("shakapacker");
    let m = auto(&b, &cdn).unwrap();
    assert_eq!((m.format, m.detected), (Format::Shakapacker, true));
    assert_eq!(m.path, "manifest.json");
    for p in ["manifest.json", "manifest.json.gz", "manifest.json.br"] {
        assert!(m.excluded.contains(p), "{p}");
    }
    assert_eq!(
        auto(&fixture("flat"), &cdn).unwrap().format,
        Format::Webpack
    );
    let warn = m.public_path_warning("https://cdn.example.com/packs/", "https://cdn.example.com");
    assert!(warn.unwrap().contains("SHAKAPACKER_ASSET_HOST"));
}

// ------------------------------------------------------------------- Vite

#[test]
fn vite_fixture_keeps_its_shape_with_cdn_urls() {
    let b = fixture("vite");
    let url = |p: &str| format!("https://cdn.example.com/vite/{p}");
    let m = auto(&b, &url).unwrap();
    assert_eq!((m.format, m.detected), (Format::Vite, true));
    assert_eq!(m.path, ".vite/manifest.json");
    let app = &m.live["entrypoints/application.js"];
    let file = app["file"].as_str().unwrap();
    assert!(
        file.starts_with("https://cdn.example.com/vite/assets/application-"),
        "{file}"
    );
    assert!(app["css"][0]
        .as_str()
        .unwrap()
        .starts_with("https://cdn.example.com/vite/assets/"));
    // imports and dynamicImports name manifest keys: kept, and they exist.
    let shared = app["imports"][0].as_str().unwrap();
    assert!(shared.starts_with("_greeting-"), "{shared}");
    assert!(m.live[shared]["file"]
        .as_str()
        .unwrap()
        .starts_with("https://"));
    assert_eq!(app["dynamicImports"][0], "lazy/report.js");
    assert_eq!(app["isEntry"], true);
    assert_eq!(app["src"], "entrypoints/application.js");
    // vite-plugin-ruby's manifest-assets.json is merged, as vite_ruby does.
    assert!(m.live["images/logo.svg"]["file"]
        .as_str()
        .unwrap()
        .starts_with("https://"));
    for p in [
        ".vite/manifest.json",
        ".vite/manifest-assets.json",
        ".vite/ssr-manifest.json",
    ] {
        assert!(m.excluded.contains(p), "{p}");
    }
    // Rollup's 8-character hashes (with - and _) are fingerprints; the
    // source maps beside them too.
    let js = file.trim_start_matches("https://cdn.example.com/vite/");
    assert!(m.is_fingerprinted(js) && m.is_fingerprinted(&format!("{js}.map")));
    let all: Vec<&str> = b.files.iter().map(|f| f.path.as_str()).collect();
    for p in all.iter().filter(|p| p.starts_with("assets/")) {
        assert!(m.is_fingerprinted(p), "{p}");
    }
    // The base the build was made with is where it is deployed: no warning.
    assert_eq!(
        m.public_path,
        PublicPath::Page("https://cdn.example.com/vite/".into())
    );
    assert_eq!(
        m.public_path_warning("https://cdn.example.com/vite/", "https://cdn.example.com"),
        None
    );
    let w = m
        .public_path_warning("https://cdn.example.com/packs/", "https://cdn.example.com")
        .unwrap();
    assert!(
        w.contains("base is \"https://cdn.example.com/vite/\"")
            && w.contains("VITE_RUBY_ASSET_HOST"),
        "{w}"
    );
    let e = entries(&m.live);
    assert_eq!(e["entrypoints/application.js"], file);
}

#[test]
fn vite_imports_must_name_entries_and_files_must_exist() {
    let (_d, b) = build(&[
        ("assets/a-B9DvbQ2O.js", b"a"),
        ("assets/a-Dcrruqw_.css", b"c"),
    ]);
    let ok = json!({"main.js": {"file": "assets/a-B9DvbQ2O.js", "css": ["assets/a-Dcrruqw_.css"], "isEntry": true}});
    let m = parse_auto(&b, ".vite/manifest.json", ok.clone()).unwrap();
    assert_eq!(m.format, Format::Vite);
    assert_eq!(
        m.referenced,
        ["assets/a-B9DvbQ2O.js", "assets/a-Dcrruqw_.css"]
    );
    let mut bad = ok.clone();
    bad["main.js"]["imports"] = json!(["_shared.js"]);
    assert!(err(parse_auto(&b, ".vite/manifest.json", bad))
        .contains("imports names \"_shared.js\", which is not an entry of the manifest"));
    let mut bad = ok;
    bad["main.js"]["css"] = json!(["assets/gone.css"]);
    assert!(err(parse_auto(&b, ".vite/manifest.json", bad)).contains("not a file in the build"));
    // A Vite manifest is never read as a Shakapacker one (both have "src").
    let raw = json!({"main.js": {"file": "assets/a-B9DvbQ2O.js", "src": "main.js"}});
    assert_eq!(Format::detect(&raw, "manifest.json"), Some(Format::Vite));
    assert!(
        err(parse(&b, "manifest.json", Format::Shakapacker, raw, &cdn))
            .contains("not in the Shakapacker (webpack-assets-manifest) format")
    );
}

// -------------------------------------------------------------- Propshaft

#[test]
fn propshaft_fixture_checks_integrity_and_rewrites_digested_paths() {
    let b = fixture("propshaft");
    let url = |p: &str| format!("https://cdn.example.com/assets/{p}");
    let m = auto(&b, &url).unwrap();
    assert_eq!(
        (m.format, m.path.as_str()),
        (Format::Propshaft, ".manifest.json")
    );
    let raw: Value =
        serde_json::from_slice(&std::fs::read(b.root.join(".manifest.json")).unwrap()).unwrap();
    for (logical, entry) in raw.as_object().unwrap() {
        let digested = entry["digested_path"].as_str().unwrap();
        assert_eq!(m.live[logical]["digested_path"], url(digested), "{logical}");
        assert_eq!(
            m.live[logical]["integrity"], entry["integrity"],
            "{logical}"
        );
        assert!(m.is_fingerprinted(digested), "{digested}");
    }
    // Every file of the build is an asset of the manifest.
    assert_eq!(m.referenced.len(), b.files.len() - 1);
    // Compiled CSS names the logo under /assets/: served there, no warning.
    assert_eq!(m.public_path, PublicPath::Asset("/assets/".into()));
    assert_eq!(
        m.public_path_warning("https://cdn.example.com/assets/", "https://cdn.example.com"),
        None
    );
    let w = m
        .public_path_warning("https://cdn.example.com/packs/", "https://cdn.example.com")
        .unwrap();
    assert!(
        w.contains("under \"/assets/\"") && w.contains("prefix = \"assets\""),
        "{w}"
    );
    assert_eq!(
        entries(&m.live)["application.css"],
        m.live["application.css"]["digested_path"]
    );
}

#[test]
fn propshaft_integrity_null_sha512_legacy_strings_and_mismatch() {
    use base64::Engine;
    use sha2::Digest;
    let (_d, b) = build(&[("app-1a2b3c4d.js", b"js"), ("logo-2bdf6334.svg", b"svg")]);
    let sha512 = format!(
        "sha512-{}",
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha512::digest(b"js"))
    );
    let raw = json!({
        "app.js": {"digested_path": "app-1a2b3c4d.js", "integrity": sha512},
        "logo.svg": {"digested_path": "logo-2bdf6334.svg", "integrity": null},
    });
    let m = parse_auto(&b, ".manifest.json", raw.clone()).unwrap();
    assert_eq!(m.live["logo.svg"]["integrity"], Value::Null);
    let mut bad = raw;
    bad["app.js"]["integrity"] = json!("sha512-AAAA");
    assert!(err(parse_auto(&b, ".manifest.json", bad))
        .contains("integrity of app-1a2b3c4d.js does not match"));
    let sha384 = sri384(&b, "app-1a2b3c4d.js");
    let bad = json!({"app.js": {"digested_path": "app-1a2b3c4d.js", "integrity": sha384.replace('A', "B")}});
    assert!(err(parse_auto(&b, ".manifest.json", bad)).contains("does not match"));
    // Propshaft before 1.2: plain strings, told from webpack by the name.
    let legacy = json!({"app.js": "app-1a2b3c4d.js"});
    assert_eq!(
        Format::detect(&legacy, ".manifest.json"),
        Some(Format::Propshaft)
    );
    assert_eq!(
        Format::detect(&legacy, "manifest.json"),
        Some(Format::Webpack)
    );
    let m = parse_auto(&b, ".manifest.json", legacy).unwrap();
    assert_eq!(m.live["app.js"], cdn("app-1a2b3c4d.js"));
}

// -------------------------------------------------------------- Sprockets

#[test]
fn sprockets_fixture_keeps_files_and_assets_joined() {
    let b = fixture("sprockets");
    let url = |p: &str| format!("https://cdn.example.com/assets/{p}");
    let m = auto(&b, &url).unwrap();
    assert_eq!(m.format, Format::Sprockets);
    assert!(m.path.starts_with(".sprockets-manifest-"), "{}", m.path);
    let app = m.live["assets"]["application.js"].as_str().unwrap();
    assert!(
        app.starts_with("https://cdn.example.com/assets/application-"),
        "{app}"
    );
    // files[assets[name]] still finds the record (with its integrity).
    assert_eq!(m.live["files"][app]["logical_path"], "application.js");
    assert!(m.live["files"][app]["integrity"]
        .as_str()
        .unwrap()
        .starts_with("sha256-"));
    assert!(m.is_fingerprinted(&format!(
        "{}.gz",
        app.trim_start_matches("https://cdn.example.com/assets/")
    )));
    assert_eq!(m.public_path, PublicPath::Asset("/assets/".into()));
    assert!(m.warnings.is_empty());
    assert_eq!(entries(&m.live)["application.js"], app);
}

#[test]
fn sprockets_checks_integrity_digest_and_size_and_reads_the_first_manifest() {
    let (dir, b) = build(&[("a-0123.js", b"js")]);
    let sha = b.get("a-0123.js").unwrap().digests.sha256_hex();
    let sri = format!(
        "sha256-{}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            b.get("a-0123.js").unwrap().digests.sha256
        )
    );
    let good = json!({"files": {"a-0123.js": {"logical_path": "a.js", "size": 2, "digest": sha, "integrity": sri}},
                      "assets": {"a.js": "a-0123.js"}});
    parse_auto(&b, "x.json", good.clone()).unwrap();
    for (field, value, says) in [
        ("integrity", json!("sha256-AAAA"), "integrity of a-0123.js"),
        ("digest", json!("0".repeat(64)), "digest of a-0123.js"),
        ("size", json!(3), "size of a-0123.js"),
    ] {
        let mut bad = good.clone();
        bad["files"]["a-0123.js"][field] = value;
        assert!(err(parse_auto(&b, "x.json", bad)).contains(says), "{field}");
    }
    // Two manifests (a stale one): the first by name is read, none uploaded.
    let first = ".sprockets-manifest-00000000000000000000000000000000.json";
    let second = ".sprockets-manifest-ffffffffffffffffffffffffffffffff.json";
    std::fs::write(dir.path().join(first), good.to_string()).unwrap();
    std::fs::write(dir.path().join(second), "{}").unwrap();
    let b =
        crate::build::scan::scan(dir.path(), &Default::default(), &crate::events::Quiet).unwrap();
    let m = auto(&b, &cdn).unwrap();
    assert_eq!(m.path, first);
    assert!(m.excluded.contains(second));
    assert!(
        m.warnings[0].contains("2 Sprockets manifests"),
        "{:?}",
        m.warnings
    );
}

// ------------------------------------------------------------------- auto

#[test]
fn auto_needs_exactly_one_manifest_and_an_explicit_format_its_shape() {
    let (dir, b) = build(&[("a-0a1b2c3d4e.js", b"a")]);
    assert!(err(auto(&b, &cdn)).contains("no manifest.json in"));
    std::fs::write(
        dir.path().join("manifest.json"),
        r#"{"a.js": "a-0a1b2c3d4e.js"}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join(".manifest.json"),
        r#"{"a.js": {"digested_path": "a-0a1b2c3d4e.js", "integrity": null}}"#,
    )
    .unwrap();
    let b =
        crate::build::scan::scan(dir.path(), &Default::default(), &crate::events::Quiet).unwrap();
    let e = err(auto(&b, &cdn));
    assert!(
        e.contains("manifests of several builds (manifest.json, .manifest.json)"),
        "{e}"
    );
    let pick = |format| {
        find(
            &b,
            Wanted {
                path: None,
                format: Some(format),
            },
            &cdn,
        )
    };
    let m = pick(Format::Propshaft).unwrap();
    assert_eq!((m.path.as_str(), m.detected), (".manifest.json", false));
    assert_eq!(pick(Format::Webpack).unwrap().path, "manifest.json");
    assert!(err(pick(Format::Vite)).contains("no .vite/manifest.json"));
    let e = err(find(
        &b,
        Wanted {
            path: Some("manifest.json"),
            format: Some(Format::Sprockets),
        },
        &cdn,
    ));
    assert!(e.contains("not in the Sprockets format"), "{e}");
    assert_eq!(Format::parse("Vite"), Ok(Some(Format::Vite)));
    assert_eq!(Format::parse("auto"), Ok(None));
    assert!(Format::parse("rollup")
        .unwrap_err()
        .contains("auto, shakapacker"));
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
    // Across formats: each side is read in its own.
    let vite = json!({"main.js": {"file": "u1", "imports": ["_x.js"]}, "_x.js": {"file": "u5"}});
    let propshaft = json!({"main.js": {"digested_path": "u1", "integrity": null}});
    let d = diff(Some(&vite), &propshaft);
    assert_eq!((d.unchanged, d.removed.len()), (1, 1));
    let sprockets = json!({"files": {"u1": {}}, "assets": {"main.js": "u1"}});
    assert_eq!(diff(Some(&propshaft), &sprockets).unchanged, 1);
}

// ------------------------------------------------------------------ exclude

#[test]
fn exclude_drops_files_and_the_entries_naming_them_in_every_format() {
    for name in [
        "shakapacker",
        "webpack-flat",
        "vite",
        "propshaft",
        "sprockets",
    ] {
        let name = if name == "webpack-flat" { "flat" } else { name };
        let b = fixture_excluding(name, &["**/*.map"]);
        let m = auto(&b, &cdn).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            m.referenced.iter().all(|f| !f.ends_with(".map")),
            "{name}: {:?}",
            m.referenced
        );
        assert!(
            entries(&m.live).keys().all(|e| !e.ends_with(".map")),
            "{name}"
        );
        let live = m.live.to_string();
        assert!(!live.contains(".map\""), "{name}: {live}");
    }
    // The shakapacker fixture names its source maps as entries: they go,
    // and so do their compressed copies.
    let b = fixture_excluding("shakapacker", &["**/*.map"]);
    assert!(b.excluded.iter().any(|(p, _)| p.ends_with(".css.map.br")));
    let kept = auto(&b, &cdn).unwrap();
    let all = auto(&fixture("shakapacker"), &cdn).unwrap();
    assert!(entries(&all.live).contains_key("application.js.map"));
    assert!(!entries(&kept.live).contains_key("application.js.map"));
    assert!(entries(&kept.live).contains_key("application.js"));
}

#[test]
fn a_kept_entry_naming_an_excluded_file_is_an_error() {
    // `js/*.map` leaves the files out but not the entries (`application.js.map`).
    let b = fixture_excluding("shakapacker", &["js/*.map"]);
    let e = err(auto(&b, &cdn));
    assert!(e.contains("exclude (js/*.map) leaves js/"), "{e}");
    assert!(e.contains("exclude that entry too"), "{e}");

    let b = fixture_excluding("shakapacker", &["manifest.json"]);
    let e = err(auto(&b, &cdn));
    assert!(e.contains("matches the manifest manifest.json"), "{e}");

    // Entries and files alike, but for the manifest: nothing to publish.
    let b = fixture_excluding(
        "flat",
        &[
            "*.js", "*.css", "*.map", "*.png", "*.svg", "*.woff2", "*-css", "*-js",
        ],
    );
    assert!(!b.files.is_empty());
    let e = err(auto(&b, &cdn));
    assert!(e.contains("leaves out every entry"), "{e}");
}

/// The SRI value (SHA-384) of a file of the build.
fn sri384(b: &Build, path: &str) -> String {
    let digest =
        crate::build::digest::sri_digest(&b.root.join(path), crate::build::digest::SriAlg::Sha384)
            .unwrap();
    format!("sha384-{digest}")
}
