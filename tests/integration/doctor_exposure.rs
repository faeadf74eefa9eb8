//! `doctor` checks what an attacker would use: a bucket whose policy or ACL
//! lets anyone write or list the release records, a CDN that serves the
//! records, a Redis others reach without a password (here only loopback:
//! the decision for other hosts is unit-tested in src/commands/doctor.rs).

use crate::support::servers::s3s_fs_endpoint;
use crate::support::{nginx, rt, Ctx};

/// `doctor --json` against `cdn`: its exit code, and each check by name as
/// (status, detail, fix).
fn doctor(ctx: &Ctx, cdn: &str) -> (i32, impl Fn(&str) -> (String, String, String)) {
    let run = ctx
        .cutover(&["doctor", "--json"])
        .env("CUTOVER_CDN_URL", cdn)
        .run();
    let checks = run.json()["checks"].as_array().unwrap().clone();
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
    (run.code, move |name: &str| {
        let c = checks
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("{name}: {checks:?}"));
        (text(&c["status"]), text(&c["detail"]), text(&c["fix"]))
    })
}

#[test]
fn doctor_flags_a_public_bucket_and_a_cdn_that_serves_the_records() {
    let ctx = Ctx::new("doctor-exposed");
    // nginx as configured by default proxies every path, `_cutover/` too.
    let open_cdn = nginx::start(&ctx.s3_endpoint, &ctx.bucket);
    let closed_cdn = nginx::start_without_records(&ctx.s3_endpoint, &ctx.bucket);
    let build = crate::support::fixture("shakapacker");
    let id = crate::support::deploy(&ctx, build.to_str().unwrap(), &["--cdn-url", &open_cdn.url]);

    rt().block_on(async {
        let s3 = ctx.s3().await;
        let policy = serde_json::json!({"Version": "2012-10-17", "Statement": [{
            "Sid": "PublicUpload", "Effect": "Allow", "Principal": "*",
            "Action": "s3:PutObject", "Resource": format!("arn:aws:s3:::{}/*", ctx.bucket)}]});
        s3.put_bucket_policy()
            .bucket(&ctx.bucket)
            .policy(policy.to_string())
            .send()
            .await
            .unwrap();
        s3.put_bucket_acl()
            .bucket(&ctx.bucket)
            .acl(aws_sdk_s3::types::BucketCannedAcl::PublicRead)
            .send()
            .await
            .unwrap();
    });
    let (code, check) = doctor(&ctx, &open_cdn.url);
    assert_eq!(code, 2);
    let (status, detail, fix) = check("bucket exposure");
    assert_eq!(status, "fail", "{detail}");
    assert!(
        detail.contains("\"PublicUpload\"") && detail.contains("s3:PutObject"),
        "{detail}"
    );
    assert!(
        detail.contains("grants READ to anyone") && detail.contains("release records"),
        "{detail}"
    );
    assert!(
        fix.contains("put-bucket-policy")
            && fix.contains(&format!(
                "put-bucket-acl --bucket {} --acl private",
                ctx.bucket
            )),
        "{fix}"
    );
    let (status, detail, fix) = check("cdn records");
    assert_eq!(status, "fail", "{detail}");
    assert!(
        detail.contains("the CDN serves release records")
            && detail.contains(&format!("/_cutover/{}/releases/{id}.json", ctx.app)),
        "{detail}"
    );
    assert!(
        fix.contains(&format!(
            "arn:aws:s3:::{}/_cutover/{}/*",
            ctx.bucket, ctx.app
        )),
        "{fix}"
    );
    let (status, detail, _) = check("redis exposure");
    assert_eq!(status, "pass", "{detail}");
    assert!(detail.contains("loopback"), "{detail}");

    // Private again, behind a CDN that refuses `_cutover/`.
    rt().block_on(async {
        let s3 = ctx.s3().await;
        s3.delete_bucket_policy()
            .bucket(&ctx.bucket)
            .send()
            .await
            .unwrap();
        s3.put_bucket_acl()
            .bucket(&ctx.bucket)
            .acl(aws_sdk_s3::types::BucketCannedAcl::Private)
            .send()
            .await
            .unwrap();
    });
    let (_, check) = doctor(&ctx, &closed_cdn.url);
    let (status, detail, _) = check("bucket exposure");
    assert_eq!(status, "pass", "{detail}");
    let (status, detail, _) = check("cdn records");
    assert_eq!(status, "pass", "{detail}");
    assert!(detail.contains("answers 403"), "{detail}");
}

