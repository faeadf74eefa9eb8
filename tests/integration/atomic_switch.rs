//! The switch happens completely (keys, history, event) or not at all, and
//! cutover says which: permissions are checked before anything is uploaded,
//! and the activation script checks everything that can fail before its
//! first write.

use std::collections::HashMap;

use crate::support::tight_prune;
use crate::support::{deploy, fixture, rt, Ctx};

fn config_for(ctx: &Ctx, redis_url: &str) -> cutover::config::Config {
    let env: HashMap<&str, String> = [
        ("CUTOVER_APP", ctx.app.clone()),
        ("REDIS_URL", redis_url.to_string()),
        ("CUTOVER_REDIS_TIMEOUT", "5".to_string()),
    ]
    .into_iter()
    .collect();
    cutover::config::load(&Default::default(), &|k| env.get(k).cloned(), None).unwrap()
}

#[test]
fn a_user_who_may_not_publish_is_refused_before_anything_is_uploaded() {
    let ctx = Ctx::new("no-publish");
    let a = deploy(&ctx, fixture("shakapacker").to_str().unwrap(), &[]);
    // Redis 7's default for new ACL users: no channels.
    let url = ctx.acl_user("nopub", &["~cutover:{APP}:*", "resetchannels", "+@all"]);
    let before = ctx.world();
    let run = ctx
        .cutover(&["deploy", fixture("flat").to_str().unwrap()])
        .env("REDIS_URL", &url)
        .run();
    run.expect(2).error_has(&[
        "may not run what cutover needs",
        &format!("PUBLISH {}", ctx.key("events")),
        "Minimal ACL",
    ]);
    assert!(
        !run.error_line().contains(":pw@"),
        "password shown: {run:?}"
    );
    ctx.assert_unchanged(&before, "a refused deploy");
    assert_eq!(rt().block_on(ctx.get("current")), Some(a));
}

#[test]
fn the_switch_script_writes_nothing_when_it_cannot_publish() {
    // Past the permission check (called directly): the script itself must
    // fail before its first write.
    let ctx = Ctx::new("script-order");
    let a = deploy(&ctx, fixture("shakapacker").to_str().unwrap(), &[]);
    let b = deploy(&ctx, fixture("flat").to_str().unwrap(), &["--no-activate"]);
    let before = ctx.world();
    let url = ctx.acl_user("nopub2", &["~cutover:{APP}:*", "resetchannels", "+@all"]);
    let config = config_for(&ctx, &url);
    let err = rt().block_on(async {
        let mut reg = cutover::store::redis::Registry::connect(&config)
            .await
            .unwrap();
        let record = reg.record(&b).await.unwrap().valid().unwrap();
        let event = cutover::contract::ActivationEvent {
            release: b.clone(),
            previous: Some(a.clone()),
            action: "activate".into(),
            at: "now".into(),
            by: None,
            message: None,
            percent: None,
        };
        reg.activate(
            &event,
            &record.manifest,
            record.signature.as_deref(),
            false,
            &cutover::contract::PinChange::Respect,
            None,
            cutover::contract::CanaryMode::Refuse,
        )
        .await
        .unwrap_err()
    });
    let msg = cutover::error::one_line(&err);
    assert!(msg.contains("nothing was switched"), "{msg}");
    ctx.assert_unchanged(&before, "an activation refused by Redis");
}

#[test]
fn a_wrong_typed_history_key_stops_the_switch_before_any_write() {
    let ctx = Ctx::new("history-type");
    let a = deploy(&ctx, fixture("shakapacker").to_str().unwrap(), &[]);
    let b = deploy(&ctx, fixture("flat").to_str().unwrap(), &["--no-activate"]);
    ctx.redis_cmd(&["DEL", &ctx.key("history")]);
    ctx.redis_cmd(&["SET", &ctx.key("history"), "not a list"]);
    let before = ctx.world();
    let run = ctx.run(&["activate", &b]);
    run.expect(1).error_has(&[
        &format!(
            "WRONGTYPE {} holds a string, not a list",
            ctx.key("history")
        ),
        "nothing was switched",
    ]);
    ctx.assert_unchanged(&before, "an activation stopped by a wrong type");
    assert_eq!(rt().block_on(ctx.get("current")), Some(a));
}

#[test]
fn a_user_without_scripting_is_refused_before_anything_is_uploaded() {
    let ctx = Ctx::new("no-eval");
    deploy(&ctx, fixture("shakapacker").to_str().unwrap(), &[]);
    let url = ctx.acl_user(
        "noeval",
        &[
            "~cutover:{APP}:*",
            "&*",
            "+@all",
            "-eval",
            "-evalsha",
            "-script",
        ],
    );
    let before = ctx.world();
    let run = ctx
        .cutover(&["deploy", fixture("flat").to_str().unwrap()])
        .env("REDIS_URL", &url)
        .run();
    run.expect(2)
        .error_has(&["may not run", "evalsha", "Minimal ACL"]);
    ctx.assert_unchanged(&before, "a deploy by a user without EVAL");
}

#[test]
fn a_wrong_typed_current_key_is_named_not_taken_for_no_release() {
    let ctx = Ctx::new("current-type");
    ctx.redis_cmd(&["RPUSH", &ctx.key("current"), "x"]);
    let run = ctx.run(&["status"]);
    run.expect(1).error_has(&[
        &format!("{} in Redis", ctx.key("current")),
        "holds a list, not a string",
    ]);
}

#[test]
fn the_documented_minimal_acl_is_enough() {
    let ctx = Ctx::new("minimal-acl");
    let user = format!("deploy-{}", ctx.app);
    let words = crate::support::documented_acl(&user, "pw", &ctx.app, &[]);
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    ctx.redis_cmd(&words);
    let url = format!("redis://{user}:pw@127.0.0.1:{}", ctx.redis_port());
    let as_user = |args: &[&str]| ctx.cutover(args).env("REDIS_URL", &url).run();
    as_user(&["deploy", fixture("shakapacker").to_str().unwrap()]).expect(0);
    let b = as_user(&["deploy", fixture("flat").to_str().unwrap(), "--json"]);
    b.expect(0);
    let b = b.json()["release"]["id"].as_str().unwrap().to_string();
    as_user(&["rollback"]).expect(0);
    as_user(&["activate", &b, "--unpin"]).expect(0);
    as_user(&["pin", "-m", "freeze"]).expect(0);
    as_user(&["unpin"]).expect(0);
    as_user(&["history"]).expect(0);
    as_user(&["status"]).expect(0);
    as_user(&["releases"]).expect(0);
    as_user(&tight_prune("1")).expect(0);
    ctx.redis_cmd(&["SET", &ctx.key("lock"), "ghost"]);
    as_user(&["unlock", "--force"]).expect(0);
    assert_eq!(rt().block_on(ctx.history()).len(), 4);
}
