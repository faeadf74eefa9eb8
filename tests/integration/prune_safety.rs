//! Prune never breaks the live site: not racing a deploy that planned to
//! reuse what it deletes, nor an activation of what it drops; never what a
//! live manifest names, whatever the records say; never the release
//! `rollback` goes to; an unreadable record is kept, not fatal; a record
//! stays until its young objects can go.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use crate::support::fixtures::{files_of, tiny_build};
use crate::support::s3_proxy::FaultyProxy;
use crate::support::tight_prune;
use crate::support::{deploy, rt, Ctx};

/// Three releases of tiny builds (a, b, c), c live: their ids and build dirs.
fn three_releases(ctx: &Ctx) -> Vec<(String, std::path::PathBuf)> {
    ["a", "b", "c"]
        .iter()
        .map(|n| {
            let build = tiny_build(&ctx.work.path().join(n), &format!("console.log('{n}')"));
            (deploy(ctx, build.to_str().unwrap(), &[]), build)
        })
        .collect()
}

/// The prune that drops everything it may: only the newest and what must
/// stay, no window, no grace.
const TIGHT: [&str; 9] = tight_prune("1");

/// Every object the live manifest names is in S3 (`cutover verify` of the
/// live release: every object of it, with its bytes).
#[track_caller]
fn live_release_intact(ctx: &Ctx) {
    ctx.run(&["verify"]).expect(0);
}

