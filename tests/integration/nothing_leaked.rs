//! Nothing leaked (issue 24 §4): known secrets planted in every setting that
//! can hold one (webhook URLs included); every command, with and without `--json`, at `-v`, and
//! with bad inputs that make it fail; no secret (nor any 8-character piece
//! of one) appears on stdout or stderr.

use crate::support::fixtures::tiny_build;
use crate::support::webhook::{Answer, Webhook};
use crate::support::{start_redis, Ctx, Run};

const REDIS_PW: &str = "RedisPw-live-QkWmZrTx";
const AWS_SECRET: &str = "AwsSecret-QwErTyUiOpLkJhGzXcVbNm";
const AWS_TOKEN: &str = "AwsSessionToken-ZXhhbXBsZS10b2tlbg";
const SENTINEL_PW: &str = "SentinelPw-PoIuYtReWq";
const TARGETS_PW: &str = "TargetsPw-MnBvCxZlKj";
const USERINFO_PW: &str = "LoneUserinfo-HgFdSaPoIu";
const TLS_PW: &str = "TlsUrlPw-YtReWqLkJh";
/// Webhook tokens (in the path, as Slack's): one in cutover.toml, one in
/// the variable `url_env` names.
const HOOK_TOKEN: &str = "HookToken-AsDfGhJkLq";
const HOOK_ENV_TOKEN: &str = "HookEnvToken-ZxCvBnMqWe";

/// Every 8-character piece of `secret` (a secret printed in part leaks too).
fn pieces(secret: &str) -> Vec<&str> {
    (0..=secret.len().saturating_sub(8))
        .map(|i| &secret[i..i + 8])
        .collect()
}

#[track_caller]
fn assert_clean(what: &str, run: &Run, secrets: &[&str]) {
    for secret in secrets {
        for piece in pieces(secret) {
            assert!(
                !run.stdout.contains(piece) && !run.stderr.contains(piece),
                "{what} printed part of a secret ({piece:?} of {secret:?}): {run:#?}"
            );
        }
    }
}

