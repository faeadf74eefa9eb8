//! The S3 side of a deploy, inspected with the SDK as another client would.

use sha2::{Digest, Sha256};

use crate::support::s3_proxy::FaultyProxy;
use crate::support::{fixture, rt, Ctx};

/// A HEAD that S3 answered 404: the object is not there (not any error).
fn is_not_found<T>(
    head: &Result<
        T,
        aws_sdk_s3::error::SdkError<aws_sdk_s3::operation::head_object::HeadObjectError>,
    >,
) -> bool {
    matches!(head, Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()))
}

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
                    is_not_found(&head),
                    "the manifest is published through Redis, not uploaded: {key}: {head:?}"
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
    // Through a proxy that sees what each part carries (moto does not check).
    let proxy = FaultyProxy::transparent(&ctx.s3_endpoint);
    let run = ctx.run_with(
        &["deploy", build.to_str().unwrap(), "--json"],
        &[env[0], ("CUTOVER_S3_ENDPOINT", &proxy.url)],
    );
    assert_eq!(run.code, 0, "{run:?}");
    proxy.wait_idle();
    // Every part carried the SHA-256 of its own bytes, for S3 to check.
    let parts: Vec<_> = proxy
        .log
        .lock()
        .unwrap()
        .requests
        .iter()
        .filter(|r| r.part().is_some())
        .cloned()
        .collect();
    assert_eq!(
        parts.iter().map(|p| p.part().unwrap()).collect::<Vec<_>>(),
        vec![1, 2, 3],
        "{parts:#?}"
    );
    assert_eq!(
        parts.iter().map(|p| p.body_len).sum::<usize>(),
        big.len(),
        "{parts:#?}"
    );
    for p in &parts {
        assert_eq!(
            p.checksum,
            p.body_sha256,
            "part {:?} did not carry the x-amz-checksum-sha256 of its bytes",
            p.part()
        );
    }
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
        let body = ctx.object(key).await;
        assert!(body.as_slice() == big.as_slice(), "multipart bytes differ");
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
    let ctx = Ctx::new("upload-race");
    let root = fixture("shakapacker");
    let proxy = FaultyProxy::transparent(&ctx.s3_endpoint);
    proxy.hold_puts();
    let mut cmd = ctx.command();
    cmd.args(["deploy", root.to_str().unwrap(), "--concurrency", "1"])
        .env("CUTOVER_S3_ENDPOINT", &proxy.url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    // Planned against an empty bucket; its first PUT is held on its way.
    proxy.wait_for("the first PUT waits at the proxy", |l| l.held > 0);
    let victim = {
        let log = proxy.log.lock().unwrap();
        let key = log.put_checksums.keys().next().unwrap().clone();
        key
    };
    // Another writer puts other bytes at that key meanwhile.
    rt().block_on(ctx.put(&victim, b"someone else's bytes"));
    proxy.release();
    let run = crate::support::run::finish(child.wait_with_output().unwrap());
    run.expect(3).error_has(&[&victim]);
    rt().block_on(async {
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
        assert_eq!(ctx.get("current").await, None, "nothing went live");
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
    // Its parts are held in a proxy: the upload cannot finish before the
    // interrupt, however fast the machine.
    let proxy = FaultyProxy::transparent(&ctx.s3_endpoint);
    proxy.hold_puts();
    let mut cmd = ctx.command();
    cmd.args(["deploy", build.to_str().unwrap()])
        .env("CUTOVER_MULTIPART_THRESHOLD_MIB", "5")
        .env("CUTOVER_S3_ENDPOINT", &proxy.url);
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();

    // The multipart upload is open and a part of it is on its way.
    proxy.wait_for("a part waits at the proxy", |l| l.held > 0);
    let open = rt().block_on(async {
        ctx.s3()
            .await
            .list_multipart_uploads()
            .bucket(&ctx.bucket)
            .send()
            .await
            .unwrap()
    });
    assert_eq!(open.uploads().len(), 1, "{open:?}");
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
        assert!(
            is_not_found(&head),
            "a partial object became visible: {head:?}"
        );
        assert_eq!(ctx.get("lock").await, None, "the lock was not released");
        assert_eq!(ctx.get("current").await, None);
    });
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
