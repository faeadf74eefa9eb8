//! Always the Redis you meant (issue 24 §1): a CI image's generic
//! `REDIS_URL` ranks below cutover.toml's `redis_targets`; cutover's own
//! `CUTOVER_REDIS_URL` still wins over the file; every switching command
//! names where it switched (`host:port/db`, no password).

use crate::support::ctx::redis_at;
use crate::support::fixtures::tiny_build;
use crate::support::{start_redis, Ctx};

/// The release `current` names on the private redis-server at `port`.
fn current(ctx: &Ctx, port: u16, password: Option<&str>) -> Option<String> {
    if let Some(pw) = password {
        // A fresh connection per call: AUTH first.
        return crate::support::rt().block_on(async {
            let url = format!("redis://:{pw}@127.0.0.1:{port}");
            let mut con = redis::Client::open(url)
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                .unwrap();
            redis::cmd("GET")
                .arg(ctx.key("current"))
                .query_async(&mut con)
                .await
                .unwrap()
        });
    }
    match redis_at(port, &["GET", &ctx.key("current")]) {
        redis::Value::Nil => None,
        redis::Value::BulkString(b) => Some(String::from_utf8(b).unwrap()),
        other => panic!("GET current: {other:?}"),
    }
}

#[test]
fn the_files_redis_targets_win_over_a_generic_redis_url_and_switches_name_them() {
    let ctx = Ctx::new("right-redis");
    const PW: &str = "pod1-password-4fj29x";
    let (pod1, pod2, third) = (
        start_redis(&["--requirepass", PW]),
        start_redis(&[]),
        start_redis(&[]),
    );
    std::fs::write(
        ctx.work.path().join("cutover.toml"),
        format!(
            "redis_targets = [\"redis://:{PW}@127.0.0.1:{pod1}\", \"redis://127.0.0.1:{pod2}/0\"]\n"
        ),
    )
    .unwrap();
    let generic = format!("redis://127.0.0.1:{third}");
    let env = [("REDIS_URL", generic.as_str())];
    let named = [format!("127.0.0.1:{pod1}/0"), format!("127.0.0.1:{pod2}/0")];

    // deploy switches the two pods, not the third, and says where.
    let a = tiny_build(&ctx.work.path().join("a"), "console.log('a')");
    let run = ctx.run_with(&["deploy", a.to_str().unwrap(), "--json"], &env);
    run.expect(0);
    let doc = run.json();
    let id = doc["release"]["id"].as_str().unwrap().to_string();
    assert_eq!(doc["targets"], serde_json::json!(named), "{doc}");
    assert_eq!(current(&ctx, pod1, Some(PW)).as_deref(), Some(id.as_str()));
    assert_eq!(current(&ctx, pod2, None).as_deref(), Some(id.as_str()));
    assert_eq!(
        current(&ctx, third, None),
        None,
        "the generic REDIS_URL was switched"
    );
    assert!(
        !run.stdout.contains(PW) && !run.stderr.contains(PW),
        "{run:#?}"
    );

    // In text too, and at -v the hidden variable is named on stderr.
    let b = tiny_build(&ctx.work.path().join("b"), "console.log('b')");
    let run = ctx.run_with(&["deploy", b.to_str().unwrap(), "-v"], &env);
    run.expect(0)
        .stdout_has(&[&format!("switched on Redis {}, {}", named[0], named[1])])
        .stdout_lacks(&[&format!(":{third}"), PW])
        .stderr_has(&["note: redis_url", "hides REDIS_URL", &generic]);
    assert_eq!(current(&ctx, third, None), None);

    // Deploying it again: already live, and where.
    let run = ctx.run_with(&["deploy", b.to_str().unwrap(), "--json"], &env);
    run.expect(0);
    let b_id = run.json()["release"]["id"].as_str().unwrap().to_string();

    // rollback, unpin and activate name them as well, text and JSON.
    let run = ctx.run_with(&["rollback"], &env);
    run.expect(0)
        .stdout_has(&[&format!("switched on Redis {}, {}", named[0], named[1])]);
    assert_eq!(current(&ctx, pod2, None).as_deref(), Some(id.as_str()));
    let run = ctx.run_with(&["unpin", "--json"], &env);
    run.expect(0);
    assert_eq!(run.json()["targets"], serde_json::json!(named));
    let run = ctx.run_with(&["activate", &b_id, "--json"], &env);
    run.expect(0);
    assert_eq!(run.json()["targets"], serde_json::json!(named));
    assert_eq!(
        current(&ctx, pod1, Some(PW)).as_deref(),
        Some(b_id.as_str())
    );
    assert_eq!(current(&ctx, third, None), None);

    // config shows the file's targets and the REDIS_URL they hide.
    let run = ctx.run_with(&["config"], &env);
    run.expect(0)
        .stdout_has(&[
            "note: redis_url",
            "hides REDIS_URL",
            &generic,
            "cutover.toml:1",
        ])
        .stdout_lacks(&[PW]);
    let doc = ctx.run_with(&["config", "--json"], &env).json();
    let notes = doc["notes"].as_array().unwrap();
    assert!(
        notes.len() == 1 && notes[0].as_str().unwrap().contains(&generic),
        "{doc}"
    );
    let redis = doc["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == "redis_url")
        .unwrap();
    assert_eq!(redis["origin"], "cutover.toml:1");
    // Without -v other commands say nothing of it.
    let run = ctx.run_with(&["status"], &env);
    run.expect(0);
    assert!(!run.stderr.contains("hides REDIS_URL"), "{run:#?}");

    // cutover's own variable still wins over the file.
    let own = [
        ("REDIS_URL", generic.as_str()),
        ("CUTOVER_REDIS_URL", generic.as_str()),
    ];
    let c = tiny_build(&ctx.work.path().join("c"), "console.log('c')");
    let run = ctx.run_with(&["deploy", c.to_str().unwrap(), "--json"], &own);
    run.expect(0);
    let c_id = run.json()["release"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        run.json()["targets"],
        serde_json::json!([format!("127.0.0.1:{third}/0")])
    );
    assert_eq!(current(&ctx, third, None).as_deref(), Some(c_id.as_str()));
    assert_eq!(current(&ctx, pod2, None).as_deref(), Some(b_id.as_str()));
}
