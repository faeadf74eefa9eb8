//! Under `--json`, a failure is one JSON document on stdout, `{"error",
//! "exit_code"}`, saying what the error line on stderr says with the exit
//! code the process ends with; and no document, success or failure, shows
//! a Redis password.

use crate::support::{deploy, fixture, rt, Ctx, Run};

/// The error document of a failed `--json` run: exactly `error` and
/// `exit_code`, agreeing with stderr and the exit status.
#[track_caller]
fn error_document(run: &Run, code: i32) -> String {
    run.expect(code);
    let doc = run.json();
    let fields: Vec<&String> = doc.as_object().expect("an object").keys().collect();
    assert_eq!(fields, ["error", "exit_code"], "{run:?}");
    assert_eq!(doc["exit_code"], code, "{run:?}");
    let line = run.error_line().strip_prefix("error: ").unwrap();
    assert_eq!(doc["error"], line, "{run:?}");
    line.to_string()
}

#[test]
fn failures_under_json_are_one_document_with_the_error_and_its_exit_code() {
    let ctx = Ctx::new("json-errors");
    let a = deploy(&ctx, fixture("shakapacker").to_str().unwrap(), &[]);
    let b = deploy(&ctx, fixture("flat").to_str().unwrap(), &["--no-activate"]);

    // 2: bad input.
    let missing = ctx.work.path().join("public/packs");
    let line = error_document(
        &ctx.run(&["deploy", missing.to_str().unwrap(), "--json"]),
        2,
    );
    assert!(line.contains("does not exist"), "{line}");

    // 3: refused for safety (pinned).
    ctx.run(&["pin", "-m", "hold"]).expect(0);
    let line = error_document(&ctx.run(&["activate", &b, "--json"]), 3);
    assert!(line.contains("--unpin"), "{line}");
    ctx.run(&["unpin"]).expect(0);

    // 4: verification failed (an object of b is gone).
    let gone = "packs/static/checker-60ba6f5195844fa168f7.png";
    rt().block_on(async {
        ctx.s3()
            .await
            .delete_object()
            .bucket(&ctx.bucket)
            .key(gone)
            .send()
            .await
            .unwrap()
    });
    let line = error_document(&ctx.run(&["activate", &b, "--json"]), 4);
    assert!(line.contains(gone), "{line}");
    assert_eq!(rt().block_on(ctx.get("current")), Some(a));
}

#[test]
fn json_documents_never_show_a_redis_password() {
    let ctx = Ctx::new("json-masked");
    ctx.run(&["deploy", fixture("shakapacker").to_str().unwrap()])
        .expect(0);
    ctx.run(&["deploy", fixture("flat").to_str().unwrap()])
        .expect(0);
    let secret = "hunter2-json-secret";
    let user = format!("masked-{}", ctx.app);
    ctx.redis_cmd(&[
        "ACL",
        "SETUSER",
        &user,
        "reset",
        "on",
        &format!(">{secret}"),
        &format!("~cutover:{{{}}}:*", ctx.app),
        "&*",
        "+@all",
    ]);
    let url = format!("redis://{user}:{secret}@127.0.0.1:{}", ctx.redis_port());
    let masked = format!("redis://{user}:***@127.0.0.1:{}", ctx.redis_port());
    let flat = fixture("flat");
    for args in [
        vec!["config", "--json"],
        vec!["status", "--json"],
        vec!["releases", "--json"],
        vec!["history", "--json"],
        vec!["deploy", flat.to_str().unwrap(), "--dry-run", "--json"],
        vec!["rollback", "--dry-run", "--json"],
    ] {
        let run = ctx.cutover(&args).env("REDIS_URL", &url).run();
        run.expect(0);
        assert!(
            !run.stdout.contains(secret) && !run.stderr.contains(secret),
            "{args:?} shows the password: {run:?}"
        );
        run.json();
    }
    let run = ctx
        .cutover(&["config", "--json"])
        .env("REDIS_URL", &url)
        .run();
    run.expect(0).stdout_has(&[&masked]);

    // A failure naming the URL: the wrong password, masked in the document.
    let wrong = format!(
        "redis://{user}:wrong-{secret}@127.0.0.1:{}",
        ctx.redis_port()
    );
    let run = ctx
        .cutover(&["status", "--json"])
        .env("REDIS_URL", &wrong)
        .run();
    let line = error_document(&run, 2);
    assert!(line.contains(&masked), "{line}");
    assert!(
        !run.stdout.contains(secret) && !run.stderr.contains(secret),
        "{run:?}"
    );
}

#[test]
fn usage_errors_under_json_are_one_document_too_and_name_the_option() {
    let ctx = Ctx::new("json-usage");
    for (args, needle) in [
        (vec!["releases", "--limit", "-1", "--json"], "--limit"),
        (vec!["prune", "--keep", "-1", "--json"], "--keep"),
        (vec!["status", "--frobnicate", "--json"], "--frobnicate"),
    ] {
        let line = error_document(&ctx.run(&args), 2);
        assert!(line.contains(needle), "{args:?}: {line}");
        assert!(
            !line.contains("unexpected argument '-1'"),
            "{args:?}: {line}"
        );
    }
    // A missing argument: clap names it on the next line; the document has
    // both on one.
    let run = ctx.run(&["deploy", "--json"]);
    run.expect(2);
    let doc = run.json();
    assert_eq!(doc["exit_code"], 2);
    assert_eq!(
        doc["error"], "the following required arguments were not provided: <DIR>",
        "{run:?}"
    );
    // Without --json, stdout stays empty.
    let run = ctx.run(&["prune", "--keep", "-1"]);
    run.expect(2);
    assert!(run.stdout.is_empty(), "{run:?}");
}
