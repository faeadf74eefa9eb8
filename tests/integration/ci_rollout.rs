//! Gradual rollouts driven from CI, run for real against the test servers:
//! the orb's `deploy.sh` with `rollout` and its `rollout.sh` (start, change,
//! complete, abort), and the GitHub Action's script with the `rollout` and
//! `rollout-action` inputs, as `tests/integration/ci_pipeline.rs` runs them.
//! Each step is checked against what Redis holds (`current`, the canary
//! key), not only against what the script printed.

use std::path::PathBuf;

use serde_json::Value;

use crate::ci_pipeline::{current, is_release_id, outputs, read, run, script, Orb};
use crate::support::fixtures::tiny_build;
use crate::support::{rt, Ctx, Run};

/// A build of its own in the test's directory: `name` is its script's text.
fn build(ctx: &Ctx, name: &str) -> String {
    tiny_build(&ctx.work.path().join(name), &format!("app('{name}')"))
        .to_str()
        .unwrap()
        .to_string()
}

/// The canary as Redis holds it (`cutover:{APP}:canary`), if any.
fn canary(ctx: &Ctx) -> Option<Value> {
    rt().block_on(ctx.get("canary"))
        .map(|t| serde_json::from_str(&t).expect("the canary key is JSON"))
}

/// (release, percent) of the canary Redis holds.
fn canary_at(ctx: &Ctx) -> Option<(String, Value)> {
    canary(ctx).map(|c| {
        (
            c["release"].as_str().unwrap().to_string(),
            c["percent"].clone(),
        )
    })
}

fn saved_id(orb: &Orb) -> String {
    let id = read(&orb.id_file()).trim().to_string();
    assert!(is_release_id(&id), "{id:?}");
    id
}

#[test]
fn orb_deploys_a_canary_changes_completes_and_aborts_it() {
    let ctx = Ctx::new("orb_rollout");
    let orb = Orb::new(&ctx);
    let (a, b, c, d) = (
        build(&ctx, "a"),
        build(&ctx, "b"),
        build(&ctx, "c"),
        build(&ctx, "d"),
    );
    orb.run("deploy", &[("PARAM_BUILD_DIR", &a)]).expect(0);
    let a_id = saved_id(&orb);

    // deploy with rollout 5: recorded, the canary at 5%, A still live; the
    // id saved as for any deploy.
    let r = orb.run("deploy", &[("PARAM_BUILD_DIR", &b), ("PARAM_ROLLOUT", "5")]);
    r.expect(0);
    let b_id = saved_id(&orb);
    assert_ne!(b_id, a_id);
    r.stdout_has(&[
        &format!("release:  {b_id} (rolling_out)"),
        &format!("live:     {a_id} (unchanged: every request not on the canary)"),
        &format!("canary:   {b_id} at 5%"),
        &format!("release {b_id} is rolling out to 5% of the requests"),
    ]);
    assert_eq!(current(&ctx).as_deref(), Some(a_id.as_str()));
    assert_eq!(canary_at(&ctx), Some((b_id.clone(), Value::from(5))));
    let salt = canary(&ctx).unwrap()["salt"].clone();
    // status agrees.
    let status = ctx.run(&["status", "--json"]);
    status.expect(0);
    assert_eq!(status.json()["canary"]["release"], b_id.as_str());

    // A dry run of a change writes nothing.
    let before = ctx.world();
    orb.run(
        "rollout",
        &[
            ("PARAM_ACTION", "change"),
            ("PARAM_PERCENT", "50"),
            ("PARAM_DRY_RUN", "true"),
        ],
    )
    .expect(0)
    .stdout_has(&[
        "(planned, dry run: nothing changed)",
        "percent:  50% (was 5%)",
    ]);
    ctx.assert_unchanged(&before, "the orb's rollout change with dry_run");

    // change to 25, then 12.5: the same canary and salt, another percent.
    orb.run(
        "rollout",
        &[
            ("PARAM_ACTION", "change"),
            ("PARAM_PERCENT", "25"),
            ("PARAM_MESSAGE", "widen"),
        ],
    )
    .expect(0)
    .stdout_has(&[
        &format!("release:  {b_id} (changed)"),
        "percent:  25% (was 5%)",
        &format!("live:     {a_id} (every request not on the canary)"),
    ]);
    assert_eq!(canary_at(&ctx), Some((b_id.clone(), Value::from(25))));
    assert_eq!(canary(&ctx).unwrap()["salt"], salt);
    assert_eq!(canary(&ctx).unwrap()["message"], "widen");
    orb.run(
        "rollout",
        &[("PARAM_ACTION", "change"), ("PARAM_PERCENT", "12.5")],
    )
    .expect(0)
    .stdout_has(&["percent:  12.5% (was 25%)"]);
    assert_eq!(canary_at(&ctx), Some((b_id.clone(), Value::from(12.5))));

    // complete: B live for everyone, the canary gone.
    orb.run("rollout", &[("PARAM_ACTION", "complete")])
        .expect(0)
        .stdout_has(&[
            &format!("release:  {b_id} (activated)"),
            &format!("live:     {a_id} -> {b_id}"),
        ]);
    assert_eq!(current(&ctx).as_deref(), Some(b_id.as_str()));
    assert_eq!(canary(&ctx), None);
    assert_eq!(rt().block_on(ctx.get("canary_manifest")), None);

    // Another canary, aborted: taken off, B stays live.
    orb.run(
        "deploy",
        &[("PARAM_BUILD_DIR", &c), ("PARAM_ROLLOUT", "10")],
    )
    .expect(0);
    let c_id = saved_id(&orb);
    assert_eq!(canary_at(&ctx), Some((c_id.clone(), Value::from(10))));
    orb.run("rollout", &[("PARAM_ACTION", "abort")])
        .expect(0)
        .stdout_has(&[
            &format!("release:  {c_id} (aborted)"),
            "percent:  none (no rollout runs) (was 10%)",
        ]);
    assert_eq!(canary(&ctx), None);
    assert_eq!(current(&ctx).as_deref(), Some(b_id.as_str()));

    // start (the default action) rolls out the release a deploy saved.
    orb.run(
        "deploy",
        &[("PARAM_BUILD_DIR", &d), ("PARAM_NO_ACTIVATE", "true")],
    )
    .expect(0);
    let d_id = saved_id(&orb);
    orb.run("rollout", &[("PARAM_PERCENT", "5")])
        .expect(0)
        .stdout_has(&[&format!("release:  {d_id} (started)"), "percent:  5%"]);
    assert_eq!(canary_at(&ctx), Some((d_id.clone(), Value::from(5))));
    // ... or the release given (a prefix): it replaces the canary.
    orb.run(
        "rollout",
        &[
            ("PARAM_ACTION", "start"),
            ("PARAM_RELEASE", &c_id[..8]),
            ("PARAM_PERCENT", "20"),
        ],
    )
    .expect(0)
    .stdout_has(&[
        &format!("release:  {c_id} (started)"),
        &format!("percent:  20% (replaces {d_id} at 5%)"),
    ]);
    assert_eq!(canary_at(&ctx), Some((c_id, Value::from(20))));
    assert_eq!(current(&ctx).as_deref(), Some(b_id.as_str()));
}

