//! Redis where it really runs (issue 12, connection kinds): a Redis Cluster
//! of three masters reached through a node that does not own the app's
//! slot, with a slot migration and a master killed during a series of
//! deploys; a master behind Sentinel killed mid-series and demoted under a
//! waiting deploy; TLS with a CA file, a client certificate, and without
//! verification. Each series ends truthfully: every deploy exits 0 with
//! `current` switched, or 1 with nothing switched, and `MGET current
//! manifest` is a matching pair throughout. (Both readers on the cluster:
//! `consumers`.)

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::Value;

use crate::support::redis_topology::{
    cli, wait_until, Certs, Cluster, SentinelGroup, DATA_PASSWORD, SENTINEL_PASSWORD,
};
use crate::support::tight_prune;
use crate::support::{documented_acl, fixture, Ctx, Run};

pub(crate) const BUILDS: [&str; 2] = ["shakapacker", "flat"];

/// The cluster the non-destructive tests share: three masters, a replica each.
pub(crate) fn shared_cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| Cluster::start(3, 1))
}

/// Reads the app's keys as another client would, following the topology.
trait Reads: Sync {
    /// (current, manifest, the current release's record).
    fn pair(
        &self,
        app: &str,
    ) -> redis::RedisResult<(Option<String>, Option<String>, Option<String>)>;
}

struct ClusterReads(String);

impl Reads for ClusterReads {
    fn pair(
        &self,
        app: &str,
    ) -> redis::RedisResult<(Option<String>, Option<String>, Option<String>)> {
        let client = redis::cluster::ClusterClient::builder(vec![self.0.as_str()])
            .connection_timeout(Duration::from_secs(1))
            .response_timeout(Duration::from_secs(1))
            .build()?;
        let mut c = client.get_connection()?;
        let (cur, man): (Option<String>, Option<String>) = redis::cmd("MGET")
            .arg(format!("cutover:{{{app}}}:current"))
            .arg(format!("cutover:{{{app}}}:manifest"))
            .query(&mut c)?;
        let record = match &cur {
            Some(id) => redis::cmd("GET")
                .arg(format!("cutover:{{{app}}}:release:{id}"))
                .query(&mut c)?,
            None => None,
        };
        Ok((cur, man, record))
    }
}

struct SentinelReads<'a>(&'a SentinelGroup);

impl Reads for SentinelReads<'_> {
    fn pair(
        &self,
        app: &str,
    ) -> redis::RedisResult<(Option<String>, Option<String>, Option<String>)> {
        let port = self.0.master_port().ok_or_else(|| {
            redis::RedisError::from((redis::ErrorKind::Io, "the Sentinels disagree"))
        })?;
        let client = redis::Client::open(format!("redis://:{DATA_PASSWORD}@127.0.0.1:{port}"))?;
        let mut c = client.get_connection_with_timeout(Duration::from_secs(1))?;
        let (cur, man): (Option<String>, Option<String>) = redis::cmd("MGET")
            .arg(format!("cutover:{{{app}}}:current"))
            .arg(format!("cutover:{{{app}}}:manifest"))
            .query(&mut c)?;
        let record = match &cur {
            Some(id) => redis::cmd("GET")
                .arg(format!("cutover:{{{app}}}:release:{id}"))
                .query(&mut c)?,
            None => None,
        };
        Ok((cur, man, record))
    }
}

