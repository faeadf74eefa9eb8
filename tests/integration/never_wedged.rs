//! Damage in Redis never wedges cutover: a corrupt or missing live manifest,
//! a corrupt release record, a lock without expiry. Each is shown and
//! repaired by the commands users already know; dry runs never write.

use serde_json::Value;

use crate::support::{deploy, fixture, rt, Ctx};

/// The live manifest as the app reads it, and the one in `id`'s record.
fn manifests(ctx: &Ctx, id: &str) -> (Option<Value>, Value) {
    rt().block_on(async {
        let live = ctx
            .get("manifest")
            .await
            .and_then(|t| serde_json::from_str(&t).ok());
        let record: Value =
            serde_json::from_str(&ctx.get(&format!("release:{id}")).await.unwrap()).unwrap();
        (live, record["manifest"].clone())
    })
}

#[test]
fn dry_runs_write_nothing_even_when_redis_lost_a_record() {
    let ctx = Ctx::new("dry-readonly");
    let a = deploy(&ctx, fixture("shakapacker").to_str().unwrap(), &[]);
    deploy(&ctx, fixture("flat").to_str().unwrap(), &[]);
    ctx.redis_cmd(&["DEL", &ctx.key(&format!("release:{a}"))]);
    let before = ctx.world();
    let run = ctx.run(&["activate", &a, "--dry-run"]);
    run.expect(0)
        .stdout_has(&["dry run: nothing will be changed", "Redis EVAL register"]);
    ctx.run(&["rollback", "--dry-run"]).expect(0);
    ctx.assert_unchanged(&before, "a dry run");

    // A read-only Redis user can run every dry run.
    let url = ctx.acl_user("reader", &["~cutover:{APP}:*", "+@read", "+@connection"]);
    for args in [
        vec!["activate", a.as_str(), "--dry-run"],
        vec!["rollback", "--dry-run"],
        vec![
            "deploy",
            fixture("shakapacker").to_str().unwrap(),
            "--dry-run",
        ],
        vec!["status"],
        vec!["releases"],
    ] {
        ctx.cutover(&args).env("REDIS_URL", &url).run().expect(0);
    }
    ctx.assert_unchanged(&before, "a dry run by a read-only user");
}

#[test]
fn a_corrupt_live_manifest_never_wedges_anything() {
    let ctx = Ctx::new("corrupt-manifest");
    let a = deploy(&ctx, fixture("shakapacker").to_str().unwrap(), &[]);
    let b = deploy(&ctx, fixture("flat").to_str().unwrap(), &[]);
    let corrupt = || ctx.redis_cmd(&["SET", &ctx.key("manifest"), "{not json"]);

    corrupt();
    let run = ctx.run(&["status"]);
    run.expect(0).stdout_has(&[
        &format!("live release of {}: {b}", ctx.app),
        "is not valid JSON",
        &format!("`cutover activate {b}` writes it again"),
    ]);
    // Every way of switching still works, and repairs the manifest.
    ctx.run(&["rollback"]).expect(0);
    assert_eq!(manifests(&ctx, &a).0, Some(manifests(&ctx, &a).1));
    corrupt();
    ctx.run(&["activate", &b, "--unpin"]).expect(0);
    assert_eq!(manifests(&ctx, &b).0, Some(manifests(&ctx, &b).1));
    corrupt();
    let run = ctx.run(&["deploy", fixture("flat").to_str().unwrap(), "--json"]);
    run.expect(0);
    assert_eq!(run.json()["outcome"], "repaired", "{run:?}");
    assert_eq!(manifests(&ctx, &b).0, Some(manifests(&ctx, &b).1));
    corrupt();
    ctx.run(&["deploy", fixture("shakapacker").to_str().unwrap()])
        .expect(0);
    assert_eq!(manifests(&ctx, &a).0, Some(manifests(&ctx, &a).1));
    ctx.run(&["status"]).expect(0).stdout_lacks(&["PROBLEM"]);
}

#[test]
fn a_missing_manifest_is_repaired_not_called_already_live() {
    let ctx = Ctx::new("missing-manifest");
    let a = deploy(&ctx, fixture("shakapacker").to_str().unwrap(), &[]);
    ctx.redis_cmd(&["DEL", &ctx.key("manifest")]);
    ctx.run(&["status"])
        .expect(0)
        .stdout_has(&["is missing", &format!("cutover activate {a}")]);
    let run = ctx.run(&["deploy", fixture("shakapacker").to_str().unwrap(), "--json"]);
    run.expect(0);
    assert_eq!(run.json()["outcome"], "repaired", "{run:?}");
    let (live, own) = manifests(&ctx, &a);
    assert_eq!(live, Some(own));

    ctx.redis_cmd(&["DEL", &ctx.key("manifest")]);
    let run = ctx.run(&["activate", &a]);
    run.expect(0).stdout_has(&["wrote them again"]);
    let (live, own) = manifests(&ctx, &a);
    assert_eq!(live, Some(own));
    // Now it is live: nothing to do.
    ctx.run(&["activate", &a])
        .expect(0)
        .stdout_has(&["already live"]);
}

