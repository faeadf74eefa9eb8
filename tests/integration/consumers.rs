//! What the Rails side sees: a real Ruby Redis client (the redis gem), and
//! the same contract on a Redis Cluster and over TLS.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{fixture, start_redis, Ctx};

const READER: &str = r#"
require "redis"
require "json"
app, url = ARGV
redis = Redis.new(url: url)
current, manifest = redis.mget("cutover:{#{app}}:current", "cutover:{#{app}}:manifest")
m = JSON.parse(manifest)
src = ->(e) { e.is_a?(Hash) ? e.fetch("src") : e }
js = m.dig("entrypoints", "application", "assets", "js") || []
puts JSON.generate("current" => current, "application_js" => src.(m.fetch("application.js")), "entry_js" => js.map(&src))
STDOUT.flush
sub = Redis.new(url: url)
sub.subscribe_with_timeout(60, "cutover:{#{app}}:events") do |on|
  on.subscribe { puts "subscribed"; STDOUT.flush }
  on.message { |_channel, message| puts message; STDOUT.flush; sub.unsubscribe }
end
"#;

#[test]
fn ruby_redis_client_reads_the_manifest_and_hears_the_switch() {
    let ctx = Ctx::new("ruby-reader");
    let run = ctx.run(&["deploy", fixture("shakapacker").to_str().unwrap(), "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let a = run.json()["release"]["id"].as_str().unwrap().to_string();

    let mut ruby = Command::new("ruby")
        .args(["-e", READER, &ctx.app, &ctx.redis_url])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("ruby is installed (scripts/setup.sh installs ruby and ruby-redis)");
    let mut lines = BufReader::new(ruby.stdout.take().unwrap()).lines();
    let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["current"], a.as_str());
    let app_js = first["application_js"].as_str().unwrap();
    assert!(
        app_js.starts_with("https://cdn.example.com/packs/js/application-")
            && app_js.ends_with(".js"),
        "{first}"
    );
    let entry: Vec<&str> = first["entry_js"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(entry.len(), 3, "runtime, shared chunk, entry: {first}");
    assert!(
        entry
            .iter()
            .all(|u| u.starts_with("https://cdn.example.com/packs/js/")),
        "{first}"
    );
    assert_eq!(lines.next().unwrap().unwrap(), "subscribed");

    let run = ctx.run(&[
        "deploy",
        fixture("flat").to_str().unwrap(),
        "--json",
        "-m",
        "über release",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    let b = run.json()["release"]["id"].as_str().unwrap().to_string();
    let event: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(event["release"], b.as_str());
    assert_eq!(event["previous"], a.as_str());
    assert_eq!(event["action"], "deploy");
    assert_eq!(event["message"], "über release");
    assert!(ruby.wait().unwrap().success());
}

#[test]
fn the_contract_holds_on_a_redis_cluster() {
    let ctx = Ctx::new("cluster");
    let port = start_redis(&[
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
    ]);
    let cli = |args: &[&str]| {
        let out = Command::new("redis-cli")
            .arg("-p")
            .arg(port.to_string())
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(cli(&["cluster", "addslotsrange", "0", "16383"]).contains("OK"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cli(&["cluster", "info"]).contains("cluster_state:ok") {
        assert!(
            Instant::now() < deadline,
            "the one-node cluster never became ok"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let url = format!("redis://127.0.0.1:{port}");
    let env = [
        ("REDIS_URL", url.as_str()),
        ("CUTOVER_REDIS_CLUSTER", "true"),
    ];
    let a = ctx.run_with(
        &["deploy", fixture("shakapacker").to_str().unwrap(), "--json"],
        &env,
    );
    assert_eq!(a.code, 0, "{a:?}");
    let b = ctx.run_with(
        &["deploy", fixture("flat").to_str().unwrap(), "--json"],
        &env,
    );
    assert_eq!(b.code, 0, "{b:?}");
    let rollback = ctx.run_with(&["rollback"], &env);
    assert_eq!(rollback.code, 0, "{rollback:?}");
    let current = cli(&["get", &ctx.key("current")]);
    assert_eq!(current.trim(), a.json()["release"]["id"].as_str().unwrap());
    let releases = ctx.run_with(&["releases", "--json"], &env);
    assert_eq!(releases.json()["releases"].as_array().unwrap().len(), 2);
}

#[test]
fn rediss_urls_connect_over_tls() {
    let ctx = Ctx::new("redis-tls");
    let dir = ctx.work.path().join("tls");
    std::fs::create_dir_all(&dir).unwrap();
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("openssl is installed");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=cutover test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "redis.key",
        "-out",
        "redis.csr",
    ]);
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "redis.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "redis.pem",
    ]);
    let tls_port = crate::support::free_port();
    let p = |f: &str| dir.join(f).to_str().unwrap().to_string();
    let tls_port_s = tls_port.to_string();
    // The plain port stays on (start_redis waits on it); clients use the TLS one.
    start_redis(&[
        "--tls-port",
        &tls_port_s,
        "--tls-cert-file",
        &p("redis.pem"),
        "--tls-key-file",
        &p("redis.key"),
        "--tls-ca-cert-file",
        &p("ca.pem"),
        "--tls-auth-clients",
        "no",
    ]);
    crate::support::servers::wait_for_port(tls_port, "redis-server TLS port");
    let url = format!("rediss://localhost:{tls_port}");
    let ca = p("ca.pem");
    let env = [("REDIS_URL", url.as_str()), ("SSL_CERT_FILE", ca.as_str())];
    let run = ctx.run_with(
        &["deploy", fixture("flat").to_str().unwrap(), "--json"],
        &env,
    );
    assert_eq!(run.code, 0, "{run:?}");
    let status = ctx.run_with(&["status", "--json"], &env);
    assert_eq!(status.json()["current"], run.json()["release"]["id"]);
    // Without trusting the CA, the connection is refused with a clear line:
    // a configuration to fix (exit 2), naming redis_ca_file.
    let untrusted = ctx.run_with(&["status"], &[("REDIS_URL", url.as_str())]);
    assert_eq!(untrusted.code, 2, "{untrusted:?}");
    assert!(
        untrusted.error_line().contains("redis_ca_file"),
        "{untrusted:?}"
    );
    assert!(
        untrusted
            .error_line()
            .contains("Redis at rediss://localhost"),
        "{untrusted:?}"
    );
}

#[test]
fn both_readers_read_the_cluster_through_a_seed_that_does_not_own_the_slot_and_follow_a_switch() {
    let cluster = crate::topology::shared_cluster();
    let ctx = Ctx::new("cluster-readers");
    let slot = cluster.slot_of(&ctx.key("current"));
    let seed = format!("redis://127.0.0.1:{}", cluster.other_master(slot).port);
    let env = [
        ("REDIS_URL", seed.as_str()),
        ("CUTOVER_REDIS_CLUSTER", "true"),
    ];
    let a = ctx.run_with(
        &[
            "deploy",
            fixture(crate::topology::BUILDS[0]).to_str().unwrap(),
            "--json",
        ],
        &env,
    );
    a.expect(0);

    crate::support::readers::node_modules();
    let mut node = std::process::Command::new("node");
    node.args([
        "--input-type=module",
        "-e",
        crate::support::readers::NODE_READER,
    ])
    .current_dir(crate::support::repo_root().join("node"))
    .env("APP", &ctx.app)
    .env("SEED", &seed);
    let mut readers = [
        (
            "ruby",
            crate::support::readers::ruby_reader(&ctx.app, "cluster", &seed),
        ),
        ("node", crate::support::readers::ReaderProc::spawn(node)),
    ];
    for (name, r) in readers.iter_mut() {
        let first = r.answer();
        assert_eq!(
            first["release"],
            crate::topology::id(&a).as_str(),
            "{name}: {first}"
        );
        assert!(
            first["js"]
                .as_str()
                .unwrap()
                .starts_with("https://cdn.example.com/packs/js/application-"),
            "{name}: {first}"
        );
    }
    let b = ctx.run_with(
        &[
            "deploy",
            fixture(crate::topology::BUILDS[1]).to_str().unwrap(),
            "--json",
        ],
        &env,
    );
    b.expect(0);
    for (name, mut r) in readers {
        let (now, took) = r.follow(&crate::topology::id(&b));
        assert_eq!(
            now["release"],
            crate::topology::id(&b).as_str(),
            "{name} did not follow the switch: {now}"
        );
        assert!(took < Duration::from_secs(5), "{name} took {took:?}");
        eprintln!("{name} reader followed the switch on the cluster in {took:?}");
        r.finish();
    }
}
