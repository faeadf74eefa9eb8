//! Rollouts on a real Redis and S3: `rollout RELEASE --percent N` sets the
//! canary (checked as an activation), `--percent` changes it with the same
//! salt, `complete` makes it live and `abort` takes it off, each one atomic
//! step with its history event; what a running rollout does to the other
//! commands; and racing writers lose with exit 3 (a proxy puts the race
//! exactly between planning and the script: no timing).

use std::sync::atomic::Ordering;

use serde_json::Value;

use crate::support::fixtures::tiny_build;
use crate::support::redis_proxy::{self, Drop};
use crate::support::{rt, Ctx, Run};

fn id_of(run: &Run) -> String {
    run.expect(0);
    run.json()["release"]["id"].as_str().unwrap().to_string()
}

/// Three releases of one app: `a` live, `b` and `c` recorded.
fn three(ctx: &Ctx) -> (String, String, String) {
    let dir = ctx.work.path();
    let build = |name: &str| {
        tiny_build(&dir.join(name), &format!("app('{name}')"))
            .to_str()
            .unwrap()
            .to_string()
    };
    let (ba, bb, bc) = (build("a"), build("b"), build("c"));
    let a = id_of(&ctx.run(&["deploy", &ba, "--json"]));
    let b = id_of(&ctx.run(&["deploy", &bb, "--no-activate", "--json"]));
    let c = id_of(&ctx.run(&["deploy", &bc, "--no-activate", "--json"]));
    (a, b, c)
}

fn get(ctx: &Ctx, key: &str) -> Option<String> {
    rt().block_on(ctx.get(key))
}

fn canary(ctx: &Ctx) -> Option<Value> {
    get(ctx, "canary").map(|t| serde_json::from_str(&t).unwrap())
}

fn retired(ctx: &Ctx) -> Vec<String> {
    match ctx.redis_cmd(&["ZRANGE", &ctx.key("retired"), "0", "-1"]) {
        redis::Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                redis::Value::BulkString(b) => String::from_utf8(b).unwrap(),
                other => panic!("{other:?}"),
            })
            .collect(),
        other => panic!("{other:?}"),
    }
}

fn head_event(ctx: &Ctx) -> Value {
    rt().block_on(ctx.history()).into_iter().next().unwrap()
}

#[test]
fn a_rollout_starts_rises_with_its_salt_and_completes_in_one_step() {
    let ctx = Ctx::new("rollout-complete");
    let (a, b, _) = three(&ctx);

    // A dry run changes nothing and says what it would write.
    let before = ctx.world();
    let dry = ctx.run(&["rollout", &b, "--percent", "5", "--dry-run", "--json"]);
    dry.expect(0);
    assert_eq!(dry.json()["outcome"], "planned");
    assert!(dry.json()["steps"].to_string().contains("EVAL rollout"));
    ctx.assert_unchanged(&before, "a rollout's dry run");

    let run = ctx.run(&["rollout", &b[..8], "--percent", "5", "--json"]);
    run.expect(0);
    let out = run.json();
    assert_eq!(out["outcome"], "started");
    assert_eq!(out["live"], a.as_str());
    assert_eq!(out["canary"]["release"], b.as_str());
    let c5 = canary(&ctx).expect("the canary key");
    assert_eq!(c5["v"], 1);
    assert_eq!(c5["release"], b.as_str());
    assert_eq!(c5["percent"], 5);
    let salt = c5["salt"].as_str().unwrap().to_string();
    assert!(salt.len() == 32 && salt.bytes().all(|c| c.is_ascii_hexdigit()));
    // The canary's manifest is its record's, byte for byte as activation writes it.
    let record: Value = serde_json::from_str(&get(&ctx, &format!("release:{b}")).unwrap()).unwrap();
    assert_eq!(
        get(&ctx, "canary_manifest").unwrap(),
        serde_json::to_string(&record["manifest"]).unwrap()
    );
    assert_eq!(get(&ctx, "canary_signature"), None, "unsigned release");
    assert_eq!(get(&ctx, "current").as_deref(), Some(a.as_str()));
    let e = head_event(&ctx);
    assert_eq!(
        (&e["action"], &e["release"], &e["previous"], &e["percent"]),
        (
            &Value::from("rollout"),
            &Value::from(b.as_str()),
            &Value::from(a.as_str()),
            &Value::from(5)
        )
    );
    // status and history show it.
    let status = ctx.run(&["status", "--json"]);
    assert_eq!(status.json()["canary"]["release"], b.as_str());
    let text = ctx.run(&["status"]);
    assert!(
        text.stdout.contains(&format!("canary:   {b} at 5%")),
        "{}",
        text.stdout
    );

    // The same again: nothing to do. Raised: same salt, same since.
    let again = ctx.run(&["rollout", &b, "--percent", "5", "--json"]);
    assert_eq!(again.json()["outcome"], "unchanged");
    let raised = ctx.run(&["rollout", "--percent", "25", "--json"]);
    raised.expect(0);
    assert_eq!(raised.json()["outcome"], "changed");
    let c25 = canary(&ctx).unwrap();
    assert_eq!(
        (c25["salt"].as_str(), &c25["percent"]),
        (Some(salt.as_str()), &Value::from(25))
    );
    assert_eq!(c25["since"], c5["since"]);
    let fractional = ctx.run(&["rollout", "--percent", "12.5", "--json"]);
    fractional.expect(0);
    assert_eq!(canary(&ctx).unwrap()["percent"], 12.5);

    // Complete: B live, the canary gone, A retired, all in one script.
    let done = ctx.run(&["rollout", "complete", "--json"]);
    done.expect(0);
    assert_eq!(done.json()["outcome"], "activated");
    assert_eq!(get(&ctx, "current").as_deref(), Some(b.as_str()));
    assert_eq!(
        get(&ctx, "manifest").unwrap(),
        serde_json::to_string(&record["manifest"]).unwrap()
    );
    for k in ["canary", "canary_manifest", "canary_signature"] {
        assert_eq!(get(&ctx, k), None, "{k} after complete");
    }
    assert_eq!(retired(&ctx), vec![a.clone()]);
    let e = head_event(&ctx);
    assert_eq!(
        (&e["action"], &e["release"]),
        (&Value::from("rollout_complete"), &Value::from(b.as_str()))
    );

    // Nothing left to complete; rollback walks past the rollout events to A.
    ctx.run(&["rollout", "complete"])
        .expect(2)
        .error_has(&["no rollout is running", "nothing to complete"]);
    ctx.run(&["rollback"]).expect(0);
    assert_eq!(get(&ctx, "current").as_deref(), Some(a.as_str()));
    assert_eq!(retired(&ctx), vec![b.clone()]);
}

