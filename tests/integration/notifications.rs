//! Webhook notifications (`[[notify]]`; docs/output.md, "Notifications"):
//! a receiver on a loopback port gets the documented payload after each
//! switching command, nothing for dry runs, "already live" or read-only
//! commands; a failing, hung or interrupted webhook never changes the
//! exit code; the webhook URL (a secret) appears in no output.

use std::path::PathBuf;

use serde_json::Value;

use crate::support::fixtures::tiny_build;
use crate::support::webhook::{Answer, Webhook};
use crate::support::{start_redis, Ctx, Run};

/// The token a webhook URL carries (Slack's are in the path): planted to
/// check that no output ever shows it.
const TOKEN: &str = "T0KEN-B4ckD00r-xK9qZ2";

/// `[[notify]]` entries, written as cutover.toml.
fn notify_toml(ctx: &Ctx, entries: &[String]) {
    let text: String = entries
        .iter()
        .map(|e| format!("[[notify]]\n{e}\n\n"))
        .collect();
    std::fs::write(ctx.work.path().join("cutover.toml"), text).unwrap();
}

/// A build of its own for each `js`.
fn build(ctx: &Ctx, js: &str) -> PathBuf {
    let dir = ctx.work.path().join(format!("b-{}", js.len()));
    tiny_build(&dir, js)
}

/// Who, what and where, as a CI run would set them.
fn run(ctx: &Ctx, args: &[&str]) -> Run {
    ctx.cutover(args)
        .env("CUTOVER_DEPLOYED_BY", "alice")
        .env(
            "CUTOVER_GIT_SHA",
            "9f8e7d6c5b4a39281706f5e4d3c2b1a098765432",
        )
        .env("CUTOVER_BUILD_URL", "https://ci.example/build/42")
        .run()
}

#[track_caller]
fn assert_no_token(what: &str, run: &Run) {
    for piece in (0..=TOKEN.len() - 8).map(|i| &TOKEN[i..i + 8]) {
        assert!(
            !run.stdout.contains(piece) && !run.stderr.contains(piece),
            "{what} printed part of the webhook URL ({piece:?}): {run:#?}"
        );
    }
}

fn id_of(run: &Run) -> String {
    run.json()["release"]["id"].as_str().unwrap().to_string()
}