#[test]
fn no_secret_appears_in_any_output_of_any_command() {
    let ctx = Ctx::new("nothing-leaked");
    let port = start_redis(&["--requirepass", REDIS_PW]);
    // The signing key, inline, and the private PEM's body as secrets.
    let run = ctx.run(&["keygen", "--out", "k", "--json"]);
    run.expect(0);
    let pem = std::fs::read_to_string(ctx.work.path().join("k.pem")).unwrap();
    let pem_body: Vec<&str> = pem
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 8)
        .collect();
    let mut secrets = vec![
        REDIS_PW,
        AWS_SECRET,
        AWS_TOKEN,
        SENTINEL_PW,
        TARGETS_PW,
        USERINFO_PW,
        TLS_PW,
        HOOK_TOKEN,
        HOOK_ENV_TOKEN,
    ];
    secrets.extend(pem_body.iter().copied());

    let good = format!("redis://:{REDIS_PW}@127.0.0.1:{port}");
    // Webhooks told about every switch and failure below.
    let hook = Webhook::start(Answer::Status(200));
    let notify = format!(
        "[[notify]]\nurl = \"{}\"\n\n[[notify]]\nurl_env = \"LEAK_TEST_HOOK\"\nformat = \"slack\"\n\n",
        hook.url(&format!("services/{HOOK_TOKEN}"))
    );
    std::fs::write(ctx.work.path().join("cutover.toml"), &notify).unwrap();
    let base: Vec<(&str, String)> = vec![
        ("LEAK_TEST_HOOK", hook.url(&format!("t/{HOOK_ENV_TOKEN}"))),
        ("REDIS_URL", good.clone()),
        ("AWS_SECRET_ACCESS_KEY", AWS_SECRET.into()),
        ("AWS_SESSION_TOKEN", AWS_TOKEN.into()),
        ("CUTOVER_SIGNING_KEY", pem.clone()),
    ];
    let run_in = |args: &[&str], extra: &[(&str, String)]| -> Run {
        let mut c = ctx.cutover(args);
        for (k, v) in base.iter().chain(extra) {
            c = c.env(k, v);
        }
        c.run()
    };

    // A world to run them in: two releases, one live.
    let a = tiny_build(&ctx.work.path().join("a"), "console.log('a')");
    let b = tiny_build(&ctx.work.path().join("b"), "console.log('b')");
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let first = run_in(&["deploy", a, "--json"], &[]);
    first.expect(0);
    assert_clean("deploy", &first, &secrets);
    let id = first.json()["release"]["id"].as_str().unwrap().to_string();
    run_in(&["deploy", b], &[]).expect(0);

    let commands: Vec<Vec<&str>> = vec![
        vec!["deploy", b],
        vec!["deploy", a, "--dry-run"],
        vec!["activate", &id],
        vec!["rollback", "--dry-run"],
        vec!["rollback"],
        vec!["status"],
        vec!["releases"],
        vec!["history"],
        vec!["diff"],
        vec!["pin", "--dry-run"],
        vec!["unpin"],
        vec!["pin"],
        vec!["unpin"],
        vec!["prune", "--dry-run"],
        vec!["verify"],
        vec!["config"],
        vec!["doctor"],
        vec!["unlock", "--dry-run"],
        vec!["activate", "zz-not-an-id"],
        vec!["activate", "0123456789abcdef"],
    ];
    // Bad inputs that make them fail: unreachable Redis in each URL form,
    // Sentinel with its own password, several targets, unreachable S3, a
    // bucket that does not exist.
    let failing: Vec<Vec<(&str, String)>> = vec![
        vec![],
        vec![("REDIS_URL", format!("redis://user:{REDIS_PW}@127.0.0.1:1"))],
        vec![(
            "CUTOVER_REDIS_URL",
            format!("redis://{USERINFO_PW}@127.0.0.1:1/2"),
        )],
        vec![(
            "CUTOVER_REDIS_URL",
            format!("rediss://:{TLS_PW}@127.0.0.1:1"),
        )],
        vec![
            (
                "CUTOVER_REDIS_URL",
                format!("redis+sentinel://:{REDIS_PW}@127.0.0.1:1/mymaster"),
            ),
            ("CUTOVER_REDIS_SENTINEL_PASSWORD", SENTINEL_PW.into()),
        ],
        vec![(
            "CUTOVER_REDIS_URL",
            format!("{good} redis://:{TARGETS_PW}@127.0.0.1:1"),
        )],
        vec![
            ("CUTOVER_S3_ENDPOINT", "http://127.0.0.1:1".into()),
            ("CUTOVER_S3_TIMEOUT", "1".into()),
        ],
        vec![("CUTOVER_BUCKET", "no-such-bucket-for-this-test".into())],
        // A value that cannot be used: reported with where it came from.
        vec![(
            "CUTOVER_REDIS_URL",
            format!("http://:{REDIS_PW}@127.0.0.1:1"),
        )],
    ];
    for world in &failing {
        for cmd in &commands {
            for extra in [&[][..], &["--json"][..], &["-v"][..]] {
                let args: Vec<&str> = cmd.iter().chain(extra).copied().collect();
                let run = run_in(&args, world);
                let what = format!(
                    "{args:?} with {:?}",
                    world.iter().map(|(k, _)| k).collect::<Vec<_>>()
                );
                assert!(run.code >= 0, "{what} was killed: {run:#?}");
                assert_clean(&what, &run, &secrets);
            }
        }
    }
    // Promote between two environments, each with its own password-bearing Redis.
    std::fs::write(
        ctx.work.path().join("cutover.toml"),
        format!(
            "{notify}[environments.staging]\nredis_url = \"{good}\"\n\n[environments.production]\nredis_url = \"redis://:{TARGETS_PW}@127.0.0.1:1\"\n"
        ),
    )
    .unwrap();
    for extra in [&[][..], &["--json"][..], &["-v"][..]] {
        let args: Vec<&str> = [
            "promote",
            id.as_str(),
            "--from",
            "staging",
            "--to",
            "production",
        ]
        .iter()
        .chain(extra)
        .copied()
        .collect();
        let run = run_in(&args, &[]);
        assert_ne!(run.code, 0, "{run:#?}");
        assert_clean("promote", &run, &secrets);
    }
    // The webhooks were told (so their URLs were in play).
    assert!(hook.requests().len() > 10, "{}", hook.requests().len());
}