#[test]
fn abort_takes_the_canary_off_and_other_commands_respect_a_running_rollout() {
    let ctx = Ctx::new("rollout-abort");
    let (a, b, c) = three(&ctx);
    ctx.run(&["rollout", &b, "--percent", "5"]).expect(0);

    // activate refuses while it runs; nothing changes.
    let before = ctx.world();
    ctx.run(&["activate", &c]).expect(3).error_has(&[
        "a rollout is running",
        &format!("canary {b} at 5%"),
        "cutover rollout complete",
        "cutover rollout abort",
    ]);
    ctx.assert_unchanged(&before, "activate during a rollout");

    // A deploy records and does not activate; it says why.
    let dir = ctx.work.path();
    let d = tiny_build(&dir.join("d"), "app('d')");
    let run = ctx.run(&["deploy", d.to_str().unwrap(), "--json"]);
    run.expect(0);
    assert_eq!(run.json()["outcome"], "recorded");
    assert_eq!(run.json()["canary"]["release"], b.as_str());
    assert_eq!(get(&ctx, "current").as_deref(), Some(a.as_str()));
    let d_id = run.json()["release"]["id"].as_str().unwrap().to_string();
    assert!(
        ctx.run(&["deploy", d.to_str().unwrap()])
            .stdout
            .contains("a rollout is running"),
        "a deploy the rollout held says so"
    );
    // With --no-activate, the rollout held nothing: it is shown, not blamed.
    let kept = ctx.run(&["deploy", d.to_str().unwrap(), "--no-activate", "--json"]);
    kept.expect(0);
    assert_eq!(kept.json()["canary"]["release"], b.as_str());
    let text = ctx.run(&["deploy", d.to_str().unwrap(), "--no-activate"]);
    assert!(
        !text.stdout.contains("a rollout is running"),
        "{}",
        text.stdout
    );

    // Another release in its place: B is retired, C gets a new salt.
    let salt_b = canary(&ctx).unwrap()["salt"].clone();
    ctx.run(&["rollout", &c, "--percent", "10"]).expect(0);
    let cc = canary(&ctx).unwrap();
    assert_eq!(cc["release"], c.as_str());
    assert_ne!(cc["salt"], salt_b);
    assert_eq!(retired(&ctx), vec![b.clone()]);

    // Abort: the canary's keys are gone, C retired, the history says so.
    let run = ctx.run(&["rollout", "abort", "--json"]);
    run.expect(0);
    assert_eq!(run.json()["outcome"], "aborted");
    for k in ["canary", "canary_manifest", "canary_signature"] {
        assert_eq!(get(&ctx, k), None, "{k} after abort");
    }
    assert_eq!(get(&ctx, "current").as_deref(), Some(a.as_str()));
    let mut r = retired(&ctx);
    r.sort();
    let mut want = vec![b.clone(), c.clone()];
    want.sort();
    assert_eq!(r, want);
    let e = head_event(&ctx);
    assert_eq!(
        (&e["action"], &e["release"]),
        (&Value::from("rollout_abort"), &Value::from(c.as_str()))
    );
    // Again: nothing to abort, exit 0, nothing written.
    let before = ctx.world();
    let again = ctx.run(&["rollout", "abort", "--json"]);
    again.expect(0);
    assert_eq!(again.json()["outcome"], "unchanged");
    ctx.assert_unchanged(&before, "a second abort");

    // A rollback while a rollout runs ends it in the same step.
    ctx.run(&["rollout", &d_id, "--percent", "5"]).expect(0);
    ctx.run(&["activate", &c, "--allow-older"]).expect(3);
    ctx.run(&["rollback", "--to", &c]).expect(0);
    assert_eq!(get(&ctx, "current").as_deref(), Some(c.as_str()));
    assert_eq!(get(&ctx, "canary"), None);
    assert!(retired(&ctx).contains(&d_id));
    assert!(retired(&ctx).contains(&a));
}