#[test]
fn each_switching_command_sends_the_documented_payload_and_dry_runs_send_nothing() {
    let ctx = Ctx::new("notify-payload");
    let hook = Webhook::start(Answer::Status(200));
    notify_toml(&ctx, &[format!("url = \"{}\"", hook.url(TOKEN))]);
    let (a, b) = (
        build(&ctx, "console.log('a')"),
        build(&ctx, "console.log('bb')"),
    );
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let target = format!("{}/0", ctx.redis_url.trim_start_matches("redis://"));

    let first = run(&ctx, &["deploy", a, "-m", "first", "--json"]);
    first.expect(0);
    assert!(first.json()["notifications"][0]["ok"] == true, "{first:#?}");
    let id_a = id_of(&first);
    let got = hook.wait_for(1);
    assert_eq!(got[0].method, "POST");
    assert_eq!(got[0].path, format!("/{TOKEN}"));
    assert_eq!(got[0].header("content-type"), Some("application/json"));
    let p = got[0].json();
    let at = p["at"].as_str().unwrap().to_string();
    assert!(at.ends_with('Z') && at.contains('T'), "{at}");
    assert_eq!(
        p,
        serde_json::json!({
            "v": 1, "event": "activated", "command": "deploy", "app": ctx.app,
            "release": id_a, "previous": null, "who": "alice", "message": "first",
            "git_sha": "9f8e7d6c5b4a39281706f5e4d3c2b1a098765432",
            "ci_build_url": "https://ci.example/build/42", "environment": null,
            "targets": [target], "exit_code": 0, "error": null, "convergence": null,
            "at": at,
        })
    );
    // The keys in the documented order.
    let keys: Vec<&String> = p.as_object().unwrap().keys().collect();
    assert_eq!(keys[..3], ["v", "event", "command"]);

    let second = run(&ctx, &["deploy", b, "--json"]);
    second.expect(0);
    let id_b = id_of(&second);
    // Dry runs, "already live" and read-only commands: nothing.
    for args in [
        vec!["deploy", a, "--dry-run"],
        vec!["deploy", b],
        vec!["rollback", "--dry-run"],
        vec!["activate", &id_a, "--dry-run"],
        vec!["activate", &id_b],
        vec!["pin", "--dry-run"],
        vec!["unpin"],
        vec!["status"],
        vec!["releases"],
        vec!["history"],
        vec!["verify"],
        vec!["config"],
    ] {
        run(&ctx, &args).expect(0);
    }
    // A dry run that fails sends nothing either.
    run(&ctx, &["activate", "0123456789abcdef", "--dry-run"]).expect(2);
    let got = hook.requests();
    assert_eq!(got.len(), 2, "only the two deploys were told: {got:#?}");
    let p = got[1].json();
    assert_eq!(
        (&p["event"], &p["release"], &p["previous"]),
        (
            &Value::from("activated"),
            &Value::from(id_b.clone()),
            &Value::from(id_a.clone())
        )
    );

    run(&ctx, &["rollback", "-m", "checkout broken"]).expect(0);
    run(&ctx, &["unpin"]).expect(0);
    run(&ctx, &["pin", "-m", "holding for the sale"]).expect(0);
    run(&ctx, &["activate", &id_b, "--unpin"]).expect(0);
    let got = hook.wait_for(6);
    assert_eq!(got.len(), 6, "{got:#?}");
    let p: Vec<Value> = got[2..].iter().map(|r| r.json()).collect();
    let brief = |p: &Value, k: &[&str]| -> Vec<Value> { k.iter().map(|k| p[*k].clone()).collect() };
    let fields = [
        "event", "command", "release", "previous", "message", "git_sha",
    ];
    assert_eq!(
        brief(&p[0], &fields),
        [
            "rolled_back".into(),
            "rollback".into(),
            Value::from(id_a.clone()),
            Value::from(id_b.clone()),
            "checkout broken".into(),
            // The release's: the record of A.
            "9f8e7d6c5b4a39281706f5e4d3c2b1a098765432".into(),
        ]
    );
    assert_eq!(
        brief(&p[1], &fields[..5]),
        [
            "unpinned".into(),
            "unpin".into(),
            Value::from(id_a.clone()),
            Value::Null,
            Value::Null
        ]
    );
    assert_eq!(
        brief(&p[2], &fields[..5]),
        [
            "pinned".into(),
            "pin".into(),
            Value::from(id_a.clone()),
            Value::Null,
            "holding for the sale".into()
        ]
    );
    assert_eq!(
        brief(&p[3], &fields[..4]),
        [
            "activated".into(),
            "activate".into(),
            Value::from(id_b.clone()),
            Value::from(id_a.clone())
        ]
    );
    for p in &p {
        assert_eq!(p["who"], "alice");
        assert_eq!(p["exit_code"], 0);
        assert_eq!(p["targets"], serde_json::json!([target]));
    }
}

#[test]
fn a_failed_switch_sends_failed_with_its_exit_code_and_error() {
    let ctx = Ctx::new("notify-failed");
    let hook = Webhook::start(Answer::Status(200));
    notify_toml(&ctx, &[format!("url = \"{}\"", hook.url(TOKEN))]);
    let r = run(&ctx, &["activate", "0123456789abcdef", "-m", "try it"]);
    r.expect(2);
    let error = r.error_line().trim_start_matches("error: ").to_string();
    let p = hook.wait_for(1)[0].json();
    assert_eq!(p["event"], "failed");
    assert_eq!(p["command"], "activate");
    assert_eq!(p["exit_code"], 2);
    assert_eq!(p["error"], error.as_str());
    assert_eq!(p["release"], "0123456789abcdef");
    assert_eq!(p["message"], "try it");
    // A failure's provenance is this run's: the CI build that failed.
    assert_eq!(p["ci_build_url"], "https://ci.example/build/42");
    // With --json the error document says how the notification went.
    let r = run(&ctx, &["rollback", "--json"]);
    r.expect(2);
    let doc = r.json();
    assert_eq!(doc["exit_code"], 2);
    assert_eq!(
        doc["notifications"],
        serde_json::json!([{"url": format!("http://127.0.0.1:{}/***", hook.port),
                            "event": "failed", "ok": true, "error": null}])
    );
    assert_eq!(hook.wait_for(2)[1].json()["command"], "rollback");
}

