//! A switch that lost a race: another writer made another release live after
//! the command planned and before its switch reached Redis. The switch is
//! refused (exit 3, naming the winner), the winner stays live and nothing of
//! ours is written; with `--force` it switches anyway. The race is put
//! exactly there by a proxy in front of Redis: no timing.

use std::sync::atomic::Ordering;

use serde_json::Value;

use crate::support::redis_proxy::{self, Drop};
use crate::support::{deploy, fixture, rt, Ctx, Run};

fn id_of(run: &Run) -> String {
    run.expect(0);
    run.json()["release"]["id"].as_str().unwrap().to_string()
}

/// Another writer switching to `x` as an activation does: `current` and
/// `manifest` (the manifest from `x`'s record).
fn switch_to(ctx: &Ctx, x: &str) -> Vec<Vec<String>> {
    let record: Value =
        serde_json::from_str(&rt().block_on(ctx.get(&format!("release:{x}"))).unwrap()).unwrap();
    vec![
        vec!["SET".into(), ctx.key("current"), x.into()],
        vec![
            "SET".into(),
            ctx.key("manifest"),
            record["manifest"].to_string(),
        ],
    ]
}

/// Run `args` with the other writer switching to `x` right before our
/// activation script reaches Redis.
fn racing(ctx: &Ctx, x: &str, args: &[&str]) -> Run {
    let proxy = redis_proxy::start(ctx.redis_port(), Drop::Interpose(switch_to(ctx, x)));
    let run = ctx.cutover(args).env("REDIS_URL", &proxy.url()).run();
    assert!(
        proxy.fired.load(Ordering::SeqCst),
        "the other writer never ran: the command sent no activation: {run:?}"
    );
    run
}

/// What the app serves, and the history's length: what a lost race must not touch.
fn live(ctx: &Ctx) -> (Option<String>, Option<String>, Option<String>, usize) {
    rt().block_on(async {
        (
            ctx.get("current").await,
            ctx.get("manifest").await,
            ctx.get("pin").await,
            ctx.history().await.len(),
        )
    })
}

#[track_caller]
fn assert_lost(ctx: &Ctx, run: &Run, winner: &str, planned: &str, before: usize) {
    run.expect(3).error_has(&[
        &format!("the live release changed to {winner}"),
        &format!("(it planned against {planned})"),
        "nothing was switched",
        "--force",
    ]);
    let doc = run.json();
    assert_eq!(doc["exit_code"], 3, "{run:?}");
    let (current, manifest, pin, history) = live(ctx);
    assert_eq!(current.as_deref(), Some(winner), "the winner is still live");
    let record: Value = serde_json::from_str(
        &rt()
            .block_on(ctx.get(&format!("release:{winner}")))
            .unwrap(),
    )
    .unwrap();
    let manifest: Value = serde_json::from_str(&manifest.unwrap()).unwrap();
    assert_eq!(
        manifest, record["manifest"],
        "the winner's manifest is live"
    );
    assert_eq!(pin, None, "a refused switch set no pin");
    assert_eq!(history, before, "a refused switch added no history");
}

#[test]
fn a_deploy_that_lost_the_race_is_refused_and_with_force_switches() {
    let ctx = Ctx::new("race-deploy");
    let a = deploy(&ctx, fixture("shakapacker").to_str().unwrap(), &[]);
    let x = deploy(
        &ctx,
        fixture("example").to_str().unwrap(),
        &["--no-activate"],
    );
    let flat = fixture("flat");
    let args = ["deploy", flat.to_str().unwrap(), "--json"];

    let run = racing(&ctx, &x, &args);
    assert_lost(&ctx, &run, &x, &a, 1);

    // Again, now planned against x, with a switching back to a meanwhile:
    // --force switches anyway.
    let run = racing(&ctx, &a, &[&args[..], &["--force"]].concat());
    let b = id_of(&run);
    let (current, _, _, _) = live(&ctx);
    assert_eq!(current.as_deref(), Some(b.as_str()));
    let head = &rt().block_on(ctx.history())[0];
    assert_eq!(head["release"], b.as_str());
    assert_eq!(head["previous"], a.as_str(), "previous is what it replaced");
}