#[test]
fn a_rollout_is_refused_when_pinned_live_missing_or_badly_asked() {
    let ctx = Ctx::new("rollout-refused");
    let (a, b, _) = three(&ctx);
    let before = ctx.world();
    for (args, code, needles) in [
        (vec!["rollout", &b], 2, vec!["give --percent N"]),
        (
            vec!["rollout", &b, "--percent", "0"],
            2,
            vec!["not a percent"],
        ),
        (
            vec!["rollout", &b, "--percent", "100"],
            2,
            vec!["not a percent", "rollout complete"],
        ),
        (
            vec!["rollout", &b, "--percent", "5.555"],
            2,
            vec!["at most two decimals"],
        ),
        (
            vec!["rollout", "abort", "--percent", "5"],
            2,
            vec!["take no --percent"],
        ),
        (
            vec!["rollout", &b, "--percent", "5", "--force"],
            2,
            vec!["apply to `cutover rollout complete` only"],
        ),
        (
            vec!["rollout", "--percent", "5"],
            2,
            vec!["no rollout is running"],
        ),
        (
            vec!["rollout", &a, "--percent", "5"],
            2,
            vec!["is live", "already"],
        ),
        (
            vec!["rollout", "ffffffff", "--percent", "5"],
            2,
            vec!["ffffffff"],
        ),
    ] {
        let run = ctx.run(&args);
        run.expect(code).error_has(&needles);
        // One line (clap adds its pointer to --help after a usage error).
        let lines = run.stderr.lines().filter(|l| !l.trim().is_empty());
        let said: Vec<&str> = lines
            .filter(|l| !l.starts_with("For more information"))
            .collect();
        assert_eq!(said.len(), 1, "{args:?}: {}", run.stderr);
    }
    ctx.assert_unchanged(&before, "refused rollouts");

    // Pinned: refused (exit 3), like activate.
    ctx.run(&["pin", "-m", "incident"]).expect(0);
    let before = ctx.world();
    ctx.run(&["rollout", &b, "--percent", "5"])
        .expect(3)
        .error_has(&["pinned", "incident", "cutover unpin"]);
    ctx.assert_unchanged(&before, "a rollout while pinned");
    ctx.run(&["unpin"]).expect(0);

    // An object of the release missing in S3: exit 4, nothing written.
    let record: Value = serde_json::from_str(&get(&ctx, &format!("release:{b}")).unwrap()).unwrap();
    let js = record["manifest"]["application.js"]["src"]
        .as_str()
        .unwrap()
        .to_string();
    let key = js
        .split("/packs/")
        .nth(1)
        .map(|k| format!("packs/{k}"))
        .unwrap();
    rt().block_on(async {
        ctx.s3()
            .await
            .delete_object()
            .bucket(&ctx.bucket)
            .key(&key)
            .send()
            .await
            .unwrap();
    });
    let before = ctx.world();
    ctx.run(&["rollout", &b, "--percent", "5"])
        .expect(4)
        .error_has(&[&key, "missing", "nothing was changed"]);
    ctx.assert_unchanged(&before, "a rollout of a release with a missing object");
}

