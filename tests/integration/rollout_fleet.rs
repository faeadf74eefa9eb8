//! Rollouts at the app: a Rails app under Puma (3 workers) and a Node
//! `cluster` (2 workers, each an HTTP server with `requestSnapshot`) serve
//! pages while `cutover rollout` starts, completes and aborts. Every page
//! renders one release (its tags, its meta tag and its response header
//! agree); a key gets the release the documented assignment gives it, in
//! both readers; after complete and abort every worker follows within 2 s
//! (the readers' contract); a page naming a retired release in
//! `X-Cutover-Release` gets that release's assets.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::fixtures::tiny_build;
use crate::support::readers::node_modules;
use crate::support::{free_port, repo_root, rt, Ctx};

/// The Rails app of the Ruby suite with one page: the application
/// entrypoint's scripts, one asset by name and the meta tag. The rollout
/// key is the X-Test-User header (rails_app.rb's `rollout_key`).
const CONFIG_RU: &str = r#"
$LOAD_PATH.unshift(ENV.fetch("CUTOVER_RUBY_LIB"), ENV.fetch("CUTOVER_RUBY_TEST"))
require "support/rails_app"
class RolloutPagesController < ActionController::Base
  def show
    render inline: %(<%= cutover_javascript_tags "application" %>\n<img src="<%= cutover_asset_url "application.js" %>">\n<%= cutover_release_meta_tag %>)
  end
end
CutoverRailsApp.initialize!
CutoverRailsApp.routes.draw { get "page" => "rollout_pages#show" }
run Rails.application
"#;

/// The same page from a Node cluster's workers, each with its own reader.
const NODE_CLUSTER: &str = r#"
import cluster from "node:cluster";
import http from "node:http";
import { createReader } from "NODE_SRC/index.js";
if (cluster.isPrimary) {
  for (let i = 0; i < 2; i++) cluster.fork();
} else {
  const reader = await createReader({ app: process.env.APP, url: process.env.REDIS_URL, logger: false,
                                      pollInterval: 500, reportInterval: 1000 });
  http.createServer(async (req, res) => {
    const snap = await reader.requestSnapshot(req, res, { key: req.headers["x-test-user"] });
    const js = snap.entrypoint("application").js.map((c) => `<script src="${c.src}"></script>`);
    res.setHeader("content-type", "text/html");
    res.end(`${js.join("\n")}\n<img src="${snap.lookup("application.js")}">\n${snap.metaTag()}`);
  }).listen(Number(process.env.PORT), "127.0.0.1");
}
"#;

/// A server and its process group, killed when dropped.
struct Server {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

fn spawn(mut cmd: Command, port: u16, log: std::path::PathBuf) -> Server {
    use std::os::unix::process::CommandExt;
    let out = std::fs::File::create(&log).unwrap();
    let child = cmd
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("puma and node are installed (scripts/setup.sh)");
    Server { child, port, log }
}

fn puma(ctx: &Ctx) -> Server {
    let dir = ctx.work.path().join("puma");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.ru"), CONFIG_RU).unwrap();
    let port = free_port();
    std::fs::write(
        dir.join("puma.rb"),
        format!("workers 3\nthreads 2, 2\npreload_app!\nbind \"tcp://127.0.0.1:{port}\"\nenvironment \"production\"\n"),
    )
    .unwrap();
    let mut cmd = Command::new("puma");
    cmd.args(["-C", "puma.rb", "config.ru"])
        .current_dir(&dir)
        .env("CUTOVER_RUBY_LIB", repo_root().join("ruby/lib"))
        .env("CUTOVER_RUBY_TEST", repo_root().join("ruby/test"))
        .env("CUTOVER_TEST_APP", &ctx.app)
        .env("CUTOVER_TEST_REDIS_URL", &ctx.redis_url)
        .env("CUTOVER_TEST_POLL_INTERVAL", "0.5")
        .env("CUTOVER_TEST_REPORT_INTERVAL", "1")
        .env("RAILS_ENV", "production");
    spawn(cmd, port, dir.join("puma.log"))
}

fn node_cluster(ctx: &Ctx) -> Server {
    node_modules();
    let script = ctx.work.path().join("pages.mjs");
    let src = repo_root().join("node/src");
    std::fs::write(
        &script,
        NODE_CLUSTER.replace("NODE_SRC", src.to_str().unwrap()),
    )
    .unwrap();
    let port = free_port();
    let mut cmd = Command::new("node");
    cmd.arg(&script)
        .env("APP", &ctx.app)
        .env("REDIS_URL", &ctx.redis_url)
        .env("PORT", port.to_string());
    spawn(cmd, port, ctx.work.path().join("node.log"))
}

/// One page: (the response's X-Cutover-Release, the body).
fn page(port: u16, headers: &[(&str, &str)]) -> Option<(Option<String>, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut req = "GET /page HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n".to_string();
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    let release = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("x-cutover-release: ")
                .or_else(|| l.strip_prefix("X-Cutover-Release: "))
        })
        .map(|v| v.trim().to_string());
    Some((release, body.to_string()))
}

