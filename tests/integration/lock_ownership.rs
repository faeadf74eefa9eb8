//! The deploy lock belongs to one owner: a lock held by someone else is
//! waited for, then refused, and left exactly as it was; a deploy whose
//! lock was taken over neither renews nor releases the new owner's lock,
//! and does not switch.

use std::process::{Child, Stdio};
use std::sync::atomic::Ordering;

use crate::support::redis_proxy::{self, Drop, RedisProxy};
use crate::support::s3_proxy::FaultyProxy;
use crate::support::tight_prune;
use crate::support::{deploy, fixture, rt, Ctx};

/// The lock's owner and its time to live (ms; -1 = none, -2 = no lock).
fn lock(ctx: &Ctx) -> (Option<String>, i64) {
    rt().block_on(async {
        let mut con = ctx.redis().await;
        let pttl: i64 = redis::cmd("PTTL")
            .arg(ctx.key("lock"))
            .query_async(&mut con)
            .await
            .unwrap();
        (ctx.get("lock").await, pttl)
    })
}

const FOREIGN: &str = "someone-else/4242/00000000deadbeef";

#[test]
fn a_lock_held_by_another_owner_is_waited_for_refused_and_left_alone() {
    let ctx = Ctx::new("foreign-lock");
    let flat = fixture("flat");
    let a = deploy(&ctx, fixture("shakapacker").to_str().unwrap(), &[]);
    let x = deploy(
        &ctx,
        fixture("example").to_str().unwrap(),
        &["--no-activate"],
    );
    ctx.redis_cmd(&["SET", &ctx.key("lock"), FOREIGN, "PX", "600000", "NX"]);
    let before = ctx.world();
    let run = ctx
        .cutover(&["deploy", flat.to_str().unwrap(), "--json"])
        .env("CUTOVER_LOCK_WAIT", "1")
        // Had we renewed or re-set it, its TTL would be at most 5 s.
        .env("CUTOVER_LOCK_TTL", "5")
        .run();
    run.expect(3).error_has(&[
        &format!("another deploy of this app holds the lock ({FOREIGN:?}"),
        "waited 1s",
        "expires within",
    ]);
    assert!(
        run.stderr
            .contains(&format!("waiting for the deploy lock held by {FOREIGN}")),
        "{run:?}"
    );
    assert_eq!(run.json()["exit_code"], 3);
    let (owner, ttl) = lock(&ctx);
    assert_eq!(
        owner.as_deref(),
        Some(FOREIGN),
        "the foreign lock is still there"
    );
    assert!(
        ttl > 60_000,
        "the foreign lock's TTL was changed by us: {ttl} ms left"
    );
    ctx.assert_unchanged(&before, "a deploy refused by another owner's lock");
    assert_eq!(rt().block_on(ctx.get("current")), Some(a));

    // The same for the other commands that take the lock.
    for args in [
        vec!["activate", x.as_str()],
        vec!["rollback", "--to", x.as_str()],
        tight_prune("0").to_vec(),
    ] {
        let run = ctx
            .cutover(&args)
            .env("CUTOVER_LOCK_WAIT", "0")
            .env("CUTOVER_LOCK_TTL", "5")
            .run();
        run.expect(3)
            .error_has(&[&format!("holds the lock ({FOREIGN:?}")]);
        assert_eq!(lock(&ctx).0.as_deref(), Some(FOREIGN), "{args:?}");
        assert!(lock(&ctx).1 > 60_000, "{args:?} changed the TTL");
        ctx.assert_unchanged(&before, &format!("{args:?} refused by the lock"));
    }
}

/// A deploy of `flat` through both proxies, with a 5 s lock renewed every
/// 5/3 s, started and left holding the lock while uploading: its first PUT
/// waits at the S3 proxy until `release`.
fn deploy_held_mid_upload(ctx: &Ctx) -> (FaultyProxy, RedisProxy, Child) {
    let s3 = FaultyProxy::transparent(&ctx.s3_endpoint);
    let redis = redis_proxy::start(ctx.redis_port(), Drop::Nothing);
    s3.hold_puts();
    let mut cmd = ctx.command();
    cmd.args(["deploy", fixture("flat").to_str().unwrap(), "--json"])
        .env("CUTOVER_S3_ENDPOINT", &s3.url)
        .env("REDIS_URL", redis.url())
        .env("CUTOVER_LOCK_TTL", "5")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    s3.wait_for("a PUT of the deploy waits at the proxy", |l| l.held > 0);
    (s3, redis, child)
}

