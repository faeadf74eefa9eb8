//! Files that may change under the same name (`[[mutable]]`): replaced
//! conditionally, kept content-addressed so activating any release restores
//! its own version, and invalidated on CloudFront (moto's CloudFront API).
//! And header rules that change: objects already in S3 get the new headers.

use aws_sdk_cloudfront::types::{
    DefaultCacheBehavior, DistributionConfig, Origin, Origins, S3OriginConfig, ViewerProtocolPolicy,
};
use sha2::{Digest, Sha256};

use crate::support::{rt, Ctx};

/// A build with a service worker (mutable) and a fingerprinted script.
pub(crate) fn build(ctx: &Ctx, name: &str, sw: &str) -> std::path::PathBuf {
    let root = ctx.work.path().join(name);
    std::fs::create_dir_all(root.join("js")).unwrap();
    std::fs::write(root.join("sw.js"), sw).unwrap();
    std::fs::write(root.join("js/app-0a1b2c3d4e5f6a7b8c9d.js"), "app()").unwrap();
    std::fs::write(
        root.join("manifest.json"),
        r#"{"sw.js": "/packs/sw.js", "application.js": "/packs/js/app-0a1b2c3d4e5f6a7b8c9d.js"}"#,
    )
    .unwrap();
    root
}

async fn cloudfront(ctx: &Ctx) -> aws_sdk_cloudfront::Client {
    let creds = aws_sdk_cloudfront::config::Credentials::new("test", "test", None, None, "tests");
    let conf = aws_sdk_cloudfront::config::Builder::new()
        .behavior_version(aws_sdk_cloudfront::config::BehaviorVersion::latest())
        .region(aws_sdk_cloudfront::config::Region::new("us-east-1"))
        .credentials_provider(creds)
        .endpoint_url(&ctx.s3_endpoint)
        .build();
    aws_sdk_cloudfront::Client::from_conf(conf)
}