#[test]
fn promote_tells_the_target_environments_webhooks() {
    let ctx = Ctx::new("notify-promote");
    let (everyone, production) = (
        Webhook::start(Answer::Status(200)),
        Webhook::start(Answer::Status(200)),
    );
    let (staging_redis, prod_redis) = (start_redis(&[]), start_redis(&[]));
    std::fs::write(
        ctx.work.path().join("cutover.toml"),
        format!(
            "[[notify]]\nurl = \"{}\"\n\n\
             [environments.staging]\nredis_url = \"redis://127.0.0.1:{staging_redis}\"\n\n\
             [environments.production]\nredis_url = \"redis://127.0.0.1:{prod_redis}\"\n\n\
             [[environments.production.notify]]\nurl = \"{}\"\nevents = [\"promoted\", \"failed\"]\n",
            everyone.url(TOKEN),
            production.url(TOKEN)
        ),
    )
    .unwrap();
    let a = build(&ctx, "console.log('promote me')");
    let staged = run(
        &ctx,
        &["deploy", a.to_str().unwrap(), "--env", "staging", "--json"],
    );
    staged.expect(0);
    let id = id_of(&staged);
    let p = everyone.wait_for(1)[0].json();
    assert_eq!(
        (&p["event"], &p["environment"]),
        (&"activated".into(), &"staging".into())
    );

    let dry = [
        "promote",
        &id,
        "--from",
        "staging",
        "--to",
        "production",
        "--dry-run",
    ];
    run(&ctx, &dry).expect(0);
    let r = run(
        &ctx,
        &[
            "promote",
            &id,
            "--from",
            "staging",
            "--to",
            "production",
            "-m",
            "ship it",
        ],
    );
    r.expect(0);
    assert_no_token("promote", &r);
    let p = production.wait_for(1)[0].json();
    assert_eq!(p["event"], "promoted");
    assert_eq!(p["command"], "promote");
    assert_eq!(p["release"], id.as_str());
    assert_eq!(p["previous"], Value::Null);
    assert_eq!(p["environment"], "production");
    assert_eq!(p["message"], "ship it");
    assert_eq!(
        p["targets"],
        serde_json::json!([format!("127.0.0.1:{prod_redis}/0")])
    );
    // The environment's list replaced the top level's there; the dry run sent nothing.
    assert_eq!(production.requests().len(), 1);
    assert_eq!(everyone.requests().len(), 1);
}

#[test]
fn slack_gets_one_line_and_each_webhook_only_its_events() {
    let ctx = Ctx::new("notify-slack");
    let (slack, failures) = (
        Webhook::start(Answer::Status(200)),
        Webhook::start(Answer::Status(200)),
    );
    notify_toml(
        &ctx,
        &[
            "url_env = \"SLACK_WEBHOOK_URL\"\nformat = \"slack\"\nevents = [\"rolled_back\"]"
                .to_string(),
            format!(
                "url = \"{}\"\nformat = \"json\"\nevents = [\"failed\"]",
                failures.url(TOKEN)
            ),
        ],
    );
    let with_slack = |args: &[&str]| {
        ctx.cutover(args)
            .env(
                "SLACK_WEBHOOK_URL",
                &slack.url(&format!("services/{TOKEN}")),
            )
            .env("CUTOVER_DEPLOYED_BY", "alice")
            .run()
    };
    let a = build(&ctx, "console.log('slack a')");
    let b = build(&ctx, "console.log('slack bb')");
    let id_a = id_of(&with_slack(&["deploy", a.to_str().unwrap(), "--json"]));
    let id_b = id_of(&with_slack(&["deploy", b.to_str().unwrap(), "--json"]));
    assert!(slack.requests().is_empty() && failures.requests().is_empty());
    let r = with_slack(&["rollback", "-m", "broken <checkout>"]);
    r.expect(0);
    assert_no_token("rollback", &r);
    let got = slack.wait_for(1);
    assert_eq!(got[0].path, format!("/services/{TOKEN}"));
    let body = got[0].json();
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    assert_eq!(
        body["text"],
        format!(
            "{}: rolled back to {id_a} (from {id_b}) and pinned, by alice: \"broken &lt;checkout&gt;\"",
            ctx.app
        )
    );
    // A failure goes to the other webhook only.
    with_slack(&["activate", &id_b]).expect(3);
    let p = failures.wait_for(1)[0].json();
    assert_eq!(
        (&p["event"], &p["exit_code"]),
        (&"failed".into(), &3.into())
    );
    assert_eq!(slack.requests().len(), 1);

    // The variable unset: that webhook is skipped with a warning; read-only
    // commands do not mind.
    ctx.run(&["status"]).expect(0);
    let r = ctx.run(&["rollback", "--to", &id_b, "--json"]);
    r.expect(0).stderr_has(&[
        "warning: notification to $SLACK_WEBHOOK_URL failed: SLACK_WEBHOOK_URL is not set",
    ]);
    assert_eq!(r.json()["notifications"][0]["ok"], false);
}

