//! The S3 side of a deploy, inspected with the SDK as another client would.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use crate::support::{fixture, rt, Ctx};

fn expected_type(path: &str) -> &'static str {
    let original = path.trim_end_matches(".gz").trim_end_matches(".br");
    match original.rsplit('.').next().unwrap() {
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "map" => "application/json; charset=utf-8",
        "svg" => "image/svg+xml; charset=utf-8",
        "png" => "image/png",
        "woff2" => "font/woff2",
        other => panic!("fixture has an unexpected file type {other}"),
    }
}

#[test]
fn deploy_uploads_every_file_with_headers_checksum_and_bytes() {
    let ctx = Ctx::new("upload-headers");
    let root = fixture("shakapacker");
    let run = ctx.run(&["deploy", root.to_str().unwrap(), "--no-activate", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    assert_eq!(doc["outcome"], "recorded");
    let id = doc["release"]["id"].as_str().unwrap().to_string();

    rt().block_on(async {
        let s3 = ctx.s3().await;
        let mut seen = 0;
        for entry in walkdir::WalkDir::new(&root) {
            let entry = entry.unwrap();
            if !entry.file_type().is_file() {
                continue;
            }
            let rel = entry
                .path()
                .strip_prefix(&root)
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            let key = format!("packs/{rel}");
            if rel.starts_with("manifest.json") {
                let head = s3.head_object().bucket(&ctx.bucket).key(&key).send().await;
                assert!(
                    head.is_err(),
                    "the manifest is published through Redis, not uploaded: {key}"
                );
                continue;
            }
            let bytes = std::fs::read(entry.path()).unwrap();
            let sha = Sha256::digest(&bytes);
            let head = s3
                .head_object()
                .bucket(&ctx.bucket)
                .key(&key)
                .send()
                .await
                .unwrap();
            assert_eq!(head.content_type(), Some(expected_type(&rel)), "{key}");
            // moto does not echo x-amz-checksum-sha256; that every PUT sends it is
            // checked on the wire in faults.rs.
            assert_eq!(
                head.cache_control(),
                Some("public, max-age=31536000, immutable"),
                "{key}"
            );
            let encoding = if rel.ends_with(".gz") {
                Some("gzip")
            } else if rel.ends_with(".br") {
                Some("br")
            } else {
                None
            };
            assert_eq!(head.content_encoding(), encoding, "{key}");
            assert_eq!(
                head.metadata().unwrap().get("sha256").map(String::as_str),
                Some(hex::encode(sha).as_str()),
                "{key}"
            );
            let got = s3
                .get_object()
                .bucket(&ctx.bucket)
                .key(&key)
                .send()
                .await
                .unwrap();
            let body = got.body.collect().await.unwrap().into_bytes();
            assert_eq!(body.as_ref(), bytes.as_slice(), "bytes of {key} differ");
            seen += 1;
        }
        assert_eq!(seen, 59);

        // The full record is in S3, outside the public prefix.
        let record_key = format!("_cutover/{}/releases/{id}.json", ctx.app);
        let rec = s3
            .get_object()
            .bucket(&ctx.bucket)
            .key(&record_key)
            .send()
            .await
            .unwrap();
        let rec: serde_json::Value =
            serde_json::from_slice(&rec.body.collect().await.unwrap().into_bytes()).unwrap();
        assert_eq!(rec["id"], id.as_str());
        assert_eq!(rec["files"].as_array().unwrap().len(), 59);
    });

    // Not activated: nothing is live.
    let status = ctx.run(&["status", "--json"]);
    assert_eq!(status.json()["current"], serde_json::Value::Null);

    // A second deploy uploads nothing.
    let again = ctx
        .run(&["deploy", root.to_str().unwrap(), "--no-activate", "--json"])
        .json();
    assert_eq!(again["upload"]["files"], 0);
    assert_eq!(again["skip"]["files"], 59);
    assert_eq!(again["release"]["id"], id.as_str());
}

#[test]
fn large_file_goes_multipart_and_is_recognised_on_redeploy() {
    let ctx = Ctx::new("upload-multipart");
    let build = ctx.work.path().join("build");
    std::fs::create_dir_all(build.join("static")).unwrap();
    let big: Vec<u8> = (0..(11 * 1024 * 1024 + 17))
        .map(|i: usize| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(build.join("static/video-0a1b2c3d4e5f.mp4"), &big).unwrap();
    std::fs::write(
        build.join("manifest.json"),
        r#"{"video.mp4": "/packs/static/video-0a1b2c3d4e5f.mp4"}"#,
    )
    .unwrap();
    let env = [("CUTOVER_MULTIPART_THRESHOLD_MIB", "5")];
    let run = ctx.run_with(&["deploy", build.to_str().unwrap(), "--json"], &env);
    assert_eq!(run.code, 0, "{run:?}");
    rt().block_on(async {
        let s3 = ctx.s3().await;
        let key = "packs/static/video-0a1b2c3d4e5f.mp4";
        let head = s3
            .head_object()
            .bucket(&ctx.bucket)
            .key(key)
            .send()
            .await
            .unwrap();
        assert!(
            head.e_tag().unwrap().contains("-3"),
            "expected a 3-part upload, etag {:?}",
            head.e_tag()
        );
        assert_eq!(head.content_type(), Some("video/mp4"));
        assert_eq!(
            head.metadata().unwrap().get("sha256").unwrap(),
            &hex::encode(Sha256::digest(&big))
        );
        let body = s3
            .get_object()
            .bucket(&ctx.bucket)
            .key(key)
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap()
            .into_bytes();
        assert!(body.as_ref() == big.as_slice(), "multipart bytes differ");
        ctx.assert_no_open_multipart().await;
    });
    // The listing's multipart ETag proves the bytes: nothing to upload, nothing to inspect.
    let run = ctx.run_with(
        &["deploy", build.to_str().unwrap(), "--dry-run", "--json"],
        &env,
    );
    assert_eq!(run.json()["skip"]["files"], 1, "{run:?}");
    assert!(
        !run.stderr.contains("verifying"),
        "the ETag should have decided: {}",
        run.stderr
    );
}

#[test]
fn conflict_appearing_between_plan_and_upload_is_caught() {
    use cutover::events::Quiet;
    let ctx = Ctx::new("upload-race");
    let root = fixture("shakapacker");
    let env: HashMap<&str, String> = [
        ("CUTOVER_APP", ctx.app.clone()),
        ("CUTOVER_BUCKET", ctx.bucket.clone()),
        ("CUTOVER_CDN_URL", "https://cdn.example.com".to_string()),
        ("CUTOVER_S3_ENDPOINT", ctx.s3_endpoint.clone()),
        ("REDIS_URL", ctx.redis_url.clone()),
    ]
    .into_iter()
    .collect();
    let config =
        cutover::config::load(&Default::default(), &|k| env.get(k).cloned(), None).unwrap();
    std::env::set_var("AWS_ACCESS_KEY_ID", "test");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    rt().block_on(async {
        use cutover::plan::{Decision, Provenance, Step};
        let build = cutover::build::scan::scan(&root, &config.exclude, &Quiet).unwrap();
        let manifest = cutover::build::manifest::load(&build, "manifest.json", &|p| {
            config.public_url(p).unwrap()
        })
        .unwrap();
        let store = cutover::store::s3::S3Store::connect(&config).await.unwrap();
        let mut registry = cutover::store::targets::Targets::connect(&config)
            .await
            .unwrap();
        let remote = store.list(&config.list_prefix(), &Quiet).await.unwrap();
        let who = Provenance {
            message: None,
            created: cutover::release::now(),
        };
        let plan = cutover::plan::deploy(
            &config,
            &build,
            &manifest,
            &remote,
            &Default::default(),
            &Default::default(),
            who,
        )
        .unwrap();
        assert_eq!(plan.count(Decision::Upload).0, 59);
        // Another writer puts other bytes at one of the planned keys.
        let victim = plan.with(Decision::Upload).next().unwrap().key.clone();
        ctx.put(&victim, b"someone else's bytes").await;
        let uploads = plan.with(Decision::Upload).cloned().collect();
        let mut executor = cutover::exec::Executor {
            store: Some(&store),
            registry: Some(&mut registry),
            root: Some(&build.root),
            concurrency: 8,
            multipart_threshold: config.multipart_threshold,
            lock: None,
            cdn_timeout: std::time::Duration::from_secs(10),
            config: &config,
            observer: &Quiet,
        };
        let err = executor.run(&[Step::Upload(uploads)]).await.unwrap_err();
        assert_eq!(cutover::error::exit_code(&err), 3, "{err:#}");
        assert!(err.to_string().contains(&victim), "{err:#}");
        let body = ctx
            .s3()
            .await
            .get_object()
            .bucket(&ctx.bucket)
            .key(&victim)
            .send()
            .await
            .unwrap();
        assert_eq!(
            body.body.collect().await.unwrap().into_bytes().as_ref(),
            b"someone else's bytes",
            "the object was overwritten"
        );
    });
}

#[test]
fn interrupt_aborts_multipart_uploads_and_releases_the_lock() {
    let ctx = Ctx::new("interrupt");
    let build = ctx.work.path().join("build");
    std::fs::create_dir_all(build.join("static")).unwrap();
    // Big enough that the upload is still running when we look.
    let big: Vec<u8> = (0..(60 * 1024 * 1024))
        .map(|i: usize| (i.wrapping_mul(2654435761) >> 11) as u8)
        .collect();
    std::fs::write(build.join("static/huge-0a1b2c3d4e5f.bin"), &big).unwrap();
    drop(big);
    std::fs::write(
        build.join("manifest.json"),
        r#"{"huge.bin": "/packs/static/huge-0a1b2c3d4e5f.bin"}"#,
    )
    .unwrap();
    let mut cmd = ctx.command();
    cmd.args(["deploy", build.to_str().unwrap()])
        .env("CUTOVER_MULTIPART_THRESHOLD_MIB", "5");
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();

    // Wait for the multipart upload to be under way (a condition, with a deadline).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    rt().block_on(async {
        let s3 = ctx.s3().await;
        loop {
            let open = s3
                .list_multipart_uploads()
                .bucket(&ctx.bucket)
                .send()
                .await
                .unwrap();
            if !open.uploads().is_empty() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the multipart upload never started"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    });
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let run = crate::support::run::finish(child.wait_with_output().unwrap());
    assert_eq!(run.code, 130, "{run:?}");
    assert!(run.error_line().contains("interrupted"), "{run:?}");
    rt().block_on(async {
        let s3 = ctx.s3().await;
        ctx.assert_no_open_multipart().await;
        let head = s3
            .head_object()
            .bucket(&ctx.bucket)
            .key("packs/static/huge-0a1b2c3d4e5f.bin")
            .send()
            .await;
        assert!(head.is_err(), "a partial object became visible");
        assert_eq!(ctx.get("lock").await, None, "the lock was not released");
        assert_eq!(ctx.get("current").await, None);
    });
}