/// Another writer's commands, run right before our script reaches Redis.
fn racing(ctx: &Ctx, commands: Vec<Vec<String>>, args: &[&str]) -> Run {
    let proxy = redis_proxy::start(ctx.redis_port(), Drop::Interpose(commands));
    let run = ctx.cutover(args).env("REDIS_URL", &proxy.url()).run();
    assert!(
        proxy.fired.load(Ordering::SeqCst),
        "the other writer never ran: {run:?}"
    );
    run
}

#[test]
fn racing_rollouts_lose_with_exit_3_and_write_nothing() {
    let ctx = Ctx::new("rollout-race");
    let (a, b, c) = three(&ctx);
    let other = |release: &str, percent: u32| {
        let text = format!(
            r#"{{"v":1,"release":"{release}","percent":{percent},"salt":"{}","since":"t","at":"t","by":"other","message":null}}"#,
            "ab".repeat(16)
        );
        vec![vec!["SET".to_string(), ctx.key("canary"), text]]
    };

    // Another rollout of C started after ours planned: ours (B) loses.
    let run = racing(&ctx, other(&c, 5), &["rollout", &b, "--percent", "5"]);
    run.expect(3).error_has(&[
        "changed while this ran",
        &format!("canary {c}"),
        "planned against",
        "nothing was changed",
    ]);
    assert_eq!(
        canary(&ctx).unwrap()["release"],
        c.as_str(),
        "the winner stays"
    );
    assert_eq!(
        get(&ctx, "canary_manifest"),
        None,
        "nothing of ours written"
    );
    let events = rt().block_on(ctx.history());
    assert!(
        events.iter().all(|e| e["action"] != "rollout"),
        "{events:?}"
    );

    // A raise that lost to an abort, an abort that lost to another rollout.
    let gone = vec![vec!["DEL".to_string(), ctx.key("canary")]];
    racing(&ctx, gone, &["rollout", "--percent", "25"]).expect(3);
    assert_eq!(get(&ctx, "canary"), None);
    ctx.run(&["rollout", &b, "--percent", "5"]).expect(0);
    racing(&ctx, other(&c, 7), &["rollout", "abort"]).expect(3);
    assert_eq!(canary(&ctx).unwrap()["percent"], 7);

    // Complete while the canary changed under it: refused, nothing switched.
    ctx.run(&["rollout", &b, "--percent", "5"]).expect(0);
    let run = racing(&ctx, other(&c, 5), &["rollout", "complete"]);
    run.expect(3).error_has(&["the canary is", &c]);
    assert_eq!(get(&ctx, "current").as_deref(), Some(a.as_str()));
}

#[test]
fn deploy_rollout_uploads_records_and_makes_the_build_the_canary() {
    let ctx = Ctx::new("deploy-rollout");
    let dir = ctx.work.path();
    let a = tiny_build(&dir.join("a"), "app('a')");
    let b = tiny_build(&dir.join("b"), "app('b')");
    let a_id = id_of(&ctx.run(&["deploy", a.to_str().unwrap(), "--json"]));
    let deploy_b = || ctx.run(&["deploy", b.to_str().unwrap(), "--rollout", "5", "--json"]);

    let run = deploy_b();
    run.expect(0);
    let out = run.json();
    assert_eq!(out["outcome"], "rolling_out");
    assert_eq!(out["activated"], false);
    let b_id = out["release"]["id"].as_str().unwrap().to_string();
    assert_eq!(out["canary"]["release"], b_id.as_str());
    assert_eq!(get(&ctx, "current").as_deref(), Some(a_id.as_str()));
    let c = canary(&ctx).unwrap();
    assert_eq!(
        (&c["release"], &c["percent"]),
        (&Value::from(b_id.as_str()), &Value::from(5))
    );
    assert!(get(&ctx, "canary_manifest").is_some());

    // The same deploy again changes nothing; --rollout with --no-activate is a usage error.
    let salt = c["salt"].clone();
    let again = deploy_b();
    again.expect(0);
    assert_eq!(again.json()["outcome"], "rolling_out");
    assert_eq!(canary(&ctx).unwrap()["salt"], salt);
    ctx.run(&[
        "deploy",
        b.to_str().unwrap(),
        "--rollout",
        "5",
        "--no-activate",
    ])
    .expect(2);

    // Pinned: refused before anything is uploaded (exit 3).
    ctx.run(&["rollout", "abort"]).expect(0);
    ctx.run(&["pin"]).expect(0);
    let c_build = tiny_build(&dir.join("c"), "app('c')");
    let before = ctx.world();
    ctx.run(&["deploy", c_build.to_str().unwrap(), "--rollout", "5"])
        .expect(3)
        .error_has(&["pinned", "cutover unpin"]);
    ctx.assert_unchanged(&before, "deploy --rollout while pinned");
}