#[test]
fn a_prune_between_a_deploys_listing_and_its_lock_makes_it_list_again() {
    let ctx = Ctx::new("prune-races-deploy");
    let releases = three_releases(&ctx);
    let (a, a_build) = &releases[0];
    // Deploy a's build again (going back by redeploying), held right after
    // it listed the bucket: while it reads the release records.
    let s3 = FaultyProxy::transparent(&ctx.s3_endpoint);
    s3.hold_requests("/releases/");
    let child = ctx
        .command()
        .args(["deploy", a_build.to_str().unwrap(), "--json"])
        .env("CUTOVER_S3_ENDPOINT", &s3.url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    s3.wait_for(
        "the deploy listed the bucket and waits on the records",
        |l| l.held > 0 && l.requests.iter().any(|r| r.line.contains("prefix=packs")),
    );
    // Meanwhile a prune drops a (not live, not the newest, not the one
    // rollback goes to) and deletes the script only a had.
    let pruned = ctx.run(&TIGHT);
    pruned.expect(0);
    assert_eq!(
        pruned.stdout.matches("(deleted)").count(),
        1,
        "{}",
        pruned.stdout
    );
    let script = files_of(a_build)
        .into_iter()
        .find(|p| p.ends_with(".js"))
        .unwrap();
    let key = format!("packs/{script}");
    assert!(
        !rt().block_on(ctx.objects()).contains_key(&key),
        "the prune deleted {key}, which the deploy planned to reuse"
    );
    s3.release();
    let run = crate::support::run::finish(child.wait_with_output().unwrap());
    run.expect(0);
    assert_eq!(run.json()["release"]["id"], a.as_str());
    assert_eq!(
        run.json()["upload"]["files"],
        1,
        "the deleted script is uploaded again: {}",
        run.stdout
    );
    live_release_intact(&ctx);
}

#[test]
fn an_activation_holds_against_a_prune_that_would_drop_it() {
    let ctx = Ctx::new("prune-races-activate");
    let releases = three_releases(&ctx);
    let a = &releases[0].0;
    // Activate a (dropped by a tight prune while not live), held while it
    // checks a's objects.
    let s3 = FaultyProxy::transparent(&ctx.s3_endpoint);
    // (its listings of a's stretches of the prefix).
    s3.hold_requests("start-after=");
    let activate = ctx
        .command()
        .args(["activate", a])
        .env("CUTOVER_S3_ENDPOINT", &s3.url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    s3.wait_for("the activation checks a's objects", |l| l.held > 0);
    // The prune must wait for the activation: the check and the switch hold
    // the lock against it.
    let mut prune = ctx
        .command()
        .args(TIGHT)
        .env("CUTOVER_LOCK_WAIT", "60")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(prune.stderr.take().unwrap()).lines();
    let waiting = stderr
        .by_ref()
        .map_while(Result::ok)
        .any(|l| l.contains("waiting for the deploy lock"));
    assert!(waiting, "the prune waits for the activation's lock");
    s3.release();
    let activated = crate::support::run::finish(activate.wait_with_output().unwrap());
    activated.expect(0);
    let pruned = prune.wait_with_output().unwrap();
    assert!(pruned.status.success(), "{pruned:?}");
    assert_eq!(
        rt().block_on(ctx.get("current")).as_deref(),
        Some(a.as_str())
    );
    live_release_intact(&ctx);
}

#[test]
fn what_redis_serves_counts_whatever_the_records_say() {
    let ctx = Ctx::new("prune-live-manifest");
    let releases = three_releases(&ctx);
    let live = &releases[2].0;
    let record = format!("_cutover/{}/releases/{live}.json", ctx.app);
    // The live release's record is gone: prune cannot tell what it uses.
    rt().block_on(async {
        ctx.s3()
            .await
            .delete_object()
            .bucket(&ctx.bucket)
            .key(&record)
            .send()
            .await
            .unwrap()
    });
    let before = ctx.world();
    let mut args = TIGHT.to_vec();
    args.push("--include-unreferenced");
    ctx.run(&args)
        .expect(3)
        .error_has(&[&format!("the live release {live}"), "nothing was deleted"]);
    ctx.assert_unchanged(&before, "a prune that cannot account for the live release");
    // Another records prefix: no record found at all, the same refusal.
    ctx.run_with(&args, &[("CUTOVER_META_PREFIX", "_elsewhere/")])
        .expect(3);
    ctx.assert_unchanged(&before, "a prune under another records prefix");
}

#[test]
fn prune_keeps_the_release_rollback_goes_to() {
    let ctx = Ctx::new("prune-keeps-rollback");
    let releases = three_releases(&ctx);
    let b = &releases[1].0;
    let pruned = ctx.run(&TIGHT);
    pruned
        .expect(0)
        .stdout_has(&[b, "`cutover rollback` goes to it"]);
    let back = ctx.run(&["rollback", "--json"]);
    back.expect(0);
    assert_eq!(back.json()["release"], b.as_str());
    live_release_intact(&ctx);
}

#[test]
fn an_unreadable_record_is_kept_with_a_warning_and_protects_every_object() {
    let ctx = Ctx::new("prune-unreadable");
    let releases = three_releases(&ctx);
    let a = &releases[0].0;
    rt().block_on(ctx.put(
        &format!("_cutover/{}/releases/{a}.json", ctx.app),
        b"{not json",
    ));
    let mut args = TIGHT.to_vec();
    args.extend(["--include-unreferenced", "--json"]);
    let run = ctx.run(&args);
    run.expect(0)
        .stderr_has(&["is not valid JSON", &format!("release {a} is kept")]);
    assert_eq!(run.json()["deleted_objects"], 0, "{}", run.stdout);
    // a's script is still there (its record could name it).
    let scripts = rt()
        .block_on(ctx.objects())
        .keys()
        .filter(|k| k.starts_with("packs/js/"))
        .count();
    assert_eq!(scripts, 3);
}

#[test]
fn a_record_stays_until_its_young_objects_can_go() {
    let ctx = Ctx::new("prune-record-until-objects");
    let releases = three_releases(&ctx);
    let a = &releases[0].0;
    // a is dropped, but its script is younger than the grace period.
    let young = ctx.run(&[
        "prune",
        "--keep",
        "1",
        "--keep-days",
        "0",
        "--skew-max-age",
        "0",
        "--json",
    ]);
    young.expect(0);
    assert_eq!(young.json()["deleted_objects"], 0, "{}", young.stdout);
    assert_eq!(
        young.json()["records_kept"][0],
        a.as_str(),
        "{}",
        young.stdout
    );
    let a_record = format!("_cutover/{}/releases/{a}.json", ctx.app);
    assert!(rt().block_on(ctx.objects()).contains_key(&a_record));
    // Once old enough, a later plain prune deletes them, and then the record.
    let later = ctx.run(&[TIGHT.as_slice(), &["--json"]].concat());
    later.expect(0);
    assert_eq!(later.json()["deleted_objects"], 1, "{}", later.stdout);
    assert_eq!(later.json()["deleted_releases"][0], a.as_str());
    assert!(!rt().block_on(ctx.objects()).contains_key(&a_record));
    live_release_intact(&ctx);
}
