//! What on-call needs around deploys: rollback that sticks (pins) and walks
//! back, pin/unpin, history, diff.

use serde_json::Value;

use crate::support::fixtures::tiny_build;
use crate::support::tight_prune;
use crate::support::{fixture, rt, Ctx};

fn deploy(ctx: &Ctx, build: &std::path::Path) -> String {
    let run = ctx.run(&["deploy", build.to_str().unwrap(), "--json"]);
    run.expect(0);
    run.json()["release"]["id"].as_str().unwrap().to_string()
}

fn current(ctx: &Ctx) -> Option<String> {
    rt().block_on(ctx.get("current"))
}

#[test]
fn rollback_pins_and_repeated_rollbacks_walk_further_back() {
    let ctx = Ctx::new("rollback-walks");
    let a = deploy(&ctx, &fixture("shakapacker"));
    let b = deploy(&ctx, &fixture("flat"));
    let c = deploy(&ctx, &fixture("example"));

    let run = ctx.run(&["rollback", "--json", "-m", "c is broken"]);
    run.expect(0);
    assert_eq!(current(&ctx).as_deref(), Some(b.as_str()));
    assert_eq!(run.json()["pinned"]["release"], b.as_str(), "{run:?}");
    assert_eq!(run.json()["pinned"]["message"], "c is broken");

    // A second rollback does not toggle back to c: it walks on to a.
    ctx.run(&["rollback"]).expect(0);
    assert_eq!(current(&ctx).as_deref(), Some(a.as_str()));
    let rows = ctx.run(&["releases", "--json"]).json()["releases"].clone();
    let row = |id: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(row(&c)["rolled_back"], true);
    assert_eq!(row(&b)["rolled_back"], true);
    assert_eq!(row(&a)["live"], true);
    assert_eq!(row(&a)["pinned"], true);
    let text = ctx.run(&["releases"]).stdout;
    assert!(
        text.lines()
            .any(|l| l.starts_with("live, pinned") && l.contains(&a)),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("rolled back") && l.contains(&c)),
        "{text}"
    );

    // Nothing left to roll back to: a clear refusal.
    let run = ctx.run(&["rollback"]);
    run.expect(2).error_has(&["no release before", "--to"]);
}

#[test]
fn while_pinned_deploys_record_without_activating() {
    let ctx = Ctx::new("pinned-deploys");
    let a = deploy(&ctx, &fixture("shakapacker"));
    let b = deploy(&ctx, &fixture("flat"));
    ctx.run(&["rollback"]).expect(0);
    assert_eq!(current(&ctx).as_deref(), Some(a.as_str()));

    // CI keeps deploying: green, recorded, nothing goes live.
    let d_dir = tiny_build(ctx.work.path(), "console.log('d')");
    let run = ctx
        .cutover(&["deploy", d_dir.to_str().unwrap(), "--json"])
        .env("GITHUB_ACTIONS", "true")
        .run();
    run.expect(0)
        .stderr_has(&["::warning::pinned since", "not activated", "--unpin"]);
    let doc = run.json();
    assert_eq!(doc["outcome"], "recorded");
    assert_eq!(doc["activated"], false);
    assert_eq!(doc["pinned"]["release"], a.as_str());
    let d = doc["release"]["id"].as_str().unwrap().to_string();
    assert_eq!(current(&ctx).as_deref(), Some(a.as_str()));
    // The text says so on one line.
    let e_dir = ctx.work.path().join("e");
    let e_dir = tiny_build(&e_dir, "console.log('e')");
    let run = ctx.run(&["deploy", e_dir.to_str().unwrap()]);
    run.expect(0)
        .stdout_has(&["not activated:", "is pinned", "--unpin"]);
    let pinned_lines = run
        .stderr
        .lines()
        .filter(|l| l.contains("pinned since"))
        .count();
    assert_eq!(pinned_lines, 1, "{run:?}");

    // activate refuses without --unpin, and changes nothing.
    let before = ctx.world();
    ctx.run(&["activate", &b]).expect(3).error_has(&[
        "is pinned since",
        "--unpin",
        "cutover unpin",
    ]);
    // --force is about the compare-and-set; it never overrides a pin.
    ctx.run(&["activate", &b, "--force"]).expect(3);
    ctx.assert_unchanged(&before, "activate while pinned");

    let run = ctx.run(&["activate", &d, "--unpin", "--json"]);
    run.expect(0);
    assert_eq!(run.json()["pinned"], Value::Null);
    assert_eq!(current(&ctx).as_deref(), Some(d.as_str()));
    assert_eq!(rt().block_on(ctx.get("pin")), None);
    ctx.run(&["status"]).expect(0).stdout_lacks(&["PINNED"]);
}