/// A distribution on moto's CloudFront API; returns its id.
pub(crate) async fn distribution(ctx: &Ctx) -> String {
    let origin = Origin::builder()
        .id("s3")
        .domain_name(format!("{}.s3.amazonaws.com", ctx.bucket))
        .s3_origin_config(S3OriginConfig::builder().origin_access_identity("").build())
        .build()
        .unwrap();
    let config = DistributionConfig::builder()
        .caller_reference(&ctx.app)
        .comment("cutover test")
        .enabled(true)
        .origins(
            Origins::builder()
                .quantity(1)
                .items(origin)
                .build()
                .unwrap(),
        )
        .default_cache_behavior(
            DefaultCacheBehavior::builder()
                .target_origin_id("s3")
                .viewer_protocol_policy(ViewerProtocolPolicy::AllowAll)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let out = cloudfront(ctx)
        .await
        .create_distribution()
        .distribution_config(config)
        .send()
        .await
        .unwrap();
    out.distribution().unwrap().id().to_string()
}

/// Paths of every invalidation of the distribution, oldest first.
async fn invalidated(ctx: &Ctx, id: &str) -> Vec<Vec<String>> {
    let cf = cloudfront(ctx).await;
    let list = cf
        .list_invalidations()
        .distribution_id(id)
        .send()
        .await
        .unwrap();
    let mut out = Vec::new();
    for summary in list
        .invalidation_list()
        .map(|l| l.items())
        .unwrap_or_default()
    {
        let inv = cf
            .get_invalidation()
            .distribution_id(id)
            .id(summary.id())
            .send()
            .await
            .unwrap();
        let paths = inv
            .invalidation()
            .and_then(|i| Some(i.invalidation_batch()?.paths()?.items().to_vec()))
            .unwrap_or_default();
        out.push(paths);
    }
    out
}

async fn body(ctx: &Ctx, key: &str) -> (Vec<u8>, Option<String>) {
    let got = ctx
        .s3()
        .await
        .get_object()
        .bucket(&ctx.bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    let cc = got.cache_control().map(str::to_string);
    (got.body.collect().await.unwrap().into_bytes().to_vec(), cc)
}

#[test]
fn mutable_files_change_in_place_and_every_release_keeps_its_own() {
    let ctx = Ctx::new("mutable");
    let dist = rt().block_on(distribution(&ctx));
    std::fs::write(
        ctx.work.path().join("cutover.toml"),
        format!("cloudfront_distribution_id = \"{dist}\"\n\n[[mutable]]\nglob = \"sw.js\"\n"),
    )
    .unwrap();
    let deploy = |dir: &std::path::Path| {
        let run = ctx
            .cutover(&["deploy", dir.to_str().unwrap(), "--json"])
            .env("AWS_ENDPOINT_URL_CLOUDFRONT", &ctx.s3_endpoint)
            .run();
        run.expect(0);
        run.json()["release"]["id"].as_str().unwrap().to_string()
    };
    let a = deploy(&build(&ctx, "a", "self.version = 1"));
    let (sw, cc) = rt().block_on(body(&ctx, "packs/sw.js"));
    assert_eq!(sw, b"self.version = 1");
    assert_eq!(
        cc.as_deref(),
        Some("public, max-age=60"),
        "mutable: the short Cache-Control"
    );

    // A new version under the same name: replaced, not a conflict.
    let b_dir = build(&ctx, "b", "self.version = 2");
    let dry = ctx
        .cutover(&["deploy", b_dir.to_str().unwrap(), "--dry-run", "--json"])
        .run();
    dry.expect(0);
    let steps = dry.json()["steps"].to_string();
    assert!(
        steps.contains("CloudFront CreateInvalidation") && steps.contains("/packs/sw.js"),
        "{steps}"
    );
    let b = deploy(&b_dir);
    assert_eq!(
        rt().block_on(body(&ctx, "packs/sw.js")).0,
        b"self.version = 2"
    );
    // Each version is kept content-addressed.
    for v in ["self.version = 1", "self.version = 2"] {
        let key = format!(
            "_cutover/{}/mutable/{}",
            ctx.app,
            hex::encode(Sha256::digest(v))
        );
        assert_eq!(rt().block_on(body(&ctx, &key)).0, v.as_bytes(), "{key}");
    }
    let invalidations = rt().block_on(invalidated(&ctx, &dist));
    assert_eq!(invalidations, vec![vec!["/packs/sw.js".to_string()]]);

    // Rolling back restores a's service worker, and invalidates it again.
    ctx.cutover(&["rollback"])
        .env("AWS_ENDPOINT_URL_CLOUDFRONT", &ctx.s3_endpoint)
        .run()
        .expect(0);
    assert_eq!(
        rt().block_on(body(&ctx, "packs/sw.js")).0,
        b"self.version = 1"
    );
    assert_eq!(rt().block_on(invalidated(&ctx, &dist)).len(), 2);
    // b is intact although its sw.js is not at the public key now.
    ctx.run(&["verify", &b]).expect(0);
    ctx.run(&["verify", &a]).expect(0);

    // A file without a content hash that is not mutable still conflicts.
    std::fs::write(ctx.work.path().join("cutover.toml"), "").unwrap();
    ctx.run(&[
        "deploy",
        build(&ctx, "c", "self.version = 3").to_str().unwrap(),
    ])
    .expect(3)
    .error_has(&["packs/sw.js", "would be overwritten"]);
}

/// A deploy that records without switching (`--no-activate`, `--no-redis`,
/// or pinned after a rollback) leaves the live release's mutable files as
/// they are; activating its release later writes them and invalidates.
#[test]
fn a_deploy_that_does_not_switch_leaves_the_live_mutable_files_alone() {
    let ctx = Ctx::new("mutable-held");
    let dist = rt().block_on(distribution(&ctx));
    std::fs::write(
        ctx.work.path().join("cutover.toml"),
        format!("cloudfront_distribution_id = \"{dist}\"\n\n[[mutable]]\nglob = \"sw.js\"\n"),
    )
    .unwrap();
    let run = |args: &[&str]| {
        ctx.cutover(args)
            .env("AWS_ENDPOINT_URL_CLOUDFRONT", &ctx.s3_endpoint)
            .run()
    };
    let live_sw = || rt().block_on(body(&ctx, "packs/sw.js")).0;
    let id = |r: &crate::support::Run| r.json()["release"]["id"].as_str().unwrap().to_string();
    let a_dir = build(&ctx, "a", "self.version = 1");
    let a = run(&["deploy", a_dir.to_str().unwrap(), "--json"]);
    a.expect(0);
    let a = id(&a);

    for (name, extra) in [("b", "--no-activate"), ("c", "--no-redis")] {
        let dir = build(&ctx, name, &format!("self.version = '{name}'"));
        let mut args = vec!["deploy", dir.to_str().unwrap(), "--json", extra];
        if extra == "--no-redis" {
            args.push("--no-activate");
        }
        run(&args).expect(0);
        assert_eq!(
            live_sw(),
            b"self.version = 1",
            "deploy {extra} replaced the live sw.js"
        );
    }
    assert!(rt().block_on(invalidated(&ctx, &dist)).is_empty());

    // Pinned (by a rollback, or `cutover pin`): the next deploy records only.
    run(&["pin", "--message", "incident"]).expect(0);
    let d_dir = build(&ctx, "d", "self.version = 'd'");
    let d = run(&["deploy", d_dir.to_str().unwrap(), "--json"]);
    d.expect(0);
    assert_eq!(d.json()["activated"], false, "{}", d.stdout);
    assert_eq!(
        live_sw(),
        b"self.version = 1",
        "a pinned deploy replaced the live sw.js"
    );
    ctx.run(&["verify", &a]).expect(0);

    // Activating d restores its own version and invalidates it.
    run(&["activate", &id(&d), "--unpin"]).expect(0);
    assert_eq!(live_sw(), b"self.version = 'd'");
    assert_eq!(
        rt().block_on(invalidated(&ctx, &dist)),
        vec![vec!["/packs/sw.js".to_string()]]
    );
}

#[test]
fn changed_header_rules_reach_objects_already_in_s3() {
    let ctx = Ctx::new("header-rules");
    let dir = build(&ctx, "a", "sw()");
    ctx.run(&["deploy", dir.to_str().unwrap()]).expect(0);
    let key = "packs/js/app-0a1b2c3d4e5f6a7b8c9d.js";
    let before = rt().block_on(body(&ctx, key));
    assert_eq!(
        before.1.as_deref(),
        Some("public, max-age=31536000, immutable")
    );
    std::fs::write(
        ctx.work.path().join("cutover.toml"),
        "[[headers]]\nglob = \"js/*.js\"\ncache_control = \"public, max-age=600\"\n",
    )
    .unwrap();
    let dry = ctx.run(&["deploy", dir.to_str().unwrap(), "--dry-run", "--json"]);
    dry.expect(0);
    let steps = dry.json()["steps"].to_string();
    assert!(steps.contains(&format!("{key} (headers)")), "{steps}");
    ctx.run(&["deploy", dir.to_str().unwrap()]).expect(0);
    let after = rt().block_on(body(&ctx, key));
    assert_eq!(after.0, before.0, "same bytes");
    assert_eq!(after.1.as_deref(), Some("public, max-age=600"));
}

#[test]
fn a_lost_copy_of_a_mutable_file_is_uploaded_again() {
    // The content-addressed copy is checked on its own, whatever the public
    // object holds: if it is gone, the next deploy puts it back.
    let ctx = Ctx::new("mutable-copy");
    std::fs::write(
        ctx.work.path().join("cutover.toml"),
        "[[mutable]]\nglob = \"sw.js\"\n",
    )
    .unwrap();
    let dir = build(&ctx, "a", "self.version = 1");
    ctx.run(&["deploy", dir.to_str().unwrap()]).expect(0);
    let copy = format!(
        "_cutover/{}/mutable/{}",
        ctx.app,
        hex::encode(Sha256::digest(b"self.version = 1"))
    );
    let copies = || rt().block_on(ctx.objects()).contains_key(&copy);
    assert!(copies(), "the copy is kept at {copy}");
    rt().block_on(async {
        ctx.s3()
            .await
            .delete_object()
            .bucket(&ctx.bucket)
            .key(&copy)
            .send()
            .await
            .unwrap()
    });
    ctx.run(&["deploy", dir.to_str().unwrap()]).expect(0);
    assert!(copies(), "the lost copy was not uploaded again");

    // A new version of another size is replaced in place, not a conflict.
    let bigger = build(&ctx, "b", "self.version = 10");
    ctx.run(&["deploy", bigger.to_str().unwrap()]).expect(0);
    let (sw, _) = rt().block_on(body(&ctx, "packs/sw.js"));
    assert_eq!(sw, b"self.version = 10");
}
