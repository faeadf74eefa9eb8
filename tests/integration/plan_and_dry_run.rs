use std::collections::BTreeSet;

use crate::support::{fixture, rt, Ctx};

/// Files of the fixture that cutover uploads (everything but the manifest and its copies).
fn uploadable(name: &str) -> BTreeSet<String> {
    let root = fixture(name);
    walkdir::WalkDir::new(&root)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            e.path()
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|p| !p.starts_with("manifest.json"))
        .collect()
}

#[test]
fn dry_run_lists_exactly_the_missing_files_and_changes_nothing() {
    let ctx = Ctx::new("dry-run-missing");
    let all = uploadable("shakapacker");
    // Put a third of the build in S3 already, byte for byte.
    let present: BTreeSet<String> = all
        .iter()
        .filter(|p| !p.ends_with(".js"))
        .step_by(3)
        .cloned()
        .collect();
    rt().block_on(async {
        for p in &present {
            ctx.put(
                &format!("packs/{p}"),
                &std::fs::read(fixture("shakapacker").join(p)).unwrap(),
            )
            .await;
        }
    });
    let (objects_before, redis_before) =
        rt().block_on(async { (ctx.objects().await, ctx.redis_state().await) });

    let run = ctx.run(&[
        "deploy",
        fixture("shakapacker").to_str().unwrap(),
        "--dry-run",
        "--json",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    let planned: BTreeSet<String> = doc["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["path"].as_str().unwrap().to_string())
        .collect();
    let missing: BTreeSet<String> = all.difference(&present).cloned().collect();
    assert_eq!(planned, missing);
    assert_eq!(
        doc["skip"]["files"].as_u64().unwrap() as usize,
        present.len()
    );
    assert_eq!(doc["conflicts"].as_array().unwrap().len(), 0);
    assert_eq!(doc["dry_run"], true);
    // Headers are part of the plan.
    let js = doc["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["path"].as_str().unwrap().ends_with(".js"))
        .unwrap();
    assert_eq!(js["content_type"], "text/javascript; charset=utf-8");
    assert_eq!(js["cache_control"], "public, max-age=31536000, immutable");
    // Manifest diff against nothing live: every entry is added.
    assert!(doc["manifest_diff"]["added"].as_array().unwrap().len() > 10);
    // The writes a deploy would make, the switch last.
    let steps: Vec<&str> = doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert_eq!(steps.len(), 4, "{steps:?}");
    assert!(
        steps[0].starts_with(&format!("S3 PUT {} objects", planned.len())),
        "{steps:?}"
    );
    assert!(steps[1].contains("(release record"), "{steps:?}");
    assert!(
        steps[2].starts_with(&format!("Redis EVAL register: SET {}", ctx.key("release:"))),
        "{steps:?}"
    );
    assert!(
        steps[3].contains(&format!("SET {} ", ctx.key("current")))
            && steps[3].contains(&format!("PUBLISH {}", ctx.key("events"))),
        "{steps:?}"
    );

    let (objects_after, redis_after) =
        rt().block_on(async { (ctx.objects().await, ctx.redis_state().await) });
    assert_eq!(objects_before, objects_after, "dry-run changed S3");
    assert_eq!(redis_before, redis_after, "dry-run changed Redis");
    assert!(redis_after.is_empty());
}

#[test]
fn dry_run_flags_a_planted_conflict_with_exit_3() {
    let ctx = Ctx::new("dry-run-conflict");
    let victim = uploadable("shakapacker")
        .into_iter()
        .find(|p| p.ends_with(".css"))
        .unwrap();
    let original = std::fs::read(fixture("shakapacker").join(&victim)).unwrap();
    // Same size, other bytes: only the content can tell.
    let mut other = original.clone();
    other[0] ^= 0x20;
    rt().block_on(ctx.put(&format!("packs/{victim}"), &other));
    let before = rt().block_on(ctx.objects());

    let run = ctx.run(&[
        "deploy",
        fixture("shakapacker").to_str().unwrap(),
        "--dry-run",
    ]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stdout
            .contains(&format!("! s3://{}/packs/{victim}", ctx.bucket)),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr.contains("would be overwritten"),
        "{}",
        run.stderr
    );

    // Without --dry-run: the deploy stops before uploading anything.
    let run = ctx.run(&["deploy", fixture("shakapacker").to_str().unwrap()]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.error_line().contains(&format!("packs/{victim}")),
        "{}",
        run.stderr
    );
    assert!(run.error_line().contains("nothing was uploaded"));
    assert_eq!(
        before,
        rt().block_on(ctx.objects()),
        "a conflicting deploy uploaded something"
    );
    assert!(rt().block_on(ctx.redis_state()).is_empty());
}

#[test]
fn dry_run_human_output_shows_manifest_diff_against_live() {
    let ctx = Ctx::new("dry-run-diff");
    let run = ctx.run(&["deploy", fixture("flat").to_str().unwrap()]);
    assert_eq!(run.code, 0, "{run:?}");
    let run = ctx.run(&[
        "deploy",
        fixture("shakapacker").to_str().unwrap(),
        "--dry-run",
        "--verbose",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    // The flat build's keys (e.g. `js/841-js`) are not in the Shakapacker manifest.
    assert!(
        run.stdout
            .contains("  - js/841-js (was https://cdn.example.com/packs/js/841-"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("  + runtime.js.map -> https://cdn.example.com/packs/js/runtime-"),
        "{}",
        run.stdout
    );
    // Same files, so nothing to upload.
    assert!(run.stdout.contains("upload 0 files"), "{}", run.stdout);
}

#[test]
fn listing_finds_objects_at_every_depth() {
    let ctx = Ctx::new("listing-depth");
    let build = ctx.work.path().join("build");
    let files = [
        "robots-0a1b2c3d4e5f6a7b.txt",
        "js/app-0a1b2c3d4e5f6a7b.js",
        "static/media/deep/er/logo-0a1b2c3d4e5f6a7b.svg",
        "static/fonts/f-0a1b2c3d4e5f6a7b.woff2",
    ];
    for f in files {
        let p = build.join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, f.as_bytes()).unwrap();
    }
    std::fs::write(
        build.join("manifest.json"),
        r#"{"app.js": "/packs/js/app-0a1b2c3d4e5f6a7b.js"}"#,
    )
    .unwrap();
    // Plus objects of another app beside the prefix, which must not count.
    rt().block_on(ctx.put("packsother/js/app-0a1b2c3d4e5f6a7b.js", b"x"));
    let first = ctx.run(&["deploy", build.to_str().unwrap(), "--json"]);
    assert_eq!(first.code, 0, "{first:?}");
    assert_eq!(first.json()["upload"]["files"], 4);
    // Change the build so the id differs; every old object must be found.
    std::fs::write(build.join("js/new-1a2b3c4d5e6f7a8b.js"), b"new").unwrap();
    let second = ctx
        .run(&["deploy", build.to_str().unwrap(), "--dry-run", "--json"])
        .json();
    assert_eq!(second["skip"]["files"], 4, "{second}");
    assert_eq!(second["upload"]["files"], 1, "{second}");
}
