//! Dry runs. Every `--dry-run` of every command changes nothing: not a
//! Redis key (its type, value or TTL), not an S3 object (listing, bytes), no
//! request that writes reaches S3, and no event is published. Run from
//! states where a real run would write (a record lost from Redis, a pin, a
//! lock, releases to prune, another environment to promote to). And what a
//! deploy's dry run shows is the plan: exactly the files to upload, the
//! conflicts (exit 3), the manifest against live, the writes in order.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::support::ctx::redis_at;
use crate::support::fixtures::tiny_build;
use crate::support::s3_proxy::FaultyProxy;
use crate::support::{fixture, rt, start_redis, Ctx, Run};

/// Everything a command could write: every key of the app on each Redis
/// (type, TTL, value) and every object of the bucket.
#[derive(Debug, PartialEq)]
struct State {
    redis: BTreeMap<(u16, String), (String, i64, Vec<u8>)>,
    objects: BTreeMap<String, (i64, String, String)>,
}

fn redis_state(ctx: &Ctx, ports: &[u16]) -> BTreeMap<(u16, String), (String, i64, Vec<u8>)> {
    let mut out = BTreeMap::new();
    for &port in ports {
        let keys: Vec<String> =
            redis::from_redis_value(redis_at(port, &["KEYS", &ctx.key("*")])).unwrap();
        for key in keys {
            let kind: String = redis::from_redis_value(redis_at(port, &["TYPE", &key])).unwrap();
            let ttl: i64 = redis::from_redis_value(redis_at(port, &["PTTL", &key])).unwrap();
            let dump: Vec<u8> = redis::from_redis_value(redis_at(port, &["DUMP", &key])).unwrap();
            out.insert((port, key), (kind, ttl, dump));
        }
    }
    out
}

fn state(ctx: &Ctx, ports: &[u16]) -> State {
    let objects = rt().block_on(async {
        let s3 = ctx.s3().await;
        let mut out = BTreeMap::new();
        let mut pages = s3
            .list_objects_v2()
            .bucket(&ctx.bucket)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            for o in page.unwrap().contents() {
                out.insert(
                    o.key().unwrap().to_string(),
                    (
                        o.size().unwrap_or(0),
                        o.e_tag().unwrap_or("").to_string(),
                        format!("{:?}", o.last_modified()),
                    ),
                );
            }
        }
        out
    });
    State {
        redis: redis_state(ctx, ports),
        objects,
    }
}

/// SHA-256 of every object's bytes.
fn bytes(ctx: &Ctx) -> BTreeMap<String, String> {
    rt().block_on(async {
        let mut out = BTreeMap::new();
        for key in ctx.objects().await.into_keys() {
            let body = ctx.object(&key).await;
            out.insert(key, hex::encode(Sha256::digest(&body)));
        }
        out
    })
}

