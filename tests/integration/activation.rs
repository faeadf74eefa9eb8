//! Going live and going back: the Redis contract as the Rails app reads it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::Value;

use crate::support::{deploy, fixture, rt, start_redis, Ctx};

#[test]
fn deploy_rollback_and_history_follow_the_contract() {
    let ctx = Ctx::new("go-live");
    let a = deploy(
        &ctx,
        fixture("shakapacker").to_str().unwrap(),
        &["--message", "first", "--git-sha", "abc123"],
    );
    let b = deploy(
        &ctx,
        fixture("flat").to_str().unwrap(),
        &["--message", "second"],
    );
    assert_ne!(a, b);

    rt().block_on(async {
        assert_eq!(ctx.get("current").await.as_deref(), Some(b.as_str()));
        // The manifest the app reads: the build's shape, with CDN URLs.
        let manifest: Value = serde_json::from_str(&ctx.get("manifest").await.unwrap()).unwrap();
        assert!(manifest["application.js"]
            .as_str()
            .unwrap()
            .starts_with("https://cdn.example.com/packs/js/application-"));
        let record: Value =
            serde_json::from_str(&ctx.get(&format!("release:{a}")).await.unwrap()).unwrap();
        assert_eq!(record["git_sha"], "abc123");
        assert_eq!(record["message"], "first");
        assert_eq!(record["file_count"], 59);
        let mut con = ctx.redis().await;
        let ids: Vec<String> = redis::cmd("ZREVRANGE")
            .arg(ctx.key("releases"))
            .arg(0)
            .arg(-1)
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(ids, vec![b.clone(), a.clone()]);
    });

    let run = ctx.run(&["rollback", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let live: Value =
        rt().block_on(async { serde_json::from_str(&ctx.get("manifest").await.unwrap()).unwrap() });
    assert!(live["application.js"]["src"]
        .as_str()
        .unwrap()
        .starts_with("https://cdn.example.com/packs/js/application-"));
    assert_eq!(
        rt().block_on(ctx.get("current")).as_deref(),
        Some(a.as_str())
    );

    let run = ctx.run(&["rollback", "--to", &b[..6]]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        rt().block_on(ctx.get("current")).as_deref(),
        Some(b.as_str())
    );

    // Deploying the live build again is a no-op.
    let history_before = rt().block_on(ctx.history()).len();
    let run = ctx.run(&["deploy", fixture("flat").to_str().unwrap(), "--json"]);
    assert_eq!(run.code, 0);
    assert_eq!(run.json()["outcome"], "already_live");
    assert_eq!(
        rt().block_on(ctx.get("current")).as_deref(),
        Some(b.as_str())
    );
    assert_eq!(rt().block_on(ctx.history()).len(), history_before);

    let history = rt().block_on(ctx.history());
    let summary: Vec<(String, String, Value)> = history
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_string(),
                e["release"].as_str().unwrap().to_string(),
                e["previous"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("rollback".to_string(), b.clone(), Value::from(a.clone())),
            ("rollback".to_string(), a.clone(), Value::from(b.clone())),
            ("deploy".to_string(), b.clone(), Value::from(a.clone())),
            ("deploy".to_string(), a.clone(), Value::Null),
        ]
    );

    let releases = ctx.run(&["releases", "--json"]).json();
    let rows = releases["releases"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["id"], b.as_str());
    assert_eq!(rows[0]["live"], true);
    let text = ctx.run(&["releases"]).stdout;
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("STATE "), "a header row: {text}");
    assert!(
        lines[1].starts_with("live, pinned") && lines[1].contains(&b),
        "{text}"
    );
    assert!(lines[2].contains(&a), "{text}");
}

