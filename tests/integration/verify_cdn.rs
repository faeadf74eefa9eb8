//! `verify` checks a release's objects in S3 and, with `--cdn`, fetches its
//! files through a real HTTP cache (nginx) in front of the S3 server;
//! `--verify-cdn` keeps a deploy or activation from switching to a release
//! the CDN does not serve.

use crate::support::{fixture, nginx, rt, Ctx};

#[test]
fn verify_checks_s3_and_the_cdn() {
    let ctx = Ctx::new("verify");
    let cdn = nginx::start(&ctx.s3_endpoint, &ctx.bucket);
    ctx.cutover(&["deploy", fixture("shakapacker").to_str().unwrap()])
        .env("CUTOVER_CDN_URL", &cdn.url)
        .run()
        .expect(0);
    let run = ctx.run(&["verify", "--cdn", "--sample", "4", "--json"]);
    run.expect(0);
    let doc = run.json();
    let checked: Vec<&str> = doc["cdn_checked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect();
    // Every entrypoint file of both entrypoints, and 4 others.
    for needle in [
        "/js/runtime-",
        "/js/841-",
        "/js/application-",
        "/js/admin-",
        "/css/application-",
    ] {
        assert!(
            checked.iter().any(|u| u.contains(needle)),
            "{needle}: {checked:?}"
        );
    }
    assert_eq!(checked.len(), 7 + 4, "{checked:?}");
    assert_eq!(doc["s3_problems"], serde_json::json!([]));
    ctx.run(&["verify", "--read"])
        .expect(0)
        .stdout_has(&["✓ S3: 59 objects"]);

    // An object gone from S3: exit 4 naming it; the CDN still has it cached.
    let victim = "packs/static/logo-f27f8614b6d283cbb282.svg";
    rt().block_on(async {
        ctx.s3()
            .await
            .delete_object()
            .bucket(&ctx.bucket)
            .key(victim)
            .send()
            .await
            .unwrap()
    });
    let run = ctx.run(&["verify"]);
    run.expect(4)
        .stdout_has(&["✗ S3: 59 objects", &format!("{victim}: missing")]);
}

#[test]
fn verify_cdn_keeps_a_switch_from_happening_when_the_cdn_is_wrong() {
    let ctx = Ctx::new("verify-cdn");
    let good = nginx::start(&ctx.s3_endpoint, &ctx.bucket);
    // A CDN whose origin is the wrong bucket: it serves 404/403 for every key.
    let wrong = nginx::start(&ctx.s3_endpoint, "no-such-bucket-anywhere");
    let a = ctx
        .cutover(&["deploy", fixture("shakapacker").to_str().unwrap(), "--json"])
        .env("CUTOVER_CDN_URL", &good.url)
        .run();
    a.expect(0);
    let a = a.json()["release"]["id"].as_str().unwrap().to_string();
    let run = ctx
        .cutover(&[
            "deploy",
            fixture("flat").to_str().unwrap(),
            "--verify-cdn",
            "--json",
        ])
        .env("CUTOVER_CDN_URL", &wrong.url)
        .run();
    run.expect(4).error_has(&[
        "the CDN does not serve the release",
        "HTTP 404",
        "nothing was switched",
    ]);
    assert_eq!(rt().block_on(ctx.get("current")), Some(a.clone()));

    // The same build, recorded (not activated) for the right CDN, then
    // activated once the CDN check passes.
    let run = ctx
        .cutover(&[
            "deploy",
            fixture("flat").to_str().unwrap(),
            "--no-activate",
            "--json",
        ])
        .env("CUTOVER_CDN_URL", &good.url)
        .run();
    run.expect(0);
    let b = run.json()["release"]["id"].as_str().unwrap().to_string();
    // Without entrypoints (a flat manifest): every script and stylesheet it names.
    // Activated with the CDN it was recorded for: activation publishes its
    // manifest, which must be on the configured CDN.
    let activate = |extra: &[&str]| {
        let mut args = vec!["activate", b.as_str(), "--verify-cdn"];
        args.extend_from_slice(extra);
        ctx.cutover(&args).env("CUTOVER_CDN_URL", &good.url).run()
    };
    activate(&["--dry-run"])
        .expect(0)
        .stdout_has(&["check (no write): GET 9 files through the CDN"]);
    activate(&[]).expect(0);
    assert_eq!(rt().block_on(ctx.get("current")), Some(b));
}

/// A build whose manifest names its files relatively (public path "auto").
fn relative_build(dir: &std::path::Path) -> std::path::PathBuf {
    let root = dir.join("rel");
    std::fs::create_dir_all(root.join("js")).unwrap();
    std::fs::write(root.join("js/app-0a1b2c3d4e5f6a7b8c9d.js"), "app()").unwrap();
    std::fs::write(
        root.join("manifest.json"),
        r#"{"entrypoints": {"application": {"assets": {"js": ["js/app-0a1b2c3d4e5f6a7b8c9d.js"]}}},
            "application.js": "js/app-0a1b2c3d4e5f6a7b8c9d.js"}"#,
    )
    .unwrap();
    root
}