#[test]
fn doctor_says_when_the_server_will_not_show_the_bucket_policy() {
    let ctx = Ctx::on("doctor-unchecked", s3s_fs_endpoint());
    let (_, check) = doctor(&ctx, "https://cdn.example.com");
    let (status, detail, fix) = check("bucket exposure");
    assert_eq!(status, "warn", "{detail}");
    assert!(detail.contains("could not check"), "{detail}");
    assert!(fix.contains("s3:GetBucketPolicy"), "{fix}");
}

/// Redis users broader than a reader's printed line are named: on a real
/// redis-server with a reader that may write everything of the app, one
/// made from the Ruby reader's printed line, and cutover's own user with
/// the rights to list users and dry-run their commands. Without those
/// rights, doctor says it could not check. (On a loopback Redis a broad
/// user is a pass that names it; elsewhere a warning: unit-tested.)
#[test]
fn doctor_names_redis_users_broader_than_a_reader() {
    use crate::support::ctx::redis_at;
    let ctx = Ctx::new("doctor-users");
    let port = crate::support::start_redis(&[]);
    let url = |user: &str| format!("redis://{user}:pw@127.0.0.1:{port}");
    let build = crate::support::fixtures::tiny_build(ctx.work.path(), "app(1)");
    ctx.cutover(&["deploy", build.to_str().unwrap()])
        .env("REDIS_URL", &format!("redis://127.0.0.1:{port}"))
        .run()
        .expect(0);
    let printed = ctx.run(&["policy", "--format", "redis-acl", "--json"]);
    printed.expect(0);
    let lines = printed.json()["redis_acl"].clone();
    let setuser = |line: &str, user: &str, extra: &[&str]| {
        let mut words: Vec<String> = line
            .split_whitespace()
            .map(|w| w.replace(">PASSWORD", ">pw"))
            .collect();
        words[2] = user.to_string();
        words.extend(extra.iter().map(|e| e.to_string()));
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        redis_at(port, &words);
    };
    setuser(
        lines["cli"].as_str().unwrap(),
        "cutover-doc",
        &["+acl|whoami", "+acl|list", "+acl|dryrun"],
    );
    setuser(lines["cli"].as_str().unwrap(), "cutover-plain", &[]);
    setuser(lines["ruby"].as_str().unwrap(), "reader-narrow", &[]);
    let wide = format!("~cutover:{{{}}}:*", ctx.app);
    redis_at(
        port,
        &["ACL", "SETUSER", "reader-wide", "on", ">pw", &wide, "+@all"],
    );

    let users = |user: &str| {
        let run = ctx
            .cutover(&["doctor", "--json"])
            .env("REDIS_URL", &url(user))
            .run();
        let checks = run.json()["checks"].as_array().unwrap().clone();
        let c = checks
            .iter()
            .find(|c| c["name"] == "redis users")
            .unwrap()
            .clone();
        (
            c["status"].as_str().unwrap().to_string(),
            c["detail"].as_str().unwrap().to_string(),
        )
    };
    let (status, detail) = users("cutover-doc");
    assert_eq!(status, "pass", "{detail}");
    assert!(
        detail.contains(&format!(
            "reader-wide may write cutover:{{{}}}:current, write cutover:{{{0}}}:manifest, write cutover:{{{0}}}:signature, run FLUSHALL, run CONFIG SET",
            ctx.app
        )),
        "{detail}"
    );
    assert!(
        !detail.contains("reader-narrow") && !detail.contains("cutover-plain"),
        "{detail}"
    );
    assert!(detail.contains("loopback"), "{detail}");
    let (status, detail) = users("cutover-plain");
    assert_eq!(status, "warn", "{detail}");
    assert!(
        detail.contains("cannot list the other Redis users"),
        "{detail}"
    );
}
