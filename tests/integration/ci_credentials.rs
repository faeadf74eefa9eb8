//! The CI side of the binary: credentials the CI way (CircleCI OIDC against
//! moto's STS; missing credentials fail fast even with instance metadata on,
//! pointed at a closed loopback port), and deploys from a CI that cannot
//! reach Redis.

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{fixture, free_port, rt, Ctx};

const ROLE: &str = "arn:aws:iam::123456789012:role/deploy";

#[test]
fn circleci_oidc_token_assumes_the_role() {
    let ctx = Ctx::new("oidc");
    let tmp = ctx.work.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let oidc = |token: Option<&str>, sts: &str| {
        let mut c = ctx
            .cutover(&["deploy", fixture("flat").to_str().unwrap(), "--json"])
            .env("CUTOVER_ROLE_ARN", ROLE)
            .env("AWS_ENDPOINT_URL_STS", sts)
            .env("TMPDIR", tmp.to_str().unwrap());
        c.cmd
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY");
        c.cmd.env("HOME", ctx.work.path());
        if let Some(t) = token {
            c = c.env("CIRCLE_OIDC_TOKEN_V2", t);
        }
        c.run()
    };
    // No token and no keys: the usual one line about credentials.
    oidc(None, &ctx.s3_endpoint)
        .expect(2)
        .error_has(&["no AWS credentials found"]);
    // An STS that does not answer: exit 2 naming the token and the role.
    let dead = format!("http://127.0.0.1:{}", free_port());
    oidc(Some("eyJ.token.sig"), &dead).expect(2).error_has(&[
        "CIRCLE_OIDC_TOKEN_V2",
        ROLE,
        "trust policy",
    ]);
    // moto's STS exchanges the token for the role's credentials.
    let run = oidc(Some("eyJ.token.sig"), &ctx.s3_endpoint);
    run.expect(0);
    assert_eq!(run.json()["outcome"], "activated");
    // The token was never written to disk.
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
}

#[test]
fn missing_credentials_fail_fast_with_instance_metadata_enabled() {
    let ctx = Ctx::new("no-creds-imds");
    // Instance metadata on, but at a closed loopback port: never the real one.
    let imds = format!("http://127.0.0.1:{}", free_port());
    let mut c = ctx
        .cutover(&["deploy", fixture("flat").to_str().unwrap()])
        .env("AWS_EC2_METADATA_DISABLED", "false")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds);
    c.cmd
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY");
    c.cmd.env("HOME", ctx.work.path());
    let before = ctx.world();
    let started = Instant::now();
    let run = c.run();
    run.expect(2)
        .error_has(&["no AWS credentials found", "AWS_PROFILE", "AWS_ROLE_ARN"]);
    assert!(started.elapsed() < Duration::from_secs(30), "{run:?}");
    ctx.assert_unchanged(&before, "a deploy without credentials");
}

/// A loopback port that accepts and counts connections, never answering.
fn counting_port() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            seen.fetch_add(1, Ordering::SeqCst);
            held.push(conn);
        }
    });
    (port, count)
}

#[test]
fn a_ci_without_redis_records_in_s3_and_activate_registers_it_later() {
    let ctx = Ctx::new("no-redis");
    let dead = format!("redis://127.0.0.1:{}", free_port());
    // Redis unreachable with --no-activate: recorded in S3 only, exit 0.
    let run = ctx
        .cutover(&[
            "deploy",
            fixture("flat").to_str().unwrap(),
            "--no-activate",
            "--json",
        ])
        .env("REDIS_URL", &dead)
        .run();
    run.expect(0).stderr_has(&[
        "release recorded in S3 only",
        "`cutover activate <id>` registers it",
    ]);
    let doc = run.json();
    assert_eq!(doc["outcome"], "recorded");
    assert_eq!(doc["registered"], false);
    let id = doc["release"]["id"].as_str().unwrap().to_string();
    assert!(
        !doc["steps"].to_string().contains("Redis"),
        "no Redis write is planned: {doc}"
    );
    let record = format!("_cutover/{}/releases/{id}.json", ctx.app);
    assert!(rt().block_on(ctx.objects()).contains_key(&record));
    assert!(ctx.world().redis.is_empty(), "nothing reached Redis");

    // --no-redis does not even try.
    let (port, connections) = counting_port();
    let run = ctx
        .cutover(&[
            "deploy",
            fixture("flat").to_str().unwrap(),
            "--no-activate",
            "--no-redis",
        ])
        .env("REDIS_URL", &format!("redis://127.0.0.1:{port}"))
        .run();
    run.expect(0)
        .stdout_has(&["in S3 only", &format!("cutover activate {id}")]);
    assert_eq!(connections.load(Ordering::SeqCst), 0);
    // --no-redis without --no-activate is a usage error.
    ctx.run(&["deploy", fixture("flat").to_str().unwrap(), "--no-redis"])
        .expect(2);
    // Without --no-activate, an unreachable Redis is a failure (exit 1).
    ctx.cutover(&["deploy", fixture("flat").to_str().unwrap()])
        .env("REDIS_URL", &dead)
        .run()
        .expect(1);

    // Inside the network: activate registers it from its S3 record and switches.
    ctx.run(&["activate", &id]).expect(0);
    assert_eq!(rt().block_on(ctx.get("current")), Some(id.clone()));
    assert!(rt().block_on(ctx.get(&format!("release:{id}"))).is_some());
}