/// `current` as another client reads it now, retried through a failover.
fn current(reads: &dyn Reads, app: &str) -> Option<String> {
    let mut last = None;
    for _ in 0..100 {
        match reads.pair(app) {
            Ok((cur, _, _)) => return cur,
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("cannot read current: {last:?}")
}

/// A matching pair: the manifest is the one of the release `current` names.
#[track_caller]
fn assert_consistent(pair: &(Option<String>, Option<String>, Option<String>)) {
    let (cur, man, record) = pair;
    let (Some(cur), Some(man)) = (cur, man) else {
        assert!(cur.is_none() && man.is_none(), "torn pair: {pair:?}");
        return;
    };
    let record: Value =
        serde_json::from_str(record.as_deref().expect("the record of current")).unwrap();
    let man: Value = serde_json::from_str(man).unwrap();
    assert_eq!(record["manifest"], man, "the live manifest is not {cur}'s");
}

/// Polls `MGET current manifest` until stopped, asserting every pair it
/// reads matches; returns how many it checked.
fn watch(
    reads: &'static dyn Reads,
    app: String,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut checked = 0;
        while !stop.load(Ordering::SeqCst) {
            if let Ok(pair) = reads.pair(&app) {
                assert_consistent(&pair);
                checked += 1;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        checked
    })
}

/// Deploy the two builds in turn `n` times while `disrupt` runs (it starts
/// once `history_before` activations are recorded). Each deploy must exit 0
/// with `current` switched to it, or 1 with `current` unchanged and a
/// message that says so. Returns the exit codes.
fn truthful_series(
    ctx: &Ctx,
    env: &[(&str, &str)],
    reads: &'static dyn Reads,
    n: usize,
    disrupt: impl FnOnce() + Send + 'static,
    disrupted: &AtomicBool,
) -> Vec<i32> {
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch(reads, ctx.app.clone(), stop.clone());
    let mut disrupt = Some(disrupt);
    let mut disruptor = None;
    let mut live = current(reads, &ctx.app);
    let mut codes = Vec::new();
    for i in 0..n {
        if i == 2 {
            // Mid-series: the next deploys run while it happens.
            disruptor = Some(std::thread::spawn(disrupt.take().unwrap()));
        }
        let build = fixture(BUILDS[i % 2]);
        let run = ctx.run_with(&["deploy", build.to_str().unwrap(), "--json"], env);
        match run.code {
            0 => {
                let id = run.json()["release"]["id"].as_str().unwrap().to_string();
                assert_eq!(
                    current(reads, &ctx.app).as_deref(),
                    Some(id.as_str()),
                    "deploy {i} exited 0: {run:?}"
                );
                live = Some(id);
            }
            1 => {
                let line = run.error_line();
                assert!(
                    line.contains("nothing was switched") || line.contains("did NOT apply"),
                    "deploy {i} exited 1 without saying nothing was switched: {run:?}"
                );
                assert_eq!(
                    current(reads, &ctx.app),
                    live,
                    "deploy {i} exited 1 but switched: {run:?}"
                );
            }
            _ => panic!("deploy {i} neither switched nor failed cleanly: {run:?}"),
        }
        codes.push(run.code);
    }
    if let Some(d) = disruptor {
        d.join().unwrap();
    }
    assert!(
        disrupted.load(Ordering::SeqCst),
        "the disruption did not happen"
    );
    // After it, deploys work again.
    let run = ctx.run_with(
        &["deploy", fixture(BUILDS[n % 2]).to_str().unwrap(), "--json"],
        env,
    );
    assert_eq!(run.code, 0, "a deploy after the disruption: {run:?}");
    stop.store(true, Ordering::SeqCst);
    let checked = watcher.join().unwrap();
    assert!(checked > 0, "the watcher never read a pair");
    assert_consistent(&reads.pair(&ctx.app).unwrap());
    codes
}

pub(crate) fn id(run: &Run) -> String {
    run.json()["release"]["id"].as_str().unwrap().to_string()
}

#[test]
fn a_three_master_cluster_serves_the_contract_through_a_seed_that_does_not_own_the_slot() {
    let cluster = shared_cluster();
    let ctx = Ctx::new("cluster3");
    let slot = cluster.slot_of(&ctx.key("current"));
    let owner = cluster.owner(slot);
    let seed = cluster.other_master(slot);
    assert_ne!(seed.port, owner.port);
    let url = format!("redis://127.0.0.1:{}", seed.port);
    let env = [
        ("REDIS_URL", url.as_str()),
        ("CUTOVER_REDIS_CLUSTER", "true"),
    ];

    // Without cluster mode, the seed's MOVED names the fix.
    ctx.run_with(&["status"], &[("REDIS_URL", url.as_str())])
        .expect(2)
        .error_has(&["Redis Cluster node", "redis_cluster"]);

    // A subscriber on the third master hears classic PUBLISH.
    let third = cluster
        .topology()
        .into_iter()
        .find(|n| n.master && n.id != owner.id && n.id != seed.id)
        .unwrap();
    let mut sub = std::process::Command::new("redis-cli")
        .args([
            "-p",
            &third.port.to_string(),
            "subscribe",
            &ctx.key("events"),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(sub.stdout.take().unwrap()).lines();
    for _ in 0..3 {
        lines.next().unwrap().unwrap(); // subscribe, channel, 1
    }

    let a = ctx.run_with(
        &["deploy", fixture(BUILDS[0]).to_str().unwrap(), "--json"],
        &env,
    );
    a.expect(0);
    let heard: Value = loop {
        let line = lines.next().unwrap().unwrap();
        if line.starts_with('{') {
            break serde_json::from_str(&line).unwrap();
        }
    };
    assert_eq!(heard["release"], id(&a).as_str());
    let _ = sub.kill();
    let _ = sub.wait();

    let b = ctx.run_with(
        &["deploy", fixture(BUILDS[1]).to_str().unwrap(), "--json"],
        &env,
    );
    b.expect(0);
    let on_owner = |key: &str| {
        cli(owner.port, None, &["get", &ctx.key(key)])
            .trim()
            .to_string()
    };
    assert_eq!(on_owner("current"), id(&b));
    let status = ctx.run_with(&["status", "--json"], &env);
    status.expect(0);
    assert_eq!(status.json()["current"], id(&b).as_str());
    let releases = ctx.run_with(&["releases", "--json"], &env);
    assert_eq!(
        releases.json()["releases"].as_array().unwrap().len(),
        2,
        "{releases:?}"
    );

    ctx.run_with(&["rollback"], &env).expect(0);
    assert_eq!(on_owner("current"), id(&a));
    assert!(on_owner("pin").contains(&id(&a)));
    ctx.run_with(&["activate", &id(&b), "--unpin"], &env)
        .expect(0);
    assert_eq!(on_owner("current"), id(&b));
    let history = ctx.run_with(&["history", "--json"], &env);
    history.expect(0).stdout_has(&["rollback", "activate"]);

    // The lock lives in the app's slot: a holder makes a deploy wait, then refuse.
    cli(
        owner.port,
        None,
        &["set", &ctx.key("lock"), "someone-else", "PX", "60000"],
    );
    ctx.run_with(
        &["deploy", fixture(BUILDS[0]).to_str().unwrap()],
        &[env[0], env[1], ("CUTOVER_LOCK_WAIT", "1")],
    )
    .expect(3)
    .error_has(&["someone-else"]);
    ctx.run_with(&["unlock", "--force"], &env).expect(0);
    assert_eq!(on_owner("lock"), "");
    assert_eq!(on_owner("current"), id(&b));

    // Prune's atomic MULTI goes to the slot's master too.
    ctx.run_with(&tight_prune("1"), &env).expect(0);
}

/// `ACL SETUSER` with `words` on every node of the cluster (ACLs are per
/// node and not replicated).
fn acl_on_every_node(cluster: &Cluster, words: &[String]) {
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    for node in cluster.live() {
        assert_eq!(cli(node.port, None, &words).trim(), "OK", "{words:?}");
    }
}

/// What a Redis Cluster adds to the minimal ACL (docs/redis.md), on every node.
const CLUSTER_ACL_ADDITIONS: [&str; 1] = ["+cluster|slots"];
/// What Sentinel adds to the minimal ACL (docs/redis.md), on the master and
/// its replicas.
const SENTINEL_ACL_ADDITIONS: [&str; 1] = ["+role"];

/// The doc that has the minimal ACL names each topology's addition, the
/// ones the tests below grant.
#[test]
fn readme_docs_name_each_topologys_acl_addition() {
    let doc = std::fs::read_to_string(crate::support::repo_root().join("docs/redis.md")).unwrap();
    assert!(
        doc.contains(&format!(
            "The ACL user needs `{}` besides the [minimal ACL](#minimal-acl)",
            CLUSTER_ACL_ADDITIONS[0]
        )),
        "docs/redis.md names the cluster's addition"
    );
    assert!(
        doc.contains(&format!(
            "The ACL user needs\n`{}` besides the [minimal ACL](#minimal-acl)",
            SENTINEL_ACL_ADDITIONS[0]
        )),
        "docs/redis.md names Sentinel's addition"
    );
}

#[test]
fn the_documented_acl_plus_cluster_slots_is_enough_on_a_cluster_and_needed() {
    let cluster = shared_cluster();
    let ctx = Ctx::new("cluster-acl");
    let seed = cluster.other_master(cluster.slot_of(&ctx.key("current")));
    let deploy = format!("deploy-{}", ctx.app);
    let bare = format!("bare-{}", ctx.app);
    acl_on_every_node(
        cluster,
        &documented_acl(&deploy, "pw", &ctx.app, &CLUSTER_ACL_ADDITIONS),
    );
    acl_on_every_node(cluster, &documented_acl(&bare, "pw", &ctx.app, &[]));
    let url = |user: &str| format!("redis://{user}:pw@127.0.0.1:{}", seed.port);
    let as_user = |user: &str, args: &[&str]| {
        ctx.cutover(args)
            .env("REDIS_URL", &url(user))
            .env("CUTOVER_REDIS_CLUSTER", "true")
            .run()
    };

    // Without the addition: exit 2 naming what to grant, nothing written.
    as_user(&bare, &["deploy", fixture(BUILDS[0]).to_str().unwrap()])
        .expect(2)
        .error_has(&["may not run", "cluster", "Minimal ACL"]);
    let owner = cluster.owner(cluster.slot_of(&ctx.key("current")));
    assert_eq!(
        cli(owner.port, None, &["exists", &ctx.key("current")]).trim(),
        "0"
    );

    // With it: the switching commands and the reads.
    let a = as_user(
        &deploy,
        &["deploy", fixture(BUILDS[0]).to_str().unwrap(), "--json"],
    );
    a.expect(0);
    let b = as_user(
        &deploy,
        &["deploy", fixture(BUILDS[1]).to_str().unwrap(), "--json"],
    );
    b.expect(0);
    let on_owner = |key: &str| {
        cli(owner.port, None, &["get", &ctx.key(key)])
            .trim()
            .to_string()
    };
    assert_eq!(on_owner("current"), id(&b));
    as_user(&deploy, &["rollback"]).expect(0);
    assert_eq!(on_owner("current"), id(&a));
    as_user(&deploy, &["activate", &id(&b), "--unpin"]).expect(0);
    assert_eq!(on_owner("current"), id(&b));
    for read in [["status"], ["releases"], ["history"]] {
        as_user(&deploy, &read).expect(0);
    }
    cli(owner.port, None, &["set", &ctx.key("lock"), "ghost"]);
    as_user(&deploy, &["unlock", "--force"]).expect(0);
    assert_eq!(on_owner("lock"), "");
}

#[test]
fn a_slot_migration_during_a_series_of_deploys_ends_truthfully() {
    let cluster: &'static Cluster = Box::leak(Box::new(Cluster::start(3, 0)));
    let ctx = Ctx::new("cluster-migrate");
    let slot = cluster.slot_of(&ctx.key("current"));
    let seed = cluster.other_master(slot);
    let url = format!("redis://127.0.0.1:{}", seed.port);
    let env = [
        ("REDIS_URL", url.as_str()),
        ("CUTOVER_REDIS_CLUSTER", "true"),
    ];
    let reads: &'static dyn Reads = Box::leak(Box::new(ClusterReads(url.clone())));
    ctx.run_with(&["deploy", fixture(BUILDS[1]).to_str().unwrap()], &env)
        .expect(0);

    // Half-way through a migration, a key already moved is answered with ASK,
    // which the cluster client follows.
    let owner = cluster.owner(slot);
    let third = cluster
        .topology()
        .into_iter()
        .find(|n| n.master && n.id != owner.id && n.id != seed.id)
        .unwrap();
    let s = slot.to_string();
    cli(
        third.port,
        None,
        &["cluster", "setslot", &s, "importing", &owner.id],
    );
    cli(
        owner.port,
        None,
        &["cluster", "setslot", &s, "migrating", &third.id],
    );
    let history_key = ctx.key("history");
    let tp = third.port.to_string();
    let out = cli(
        owner.port,
        None,
        &["migrate", "127.0.0.1", &tp, &history_key, "0", "5000"],
    );
    assert!(out.contains("OK"), "{out}");
    let ask = cli(owner.port, None, &["exists", &history_key]);
    assert!(
        ask.starts_with("ASK "),
        "the old owner should redirect: {ask}"
    );
    // (A single-key read: multi-key ones, such as `MGET current manifest
    // pin`, get TRYAGAIN from Redis until the slot has moved.)
    let history = ctx.run_with(&["history", "--json"], &env);
    history.expect(0);
    assert_eq!(
        history.json()["events"].as_array().unwrap().len(),
        1,
        "{history:?}"
    );
    cluster.migrate_slot(slot, &third);

    let before = cluster.owner(slot);
    assert_eq!(before.id, third.id);
    // To the master that is also the seed: the seed then owns the slot mid-series.
    let to = seed.clone();
    let moved = Arc::new(AtomicBool::new(false));
    let flag = moved.clone();
    let codes = truthful_series(
        &ctx,
        &env,
        reads,
        6,
        move || {
            cluster.migrate_slot(slot, &to);
            flag.store(true, Ordering::SeqCst);
        },
        &moved,
    );
    assert_ne!(cluster.owner(slot).id, before.id, "the slot did not move");
    eprintln!("slot migration series: exit codes {codes:?}");
}

#[test]
fn a_master_killed_during_a_series_of_deploys_ends_truthfully_on_a_cluster() {
    let cluster: &'static Cluster = Box::leak(Box::new(Cluster::start(3, 1)));
    let ctx = Ctx::new("cluster-failover");
    let slot = cluster.slot_of(&ctx.key("current"));
    let seed = cluster.other_master(slot);
    let url = format!("redis://127.0.0.1:{}", seed.port);
    let env = [
        ("REDIS_URL", url.as_str()),
        ("CUTOVER_REDIS_CLUSTER", "true"),
    ];
    let reads: &'static dyn Reads = Box::leak(Box::new(ClusterReads(url.clone())));
    ctx.run_with(&["deploy", fixture(BUILDS[1]).to_str().unwrap()], &env)
        .expect(0);

    let owner = cluster.owner(slot);
    let replica = cluster
        .replicas_of(&owner)
        .pop()
        .expect("a replica of the slot's master");
    let victim = cluster
        .nodes
        .iter()
        .find(|n| n.port == owner.port)
        .unwrap()
        .clone();
    let killed = Arc::new(AtomicBool::new(false));
    let flag = killed.clone();
    let codes = truthful_series(
        &ctx,
        &env,
        reads,
        6,
        move || {
            victim.kill9();
            flag.store(true, Ordering::SeqCst);
            wait_until(
                Duration::from_secs(30),
                "the replica to take over the slot",
                || cluster.owner_port(slot) == Some(replica.port),
            );
        },
        &killed,
    );
    eprintln!("cluster failover series: exit codes {codes:?}");
}

#[test]
fn sentinel_finds_the_master_and_follows_failovers() {
    let group: &'static SentinelGroup = Box::leak(Box::new(SentinelGroup::start()));
    let ctx = Ctx::new("sentinel");
    let url = group.url();
    let env = [
        ("REDIS_URL", url.as_str()),
        ("CUTOVER_REDIS_SENTINEL_PASSWORD", SENTINEL_PASSWORD),
    ];
    let reads: &'static dyn Reads = Box::leak(Box::new(SentinelReads(group)));

    // The contract through Sentinel.
    let a = ctx.run_with(
        &["deploy", fixture(BUILDS[0]).to_str().unwrap(), "--json"],
        &env,
    );
    a.expect(0);
    let b = ctx.run_with(
        &["deploy", fixture(BUILDS[1]).to_str().unwrap(), "--json"],
        &env,
    );
    b.expect(0);
    assert_eq!(current(reads, &ctx.app), Some(id(&b)));
    ctx.run_with(&["rollback"], &env).expect(0);
    assert_eq!(current(reads, &ctx.app), Some(id(&a)));
    ctx.run_with(&["activate", &id(&b), "--unpin"], &env)
        .expect(0);
    let status = ctx.run_with(&["status", "--json"], &env);
    assert_eq!(status.json()["current"], id(&b).as_str(), "{status:?}");
    assert!(!status.stderr.contains(DATA_PASSWORD), "{status:?}");

    // The documented ACL plus `+role` (on the master and the replica: ACLs
    // are not replicated) is enough behind Sentinel; without `+role`, exit 2.
    for (user, extra) in [("deploy", &SENTINEL_ACL_ADDITIONS[..]), ("bare", &[][..])] {
        let words = documented_acl(user, "pw", &ctx.app, extra);
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        for node in [&group.master, &group.replica] {
            assert_eq!(cli(node.port, Some(DATA_PASSWORD), &words).trim(), "OK");
        }
    }
    let as_user = |user: &str| url.replace(&format!(":{DATA_PASSWORD}@"), &format!("{user}:pw@"));
    ctx.run_with(
        &["rollback"],
        &[("REDIS_URL", as_user("bare").as_str()), env[1]],
    )
    .expect(2)
    .error_has(&["may not run", "role", "Minimal ACL"]);
    assert_eq!(current(reads, &ctx.app), Some(id(&b)));
    let deploy_env = [
        ("REDIS_URL", as_user("deploy")),
        (env[1].0, env[1].1.to_string()),
    ];
    let deploy_env: Vec<(&str, &str)> = deploy_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    ctx.run_with(&["rollback"], &deploy_env).expect(0);
    assert_eq!(current(reads, &ctx.app), Some(id(&a)));
    ctx.run_with(&["activate", &id(&b), "--unpin"], &deploy_env)
        .expect(0);
    assert_eq!(current(reads, &ctx.app), Some(id(&b)));
    ctx.run_with(&["status"], &deploy_env).expect(0);

    // The Ruby reader through Sentinel (the redis gem's own support), kept
    // running through both failovers below.
    let sentinels: Vec<Value> = group
        .sentinels
        .iter()
        .map(|s| serde_json::json!({"host": "127.0.0.1", "port": s.port, "password": SENTINEL_PASSWORD}))
        .collect();
    let arg = serde_json::json!({
        "url": format!("redis://:{DATA_PASSWORD}@{}", crate::support::redis_topology::MASTER_NAME),
        "sentinels": sentinels,
    });
    let mut ruby = crate::support::readers::ruby_reader(&ctx.app, "sentinel", &arg.to_string());
    assert_eq!(ruby.answer()["release"], id(&b).as_str());

    // Wrong settings name their fix, exit 2.
    let wrong_name = url.replace("/mymaster", "/nosuchmaster");
    ctx.run_with(&["status"], &[("REDIS_URL", wrong_name.as_str()), env[1]])
        .expect(2)
        .error_has(&["monitor no master named \"nosuchmaster\""]);
    ctx.run_with(
        &["status"],
        &[env[0], ("CUTOVER_REDIS_SENTINEL_PASSWORD", "wrong")],
    )
    .expect(2)
    .error_has(&["rejected the credentials", "redis_sentinel_password"]);

    // A deploy waiting for the lock when a failover demotes its master (the
    // Sentinels then drop its connections, or it answers READONLY): exit 1,
    // nothing switched.
    let first_master = group.master_port().unwrap();
    cli(
        first_master,
        Some(DATA_PASSWORD),
        &["set", &ctx.key("lock"), "someone-else", "PX", "60000"],
    );
    let mut waiting = ctx.command();
    waiting
        .args(["deploy", fixture(BUILDS[0]).to_str().unwrap()])
        .env("REDIS_URL", &url)
        .env("CUTOVER_REDIS_SENTINEL_PASSWORD", SENTINEL_PASSWORD)
        .stderr(Stdio::piped())
        .stdout(Stdio::null());
    let mut child = waiting.spawn().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    while !seen.contains("waiting for the deploy lock") {
        let line = stderr.next().expect("the deploy said it waits").unwrap();
        seen.push_str(&line);
        seen.push('\n');
    }
    cli(
        group.sentinels[0].port,
        Some(SENTINEL_PASSWORD),
        &["sentinel", "failover", "mymaster"],
    );
    wait_until(
        Duration::from_secs(30),
        "the Sentinels to name the new master",
        || group.master_port() == Some(group.replica.port),
    );
    let rest: Vec<String> = stderr.map(|l| l.unwrap()).collect();
    let status = child.wait().unwrap();
    let errors: Vec<&String> = rest.iter().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(status.code(), Some(1), "{seen}{rest:?}");
    assert!(
        errors.len() == 1
            && errors[0].contains("nothing was switched: ")
            && errors[0].contains("run again"),
        "{rest:?}"
    );
    assert_eq!(current(reads, &ctx.app), Some(id(&b)));
    // The demoted master named directly, without Sentinel: a configuration error.
    let direct = format!("redis://:{DATA_PASSWORD}@127.0.0.1:{first_master}");
    wait_until(
        Duration::from_secs(30),
        "the old master to become a replica",
        || cli(first_master, Some(DATA_PASSWORD), &["role"]).starts_with("slave"),
    );
    ctx.run_with(&["pin"], &[("REDIS_URL", direct.as_str())])
        .expect(2)
        .error_has(&["read-only replica", "point REDIS_URL at the primary"]);
    cli(
        group.replica.port,
        Some(DATA_PASSWORD),
        &["del", &ctx.key("lock")],
    );

    // kill -9 of the master mid-series: each deploy completes on the new
    // master or exits 1; the pair stays consistent throughout.
    let victim_port = group.master_port().unwrap();
    let victim = if victim_port == group.master.port {
        group.master.clone()
    } else {
        group.replica.clone()
    };
    let survivor = if victim_port == group.master.port {
        group.replica.port
    } else {
        group.master.port
    };
    wait_until(Duration::from_secs(30), "the new replica to sync", || {
        cli(survivor, Some(DATA_PASSWORD), &["info", "replication"])
            .contains("master_link_status:up")
    });
    let killed = Arc::new(AtomicBool::new(false));
    let flag = killed.clone();
    let codes = truthful_series(
        &ctx,
        &env,
        reads,
        6,
        move || {
            victim.kill9();
            flag.store(true, Ordering::SeqCst);
            wait_until(
                Duration::from_secs(60),
                "Sentinel to promote the replica",
                || group.master_port() == Some(survivor),
            );
        },
        &killed,
    );
    eprintln!("sentinel failover series: exit codes {codes:?}");
    let last = current(reads, &ctx.app).unwrap();
    let (now, took) = ruby.follow(&last);
    assert_eq!(
        now["release"],
        last.as_str(),
        "the Ruby reader did not follow the failover: {now}"
    );
    eprintln!("ruby reader followed Sentinel failovers, then the last switch, in {took:?}");
    ruby.finish();
}

#[test]
fn tls_with_a_ca_file_a_client_certificate_or_no_verification() {
    let ctx = Ctx::new("redis-tls-options");
    let certs = Certs::make(&ctx.work.path().join("tls"));
    let plain = certs.start_redis(false);
    let mtls = certs.start_redis(true);
    let build = fixture("flat");
    let deploy = ["deploy", build.to_str().unwrap(), "--json"];
    let url = format!("rediss://localhost:{plain}");
    let (ca, other_ca) = (certs.path("ca.pem"), certs.path("other-ca.pem"));

    // The CA file alone is trusted.
    let run = ctx.run_with(
        &deploy,
        &[("REDIS_URL", &url), ("CUTOVER_REDIS_CA_FILE", &ca)],
    );
    run.expect(0);
    let live = id(&run);
    ctx.run_with(
        &["status", "--json"],
        &[("REDIS_URL", &url), ("CUTOVER_REDIS_CA_FILE", &ca)],
    )
    .expect(0)
    .stdout_has(&[&live]);
    // A CA that did not sign the server's certificate, or none: exit 2, the fix named.
    ctx.run_with(
        &["status"],
        &[("REDIS_URL", &url), ("CUTOVER_REDIS_CA_FILE", &other_ca)],
    )
    .expect(2)
    .error_has(&["over TLS", "redis_ca_file"]);
    ctx.run_with(&["status"], &[("REDIS_URL", &url)])
        .expect(2)
        .error_has(&["redis_ca_file", "redis_tls_insecure"]);
    // A missing file: exit 2 before anything connects, nothing written.
    let empty = crate::support::rt().block_on(ctx.objects());
    ctx.run_with(
        &["deploy", fixture("shakapacker").to_str().unwrap()],
        &[
            ("REDIS_URL", &url),
            ("CUTOVER_REDIS_CA_FILE", "/nonexistent/ca.pem"),
        ],
    )
    .expect(2)
    .error_has(&[
        "redis_ca_file",
        "/nonexistent/ca.pem",
        "CUTOVER_REDIS_CA_FILE",
    ]);
    assert_eq!(crate::support::rt().block_on(ctx.objects()), empty);
    // TLS settings on a plain URL: exit 2.
    ctx.run_with(
        &["status"],
        &[
            ("REDIS_URL", "redis://127.0.0.1:1"),
            ("CUTOVER_REDIS_CA_FILE", &ca),
        ],
    )
    .expect(2)
    .error_has(&["applies to TLS connections only", "rediss://"]);

    // No verification: by the key or the URL's #insecure, warned every run.
    for (u, insecure) in [
        (format!("rediss://127.0.0.1:{plain}"), "true"),
        (format!("rediss://127.0.0.1:{plain}/#insecure"), ""),
    ] {
        let run = ctx.run_with(
            &["status", "--json"],
            &[("REDIS_URL", &u), ("CUTOVER_REDIS_TLS_INSECURE", insecure)],
        );
        run.expect(0).stdout_has(&[&live]);
        assert!(
            run.stderr
                .contains("warning: Redis TLS certificate verification is OFF"),
            "{run:?}"
        );
    }

    // mTLS: the client certificate and key are sent; without them, exit 2 naming them.
    let murl = format!("rediss://localhost:{mtls}");
    let (cert, key) = (certs.path("client.pem"), certs.path("client.key"));
    ctx.run_with(
        &deploy,
        &[
            ("REDIS_URL", &murl),
            ("CUTOVER_REDIS_CA_FILE", &ca),
            ("CUTOVER_REDIS_TLS_CERT_FILE", &cert),
            ("CUTOVER_REDIS_TLS_KEY_FILE", &key),
        ],
    )
    .expect(0);
    ctx.run_with(
        &["status"],
        &[("REDIS_URL", &murl), ("CUTOVER_REDIS_CA_FILE", &ca)],
    )
    .expect(2)
    .error_has(&[
        "client certificate",
        "redis_tls_cert_file",
        "redis_tls_key_file",
    ]);
    ctx.run_with(
        &["status"],
        &[
            ("REDIS_URL", &murl),
            ("CUTOVER_REDIS_CA_FILE", &ca),
            ("CUTOVER_REDIS_TLS_CERT_FILE", &cert),
        ],
    )
    .expect(2)
    .error_has(&["needs redis_tls_key_file"]);
    // A key that is not the certificate's.
    ctx.run_with(
        &["status"],
        &[
            ("REDIS_URL", &murl),
            ("CUTOVER_REDIS_CA_FILE", &ca),
            ("CUTOVER_REDIS_TLS_CERT_FILE", &cert),
            ("CUTOVER_REDIS_TLS_KEY_FILE", &certs.path("server.key")),
        ],
    )
    .expect(2)
    .error_has(&["not the private key of redis_tls_cert_file"]);
}