/// The release a page rendered, if all of it is one release's: every
/// script and asset URL is that release's, and its meta tag and its
/// header name it. Err says how it mixed.
fn one_release(
    js: &BTreeMap<String, String>,
    (header, body): &(Option<String>, String),
) -> Result<String, String> {
    let urls: Vec<&str> = body
        .split('"')
        .filter(|part| part.starts_with("https://"))
        .collect();
    let meta = body
        .split("name=\"cutover-release\" content=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .ok_or_else(|| format!("no meta tag: {body}"))?;
    let url = js
        .get(meta)
        .ok_or_else(|| format!("meta names {meta}, no release of ours"))?;
    if urls.len() < 2 || urls.iter().any(|u| u != url) {
        return Err(format!(
            "the page mixes releases: meta {meta}, URLs {urls:?}"
        ));
    }
    if header.as_deref() != Some(meta) {
        return Err(format!("header {header:?}, meta {meta}"));
    }
    Ok(meta.to_string())
}

fn within<T>(secs: f64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what} within {secs}s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Each release's script URL (the only one its manifest names).
fn script_url(ctx: &Ctx, id: &str) -> String {
    let record: Value =
        serde_json::from_str(&rt().block_on(ctx.get(&format!("release:{id}"))).unwrap()).unwrap();
    record["manifest"]["application.js"]["src"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Ask each server for the pages of `keys` until all of them render
/// `want(key)`, for up to `secs`; every page on the way must be one
/// release. The pages seen.
fn until_all(
    servers: &[&Server],
    js: &BTreeMap<String, String>,
    keys: &[String],
    secs: f64,
    what: &str,
    want: impl Fn(&str) -> String,
) -> usize {
    let mut seen = 0;
    within(secs, what, || {
        let mut all = true;
        for s in servers {
            for key in keys {
                let p = page(s.port, &[("X-Test-User", key)])?;
                seen += 1;
                let got =
                    one_release(js, &p).unwrap_or_else(|e| panic!("{}: {e}", s.log.display()));
                all &= got == want(key);
            }
        }
        all.then_some(seen)
    })
}

#[test]
fn a_rollout_reaches_every_worker_and_no_page_mixes_releases() {
    let ctx = Ctx::new("rollout-fleet");
    let dir = ctx.work.path();
    let build = |name: &str| tiny_build(&dir.join(name), &format!("app('{name}')"));
    let deploy = |name: &str, extra: &[&str]| {
        let b = build(name);
        crate::support::deploy(&ctx, b.to_str().unwrap(), extra)
    };
    let a = deploy("a", &[]);
    let b = deploy("b", &["--no-activate"]);
    let c = deploy("c", &["--no-activate"]);
    let js: BTreeMap<String, String> = [&a, &b, &c]
        .iter()
        .map(|id| (id.to_string(), script_url(&ctx, id)))
        .collect();
    let (rails, node) = (puma(&ctx), node_cluster(&ctx));
    let servers = [&rails, &node];
    // 40 users, asked of every server: each worker is reached many times.
    let keys: Vec<String> = (0..40).map(|i| format!("user-{i}")).collect();
    within(90.0, "Puma and the Node cluster serving A", || {
        servers
            .iter()
            .all(|s| {
                page(s.port, &[])
                    .is_some_and(|p| one_release(&js, &p).ok().as_deref() == Some(a.as_str()))
            })
            .then_some(())
    });

    // B at 50%, waiting for the fleet: when the command returns, every
    // worker (3 Puma, 2 Node) reports serving the canary; and each key gets
    // what the assignment says, in both readers.
    let run = ctx.run(&[
        "rollout",
        &b,
        "--percent",
        "50",
        "--wait-converged=60",
        "--json",
    ]);
    run.expect(0);
    let fleet = &run.json()["fleet"];
    assert_eq!(
        (&fleet["serves"], &fleet["processes"], &fleet["on_release"]),
        (&Value::from("canary"), &Value::from(5), &Value::from(5)),
        "{}",
        run.stdout
    );
    let canary: Value = serde_json::from_str(&rt().block_on(ctx.get("canary")).unwrap()).unwrap();
    let salt = canary["salt"].as_str().unwrap().to_string();
    let assigned = |key: &str| {
        if cutover::canary::bucket(&salt, key) < 5000 {
            b.clone()
        } else {
            a.clone()
        }
    };
    assert!(
        keys.iter().any(|k| assigned(k) == b) && keys.iter().any(|k| assigned(k) == a),
        "the keys fall on both sides at 50%"
    );
    until_all(
        &servers,
        &js,
        &keys,
        2.0,
        "every worker assigning B to its keys",
        assigned,
    );

    // Complete: from the command's end, within 2 s every page is B, and no
    // page on the way mixes A and B.
    ctx.run(&["rollout", "complete"]).expect(0);
    let pages = until_all(
        &servers,
        &js,
        &keys,
        2.0,
        "every worker on B after complete",
        |_| b.clone(),
    );
    assert!(pages >= keys.len() * 2);
    // Every worker reports B live and no canary.
    within(5.0, "the fleet reporting B and no canary", || {
        let run = ctx.run(&["fleet", "--json"]);
        let live: Vec<Value> = run.json()["processes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["state"] == "live")
            .cloned()
            .collect();
        (live.len() == 5
            && live
                .iter()
                .all(|p| p["release"] == b.as_str() && p["canary"].is_null()))
        .then_some(())
    });

    // C at 50%, then abort: every page is B again within 2 s.
    ctx.run(&["rollout", &c, "--percent", "50"]).expect(0);
    let canary: Value = serde_json::from_str(&rt().block_on(ctx.get("canary")).unwrap()).unwrap();
    let salt = canary["salt"].as_str().unwrap().to_string();
    until_all(&servers, &js, &keys, 2.0, "every worker assigning C", |k| {
        if cutover::canary::bucket(&salt, k) < 5000 {
            c.clone()
        } else {
            b.clone()
        }
    });
    let run = ctx.run(&["rollout", "abort", "--wait-converged=60"]);
    run.expect(0).stdout_has(&[&format!(
        "no reader process serves canary {c} any more (5 processes)"
    )]);
    until_all(
        &servers,
        &js,
        &keys,
        2.0,
        "every worker on B after abort",
        |_| b.clone(),
    );

    // Skew: a later request from a page rendered with A (retired by the
    // complete) or C (by the abort) gets that release; an unknown one gets
    // the live release.
    for s in servers {
        for (named, want) in [(&a, &a), (&c, &c), (&"0123456789abcdef".to_string(), &b)] {
            let p = page(
                s.port,
                &[
                    ("X-Cutover-Release", named.as_str()),
                    ("X-Test-User", "user-1"),
                ],
            )
            .unwrap();
            assert_eq!(
                one_release(&js, &p).unwrap(),
                *want,
                "{} asked for {named}",
                s.log.display()
            );
        }
    }
}