#[test]
fn orb_rollout_fails_with_cutovers_exit_code() {
    let ctx = Ctx::new("orb_rollout_fail");
    let orb = Orb::new(&ctx);
    let a = build(&ctx, "a");
    // Live, deployed outside the orb: no id saved in its workspace.
    ctx.run(&["deploy", &a]).expect(0);
    let a_id = current(&ctx).expect("A is live");
    let before = ctx.world();
    // Nothing to change or complete: cutover's exit 2, its message, and the
    // script's line naming the action and the code.
    for action in ["change", "complete"] {
        let percent = if action == "change" { "25" } else { "" };
        orb.run(
            "rollout",
            &[("PARAM_ACTION", action), ("PARAM_PERCENT", percent)],
        )
        .expect(2)
        .stderr_has(&[
            "no rollout is running",
            &format!("cutover rollout ({action}) exited with 2"),
        ]);
    }
    // The script's own refusals, before cutover runs.
    // (parameters, the message)
    type Refusal<'a> = (Vec<(&'a str, &'a str)>, &'a str);
    let refusals: [Refusal; 5] = [
        (vec![], "rollout start needs the percent parameter"),
        (vec![("PARAM_PERCENT", "5")], "no release to roll out: "),
        (
            vec![("PARAM_ACTION", "change")],
            "rollout change needs the percent parameter",
        ),
        (
            vec![("PARAM_ACTION", "widen"), ("PARAM_PERCENT", "5")],
            "unknown rollout action \"widen\"",
        ),
        (
            vec![
                ("PARAM_ACTION", "abort"),
                ("PARAM_RELEASE", "0123456789abcdef"),
            ],
            "the release parameter is for action start",
        ),
    ];
    for (params, message) in refusals {
        orb.run("rollout", &params).expect(2).stderr_has(&[message]);
    }
    // cutover's own refusals: the live release as the canary, and a
    // percent for complete.
    orb.run(
        "rollout",
        &[("PARAM_RELEASE", &a_id), ("PARAM_PERCENT", "5")],
    )
    .expect(2)
    .stderr_has(&[
        "is live",
        "already",
        "cutover rollout (start) exited with 2",
    ]);
    orb.run(
        "rollout",
        &[("PARAM_ACTION", "complete"), ("PARAM_PERCENT", "50")],
    )
    .expect(2)
    .stderr_has(&["take no --percent"]);
    ctx.assert_unchanged(&before, "refused orb rollouts");

    // Pinned: refused for safety (exit 3), whatever starts it.
    let b = build(&ctx, "b");
    ctx.run(&["pin", "-m", "incident"]).expect(0);
    let before = ctx.world();
    orb.run("deploy", &[("PARAM_BUILD_DIR", &b), ("PARAM_ROLLOUT", "5")])
        .expect(3)
        .stderr_has(&["pinned", "cutover deploy exited with 3"]);
    ctx.assert_unchanged(&before, "the orb's deploy with rollout while pinned");
    assert_eq!(canary(&ctx), None);
}