#[test]
fn readers_never_see_a_mismatched_pair_during_500_switches() {
    let ctx = Ctx::new("atomic");
    let a = deploy(&ctx, fixture("shakapacker").to_str().unwrap(), &[]);
    let b = deploy(&ctx, fixture("flat").to_str().unwrap(), &[]);
    let (ma, mb) = rt().block_on(async {
        let ra = ctx.get(&format!("release:{a}")).await.unwrap();
        let rb = ctx.get(&format!("release:{b}")).await.unwrap();
        let ra: Value = serde_json::from_str(&ra).unwrap();
        let rb: Value = serde_json::from_str(&rb).unwrap();
        (ra["manifest"].clone(), rb["manifest"].clone())
    });
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        let (url, cur, man) = (
            ctx.redis_url.clone(),
            ctx.key("current"),
            ctx.key("manifest"),
        );
        let (a, b, ma, mb) = (a.clone(), b.clone(), ma.clone(), mb.clone());
        std::thread::spawn(move || {
            let mut con = redis::Client::open(url.as_str())
                .unwrap()
                .get_connection()
                .unwrap();
            let mut reads = 0u64;
            let mut seen_a = false;
            let mut seen_b = false;
            while !stop.load(Ordering::SeqCst) {
                let (c, m): (String, String) = redis::cmd("MGET")
                    .arg(&cur)
                    .arg(&man)
                    .query(&mut con)
                    .unwrap();
                let m: Value = serde_json::from_str(&m).unwrap();
                let expected = if c == a {
                    &ma
                } else if c == b {
                    &mb
                } else {
                    panic!("unknown release {c}")
                };
                assert_eq!(
                    &m, expected,
                    "MGET returned release {c} with another release's manifest"
                );
                seen_a |= c == a;
                seen_b |= c == b;
                reads += 1;
            }
            (reads, seen_a, seen_b)
        })
    };
    // 500 switches through the same Lua activation the CLI uses.
    let env: std::collections::HashMap<&str, String> = [
        ("CUTOVER_APP", ctx.app.clone()),
        ("REDIS_URL", ctx.redis_url.clone()),
    ]
    .into_iter()
    .collect();
    let config =
        cutover::config::load(&Default::default(), &|k| env.get(k).cloned(), None).unwrap();
    rt().block_on(async {
        let mut reg = cutover::store::redis::Registry::connect(&config)
            .await
            .unwrap();
        let rec_a = reg.record(&a).await.unwrap().valid().unwrap();
        let rec_b = reg.record(&b).await.unwrap().valid().unwrap();
        let mut live = b.clone();
        for i in 0..500 {
            let target = if i % 2 == 0 { &rec_a } else { &rec_b };
            let event = cutover::contract::ActivationEvent {
                release: target.id.clone(),
                previous: Some(live.clone()),
                action: "activate".into(),
                at: format!("switch {i}"),
                by: None,
                message: None,
                percent: None,
            };
            let outcome = reg
                .activate(
                    &event,
                    &target.manifest,
                    target.signature.as_deref(),
                    false,
                    &cutover::contract::PinChange::Respect,
                    None,
                    cutover::contract::CanaryMode::Refuse,
                )
                .await
                .unwrap();
            assert_eq!(
                outcome,
                cutover::store::redis::Activation::Applied {
                    previous: Some(live.clone())
                }
            );
            live = target.id.clone();
        }
    });
    stop.store(true, Ordering::SeqCst);
    let (reads, seen_a, seen_b) = reader.join().expect("the reader saw a mismatched pair");
    assert!(
        reads > 0 && seen_a && seen_b,
        "the reader must have observed both releases ({reads} reads)"
    );
    let len: i64 = rt().block_on(async {
        let mut con = ctx.redis().await;
        redis::cmd("LLEN")
            .arg(ctx.key("history"))
            .query_async(&mut con)
            .await
            .unwrap()
    });
    assert_eq!(len, 100, "history is capped at the default 100");
}