#[test]
fn a_corrupt_release_record_falls_back_to_the_s3_copy() {
    let ctx = Ctx::new("corrupt-record");
    let a = deploy(&ctx, fixture("shakapacker").to_str().unwrap(), &[]);
    let b = deploy(&ctx, fixture("flat").to_str().unwrap(), &[]);
    ctx.redis_cmd(&["SET", &ctx.key(&format!("release:{a}")), "garbage"]);
    let run = ctx.run(&["releases"]);
    run.expect(0)
        .stdout_has(&[&b, &a, "(record unreadable: not a valid release record"]);
    let run = ctx.run(&["rollback"]);
    run.expect(0).stdout_has(&[&format!("release {a} is live")]);
    let (live, own) = manifests(&ctx, &a);
    assert_eq!(live, Some(own), "the record was restored from S3");
}

#[test]
fn a_lock_without_expiry_is_named_and_cleared_by_unlock() {
    let ctx = Ctx::new("ghost-lock");
    ctx.redis_cmd(&["SET", &ctx.key("lock"), "ghost"]);
    let build = fixture("flat");
    let before = ctx.world();
    let run = ctx
        .cutover(&["deploy", build.to_str().unwrap()])
        .env("CUTOVER_LOCK_WAIT", "0")
        .run();
    run.expect(3).error_has(&[
        "holds the lock (\"ghost\"",
        "NO expiry",
        "cutover unlock --force",
    ]);
    ctx.assert_unchanged(&before, "a deploy refused by the lock");

    // Showing the owner is unlock's job: exit 0, with how to clear it.
    let run = ctx.run(&["unlock"]);
    run.expect(0)
        .stdout_has(&["held by \"ghost\"", "no expiry", "cutover unlock --force"]);
    let run = ctx.run(&["unlock", "--json"]);
    run.expect(0);
    assert_eq!(run.json()["outcome"], "held");
    assert_eq!(run.json()["owner"], "ghost");
    let run = ctx.run(&["unlock", "--dry-run", "--json"]);
    run.expect(0);
    assert_eq!(run.json()["outcome"], "planned");
    assert_eq!(run.json()["owner"], "ghost");
    assert_eq!(run.json()["ttl_ms"], Value::Null);
    ctx.assert_unchanged(&before, "unlock without --force");

    ctx.run(&["unlock", "--force"])
        .expect(0)
        .stdout_has(&["cleared the deploy lock", "\"ghost\""]);
    assert_eq!(rt().block_on(ctx.get("lock")), None);
    ctx.run(&["unlock"])
        .expect(0)
        .stdout_has(&["nobody holds the deploy lock"]);
    let run = ctx.run(&["deploy", build.to_str().unwrap(), "--json"]);
    run.expect(0);
    assert_eq!(
        rt().block_on(ctx.get("current")).as_deref(),
        run.json()["release"]["id"].as_str()
    );
}

#[test]
fn unlock_never_deletes_a_lock_taken_by_someone_else_meanwhile() {
    // `--force` deletes only the owner it read: compare-and-delete.
    let ctx = Ctx::new("unlock-cas");
    ctx.redis_cmd(&["SET", &ctx.key("lock"), "first", "PX", "60000"]);
    let run = ctx.run(&["unlock"]);
    run.expect(0)
        .stdout_has(&["held by \"first\"", "expires in"]);
    ctx.redis_cmd(&["SET", &ctx.key("lock"), "second", "PX", "60000"]);
    let deleted = rt().block_on(async {
        let env: std::collections::HashMap<&str, String> = [
            ("CUTOVER_APP", ctx.app.clone()),
            ("REDIS_URL", ctx.redis_url.clone()),
        ]
        .into_iter()
        .collect();
        let config =
            cutover::config::load(&Default::default(), &|k| env.get(k).cloned(), None).unwrap();
        let mut reg = cutover::store::redis::Registry::connect(&config)
            .await
            .unwrap();
        reg.unlock("first").await.unwrap()
    });
    assert!(!deleted);
    assert_eq!(rt().block_on(ctx.get("lock")).as_deref(), Some("second"));
}

