//! After the switch, the exit code and the message tell the truth: a step
//! after the switch (the CloudFront invalidation) that is refused, hangs or
//! is interrupted ends with exit 6, "switched to X; ...", `switched: true`
//! in `--json`, and the new release live; never "nothing was switched".

use std::net::TcpListener;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::mutable_files::{build, distribution};
use crate::support::{rt, Ctx};

/// A service worker deployed as mutable, then a new version of it deployed
/// with `distribution` to invalidate after the switch: the second deploy's
/// command (not run yet) and the first release's id.
fn second_deploy(ctx: &Ctx, distribution: &str) -> (std::process::Command, String) {
    let toml = ctx.work.path().join("cutover.toml");
    std::fs::write(&toml, "[[mutable]]\nglob = \"sw.js\"\n").unwrap();
    let first = ctx.run(&[
        "deploy",
        build(ctx, "v1", "self.version = 1").to_str().unwrap(),
        "--json",
    ]);
    first.expect(0);
    std::fs::write(
        &toml,
        format!(
            "cloudfront_distribution_id = \"{distribution}\"\n\n[[mutable]]\nglob = \"sw.js\"\n"
        ),
    )
    .unwrap();
    let mut cmd = ctx.command();
    cmd.args([
        "deploy",
        build(ctx, "v2", "self.version = 2").to_str().unwrap(),
        "--json",
    ]);
    (
        cmd,
        first.json()["release"]["id"].as_str().unwrap().to_string(),
    )
}

/// A CloudFront endpoint that accepts connections and never answers.
fn silent_endpoint() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let accepting = listener.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        while let Ok((conn, _)) = accepting.accept() {
            held.push(conn);
        }
    });
    (listener, url)
}

/// The run ended with exit 6 saying it switched; `current` is the new
/// release, not `before`.
#[track_caller]
fn switched_then_failed(ctx: &Ctx, run: &crate::support::run::Run, before: &str, step: &str) {
    run.expect(6)
        .error_has(&["switched to", step, "The switch stands"]);
    let doc: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(doc["exit_code"], 6, "{doc}");
    assert_eq!(doc["switched"], true, "{doc}");
    let current = rt().block_on(ctx.get("current")).unwrap();
    assert_ne!(current, before, "the new release is live");
    assert!(
        run.stderr.contains(&format!("switched to {current}")),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("nothing was switched"),
        "{}",
        run.stderr
    );
}

#[test]
fn an_invalidation_refused_after_the_switch_is_exit_6() {
    let ctx = Ctx::new("after-switch-refused");
    // A distribution CloudFront (moto) does not know.
    let (mut cmd, before) = second_deploy(&ctx, "ENOSUCHDIST");
    let run = crate::support::run::finish(
        cmd.env("AWS_ENDPOINT_URL_CLOUDFRONT", &ctx.s3_endpoint)
            .output()
            .unwrap(),
    );
    switched_then_failed(&ctx, &run, &before, "the CloudFront invalidation failed");
}

#[test]
fn an_invalidation_that_never_answers_is_bounded() {
    let ctx = Ctx::new("after-switch-silent");
    let dist = rt().block_on(distribution(&ctx));
    let (_listener, silent) = silent_endpoint();
    let (mut cmd, before) = second_deploy(&ctx, &dist);
    let started = Instant::now();
    let run = crate::support::run::finish(
        cmd.env("AWS_ENDPOINT_URL_CLOUDFRONT", &silent)
            .env("CUTOVER_S3_TIMEOUT", "1")
            .output()
            .unwrap(),
    );
    switched_then_failed(&ctx, &run, &before, "the CloudFront invalidation");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the command ended: {:?}",
        started.elapsed()
    );
}

#[test]
fn an_interrupt_during_the_invalidation_is_exit_6_not_130() {
    let ctx = Ctx::new("after-switch-sigint");
    let dist = rt().block_on(distribution(&ctx));
    let (_listener, silent) = silent_endpoint();
    let (mut cmd, before) = second_deploy(&ctx, &dist);
    let child = cmd
        .env("AWS_ENDPOINT_URL_CLOUDFRONT", &silent)
        .env("CUTOVER_S3_TIMEOUT", "60")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once the switch is done, the deploy waits on the silent CloudFront.
    let deadline = Instant::now() + Duration::from_secs(60);
    while rt().block_on(ctx.get("current")).as_deref() == Some(before.as_str()) {
        assert!(Instant::now() < deadline, "the deploy never switched");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill only sends a signal to the child we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let run = crate::support::run::finish(child.wait_with_output().unwrap());
    switched_then_failed(
        &ctx,
        &run,
        &before,
        "the CloudFront invalidation was interrupted",
    );
}
