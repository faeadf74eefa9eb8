//! A Redis connection that drops during activation: cutover must find out
//! whether the switch applied, and say so truthfully.

use std::sync::atomic::Ordering;

use crate::support::redis_proxy::{start_proxy, Drop};
use crate::support::{fixture, rt, Ctx};

fn current(ctx: &Ctx) -> Option<String> {
    rt().block_on(ctx.get("current"))
}

#[test]
fn activation_whose_answer_is_lost_is_read_back_as_applied() {
    let ctx = Ctx::new("drop-after");
    let a = ctx.run(&["deploy", fixture("shakapacker").to_str().unwrap(), "--json"]);
    assert_eq!(a.code, 0, "{a:?}");
    let (port, fired) = start_proxy(ctx.redis_port(), Drop::AfterEval);
    let url = format!("redis://127.0.0.1:{port}");
    let b = ctx.run_with(
        &["deploy", fixture("flat").to_str().unwrap(), "--json"],
        &[("REDIS_URL", &url)],
    );
    assert!(
        fired.load(Ordering::SeqCst),
        "the proxy never dropped the activation"
    );
    assert_eq!(
        b.code, 0,
        "the switch applied, so the deploy succeeded: {b:?}"
    );
    let b_id = b.json()["release"]["id"].as_str().unwrap().to_string();
    assert_eq!(current(&ctx).as_deref(), Some(b_id.as_str()));
    let history = rt().block_on(ctx.history());
    assert_eq!(
        history.len(),
        2,
        "the activation ran exactly once: {history:?}"
    );
    // The lock was released over the new connection.
    assert_eq!(rt().block_on(ctx.get("lock")), None);
}

#[test]
fn activation_that_never_reached_redis_is_reported_as_not_applied() {
    let ctx = Ctx::new("drop-before");
    let a = ctx.run(&["deploy", fixture("shakapacker").to_str().unwrap(), "--json"]);
    assert_eq!(a.code, 0, "{a:?}");
    let a_id = a.json()["release"]["id"].as_str().unwrap().to_string();
    let (port, fired) = start_proxy(ctx.redis_port(), Drop::BeforeEval);
    let url = format!("redis://127.0.0.1:{port}");
    let b = ctx.run_with(
        &["deploy", fixture("flat").to_str().unwrap()],
        &[("REDIS_URL", &url)],
    );
    assert!(
        fired.load(Ordering::SeqCst),
        "the proxy never dropped the activation"
    );
    // The script never ran: cutover must say so, name what is still live,
    // and Redis must agree.
    assert_eq!(b.code, 1, "{b:?}");
    assert!(b.error_line().contains("did NOT apply"), "{b:?}");
    assert!(
        b.error_line().contains(&a_id),
        "names the release still live: {b:?}"
    );
    assert_eq!(current(&ctx).as_deref(), Some(a_id.as_str()));
    assert_eq!(rt().block_on(ctx.history()).len(), 1);
}

#[test]
fn an_activation_answer_that_stalls_is_bounded_by_the_timeout_and_read_back() {
    // Once a 25 s stall was waited out whatever redis_timeout_secs said.
    let ctx = Ctx::new("stall");
    ctx.run(&["deploy", fixture("shakapacker").to_str().unwrap()])
        .expect(0);
    let (port, fired) = start_proxy(
        ctx.redis_port(),
        Drop::Stall(std::time::Duration::from_secs(30)),
    );
    let url = format!("redis://127.0.0.1:{port}");
    let started = std::time::Instant::now();
    let run = ctx
        .cutover(&["deploy", fixture("flat").to_str().unwrap(), "--json"])
        .env("REDIS_URL", &url)
        .env("CUTOVER_REDIS_TIMEOUT", "2")
        .run();
    let took = started.elapsed();
    assert!(
        fired.load(Ordering::SeqCst),
        "the proxy never stalled the activation"
    );
    assert!(
        took < std::time::Duration::from_secs(20),
        "took {took:?}: {run:?}"
    );
    // The script ran; read back over a fresh connection, cutover says so.
    run.expect(0);
    let b = run.json()["release"]["id"].as_str().unwrap().to_string();
    assert_eq!(current(&ctx).as_deref(), Some(b.as_str()));
}