#[test]
fn pin_and_unpin_on_their_own() {
    let ctx = Ctx::new("pin-unpin");
    ctx.run(&["pin"])
        .expect(2)
        .error_has(&["no release is live", "nothing to pin"]);
    let a = deploy(&ctx, &fixture("shakapacker"));
    let before = ctx.world();
    ctx.run(&["pin", "--dry-run", "-m", "freeze"])
        .expect(0)
        .stdout_has(&["dry run", &format!("SET {}", ctx.key("pin"))]);
    ctx.assert_unchanged(&before, "pin --dry-run");
    ctx.run(&["pin", "-m", "release freeze", "--by", "alice"])
        .expect(0)
        .stdout_has(&["pinned", &a]);
    ctx.run(&["status"])
        .expect(0)
        .stdout_has(&["PINNED:", "by alice", "(release freeze)"]);
    let status = ctx.run(&["status", "--json"]).json();
    assert_eq!(status["pin"]["by"], "alice");
    // While pinned, a deploy records only.
    let run = ctx.run(&["deploy", fixture("flat").to_str().unwrap(), "--json"]);
    run.expect(0);
    assert_eq!(run.json()["activated"], false);
    assert_eq!(current(&ctx).as_deref(), Some(a.as_str()));
    ctx.run(&["unpin"]).expect(0).stdout_has(&["unpinned"]);
    ctx.run(&["unpin"]).expect(0).stdout_has(&["not pinned"]);
    // Now the same build activates.
    let run = ctx.run(&["deploy", fixture("flat").to_str().unwrap(), "--json"]);
    run.expect(0);
    assert_eq!(run.json()["outcome"], "activated");
    assert_eq!(
        current(&ctx),
        run.json()["release"]["id"].as_str().map(String::from)
    );
}

#[test]
fn history_and_diff_tell_what_happened_and_what_changes() {
    let ctx = Ctx::new("history-diff");
    let a_dir = tiny_build(ctx.work.path(), "console.log('a')");
    let a = deploy(&ctx, &a_dir);
    let b_dir = ctx.work.path().join("b");
    let b_dir = tiny_build(&b_dir, "console.log('bb')");
    let run = ctx.run(&["deploy", b_dir.to_str().unwrap(), "-m", "second", "--json"]);
    run.expect(0);
    let b = run.json()["release"]["id"].as_str().unwrap().to_string();
    ctx.run(&["rollback", "-m", "oops"]).expect(0);

    let run = ctx.run(&["history", "--json"]);
    run.expect(0);
    let events = run.json()["events"].as_array().unwrap().clone();
    let actions: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["release"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("rollback", a.as_str()),
            ("deploy", b.as_str()),
            ("deploy", a.as_str())
        ]
    );
    assert_eq!(events[0]["previous"], b.as_str());
    assert_eq!(events[0]["message"], "oops");
    let text = ctx.run(&["history", "--limit", "1"]).stdout;
    assert_eq!(text.lines().count(), 2, "header and one event: {text}");
    assert!(text.lines().next().unwrap().starts_with("AT"), "{text}");

    // diff A B: one script replaced by another, the stylesheet unchanged.
    let run = ctx.run(&["diff", &a[..8], &b[..8], "--json"]);
    run.expect(0);
    let d = run.json();
    assert_eq!(d["files_added"].as_array().unwrap().len(), 1, "{d}");
    assert_eq!(d["files_removed"].as_array().unwrap().len(), 1, "{d}");
    assert_eq!(d["files_unchanged"], 1);
    assert_eq!(d["bytes_delta"], 1);
    assert_eq!(d["manifest_diff"]["changed"].as_array().unwrap().len(), 1);
    // By default: the live release against the newest recorded one.
    let run = ctx.run(&["diff"]);
    run.expect(0).stdout_has(&[
        &format!("{a} -> {b}"),
        "files: 1 added, 0 changed, 1 removed, 1 unchanged",
    ]);
}