#[test]
fn a_deploy_whose_lock_was_taken_over_neither_renews_nor_releases_it() {
    let ctx = Ctx::new("lock-taken-over");
    let a = deploy(&ctx, fixture("shakapacker").to_str().unwrap(), &[]);
    let (s3, redis, child) = deploy_held_mid_upload(&ctx);
    let (ours, _) = lock(&ctx);
    assert!(
        ours.as_deref()
            .is_some_and(|o| o.contains(&format!("/{}/", child.id()))),
        "the deploy holds the lock while it uploads: {ours:?}"
    );
    // Its lock expires (say the process was stopped) and another deploy takes it.
    ctx.redis_cmd(&["SET", &ctx.key("lock"), FOREIGN, "PX", "600000"]);
    let refused_before = redis.refused.load(Ordering::SeqCst);
    assert_eq!(refused_before, 0);
    // Wait until the deploy's renewer has tried to renew since: refused
    // (the lock is not its own), or (if it renews what is not its own) the
    // TTL is cut down to its 5 s.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while redis.refused.load(Ordering::SeqCst) == 0 && lock(&ctx).1 > 5_000 {
        assert!(
            std::time::Instant::now() < deadline,
            "the deploy never tried to renew its lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    s3.release();
    let run = crate::support::run::finish(child.wait_with_output().unwrap());
    run.expect(3).error_has(&[
        "the deploy lock expired while this deploy ran",
        "nothing was switched",
    ]);
    let (owner, ttl) = lock(&ctx);
    assert_eq!(
        owner.as_deref(),
        Some(FOREIGN),
        "the new owner's lock was released by the old owner"
    );
    assert!(
        ttl > 60_000,
        "the new owner's lock was renewed by the old owner: {ttl} ms left"
    );
    assert_eq!(rt().block_on(ctx.get("current")), Some(a));
    assert_eq!(rt().block_on(ctx.history()).len(), 1);
}

#[test]
fn a_deploy_that_outlives_its_lock_ttl_keeps_the_lock_by_renewing_it() {
    let ctx = Ctx::new("lock-renewed");
    let (s3, redis, child) = deploy_held_mid_upload(&ctx);
    let (ours, _) = lock(&ctx);
    let ours = ours.expect("the deploy holds the lock");
    // Held up longer than the lock's 5 s TTL: three renewals (one every
    // 5/3 s) later, the lock is still its own.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while redis.renewals.load(Ordering::SeqCst) < 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "the lock was not renewed every third of its TTL: {} renewals in 20 s",
            redis.renewals.load(Ordering::SeqCst)
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let (owner, ttl) = lock(&ctx);
    assert_eq!(owner.as_deref(), Some(ours.as_str()));
    assert!(ttl > 0 && ttl <= 5_000, "{ttl}");
    assert_eq!(redis.refused.load(Ordering::SeqCst), 0);
    s3.release();
    let run = crate::support::run::finish(child.wait_with_output().unwrap());
    run.expect(0);
    assert_eq!(run.json()["outcome"], "activated", "{run:?}");
    assert_eq!(lock(&ctx), (None, -2), "the lock was released at the end");
}

#[test]
fn a_deploy_that_waited_for_the_lock_plans_against_what_is_there_then() {
    // While it waited, another deploy uploaded the same files: it lists
    // again once it has the lock, so it plans to upload nothing.
    use std::io::BufRead;
    let ctx = Ctx::new("lock-waited");
    let build = crate::support::fixtures::tiny_build(ctx.work.path(), "console.log('w')");
    ctx.redis_cmd(&["SET", &ctx.key("lock"), FOREIGN, "PX", "60000"]);
    let mut cmd = ctx.command();
    cmd.args(["deploy", build.to_str().unwrap(), "--json"])
        .env("CUTOVER_LOCK_WAIT", "60")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    // It has listed the (empty) bucket and waits for the lock.
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("waiting for the deploy lock held by") {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "the deploy ended without waiting for the lock: {seen}"
        );
        seen.push_str(&line);
    }
    // The other deploy puts the same files there and lets the lock go.
    rt().block_on(async {
        for path in crate::support::fixtures::files_of(&build) {
            if !path.starts_with("manifest.json") {
                ctx.put(
                    &format!("packs/{path}"),
                    &std::fs::read(build.join(&path)).unwrap(),
                )
                .await;
            }
        }
    });
    ctx.redis_cmd(&["DEL", &ctx.key("lock")]);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    let run = crate::support::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: seen + &rest,
    };
    run.expect(0);
    let doc = run.json();
    assert_eq!(
        doc["upload"]["files"], 0,
        "planned against the old listing: {run:?}"
    );
    assert_eq!(doc["skip"]["files"], 2, "{run:?}");
    assert_eq!(doc["outcome"], "activated", "{run:?}");
}