#[test]
fn an_activate_that_lost_the_race_is_refused_and_with_force_switches() {
    let ctx = Ctx::new("race-activate");
    let a = deploy(&ctx, fixture("shakapacker").to_str().unwrap(), &[]);
    let b = deploy(&ctx, fixture("flat").to_str().unwrap(), &["--no-activate"]);
    let x = deploy(
        &ctx,
        fixture("example").to_str().unwrap(),
        &["--no-activate"],
    );

    let run = racing(&ctx, &x, &["activate", &b, "--json"]);
    assert_lost(&ctx, &run, &x, &a, 1);

    let run = racing(&ctx, &a, &["activate", &b, "--force", "--json"]);
    run.expect(0);
    assert_eq!(live(&ctx).0.as_deref(), Some(b.as_str()));
    assert_eq!(rt().block_on(ctx.history())[0]["previous"], a.as_str());
}

#[test]
fn a_rollback_that_lost_the_race_is_refused_and_with_force_switches() {
    let ctx = Ctx::new("race-rollback");
    let a = deploy(&ctx, fixture("shakapacker").to_str().unwrap(), &[]);
    let b = deploy(&ctx, fixture("flat").to_str().unwrap(), &[]);
    let x = deploy(
        &ctx,
        fixture("example").to_str().unwrap(),
        &["--no-activate"],
    );

    let run = racing(&ctx, &x, &["rollback", "--json"]);
    assert_lost(&ctx, &run, &x, &b, 2);

    let run = racing(&ctx, &b, &["rollback", "--to", &a, "--force", "--json"]);
    run.expect(0);
    let (current, _, pin, _) = live(&ctx);
    assert_eq!(current.as_deref(), Some(a.as_str()));
    let pin: Value = serde_json::from_str(&pin.expect("rollback pins")).unwrap();
    assert_eq!(pin["release"], a.as_str());
}

#[test]
fn a_pin_set_after_the_deploy_planned_keeps_it_from_switching() {
    let ctx = Ctx::new("race-pin");
    let a = deploy(&ctx, fixture("shakapacker").to_str().unwrap(), &[]);
    let pin = r#"{"release":null,"by":"on-call","at":"2026-01-01T00:00:00Z","message":"hold"}"#;
    let proxy = redis_proxy::start(
        ctx.redis_port(),
        Drop::Interpose(vec![vec!["SET".into(), ctx.key("pin"), pin.into()]]),
    );
    let run = ctx
        .cutover(&["deploy", fixture("flat").to_str().unwrap(), "--json"])
        .env("REDIS_URL", &proxy.url())
        .run();
    assert!(proxy.fired.load(Ordering::SeqCst), "{run:?}");
    run.expect(0).stderr_has(&["on-call"]);
    let doc = run.json();
    assert_eq!(doc["outcome"], "recorded", "{run:?}");
    assert_eq!(doc["activated"], false, "{run:?}");
    let (current, _, pinned, history) = live(&ctx);
    assert_eq!(current, Some(a), "a pinned app does not switch");
    assert_eq!(pinned.as_deref(), Some(pin));
    assert_eq!(history, 1);
}

#[test]
fn a_release_whose_record_vanished_after_planning_is_not_made_live() {
    let ctx = Ctx::new("race-unregistered");
    let a = deploy(&ctx, fixture("shakapacker").to_str().unwrap(), &[]);
    let b = deploy(&ctx, fixture("flat").to_str().unwrap(), &["--no-activate"]);
    let record = ctx.key(&format!("release:{b}"));
    let proxy = redis_proxy::start(
        ctx.redis_port(),
        Drop::Interpose(vec![vec!["DEL".into(), record.clone()]]),
    );
    let run = ctx
        .cutover(&["activate", &b, "--json"])
        .env("REDIS_URL", &proxy.url())
        .run();
    assert!(proxy.fired.load(Ordering::SeqCst), "{run:?}");
    run.expect(1).error_has(&[
        &format!("release {b} is not registered in Redis ({record} missing)"),
        "deploy it again",
    ]);
    let (current, _, _, history) = live(&ctx);
    assert_eq!(
        current,
        Some(a),
        "a release without a record never goes live"
    );
    assert_eq!(history, 1);
}