#[test]
fn doctor_passes_a_good_setup_and_names_each_fix_of_a_bad_one() {
    let ctx = Ctx::new("doctor");
    // A good CDN does not serve the release records.
    let cdn = nginx::start_without_records(&ctx.s3_endpoint, &ctx.bucket);
    let build = relative_build(ctx.work.path());
    ctx.cutover(&["deploy", build.to_str().unwrap()])
        .env("CUTOVER_CDN_URL", &cdn.url)
        .run()
        .expect(0);
    rt().block_on(async {
        use aws_sdk_s3::types::{CorsConfiguration, CorsRule};
        let rule = CorsRule::builder()
            .allowed_origins("https://shop.example")
            .allowed_methods("GET")
            .build()
            .unwrap();
        ctx.s3()
            .await
            .put_bucket_cors()
            .bucket(&ctx.bucket)
            .cors_configuration(
                CorsConfiguration::builder()
                    .cors_rules(rule)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    });
    let run = ctx
        .cutover(&["doctor", build.to_str().unwrap()])
        .env("CUTOVER_CDN_URL", &cdn.url)
        .env("CUTOVER_APP_ORIGIN", "https://shop.example")
        .run();
    run.expect(0);
    for name in [
        "bucket",
        "region",
        "redis",
        "eviction",
        "permissions",
        "public path",
        "cors",
        "cdn",
        "redis exposure",
        "bucket exposure",
        "cdn records",
    ] {
        assert!(
            run.stdout.contains(&format!("✓ {name}: ")),
            "{name}: {run:?}"
        );
    }

    // A bucket in another region, a CDN in front of the wrong bucket, a
    // Redis that evicts, no CORS for the app.
    let other = format!("{}-eu", ctx.bucket.chars().take(50).collect::<String>());
    rt().block_on(async {
        use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
        ctx.s3()
            .await
            .create_bucket()
            .bucket(&other)
            .create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::EuWest1)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    });
    let wrong = nginx::start(&ctx.s3_endpoint, "nobody-home");
    let evicting = crate::support::start_redis(&["--maxmemory-policy", "allkeys-lru"]);
    // The live release (deployed above) is in the first Redis; copy it over.
    let run = ctx
        .cutover(&["deploy", build.to_str().unwrap()])
        .env("CUTOVER_CDN_URL", &wrong.url)
        .env("REDIS_URL", &format!("redis://127.0.0.1:{evicting}"))
        .run();
    run.expect(0);
    let doctor = |bucket: &str| {
        let run = ctx
            .cutover(&["doctor", "--json"])
            .env("CUTOVER_BUCKET", bucket)
            .env("CUTOVER_CDN_URL", &wrong.url)
            .env("CUTOVER_APP_ORIGIN", "https://other.example")
            .env("REDIS_URL", &format!("redis://127.0.0.1:{evicting}"))
            .run();
        run.expect(2);
        let checks = run.json()["checks"].as_array().unwrap().clone();
        move |name: &str| {
            let c = checks
                .iter()
                .find(|c| c["name"] == name)
                .unwrap_or_else(|| panic!("{name}: {checks:?}"));
            (
                c["status"].as_str().unwrap().to_string(),
                c["fix"].as_str().unwrap_or("").to_string(),
            )
        }
    };
    let status = doctor(&ctx.bucket);
    assert_eq!(status("eviction").0, "warn");
    assert!(status("eviction").1.contains("noeviction"));
    assert_eq!(status("cors").0, "warn", "no SRI in this build: a warning");
    assert!(status("cors").1.contains("https://other.example"));
    assert_eq!(status("cdn").0, "fail");
    let status = doctor(&other);
    assert_eq!(
        status("region"),
        ("fail".into(), "set AWS_REGION=eu-west-1".into())
    );
}