/// Counts the messages published on the app's channel.
fn subscriber(ctx: &Ctx) -> (Arc<std::sync::atomic::AtomicUsize>, Arc<AtomicBool>) {
    let heard = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let ready = Arc::new(AtomicBool::new(false));
    let (url, channel) = (ctx.redis_url.clone(), ctx.key("events"));
    let (h, r) = (heard.clone(), ready.clone());
    std::thread::spawn(move || {
        let mut con = redis::Client::open(url.as_str())
            .unwrap()
            .get_connection()
            .unwrap();
        let mut pubsub = con.as_pubsub();
        pubsub.subscribe(&channel).unwrap();
        r.store(true, Ordering::SeqCst);
        while pubsub.get_message().is_ok() {
            h.fetch_add(1, Ordering::SeqCst);
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !ready.load(Ordering::SeqCst) {
        assert!(std::time::Instant::now() < deadline, "no subscription");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    (heard, ready)
}

struct DryRuns<'a> {
    ctx: &'a Ctx,
    /// The Redis servers to watch (the test Redis, and production's).
    ports: Vec<u16>,
    proxy: FaultyProxy,
    env: Vec<(String, String)>,
}

impl DryRuns<'_> {
    /// Run a dry run through the S3 proxy: it succeeds, writes nothing,
    /// and (when `reads_s3`) did talk to S3.
    #[track_caller]
    fn check(&self, args: &[&str], reads_s3: bool) -> Run {
        let before = state(self.ctx, &self.ports);
        let seen = self.proxy.log.lock().unwrap().requests.len();
        let mut cutover = self
            .ctx
            .cutover(args)
            .env("CUTOVER_S3_ENDPOINT", &self.proxy.url);
        for (k, v) in &self.env {
            cutover = cutover.env(k, v);
        }
        let run = cutover.run();
        run.expect(0);
        self.proxy.wait_idle();
        {
            let log = self.proxy.log.lock().unwrap();
            let writes = log.writes(seen);
            assert!(writes.is_empty(), "{args:?} sent writes to S3: {writes:?}");
            assert!(
                !reads_s3 || log.requests.len() > seen,
                "{args:?} did not reach S3 through the proxy: the check would be empty"
            );
        }
        let after = state(self.ctx, &self.ports);
        assert!(
            before == after,
            "{args:?} changed something: {:#?}",
            diff(&before, &after)
        );
        run
    }
}

fn diff(a: &State, b: &State) -> Vec<String> {
    let mut out = Vec::new();
    for k in a.redis.keys().chain(b.redis.keys()) {
        if a.redis.get(k) != b.redis.get(k) {
            out.push(format!("redis {k:?}"));
        }
    }
    for k in a.objects.keys().chain(b.objects.keys()) {
        if a.objects.get(k) != b.objects.get(k) {
            out.push(format!("s3 {k}"));
        }
    }
    out.dedup();
    out
}

#[test]
fn every_dry_run_of_every_command_changes_nothing() {
    let ctx = Ctx::new("dry-runs");
    let deploy = |build: &std::path::Path, extra: &[&str]| {
        let mut args = vec!["deploy", build.to_str().unwrap(), "--json"];
        args.extend_from_slice(extra);
        let run = ctx.run(&args);
        run.expect(0);
        run.json()["release"]["id"].as_str().unwrap().to_string()
    };
    let a = deploy(&fixture("shakapacker"), &[]);
    let b = deploy(&fixture("flat"), &[]);
    let c = deploy(&fixture("example"), &["--no-activate"]);
    // Redis lost c's record: a real activation would restore it from S3.
    ctx.redis_cmd(&["DEL", &ctx.key(&format!("release:{c}"))]);
    let tiny = tiny_build(&ctx.work.path().join("tiny"), "console.log('new')");
    let tiny = tiny.to_str().unwrap();
    let production = start_redis(&[]);
    std::fs::write(
        ctx.work.path().join("cutover.toml"),
        format!(
            "[environments.staging]\nredis_url = \"{}\"\n\n[environments.production]\nredis_url = \"redis://127.0.0.1:{production}\"\n",
            ctx.redis_url
        ),
    )
    .unwrap();
    let bytes_before = bytes(&ctx);
    let (heard, _) = subscriber(&ctx);

    let dry = DryRuns {
        ctx: &ctx,
        ports: vec![ctx.redis_port(), production],
        proxy: FaultyProxy::transparent(&ctx.s3_endpoint),
        env: vec![],
    };
    dry.check(&["deploy", tiny, "--dry-run"], true);
    dry.check(
        &["deploy", tiny, "--dry-run", "--no-activate", "--json"],
        true,
    );
    dry.check(&["deploy", tiny, "--dry-run", "--force", "-m", "x"], true);
    dry.check(
        &["deploy", fixture("flat").to_str().unwrap(), "--dry-run"],
        true,
    );
    dry.check(&["activate", &c, "--dry-run"], true)
        .stdout_has(&["Redis EVAL register"]);
    dry.check(&["activate", &c, "--dry-run", "--unpin", "--force"], true);
    dry.check(&["rollback", "--dry-run"], true);
    dry.check(&["rollback", "--to", &c, "--dry-run", "--json"], true);
    dry.check(&["pin", "--dry-run", "-m", "hold"], false);
    dry.check(&["unpin", "--dry-run"], false);
    dry.check(
        &[
            "prune",
            "--dry-run",
            "--keep",
            "0",
            "--keep-days",
            "0",
            "--grace",
            "0",
            "--include-unreferenced",
        ],
        true,
    )
    .stdout_has(&["DeleteObjects"]);
    dry.check(&["unlock", "--dry-run"], false);

    // Pinned: the pin is what a real run would clear.
    ctx.run(&["pin", "-m", "hold"]).expect(0);
    dry.check(&["unpin", "--dry-run"], false);
    dry.check(&["activate", &a, "--unpin", "--dry-run"], true);
    dry.check(&["pin", "--dry-run", "-m", "again"], false);
    dry.check(&["deploy", tiny, "--dry-run"], true);

    // A lock left behind: a real `unlock --force` would delete it.
    ctx.redis_cmd(&["SET", &ctx.key("lock"), "left-behind"]);
    dry.check(&["unlock", "--dry-run"], false);
    dry.check(&["unlock", "--force", "--dry-run"], false);
    ctx.redis_cmd(&["DEL", &ctx.key("lock")]);

    // A rollout: what real runs would start, change, complete or abort.
    ctx.run(&["unpin"]).expect(0);
    dry.check(&["rollout", &c, "--percent", "5", "--dry-run"], true)
        .stdout_has(&["Redis EVAL rollout"]);
    dry.check(&["deploy", tiny, "--rollout", "5", "--dry-run"], true);
    ctx.run(&["rollout", &c, "--percent", "5"]).expect(0);
    dry.check(&["rollout", "--percent", "25", "--dry-run"], false);
    dry.check(&["rollout", "complete", "--dry-run"], true);
    dry.check(&["rollout", "abort", "--dry-run", "--json"], false);
    ctx.run(&["rollout", "abort"]).expect(0);
    ctx.run(&["pin", "-m", "hold"]).expect(0);
    // The real rollout and its abort published one event each: heard
    // before the count starts again.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while heard.load(Ordering::SeqCst) < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the rollout's events were not heard"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // (Events arrive in order: had a dry run between them published, the
    // abort's would make the count 1 at the end, and the check below fails.)
    heard.fetch_sub(2, Ordering::SeqCst);

    // Another environment: a real promote registers and switches there.
    let promote = DryRuns {
        env: vec![("REDIS_URL".into(), String::new())],
        ..dry
    };
    promote.check(
        &[
            "promote",
            &b,
            "--from",
            "staging",
            "--to",
            "production",
            "--dry-run",
        ],
        true,
    );
    assert_eq!(bytes(&ctx), bytes_before, "the bytes of an object changed");
    assert_eq!(
        heard.load(Ordering::SeqCst),
        0,
        "a dry run published an event"
    );

    // The checks can see a write: a real run is caught by every one of them.
    let before = state(&ctx, &promote.ports);
    ctx.run(&["unpin"]).expect(0);
    ctx.run(&["activate", &c]).expect(0);
    assert_ne!(before, state(&ctx, &promote.ports));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while heard.load(Ordering::SeqCst) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the subscriber heard nothing"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Files of the fixture that cutover uploads (everything but the manifest and its copies).
fn uploadable(name: &str) -> BTreeSet<String> {
    let root = fixture(name);
    walkdir::WalkDir::new(&root)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            e.path()
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|p| !p.starts_with("manifest.json"))
        .collect()
}

#[test]
fn a_deploy_dry_run_lists_exactly_the_missing_files_their_headers_and_the_writes() {
    let ctx = Ctx::new("dry-run-missing");
    let all = uploadable("shakapacker");
    // Put a third of the build in S3 already, byte for byte.
    let present: BTreeSet<String> = all
        .iter()
        .filter(|p| !p.ends_with(".js"))
        .step_by(3)
        .cloned()
        .collect();
    rt().block_on(async {
        for p in &present {
            ctx.put(
                &format!("packs/{p}"),
                &std::fs::read(fixture("shakapacker").join(p)).unwrap(),
            )
            .await;
        }
    });
    let run = ctx.run(&[
        "deploy",
        fixture("shakapacker").to_str().unwrap(),
        "--dry-run",
        "--json",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    let planned: BTreeSet<String> = doc["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["path"].as_str().unwrap().to_string())
        .collect();
    let missing: BTreeSet<String> = all.difference(&present).cloned().collect();
    assert_eq!(planned, missing);
    assert_eq!(
        doc["skip"]["files"].as_u64().unwrap() as usize,
        present.len()
    );
    assert_eq!(doc["conflicts"].as_array().unwrap().len(), 0);
    assert_eq!(doc["dry_run"], true);
    // Headers are part of the plan.
    let js = doc["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["path"].as_str().unwrap().ends_with(".js"))
        .unwrap();
    assert_eq!(js["content_type"], "text/javascript; charset=utf-8");
    assert_eq!(js["cache_control"], "public, max-age=31536000, immutable");
    // Manifest diff against nothing live: every entry is added.
    assert!(doc["manifest_diff"]["added"].as_array().unwrap().len() > 10);
    // The writes a deploy would make, the switch last.
    let steps: Vec<&str> = doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert_eq!(steps.len(), 4, "{steps:?}");
    assert!(
        steps[0].starts_with(&format!("S3 PUT {} objects", planned.len())),
        "{steps:?}"
    );
    assert!(steps[1].contains("(release record"), "{steps:?}");
    assert!(
        steps[2].starts_with(&format!("Redis EVAL register: SET {}", ctx.key("release:"))),
        "{steps:?}"
    );
    assert!(
        steps[3].contains(&format!("SET {} ", ctx.key("current")))
            && steps[3].contains(&format!("PUBLISH {}", ctx.key("events"))),
        "{steps:?}"
    );
}

#[test]
fn dry_run_flags_a_planted_conflict_with_exit_3() {
    let ctx = Ctx::new("dry-run-conflict");
    let victim = uploadable("shakapacker")
        .into_iter()
        .find(|p| p.ends_with(".css"))
        .unwrap();
    let original = std::fs::read(fixture("shakapacker").join(&victim)).unwrap();
    // Same size, other bytes: only the content can tell.
    let mut other = original.clone();
    other[0] ^= 0x20;
    rt().block_on(ctx.put(&format!("packs/{victim}"), &other));
    let before = rt().block_on(ctx.objects());

    let run = ctx.run(&[
        "deploy",
        fixture("shakapacker").to_str().unwrap(),
        "--dry-run",
    ]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stdout
            .contains(&format!("! s3://{}/packs/{victim}", ctx.bucket)),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr.contains("would be overwritten"),
        "{}",
        run.stderr
    );

    // Without --dry-run: the deploy stops before uploading anything.
    let run = ctx.run(&["deploy", fixture("shakapacker").to_str().unwrap()]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.error_line().contains(&format!("packs/{victim}")),
        "{}",
        run.stderr
    );
    assert!(run.error_line().contains("nothing was uploaded"));
    assert_eq!(
        before,
        rt().block_on(ctx.objects()),
        "a conflicting deploy uploaded something"
    );
    assert!(rt().block_on(ctx.redis_state()).is_empty());
}

#[test]
fn dry_run_human_output_shows_manifest_diff_against_live() {
    let ctx = Ctx::new("dry-run-diff");
    let run = ctx.run(&["deploy", fixture("flat").to_str().unwrap()]);
    assert_eq!(run.code, 0, "{run:?}");
    let run = ctx.run(&[
        "deploy",
        fixture("shakapacker").to_str().unwrap(),
        "--dry-run",
        "--verbose",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    // The flat build's keys (e.g. `js/841-js`) are not in the Shakapacker manifest.
    assert!(
        run.stdout
            .contains("  - js/841-js (was https://cdn.example.com/packs/js/841-"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("  + runtime.js.map -> https://cdn.example.com/packs/js/runtime-"),
        "{}",
        run.stdout
    );
    // Same files, so nothing to upload.
    assert!(run.stdout.contains("upload 0 files"), "{}", run.stdout);
}
