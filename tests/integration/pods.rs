//! Several Redis targets (pods) switched together: every target serves the
//! new release, or the command says which serves what (exit 5) and a rerun
//! converges them. Each test starts its own redis-servers.

use std::process::Command;

use serde_json::Value;

use crate::support::ctx::redis_at;
use crate::support::redis_proxy::{start_proxy, Drop};
use crate::support::servers::start_redis_at;
use crate::support::{fixture, rt, start_redis, Ctx};

/// What one Redis serves: (current, manifest), read together (MGET), and
/// checked to be consistent: the manifest is the one of the release named
/// by current.
fn served(ctx: &Ctx, port: u16) -> Option<String> {
    rt().block_on(async {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
        let mut con = client.get_multiplexed_async_connection().await.unwrap();
        let (current, manifest): (Option<String>, Option<String>) = redis::cmd("MGET")
            .arg(ctx.key("current"))
            .arg(ctx.key("manifest"))
            .query_async(&mut con)
            .await
            .unwrap();
        let id = current?;
        let record: String = redis::cmd("GET")
            .arg(ctx.key(&format!("release:{id}")))
            .query_async(&mut con)
            .await
            .unwrap();
        let record: Value = serde_json::from_str(&record).unwrap();
        let manifest: Value =
            serde_json::from_str(&manifest.expect("a manifest with current")).unwrap();
        assert_eq!(
            manifest, record["manifest"],
            "port {port}: current and manifest disagree"
        );
        Some(id)
    })
}