/// The Action's script in one test world, with its outputs and summary files.
struct Action<'a> {
    ctx: &'a Ctx,
    _dir: tempfile::TempDir,
    output: PathBuf,
    summary: PathBuf,
}

impl<'a> Action<'a> {
    fn new(ctx: &'a Ctx) -> Action<'a> {
        let dir = tempfile::tempdir().unwrap();
        let output = dir.path().join("output");
        let summary = dir.path().join("summary");
        std::fs::write(&output, "").unwrap();
        Action {
            ctx,
            _dir: dir,
            output,
            summary,
        }
    }
    /// Run the script with `inputs`; a fresh summary each time.
    fn run(&self, inputs: &[(&str, &str)]) -> Run {
        std::fs::write(&self.summary, "").unwrap();
        let mut cmd = script(self.ctx, "scripts/ci/github-action.sh");
        cmd.env("GITHUB_ACTIONS", "true")
            .env("GITHUB_OUTPUT", &self.output)
            .env("GITHUB_STEP_SUMMARY", &self.summary);
        for (k, v) in inputs {
            cmd.env(k, v);
        }
        run(&mut cmd)
    }
    /// The outputs as the step's last run left them.
    fn out(&self) -> std::collections::BTreeMap<String, String> {
        outputs(&self.output)
    }
    #[track_caller]
    fn summary_has(&self, needles: &[&str]) {
        let text = read(&self.summary);
        for n in needles {
            assert!(text.contains(n), "summary lacks {n:?}:\n{text}");
        }
    }
}

#[track_caller]
fn assert_outputs(action: &Action, expected: &[(&str, &str)]) {
    let out = action.out();
    for (k, v) in expected {
        assert_eq!(
            out.get(*k).map(String::as_str),
            Some(*v),
            "output {k}: {out:?}"
        );
    }
}

#[test]
fn github_action_rolls_out_changes_completes_and_aborts() {
    let ctx = Ctx::new("gh_rollout");
    let gh = Action::new(&ctx);
    let (a, b, c, d) = (
        build(&ctx, "a"),
        build(&ctx, "b"),
        build(&ctx, "c"),
        build(&ctx, "d"),
    );
    gh.run(&[("INPUT_BUILD_DIR", &a)]).expect(0);
    let a_id = current(&ctx).expect("A is live");
    assert_outputs(&gh, &[("canary", ""), ("percent", "")]);

    // rollout 5: the build is the canary, A stays live.
    gh.run(&[("INPUT_BUILD_DIR", &b), ("INPUT_ROLLOUT", "5")])
        .expect(0);
    let b_id = gh.out()["release-id"].clone();
    assert!(is_release_id(&b_id) && b_id != a_id);
    assert_outputs(
        &gh,
        &[
            ("outcome", "rolling_out"),
            ("activated", "false"),
            ("live-release", &a_id),
            ("canary", &b_id),
            ("percent", "5"),
        ],
    );
    assert_eq!(current(&ctx).as_deref(), Some(a_id.as_str()));
    assert_eq!(canary_at(&ctx), Some((b_id.clone(), Value::from(5))));
    gh.summary_has(&[
        &format!("release `{b_id}` is rolling out to 5%"),
        &format!("Rollout: canary `{b_id}` at 5% since "),
        &format!("the others get `{a_id}`"),
    ]);

    // A plain deploy while it runs: recorded, and the outputs name the
    // rollout that kept it from going live.
    gh.run(&[("INPUT_BUILD_DIR", &c)]).expect(0);
    let c_id = gh.out()["release-id"].clone();
    assert_outputs(
        &gh,
        &[
            ("outcome", "recorded"),
            ("activated", "false"),
            ("canary", &b_id),
            ("percent", "5"),
        ],
    );
    gh.summary_has(&["a rollout is running", "Complete or abort it first"]);
    assert_eq!(canary_at(&ctx), Some((b_id.clone(), Value::from(5))));

    // rollout-action change: the rollout input is the new percent.
    gh.run(&[("INPUT_ROLLOUT_ACTION", "change"), ("INPUT_ROLLOUT", "25")])
        .expect(0)
        .stdout_has(&[&format!(
            "cutover: changed, canary {b_id} at 25%, live {a_id}"
        )]);
    assert_outputs(
        &gh,
        &[
            ("outcome", "changed"),
            ("release-id", &b_id),
            ("live-release", &a_id),
            ("activated", "false"),
            ("canary", &b_id),
            ("percent", "25"),
        ],
    );
    assert_eq!(canary_at(&ctx), Some((b_id.clone(), Value::from(25))));
    gh.summary_has(&[
        &format!("### cutover rollout change: canary `{b_id}` at 25% (was 5%)"),
        &format!("Canary: `{b_id}` at 25%, rolling out since "),
        "<details><summary>Writes (",
    ]);

    // complete: B live, no canary; the outputs say so.
    gh.run(&[("INPUT_ROLLOUT_ACTION", "complete")]).expect(0);
    assert_outputs(
        &gh,
        &[
            ("outcome", "activated"),
            ("release-id", &b_id),
            ("live-release", &b_id),
            ("activated", "true"),
            ("canary", ""),
            ("percent", ""),
        ],
    );
    assert_eq!(current(&ctx).as_deref(), Some(b_id.as_str()));
    assert_eq!(canary(&ctx), None);
    gh.summary_has(&[
        &format!("release `{b_id}` is live for everyone"),
        &format!("Switch: `{a_id}` → `{b_id}`. The rollout is over: no canary."),
    ]);

    // Another canary (the recorded C would do as well: D is new), aborted.
    gh.run(&[("INPUT_BUILD_DIR", &d), ("INPUT_ROLLOUT", "10")])
        .expect(0);
    let d_id = gh.out()["release-id"].clone();
    assert_ne!(d_id, c_id);
    assert_outputs(&gh, &[("canary", &d_id), ("percent", "10")]);
    gh.run(&[("INPUT_ROLLOUT_ACTION", "abort")]).expect(0);
    assert_outputs(
        &gh,
        &[
            ("outcome", "aborted"),
            ("release-id", &d_id),
            ("live-release", &b_id),
            ("canary", ""),
            ("percent", ""),
        ],
    );
    assert_eq!(canary(&ctx), None);
    assert_eq!(current(&ctx).as_deref(), Some(b_id.as_str()));
    gh.summary_has(&[
        &format!("rollout of `{d_id}` aborted"),
        &format!("Canary: none; every request gets `{b_id}`."),
    ]);
}

#[test]
fn github_action_rollout_failures_exit_with_cutovers_code() {
    let ctx = Ctx::new("gh_rollout_fail");
    let gh = Action::new(&ctx);
    let a = build(&ctx, "a");
    gh.run(&[("INPUT_BUILD_DIR", &a)]).expect(0);
    let before_outputs = read(&gh.output);
    let before = ctx.world();

    // No rollout running: cutover's exit 2 as an ::error:: annotation and a
    // failed summary; no outputs written.
    gh.run(&[("INPUT_ROLLOUT_ACTION", "change"), ("INPUT_ROLLOUT", "25")])
        .expect(2)
        .stdout_has(&[
            "::error title=cutover rollout failed (exit 2)::",
            "no rollout is running",
        ]);
    gh.summary_has(&["### cutover rollout change: failed (exit 2)"]);
    gh.run(&[("INPUT_ROLLOUT_ACTION", "complete")])
        .expect(2)
        .stdout_has(&["::error title=cutover rollout failed (exit 2)::"]);

    // The script's own refusals.
    for (inputs, message) in [
        (
            vec![("INPUT_ROLLOUT_ACTION", "change")],
            "::error::rollout-action change needs the rollout input",
        ),
        (
            vec![("INPUT_ROLLOUT_ACTION", "start"), ("INPUT_ROLLOUT", "5")],
            "::error::rollout-action is change, complete or abort",
        ),
        (
            vec![
                ("INPUT_ROLLOUT_ACTION", "abort"),
                ("INPUT_PROMOTE_TO", "production"),
            ],
            "::error::promote-to and rollout-action are two different steps",
        ),
    ] {
        gh.run(&inputs).expect(2).stdout_has(&[message]);
    }
    assert_eq!(read(&gh.output), before_outputs, "no outputs on failure");
    ctx.assert_unchanged(&before, "refused rollouts from the Action");
}