/// The orb's steps and the GitHub Action, as CI runs them, with the same
/// secrets planted (Redis password, AWS secret and session token, the
/// signing key inline): nothing of them in their logs, in `$BASH_ENV`, in
/// the Action's outputs or its job summary; on success and on failure.
#[test]
fn no_secret_appears_in_the_orbs_or_the_actions_logs_and_files() {
    use crate::ci_pipeline::script;
    let ctx = Ctx::new("nothing-leaked-ci");
    let port = start_redis(&["--requirepass", REDIS_PW]);
    let run = ctx.run(&["keygen", "--out", "k", "--json"]);
    run.expect(0);
    let pem = std::fs::read_to_string(ctx.work.path().join("k.pem")).unwrap();
    let mut secrets = vec![REDIS_PW, AWS_SECRET, AWS_TOKEN];
    secrets.extend(
        pem.lines()
            .filter(|l| !l.starts_with("-----") && l.len() >= 8),
    );
    let files = tempfile::tempdir().unwrap();
    let (bash_env, output, summary) = (
        files.path().join("bash_env"),
        files.path().join("output"),
        files.path().join("summary"),
    );
    for f in [&bash_env, &output, &summary] {
        std::fs::write(f, "").unwrap();
    }
    let good = format!("redis://:{REDIS_PW}@127.0.0.1:{port}");
    let down = format!("redis://:{REDIS_PW}@127.0.0.1:1");
    let step = |path: &str, redis: &str, vars: &[(&str, &str)]| -> Run {
        let mut cmd = script(&ctx, path);
        cmd.env("REDIS_URL", redis)
            .env("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
            .env("AWS_SESSION_TOKEN", AWS_TOKEN)
            .env("CUTOVER_SIGNING_KEY", &pem)
            .env("BASH_ENV", &bash_env)
            .env("PARAM_RELEASE_ID_DIR", files.path().join("ids"))
            .env("GITHUB_OUTPUT", &output)
            .env("GITHUB_STEP_SUMMARY", &summary);
        for (k, v) in vars {
            cmd.env(k, v);
        }
        crate::support::run::finish(cmd.output().unwrap())
    };
    let a = tiny_build(&ctx.work.path().join("a"), "console.log('a')");
    let b = tiny_build(&ctx.work.path().join("b"), "console.log('b')");
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let orb = "orb/src/scripts";
    let action = "scripts/ci/github-action.sh";
    let runs: Vec<(String, Run, i32)> = vec![
        (
            format!("{orb}/deploy.sh"),
            step(
                &format!("{orb}/deploy.sh"),
                &good,
                &[("PARAM_BUILD_DIR", a)],
            ),
            0,
        ),
        (
            format!("{orb}/deploy.sh --no-activate"),
            step(
                &format!("{orb}/deploy.sh"),
                &good,
                &[("PARAM_BUILD_DIR", b), ("PARAM_NO_ACTIVATE", "true")],
            ),
            0,
        ),
        (
            format!("{orb}/activate.sh"),
            step(&format!("{orb}/activate.sh"), &good, &[]),
            0,
        ),
        (
            format!("{orb}/rollback.sh"),
            step(&format!("{orb}/rollback.sh"), &good, &[]),
            0,
        ),
        // (No rollout runs: abort says so and changes nothing, even pinned.)
        (
            format!("{orb}/rollout.sh"),
            step(
                &format!("{orb}/rollout.sh"),
                &good,
                &[("PARAM_ACTION", "abort")],
            ),
            0,
        ),
        (
            format!("{orb}/rollout.sh, Redis down"),
            step(
                &format!("{orb}/rollout.sh"),
                &down,
                &[("PARAM_ACTION", "abort")],
            ),
            1,
        ),
        (
            format!("{action} rollout-action"),
            step(
                action,
                &good,
                &[
                    ("GITHUB_ACTIONS", "true"),
                    ("INPUT_ROLLOUT_ACTION", "abort"),
                ],
            ),
            0,
        ),
        (
            format!("{orb}/deploy.sh, Redis down"),
            step(
                &format!("{orb}/deploy.sh"),
                &down,
                &[("PARAM_BUILD_DIR", a)],
            ),
            1,
        ),
        (
            format!("{orb}/activate.sh, Redis down"),
            step(&format!("{orb}/activate.sh"), &down, &[]),
            1,
        ),
        (
            action.to_string(),
            step(
                action,
                &good,
                &[("GITHUB_ACTIONS", "true"), ("INPUT_BUILD_DIR", b)],
            ),
            0,
        ),
        (
            format!("{action}, Redis down"),
            step(
                action,
                &down,
                &[("GITHUB_ACTIONS", "true"), ("INPUT_BUILD_DIR", a)],
            ),
            1,
        ),
    ];
    for (what, run, code) in &runs {
        run.expect(*code);
        assert_clean(what, run, &secrets);
    }
    for f in [&bash_env, &output, &summary] {
        let text = std::fs::read_to_string(f).unwrap();
        assert!(!text.is_empty(), "{} was not written", f.display());
        for secret in &secrets {
            for piece in pieces(secret) {
                assert!(
                    !text.contains(piece),
                    "{} holds part of a secret: {text}",
                    f.display()
                );
            }
        }
    }
}