fn urls(ports: &[u16]) -> String {
    ports
        .iter()
        .map(|p| format!("redis://127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn deploy_id(run: &crate::support::Run) -> String {
    run.json()["release"]["id"].as_str().unwrap().to_string()
}

#[test]
fn pods_switch_together_and_a_target_that_fails_mid_switch_is_reported_then_converged() {
    let ctx = Ctx::new("pods-split");
    let pods = [start_redis(&[]), start_redis(&[]), start_redis(&[])];
    let all = urls(&pods);
    let env = [("REDIS_URL", all.as_str())];

    // The dry run says the switch runs on each target.
    let dry = ctx.run_with(
        &[
            "deploy",
            fixture("shakapacker").to_str().unwrap(),
            "--dry-run",
        ],
        &env,
    );
    dry.expect(0).stdout_has(&[
        "on 3 Redis targets at once",
        "(on each of the 3 Redis targets)",
    ]);

    let a = ctx.run_with(
        &["deploy", fixture("shakapacker").to_str().unwrap(), "--json"],
        &env,
    );
    a.expect(0);
    let a = deploy_id(&a);
    for p in pods {
        assert_eq!(served(&ctx, p).as_deref(), Some(a.as_str()), "pod {p}");
    }

    // The third pod's connection dies as the switch is sent: it never sees it.
    let (proxy, fired) = start_proxy(pods[2], Drop::BeforeEval);
    let via_proxy = urls(&[pods[0], pods[1], proxy]);
    let run = ctx.run_with(
        &["deploy", fixture("flat").to_str().unwrap()],
        &[("REDIS_URL", via_proxy.as_str())],
    );
    assert!(fired.load(std::sync::atomic::Ordering::SeqCst));
    run.expect(5).error_has(&[
        "the Redis targets are split: 2 of 3 switched",
        &format!("redis://127.0.0.1:{proxy} NOT switched, was serving {a}"),
        "cutover activate",
    ]);
    let b = served(&ctx, pods[0]).unwrap();
    assert_ne!(a, b);
    assert_eq!(served(&ctx, pods[1]).as_deref(), Some(b.as_str()));
    assert_eq!(served(&ctx, pods[2]).as_deref(), Some(a.as_str()));

    // status shows the split, per target.
    let status = ctx.run_with(&["status", "--json"], &env);
    status.expect(0);
    let doc = status.json();
    let targets: Vec<(String, String)> = doc["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["target"].as_str().unwrap().to_string(),
                t["current"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        targets,
        [
            (format!("redis://127.0.0.1:{}", pods[0]), b.clone()),
            (format!("redis://127.0.0.1:{}", pods[1]), b.clone()),
            (format!("redis://127.0.0.1:{}", pods[2]), a.clone()),
        ]
    );
    assert!(
        doc["problems"][0].as_str().unwrap().contains("split"),
        "{doc}"
    );
    ctx.run_with(&["status"], &env)
        .expect(0)
        .stdout_has(&["PROBLEM: the Redis targets are split"]);
    let releases = ctx.run_with(&["releases", "--json"], &env).json();
    let row = |id: &str| {
        releases["releases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(row(&b)["live_on"].as_array().unwrap().len(), 2);
    assert_eq!(row(&a)["live_on"].as_array().unwrap().len(), 1);

    // Deploying the same build again converges: only the third pod switches.
    ctx.run_with(&["deploy", fixture("flat").to_str().unwrap()], &env)
        .expect(0);
    for p in pods {
        assert_eq!(served(&ctx, p).as_deref(), Some(b.as_str()), "pod {p}");
    }
    let history = ctx.run_with(&["history", "--json"], &env).json();
    let per_target: Vec<usize> = history["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["events"].as_array().unwrap().len())
        .collect();
    // Pods 1 and 2 switched once to each release; pod 3 to a, then to b.
    assert_eq!(per_target, [2, 2, 2], "{history}");
    assert_eq!(history["targets"][2]["events"][0]["previous"], a.as_str());

    // A rollback moves every pod back, and pins each.
    ctx.run_with(&["rollback"], &env).expect(0);
    for p in pods {
        assert_eq!(served(&ctx, p).as_deref(), Some(a.as_str()), "pod {p}");
    }
    let status = ctx.run_with(&["status", "--json"], &env).json();
    assert_eq!(status["pin"]["release"], a.as_str());
    assert!(
        status["problems"].as_array().unwrap().is_empty(),
        "{status}"
    );
}

#[test]
fn a_pod_that_is_down_stops_the_deploy_and_a_restarted_empty_one_is_converged() {
    let ctx = Ctx::new("pods-down");
    let pods = [start_redis(&[]), start_redis(&[])];
    let all = urls(&pods);
    let env = [("REDIS_URL", all.as_str())];
    let a = ctx.run_with(
        &["deploy", fixture("shakapacker").to_str().unwrap(), "--json"],
        &env,
    );
    a.expect(0);
    let a = deploy_id(&a);

    // The second pod goes away: nothing is switched anywhere, and it is named.
    Command::new("redis-cli")
        .args(["-p", &pods[1].to_string(), "shutdown", "nosave"])
        .output()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", pods[1])).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "redis-server did not stop"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let before = ctx.world();
    ctx.run_with(&["deploy", fixture("flat").to_str().unwrap()], &env)
        .expect(1)
        .error_has(&[&format!("Redis at redis://127.0.0.1:{}", pods[1])]);
    assert_eq!(served(&ctx, pods[0]).as_deref(), Some(a.as_str()));
    ctx.assert_unchanged(&before, "a deploy with a pod down");

    // It comes back empty (no persistence): the next deploy registers and
    // switches it too, and takes and gives back a lock on each pod.
    start_redis_at(pods[1], &[]);
    assert_eq!(served(&ctx, pods[1]), None);
    let b = ctx.run_with(
        &["deploy", fixture("flat").to_str().unwrap(), "--json"],
        &env,
    );
    b.expect(0);
    let b = deploy_id(&b);
    for p in pods {
        assert_eq!(served(&ctx, p).as_deref(), Some(b.as_str()), "pod {p}");
        let lock: Option<String> =
            redis::from_redis_value(redis_at(p, &["GET", &ctx.key("lock")])).unwrap();
        assert_eq!(lock, None, "pod {p} kept a lock");
    }
    // Activating the first release brings both back, the restarted pod
    // included (its record comes from S3).
    ctx.run_with(&["activate", &a], &env).expect(0);
    for p in pods {
        assert_eq!(served(&ctx, p).as_deref(), Some(a.as_str()), "pod {p}");
    }
}

/// With several targets, `status`, `verify` and `doctor` check each one's
/// signature, not only the first's: a target whose signature is not the
/// record's is named, and `activate` writes the record's there.
#[test]
fn status_verify_and_doctor_name_a_target_whose_signature_is_not_the_records() {
    let ctx = Ctx::new("pods-signature");
    let ports = [start_redis(&[]), start_redis(&[])];
    let build = fixture("flat");
    let run = ctx.run_with(
        &["deploy", build.to_str().unwrap(), "--json"],
        &[("REDIS_URL", &urls(&ports))],
    );
    run.expect(0);
    let id = deploy_id(&run);
    let status = |ctx: &Ctx| {
        let run = ctx.run_with(&["status", "--json"], &[("REDIS_URL", &urls(&ports))]);
        run.expect(0);
        run.json()["problems"].clone()
    };
    assert_eq!(status(&ctx), serde_json::json!([]));
    redis_at(ports[1], &["SET", &ctx.key("signature"), "{\"v\":1}"]);
    let problems = status(&ctx).to_string();
    assert!(
        problems.contains(&format!(
            "redis://127.0.0.1:{}'s signature of {id} is not its record's (a different one)",
            ports[1]
        )),
        "{problems}"
    );
    // verify and doctor see it too.
    let verify = ctx.run_with(&["verify", "--json"], &[("REDIS_URL", &urls(&ports))]);
    verify.expect(4);
    assert!(
        verify.json()["signature_problems"]
            .to_string()
            .contains("is not its record's"),
        "{}",
        verify.stdout
    );
    let doctor = ctx.run_with(&["doctor", "--json"], &[("REDIS_URL", &urls(&ports))]);
    assert!(
        doctor.json()["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "signature"
                && c["status"] == "fail"
                && c["detail"]
                    .as_str()
                    .unwrap()
                    .contains("is not its record's")),
        "{}",
        doctor.stdout
    );
    ctx.run_with(&["activate", &id], &[("REDIS_URL", &urls(&ports))])
        .expect(0);
    assert_eq!(status(&ctx), serde_json::json!([]));
    ctx.run_with(&["verify"], &[("REDIS_URL", &urls(&ports))])
        .expect(0);
}

/// The canary's release on one Redis (None: no rollout there).
fn canary_at(ctx: &Ctx, port: u16) -> Option<String> {
    match redis_at(port, &["GET", &ctx.key("canary")]) {
        redis::Value::BulkString(b) => {
            let c: Value = serde_json::from_slice(&b).unwrap();
            Some(c["release"].as_str().unwrap().to_string())
        }
        redis::Value::Nil => None,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_rollout_reaches_every_pod_and_a_split_one_is_named_then_converged() {
    let ctx = Ctx::new("pods-rollout");
    let pods = [start_redis(&[]), start_redis(&[])];
    let all = urls(&pods);
    let env = [("REDIS_URL", all.as_str())];
    let deploy = |fixture_name: &str, extra: &[&str]| {
        let dir = fixture(fixture_name);
        let mut args = vec!["deploy", dir.to_str().unwrap(), "--json"];
        args.extend_from_slice(extra);
        let run = ctx.run_with(&args, &env);
        run.expect(0);
        deploy_id(&run)
    };
    let a = deploy("shakapacker", &[]);
    let b = deploy("flat", &["--no-activate"]);

    // The second pod's connection dies as the rollout is sent: exit 5 names it.
    let (proxy, fired) = start_proxy(pods[1], Drop::BeforeEval);
    let via_proxy = urls(&[pods[0], proxy]);
    let run = ctx.run_with(
        &["rollout", &b, "--percent", "5"],
        &[("REDIS_URL", via_proxy.as_str())],
    );
    assert!(fired.load(std::sync::atomic::Ordering::SeqCst));
    run.expect(5).error_has(&[
        "the Redis targets are split: 1 of 2 took the rollout",
        &format!("redis://127.0.0.1:{proxy} NOT written"),
    ]);
    assert_eq!(canary_at(&ctx, pods[0]).as_deref(), Some(b.as_str()));
    assert_eq!(canary_at(&ctx, pods[1]), None);

    // Run again: the pod behind gets it (the other has it already: left alone).
    let again = ctx.run_with(&["rollout", &b, "--percent", "5", "--json"], &env);
    again.expect(0);
    for p in pods {
        assert_eq!(canary_at(&ctx, p).as_deref(), Some(b.as_str()), "pod {p}");
        assert_eq!(served(&ctx, p).as_deref(), Some(a.as_str()), "pod {p}");
    }
    // Complete switches every pod and ends the rollout on each.
    ctx.run_with(&["rollout", "complete"], &env).expect(0);
    for p in pods {
        assert_eq!(served(&ctx, p).as_deref(), Some(b.as_str()), "pod {p}");
        assert_eq!(canary_at(&ctx, p), None, "pod {p}");
    }
}