#[test]
fn concurrent_deploys_all_succeed_one_after_another() {
    let ctx = Ctx::new("concurrent");
    // Ten different builds: the flat fixture with a distinct extra file each.
    let builds: Vec<std::path::PathBuf> = (0..10)
        .map(|i| {
            let dir = ctx.work.path().join(format!("build{i}"));
            crate::support::fixtures::copy_dir(&fixture("flat"), &dir);
            std::fs::write(
                dir.join(format!("static/extra{i}-0a1b2c3d4e{i:02}.txt")),
                format!("build {i}"),
            )
            .unwrap();
            dir
        })
        .collect();
    let children: Vec<_> = builds
        .iter()
        .map(|b| {
            let mut cmd = ctx.command();
            cmd.args(["deploy", b.to_str().unwrap(), "--json"]);
            // Each waits for the ones before it, however slow the machine.
            cmd.env("CUTOVER_LOCK_WAIT", "3600");
            cmd.stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            cmd.spawn().unwrap()
        })
        .collect();
    let runs: Vec<_> = children
        .into_iter()
        .map(|c| crate::support::run::finish(c.wait_with_output().unwrap()))
        .collect();
    // The lock serialises them: each plans against the one before it, so
    // every one of them goes live, none loses a race.
    let mut activated = std::collections::BTreeSet::new();
    for run in &runs {
        run.expect(0);
        assert_eq!(run.json()["outcome"], "activated", "{run:?}");
        activated.insert(run.json()["release"]["id"].as_str().unwrap().to_string());
    }
    assert_eq!(activated.len(), 10, "ten different releases");
    let history = rt().block_on(ctx.history());
    let released: std::collections::BTreeSet<String> = history
        .iter()
        .map(|e| e["release"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(history.len(), 10, "every activation is in the history");
    assert_eq!(released, activated);
    // A serial order: each event's previous is the release before it, the
    // first replaced nothing, the last is live.
    for pair in history.windows(2) {
        assert_eq!(pair[0]["previous"], pair[1]["release"], "{history:#?}");
    }
    assert_eq!(history[9]["previous"], Value::Null);
    let current = rt().block_on(ctx.get("current")).unwrap();
    assert_eq!(history[0]["release"], current.as_str());
    // The live release is complete: every object of it is in S3.
    ctx.run(&["verify", "--read"]).expect(0);
}

#[test]
fn activating_a_release_with_a_missing_object_exits_4_and_changes_nothing() {
    let ctx = Ctx::new("verify");
    let a = deploy(&ctx, fixture("shakapacker").to_str().unwrap(), &[]);
    let b = ctx
        .run(&[
            "deploy",
            fixture("flat").to_str().unwrap(),
            "--no-activate",
            "--json",
        ])
        .json()["release"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The flat build has the same files; delete one object both share.
    rt().block_on(async {
        ctx.s3()
            .await
            .delete_object()
            .bucket(&ctx.bucket)
            .key("packs/static/checker-60ba6f5195844fa168f7.png")
            .send()
            .await
            .unwrap();
    });
    let before = rt().block_on(ctx.redis_state());
    let run = ctx.run(&["activate", &b]);
    assert_eq!(run.code, 4, "{run:?}");
    assert!(
        run.error_line()
            .contains("packs/static/checker-60ba6f5195844fa168f7.png"),
        "{run:?}"
    );
    assert!(run.error_line().contains("missing"), "{run:?}");
    assert_eq!(before, rt().block_on(ctx.redis_state()));
    assert_eq!(
        rt().block_on(ctx.get("current")).as_deref(),
        Some(a.as_str())
    );
    // Redeploying the build restores the object; then activation works.
    deploy(&ctx, fixture("shakapacker").to_str().unwrap(), &[]);
    let run = ctx.run(&["activate", &b[..8]]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        rt().block_on(ctx.get("current")).as_deref(),
        Some(b.as_str())
    );
}

#[test]
fn lost_redis_data_is_restored_from_the_s3_records() {
    let ctx = Ctx::new("restore");
    let a = deploy(&ctx, fixture("shakapacker").to_str().unwrap(), &[]);
    let b = deploy(&ctx, fixture("flat").to_str().unwrap(), &[]);
    rt().block_on(async {
        let mut con = ctx.redis().await;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("cutover:{{{}}}:*", ctx.app))
            .query_async(&mut con)
            .await
            .unwrap();
        let _: () = redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut con)
            .await
            .unwrap();
    });
    let run = ctx.run(&["activate", &a]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        rt().block_on(ctx.get("current")).as_deref(),
        Some(a.as_str())
    );
    assert!(rt().block_on(ctx.get(&format!("release:{a}"))).is_some());
    let run = ctx.run(&["activate", &b]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        rt().block_on(ctx.get("current")).as_deref(),
        Some(b.as_str())
    );
}

#[test]
fn redis_wrong_password_and_read_only_replica() {
    let ctx = Ctx::new("redis-faults");
    let build = fixture("flat");
    let port = start_redis(&["--requirepass", "right-secret"]);
    let run = ctx.run_with(
        &["deploy", build.to_str().unwrap()],
        &[(
            "REDIS_URL",
            &format!("redis://:wrong-secret@127.0.0.1:{port}"),
        )],
    );
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.error_line().contains("rejected the credentials"),
        "{run:?}"
    );
    assert!(
        !run.stderr.contains("wrong-secret"),
        "password leaked: {run:?}"
    );

    let replica = start_redis(&["--replicaof", "127.0.0.1", &ctx.redis_port().to_string()]);
    let run = ctx.run_with(
        &["deploy", build.to_str().unwrap()],
        &[("REDIS_URL", &format!("redis://127.0.0.1:{replica}"))],
    );
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.error_line().contains("read-only replica"), "{run:?}");
    assert!(run.error_line().contains("primary"), "{run:?}");
}

#[test]
fn a_release_record_is_never_rewritten() {
    // Records are immutable: deploying the same build again (another
    // message, another time) keeps the first record, in Redis and in S3.
    let ctx = Ctx::new("immutable-record");
    let build = fixture("flat");
    let first = deploy(
        &ctx,
        build.to_str().unwrap(),
        &["--no-activate", "-m", "first"],
    );
    let record = || -> (Value, Vec<u8>) {
        rt().block_on(async {
            let redis = ctx.get(&format!("release:{first}")).await.unwrap();
            let s3 = ctx
                .s3()
                .await
                .get_object()
                .bucket(&ctx.bucket)
                .key(format!("_cutover/{}/releases/{first}.json", ctx.app))
                .send()
                .await
                .unwrap()
                .body
                .collect()
                .await
                .unwrap()
                .into_bytes()
                .to_vec();
            (serde_json::from_str(&redis).unwrap(), s3)
        })
    };
    let before = record();
    assert_eq!(before.0["message"], "first");
    let again = deploy(
        &ctx,
        build.to_str().unwrap(),
        &["--no-activate", "-m", "second"],
    );
    assert_eq!(again, first, "the same build is the same release");
    assert_eq!(record(), before, "the record was rewritten");
}