#[test]
fn prune_keeps_the_canary_and_what_retired_inside_the_skew_window() {
    let ctx = Ctx::new("rollout-prune");
    let (a, b, c) = three(&ctx);
    ctx.run(&["activate", &b]).expect(0);
    ctx.run(&["rollout", &c, "--percent", "5"]).expect(0);
    let kept = |extra: &[&str]| -> std::collections::BTreeMap<String, String> {
        let mut args = vec![
            "prune",
            "--keep",
            "0",
            "--keep-days",
            "0",
            "--grace",
            "0",
            "--dry-run",
            "--json",
        ];
        args.extend_from_slice(extra);
        let run = ctx.run(&args);
        run.expect(0);
        run.json()["releases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["id"].as_str().unwrap().to_string(),
                    r["kept_because"].to_string(),
                )
            })
            .collect()
    };
    let k = kept(&[]);
    assert!(k[&a].contains("inside skew_max_age"), "{k:?}");
    assert!(k[&c].contains("the canary of the running rollout"), "{k:?}");
    assert!(k[&b].contains("live"), "{k:?}");
    // Outside the window, A goes (unless something else keeps it).
    let k = kept(&["--skew-max-age", "0"]);
    assert!(!k[&a].contains("skew_max_age"), "{k:?}");
    assert!(k[&c].contains("canary"), "{k:?}");
}

#[test]
fn a_damaged_canary_is_named_refuses_switches_and_is_cleared_by_abort() {
    let ctx = Ctx::new("rollout-damaged");
    let (a, b, c) = three(&ctx);
    for (what, damage) in [
        ("not JSON", vec!["SET", "canary", "{not json"]),
        ("a list", vec!["RPUSH", "canary", "x"]),
        (
            "another version",
            vec!["SET", "canary", r#"{"v":2,"release":"x"}"#],
        ),
    ] {
        let key = ctx.key(damage[1]);
        let mut cmd = vec![damage[0], key.as_str()];
        cmd.extend_from_slice(&damage[2..]);
        ctx.redis_cmd(&cmd);
        // status names it and its fix.
        let status = ctx.run(&["status", "--json"]);
        status.expect(0);
        assert!(
            status.json()["problems"]
                .to_string()
                .contains("cutover rollout abort"),
            "{what}: {}",
            status.stdout
        );
        // A switch is refused while it is there (exit 3), and so is a
        // change of percent (no readable rollout, exit 2); nothing changes.
        let before = ctx.world();
        ctx.run(&["activate", &b])
            .expect(3)
            .error_has(&["rollout abort"]);
        ctx.run(&["rollout", "--percent", "10"]).expect(2);
        ctx.assert_unchanged(&before, what);
        // Abort deletes it; then activate works, and a rollout starts.
        let run = ctx.run(&["rollout", "abort", "--json"]);
        run.expect(0);
        assert_eq!(run.json()["outcome"], "aborted", "{what}");
        assert_eq!(
            ctx.redis_cmd(&["EXISTS", &key]),
            redis::Value::Int(0),
            "{what}"
        );
        ctx.run(&["activate", &b]).expect(0);
        ctx.run(&["activate", &a, "--allow-older"]).expect(0);
    }
    // A rollback clears one of another type in its own step (an incident
    // is no time to be stopped by a stray key).
    ctx.redis_cmd(&["RPUSH", &ctx.key("canary"), "x"]);
    ctx.redis_cmd(&["RPUSH", &ctx.key("canary_manifest"), "x"]);
    ctx.run(&["rollback", "--to", &b]).expect(0);
    assert_eq!(get(&ctx, "current").as_deref(), Some(b.as_str()));
    for k in ["canary", "canary_manifest"] {
        assert_eq!(
            ctx.redis_cmd(&["EXISTS", &ctx.key(k)]),
            redis::Value::Int(0),
            "{k}"
        );
    }
    // A rollout over a damaged canary replaces it.
    ctx.run(&["unpin"]).expect(0);
    ctx.redis_cmd(&["SET", &ctx.key("canary"), "garbage"]);
    ctx.run(&["rollout", &c, "--percent", "5"]).expect(0);
    assert_eq!(canary(&ctx).unwrap()["release"], c.as_str());
}
