//! The stale-deploy guard: a deploy or an activation never lets an older
//! commit replace a newer one (two CI runs that finished out of order),
//! unless `--allow-older`; rollback is exempt. Commit times come from git
//! in the working directory (CI's checkout), given the commit's sha.

use std::process::Command;

use crate::support::fixtures::tiny_build;
use crate::support::Ctx;

/// A commit in a repository at `dir`, made at `when` (seconds since the
/// epoch); its sha.
fn commit(dir: &std::path::Path, when: i64, message: &str) -> String {
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .env("GIT_AUTHOR_DATE", format!("@{when} +0000"))
            .env("GIT_COMMITTER_DATE", format!("@{when} +0000"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    if !dir.join(".git").exists() {
        git(&["init", "-q"]);
    }
    git(&["commit", "-q", "--allow-empty", "-m", message]);
    git(&["rev-parse", "HEAD"])
}

#[test]
fn an_older_commit_never_replaces_a_newer_one_unless_allowed() {
    let ctx = Ctx::new("stale-guard");
    let dir = ctx.work.path();
    let older = commit(dir, 1_790_000_000, "older");
    let newer = commit(dir, 1_790_000_600, "newer");
    let old_build = tiny_build(&dir.join("old"), "app('older')");
    let new_build = tiny_build(&dir.join("new"), "app('newer')");
    let deploy = |build: &std::path::Path, sha: &str, extra: &[&str]| {
        let mut args = vec!["deploy", build.to_str().unwrap(), "--json"];
        args.extend_from_slice(extra);
        ctx.run_with(&args, &[("CUTOVER_GIT_SHA", sha)])
    };

    // The newer build's run finished first; the older one's comes late.
    let n = deploy(&new_build, &newer, &[]);
    n.expect(0);
    let new_id = n.json()["release"]["id"].as_str().unwrap().to_string();
    let before = ctx.world();
    deploy(&old_build, &older, &[]).expect(3).error_has(&[
        &format!("commit {older} (2026-09-21T"),
        &format!("older than commit {newer}"),
        &format!("of the live release {new_id}"),
        "--allow-older",
    ]);
    ctx.assert_unchanged(&before, "a refused stale deploy");
    // Its dry run says the same; recording it without switching is fine.
    deploy(&old_build, &older, &["--dry-run"]).expect(3);
    let o = deploy(&old_build, &older, &["--no-activate"]);
    o.expect(0);
    let old_id = o.json()["release"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        ctx.run(&["status", "--json"]).json()["current"],
        new_id.as_str()
    );

    // Activate is guarded alike.
    ctx.run(&["activate", &old_id])
        .expect(3)
        .error_has(&[&format!("commit {older}")]);
    ctx.run(&["activate", &old_id, "--allow-older"]).expect(0);
    assert_eq!(
        ctx.run(&["status", "--json"]).json()["current"],
        old_id.as_str()
    );
    // Rollback is exempt (it goes back by design)... here forward to the newer.
    ctx.run(&["activate", &new_id]).expect(0);
    ctx.run(&["rollback"]).expect(0);
    assert_eq!(
        ctx.run(&["status", "--json"]).json()["current"],
        old_id.as_str()
    );

    // A release without a commit time is never refused by the guard.
    ctx.run(&["unpin"]).expect(0);
    let untimed = tiny_build(&dir.join("untimed"), "app('untimed')");
    ctx.run(&["deploy", untimed.to_str().unwrap()]).expect(0);
}