#[test]
fn a_webhook_answering_500_is_tried_three_times_then_warned_about() {
    let ctx = Ctx::new("notify-500");
    let hook = Webhook::start(Answer::Status(500));
    notify_toml(&ctx, &[format!("url = \"{}\"", hook.url(TOKEN))]);
    let a = build(&ctx, "console.log('five hundred')");
    let r = run(&ctx, &["deploy", a.to_str().unwrap(), "--json"]);
    r.expect(0);
    assert_no_token("deploy", &r);
    assert_eq!(r.json()["activated"], true);
    let masked = format!("http://127.0.0.1:{}/***", hook.port);
    r.stderr_has(&[&format!(
        "warning: notification to {masked} failed: HTTP 500 Internal Server Error after 3 attempts (event activated); the command's result stands"
    )]);
    let n = &r.json()["notifications"];
    assert_eq!(n.as_array().unwrap().len(), 1, "{n}");
    assert_eq!(n[0]["url"], masked.as_str());
    assert_eq!(
        (&n[0]["event"], &n[0]["ok"]),
        (&"activated".into(), &false.into())
    );
    assert!(n[0]["error"].as_str().unwrap().contains("500"), "{n}");
    // Three attempts, the same payload each time.
    let got = hook.requests();
    assert_eq!(got.len(), 3, "{got:#?}");
    assert!(got.iter().all(|g| g.body == got[0].body));
    // In text too: the result, then the warning; the exit code stands.
    let r = run(&ctx, &["pin"]);
    r.expect(0)
        .stdout_has(&["pinned"])
        .stderr_has(&["failed: HTTP 500"]);
}

#[test]
fn a_webhook_that_never_answers_cannot_hold_the_command() {
    let ctx = Ctx::new("notify-hung");
    let hook = Webhook::start(Answer::Never);
    notify_toml(&ctx, &[format!("url = \"{}\"", hook.url(TOKEN))]);
    let a = build(&ctx, "console.log('hung')");
    // Bounded by the attempt's timeout (docs/output.md): the command exits,
    // with its own exit code, and says why the notification failed.
    let r = run(&ctx, &["deploy", a.to_str().unwrap()]);
    r.expect(0)
        .stdout_has(&["is live"])
        .stderr_has(&["failed: no answer within 5s (event activated)"]);
    let r = run(&ctx, &["activate", "0123456789abcdef", "--json"]);
    r.expect(2);
    assert_eq!(r.json()["notifications"][0]["error"], "no answer within 5s");
    // A timed-out attempt may have been delivered: it is not tried again.
    assert_eq!(hook.requests().len(), 2);
}