#[test]
fn a_live_record_of_the_wrong_shape_or_release_is_repaired_by_activate() {
    let ctx = Ctx::new("wrong-record");
    let a = deploy(&ctx, fixture("shakapacker").to_str().unwrap(), &[]);
    let b = deploy(&ctx, fixture("flat").to_str().unwrap(), &[]);
    let key = ctx.key(&format!("release:{b}"));
    let own = rt().block_on(ctx.get(&format!("release:{b}"))).unwrap();
    let other = rt().block_on(ctx.get(&format!("release:{a}"))).unwrap();
    for damage in [r#"{"id":"nope"}"#, "[1,2,3]", other.as_str()] {
        ctx.redis_cmd(&["SET", &key, damage]);
        ctx.run(&["status"]).expect(0).stdout_has(&[
            "PROBLEM",
            &format!("the record of {b} in Redis is"),
            &format!("`cutover activate {b}`"),
        ]);
        let run = ctx.run(&["activate", &b]);
        run.expect(0).stdout_lacks(&["already live"]);
        let stored: Value =
            serde_json::from_str(&rt().block_on(ctx.get(&format!("release:{b}"))).unwrap())
                .unwrap();
        assert_eq!(
            stored,
            serde_json::from_str::<Value>(&own).unwrap(),
            "activate wrote {b}'s own record again over {damage}"
        );
        ctx.run(&["status"]).expect(0).stdout_lacks(&["PROBLEM"]);
        ctx.run(&["activate", &b])
            .expect(0)
            .stdout_has(&["already live"]);
    }
}

#[test]
fn keys_of_the_wrong_type_are_named_and_cleared_by_the_commands_they_name() {
    let ctx = Ctx::new("wrong-types");
    let a = deploy(&ctx, fixture("shakapacker").to_str().unwrap(), &[]);
    let b = deploy(&ctx, fixture("flat").to_str().unwrap(), &[]);
    let build = fixture("shakapacker");
    let build = build.to_str().unwrap();
    let (lock, pin, rolled_back) = (ctx.key("lock"), ctx.key("pin"), ctx.key("rolled_back"));

    // The lock: every deploy is refused naming it, until `unlock --force`.
    ctx.redis_cmd(&["HSET", &lock, "f", "v"]);
    let run = ctx
        .cutover(&["deploy", build])
        .env("CUTOVER_LOCK_WAIT", "0")
        .run();
    run.expect(3)
        .error_has(&[&lock, "holds a hash", "cutover unlock --force"]);
    let run = ctx.run(&["unlock"]);
    run.expect(0)
        .stdout_has(&[&lock, "holds a hash", "cutover unlock --force"]);
    assert_eq!(ctx.run(&["unlock", "--json"]).json()["wrong_type"], "hash");
    ctx.run(&["unlock", "--force"])
        .expect(0)
        .stdout_has(&["cleared the deploy lock", "hash"]);
    assert_eq!(ctx.redis_cmd(&["EXISTS", &lock]), redis::Value::Int(0));

    // The pin: deploys do not activate, the errors name it, `unpin` clears it.
    ctx.redis_cmd(&["SADD", &pin, "x"]);
    ctx.run(&["status"])
        .expect(0)
        .stdout_has(&[&pin, "holds a set"]);
    ctx.run(&["rollback", "--to", &a])
        .expect(1)
        .error_has(&[&pin, "holds a set", "cutover unpin"]);
    ctx.run(&["activate", &a])
        .expect(3)
        .error_has(&[&pin, "holds a set", "cutover unpin"]);
    ctx.run(&["unpin"]).expect(0).stdout_has(&["unpinned"]);
    assert_eq!(ctx.redis_cmd(&["EXISTS", &pin]), redis::Value::Int(0));
    ctx.run(&["activate", &a]).expect(0);

    // The rolled-back set: a plain rollback says what is wrong; any switch
    // replaces it.
    ctx.redis_cmd(&["SET", &rolled_back, "junk"]);
    ctx.run(&["rollback"])
        .expect(1)
        .error_has(&[&rolled_back, "holds a string", "rollback --to"]);
    ctx.run(&["activate", &b]).expect(0);
    assert_eq!(
        ctx.redis_cmd(&["TYPE", &rolled_back]),
        redis::Value::SimpleString("none".into())
    );
    ctx.run(&["rollback"]).expect(0);
    assert_eq!(rt().block_on(ctx.get("current")), Some(a));
}