#[test]
fn prune_keeps_every_object_of_kept_releases_and_deletes_the_rest() {
    let ctx = Ctx::new("prune");
    let mut ids = Vec::new();
    for i in 0..5 {
        let dir = ctx.work.path().join(format!("r{i}"));
        // Each build: its own script, the same stylesheet.
        ids.push(deploy(
            &ctx,
            &tiny_build(&dir, &format!("console.log({i})")),
        ));
    }
    rt().block_on(ctx.put("packs/other-tool.txt", b"not ours"));
    let args = tight_prune("2");

    let before = ctx.world();
    let run = ctx.run(&[&args[..], &["--dry-run", "--json"]].concat());
    run.expect(0);
    let plan = run.json();
    assert_eq!(plan["deleted_objects"], 3, "{plan}");
    assert_eq!(
        plan["deleted_releases"],
        serde_json::json!([ids[2], ids[1], ids[0]])
    );
    assert_eq!(
        plan["unreferenced"],
        serde_json::json!(["packs/other-tool.txt"])
    );
    ctx.assert_unchanged(&before, "prune --dry-run");

    ctx.run(&[&args[..], &["--max-delete", "2"]].concat())
        .expect(3)
        .error_has(&[
            "would delete 3 objects, more than --max-delete 2",
            "nothing was deleted",
        ]);
    ctx.assert_unchanged(&before, "a prune over its limit");

    ctx.run(&args)
        .expect(0)
        .stdout_has(&["deleted 3 objects", "3 release records"]);
    let objects = rt().block_on(ctx.objects());
    // Every object of the kept releases is there (checked through S3 by verify).
    for id in &ids[3..] {
        ctx.run(&["verify", id]).expect(0);
    }
    for id in &ids[..3] {
        assert!(
            !objects
                .keys()
                .any(|k| k.ends_with(&format!("releases/{id}.json"))),
            "record of {id} left in S3"
        );
        assert_eq!(rt().block_on(ctx.get(&format!("release:{id}"))), None);
    }
    let scripts = objects
        .keys()
        .filter(|k| k.starts_with("packs/js/"))
        .count();
    assert_eq!(scripts, 2, "{objects:?}");
    assert!(objects.contains_key("packs/css/app-9d8c7b6a5f4e3d2c1b0a.css"));
    assert!(
        objects.contains_key("packs/other-tool.txt"),
        "unreferenced objects are left alone"
    );
    // Going back to a kept release works.
    ctx.run(&["rollback"]).expect(0);
    assert_eq!(current(&ctx).as_deref(), Some(ids[3].as_str()));
    // Unreferenced objects go only when asked.
    ctx.run(&[&args[..], &["--include-unreferenced"]].concat())
        .expect(0);
    assert!(!rt()
        .block_on(ctx.objects())
        .contains_key("packs/other-tool.txt"));
}

#[test]
fn exclude_leaves_files_and_their_entries_out_of_s3_the_release_and_the_manifest() {
    let ctx = Ctx::new("exclude");
    let build = fixture("shakapacker");
    let maps: Vec<String> = crate::support::fixtures::files_of(&build)
        .into_iter()
        .filter(|p| p.contains(".map"))
        .collect();
    assert!(maps.len() > 10, "the fixture has source maps: {maps:?}");

    // A kept entry (`application.js.map`) naming an excluded file: exit 2,
    // before anything is written.
    let before = ctx.world();
    ctx.run(&["deploy", build.to_str().unwrap(), "--exclude", "js/*.map"])
        .expect(2)
        .error_has(&["exclude (js/*.map) leaves js/", "exclude that entry too"]);
    ctx.assert_unchanged(&before, "a deploy whose manifest names excluded files");

    // From cutover.toml, as a list: the maps (and their .gz/.br) are left out.
    std::fs::write(
        ctx.work.path().join("cutover.toml"),
        "exclude = [\"**/*.map\"]\n",
    )
    .unwrap();
    let run = ctx.run(&["deploy", build.to_str().unwrap(), "--json"]);
    run.expect(0);
    let out = run.json();
    assert_eq!(out["excluded"]["files"], maps.len(), "{out}");
    let objects = rt().block_on(ctx.objects());
    let public: Vec<&String> = objects.keys().filter(|k| k.starts_with("packs/")).collect();
    assert!(!public.is_empty());
    assert!(public.iter().all(|k| !k.contains(".map")), "{public:?}");
    let live = rt().block_on(ctx.get("manifest")).unwrap();
    assert!(!live.contains(".map"), "{live}");
    assert!(live.contains("\"application.js\""), "{live}");
    let id = out["release"]["id"].as_str().unwrap();
    let record = rt().block_on(ctx.get(&format!("release:{id}"))).unwrap();
    assert!(
        !record.contains(".map"),
        "the record lists no map: {record}"
    );
    ctx.run(&["verify", id]).expect(0);

    // The text report says what was left out; a flag replaces the file's list.
    ctx.run(&["deploy", build.to_str().unwrap(), "--dry-run"])
        .expect(0)
        .stdout_has(&[&format!("left out by exclude: {} files", maps.len())]);
    let run = ctx.run(&[
        "deploy",
        build.to_str().unwrap(),
        "--dry-run",
        "--json",
        "--exclude",
        "**/*.svg",
    ]);
    run.expect(0);
    assert!(run.json()["excluded"]["files"].as_u64().unwrap() < maps.len() as u64);
}