#[test]
fn a_signal_abandons_the_notifications_at_once() {
    let ctx = Ctx::new("notify-signal");
    let hook = Webhook::start(Answer::Never);
    notify_toml(&ctx, &[format!("url = \"{}\"", hook.url(TOKEN))]);
    let a = build(&ctx, "console.log('signal')");
    run(&ctx, &["deploy", a.to_str().unwrap()]).expect(0);
    hook.wait_for(1);
    let child = ctx
        .command()
        .args(["pin", "-m", "ctrl-c me"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The pin is written and its notification is on the wire: Ctrl-C.
    hook.wait_for(2);
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let r = crate::support::run::finish(child.wait_with_output().unwrap());
    r.expect(0)
        .stdout_has(&["pinned"])
        .stderr_has(&["failed: abandoned: interrupted (event pinned)"]);
}

#[test]
fn the_webhook_url_appears_in_no_output() {
    let ctx = Ctx::new("notify-secret");
    let hook = Webhook::start(Answer::Status(200));
    let from_env = Webhook::start(Answer::Status(500));
    notify_toml(
        &ctx,
        &[
            format!(
                "url = \"{}\"",
                hook.url(&format!("hooks/{TOKEN}?t={TOKEN}"))
            ),
            "url_env = \"HOOK_URL\"\nevents = [\"failed\"]".to_string(),
        ],
    );
    let hook_env = from_env.url(&format!("x/{TOKEN}"));
    let a = build(&ctx, "console.log('secret')");
    let a = a.to_str().unwrap();
    let mut runs = 0;
    for args in [
        vec!["config"],
        vec!["config", "--json"],
        vec!["deploy", a],
        vec!["deploy", a, "--json", "-v"],
        vec!["rollback", "-v"],
        vec!["rollback", "--json"],
        vec!["activate", "0123456789abcdef", "-v"],
        vec!["activate", "0123456789abcdef", "--json"],
        vec!["pin", "-v", "--json"],
        vec!["status", "-v"],
    ] {
        let r = ctx.cutover(&args).env("HOOK_URL", &hook_env).run();
        assert!(r.code >= 0, "{args:?}: {r:#?}");
        assert_no_token(&format!("{args:?}"), &r);
        runs += 1;
    }
    assert_eq!(runs, 10);
    // What they show instead: scheme, host and port.
    let r = ctx.cutover(&["config"]).env("HOOK_URL", &hook_env).run();
    r.expect(0).stdout_has(&[
        &format!(
            "http://127.0.0.1:{}/***, format json, events: all",
            hook.port
        ),
        &format!(
            "http://127.0.0.1:{}/*** (from HOOK_URL), format json, events: failed",
            from_env.port
        ),
    ]);
    let r = ctx
        .cutover(&["activate", "0123456789abcdef", "-v"])
        .env("HOOK_URL", &hook_env)
        .run();
    r.expect(2).stderr_has(&[
        &format!(
            "note: notified http://127.0.0.1:{}/*** of failed",
            hook.port
        ),
        &format!(
            "warning: notification to http://127.0.0.1:{}/*** failed",
            from_env.port
        ),
    ]);
    // A bad URL in the variable is exit 2 naming it, without its value.
    let r = ctx
        .cutover(&["status"])
        .env("HOOK_URL", &format!("127.0.0.1/{TOKEN}"))
        .run();
    r.expect(2).error_has(&["HOOK_URL", "[[notify]] url_env"]);
    assert_no_token("a bad url_env value", &r);
    assert!(!hook.requests().is_empty() && !from_env.requests().is_empty());
}

#[test]
fn the_ci_scripts_pass_the_webhook_variable_through() {
    let ctx = Ctx::new("notify-ci");
    let hook = Webhook::start(Answer::Status(200));
    notify_toml(&ctx, &["url_env = \"SLACK_WEBHOOK_URL\"".to_string()]);
    let url = hook.url(TOKEN);
    let ids = tempfile::tempdir().unwrap();
    let a = build(&ctx, "console.log('orb')");
    let mut orb = crate::ci_pipeline::script(&ctx, "orb/src/scripts/deploy.sh");
    orb.env("SLACK_WEBHOOK_URL", &url)
        .env("PARAM_BUILD_DIR", &a)
        .env("PARAM_RELEASE_ID_DIR", ids.path());
    let r = crate::support::run::finish(orb.output().unwrap());
    r.expect(0);
    assert_no_token("the orb's deploy", &r);
    assert_eq!(hook.wait_for(1)[0].json()["event"], "activated");

    let b = build(&ctx, "console.log('github action')");
    let mut action = crate::ci_pipeline::script(&ctx, "scripts/ci/github-action.sh");
    action
        .env("SLACK_WEBHOOK_URL", &url)
        .env("INPUT_BUILD_DIR", &b);
    let r = crate::support::run::finish(action.output().unwrap());
    r.expect(0);
    assert_no_token("the action", &r);
    assert_eq!(hook.wait_for(2)[1].json()["event"], "activated");
}
