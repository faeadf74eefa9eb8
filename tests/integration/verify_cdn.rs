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
    ctx.run(&["activate", &b, "--verify-cdn", "--dry-run"])
        .expect(0)
        .stdout_has(&["check (no write): GET 9 files through the CDN"]);
    ctx.run(&["activate", &b, "--verify-cdn"]).expect(0);
    assert_eq!(rt().block_on(ctx.get("current")), Some(b));
}
