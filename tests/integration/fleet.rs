//! The fleet: a Rails app under Puma (3 workers) and a Node cluster (2
//! workers), real processes with the real readers, reporting to the test's
//! Redis. `status` counts them, `--wait-converged` returns once they all
//! serve the new release, a stopped worker makes it end with exit 6 naming
//! that worker (the switch stands), prune keeps the release a process
//! still serves, and a killed worker ages out.

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::fixtures::tiny_build;
use crate::support::readers::node_modules;
use crate::support::webhook::{Answer, Webhook};
use crate::support::{free_port, repo_root, Ctx};

/// The Rails app of the Ruby suite (ruby/test/support/rails_app.rb).
const CONFIG_RU: &str = r#"
$LOAD_PATH.unshift(ENV.fetch("CUTOVER_RUBY_LIB"), ENV.fetch("CUTOVER_RUBY_TEST"))
require "support/rails_app"
CutoverRailsApp.initialize!
run Rails.application
"#;

/// A node:cluster app: the primary forks 2 workers, each with a reader.
const NODE_CLUSTER: &str = r#"
import cluster from "node:cluster";
import { createReader } from "NODE_SRC/index.js";
if (cluster.isPrimary) {
  for (let i = 0; i < 2; i++) cluster.fork();
} else {
  await createReader({ app: process.env.APP, url: process.env.REDIS_URL, logger: false,
                       reportInterval: Number(process.env.REPORT_INTERVAL) });
}
"#;

/// A server process and its whole process group, killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        unsafe { libc::kill(-(self.0.id() as i32), libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

/// In a process group of its own (killed whole), its output in `log`.
fn in_own_group<'c>(cmd: &'c mut Command, log: &std::path::Path) -> &'c mut Command {
    use std::os::unix::process::CommandExt;
    let log = std::fs::File::create(log).unwrap();
    cmd.process_group(0)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
}

fn puma(ctx: &Ctx, report_interval: u64) -> Server {
    let dir = ctx.work.path().join("puma");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.ru"), CONFIG_RU).unwrap();
    let port = free_port();
    std::fs::write(
        dir.join("puma.rb"),
        format!(
            "workers 3\nthreads 1, 1\npreload_app!\nbind \"tcp://127.0.0.1:{port}\"\nenvironment \"production\"\n"
        ),
    )
    .unwrap();
    let child = in_own_group(
        Command::new("puma")
            .args(["-C", "puma.rb", "config.ru"])
            .current_dir(&dir)
            .env("CUTOVER_RUBY_LIB", repo_root().join("ruby/lib"))
            .env("CUTOVER_RUBY_TEST", repo_root().join("ruby/test"))
            .env("CUTOVER_TEST_APP", &ctx.app)
            .env("CUTOVER_TEST_REDIS_URL", &ctx.redis_url)
            .env("CUTOVER_TEST_POLL_INTERVAL", "0.5")
            .env("CUTOVER_TEST_REPORT_INTERVAL", report_interval.to_string())
            .env("RAILS_ENV", "production"),
        &dir.join("puma.log"),
    )
    .spawn()
    .expect("Debian's puma is installed (scripts/test-ruby.sh installs it)");
    Server(child)
}

fn node_cluster(ctx: &Ctx, report_interval_ms: u64) -> Server {
    node_modules();
    // A file: cluster.fork() runs the primary's script again.
    let script = ctx.work.path().join("cluster.mjs");
    let src = repo_root().join("node/src");
    std::fs::write(
        &script,
        NODE_CLUSTER.replace("NODE_SRC", src.to_str().unwrap()),
    )
    .unwrap();
    let child = in_own_group(
        Command::new("node")
            .arg(&script)
            .env("APP", &ctx.app)
            .env("REDIS_URL", &ctx.redis_url)
            .env("REPORT_INTERVAL", report_interval_ms.to_string()),
        &ctx.work.path().join("node.log"),
    )
    .spawn()
    .unwrap();
    Server(child)
}

/// The pids of a process's children (the server's workers).
fn children(pid: u32) -> BTreeSet<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let child: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).ok()?;
            let ppid: u32 = stat
                .rsplit_once(") ")?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            (ppid == pid).then_some(child)
        })
        .collect()
}

/// Poll until `f` gives Some, for up to `secs`.
fn within<T>(secs: u64, what: &str, f: impl FnMut() -> Option<T>) -> T {
    within_or(secs, what, String::new, f)
}

/// [`within`], saying `context()` when the time runs out.
fn within_or<T>(
    secs: u64,
    what: &str,
    context: impl Fn() -> String,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{what} within {secs}s\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn fleet(ctx: &Ctx) -> Vec<Value> {
    let run = ctx.run(&["fleet", "--json"]);
    run.expect(0);
    run.json()["processes"].as_array().unwrap().clone()
}

/// The live processes' pids on `release`.
fn pids_on(processes: &[Value], release: &str) -> BTreeSet<u32> {
    processes
        .iter()
        .filter(|p| p["state"] == "live" && p["release"] == release)
        .map(|p| p["pid"].as_u64().unwrap() as u32)
        .collect()
}

/// The host name the readers report (the kernel's, as Ruby's
/// Socket.gethostname and Node's os.hostname() read it).
fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn the_fleet_is_counted_waited_for_kept_and_aged_out() {
    let ctx = Ctx::new("fleet");
    let a = crate::support::deploy(
        &ctx,
        tiny_build(&ctx.work.path().join("a"), "app(1)")
            .to_str()
            .unwrap(),
        &[],
    );
    // Rails reports every 5 s (gone after 15 s: longer than the waits
    // below), Node every second (a killed worker is gone after 3 s).
    // A webhook told of the fleet waits.
    let hook = Webhook::start(Answer::Status(200));
    std::fs::write(
        ctx.work.path().join("cutover.toml"),
        format!(
            "[[notify]]\nurl = \"{}\"\nevents = [\"converged\", \"not_converged\"]\n",
            hook.url("fleet")
        ),
    )
    .unwrap();
    let rails = puma(&ctx, 5);
    let node = node_cluster(&ctx, 1000);
    let logs = || {
        ["puma/puma.log", "node.log"]
            .map(|l| std::fs::read_to_string(ctx.work.path().join(l)).unwrap_or_default())
            .join("\n")
    };
    let workers = within_or(60, "3 Puma and 2 Node workers", logs, || {
        let (r, n) = (children(rails.0.id()), children(node.0.id()));
        (r.len() == 3 && n.len() == 2).then_some((r, n))
    });
    let all: BTreeSet<u32> = workers.0.union(&workers.1).copied().collect();
    // Each worker reports (a Puma worker from the fork), none of the masters.
    within_or(60, "every worker reporting A", logs, || {
        (pids_on(&fleet(&ctx), &a) == all).then_some(())
    });
    let status = ctx.run(&["status", "--json"]);
    status.expect(0);
    assert_eq!(status.json()["fleet"]["processes"], 5, "{}", status.stdout);
    ctx.run(&["status"])
        .expect(0)
        .stdout_has(&[&format!("fleet: 5 processes: 5 on {a}")]);

    // A deploy that waits: every process serves B when it returns.
    let b_dir = tiny_build(&ctx.work.path().join("b"), "app(2)");
    let dry = ctx.run(&[
        "deploy",
        b_dir.to_str().unwrap(),
        "--wait-converged=60",
        "--dry-run",
    ]);
    dry.expect(0)
        .stdout_has(&["wait up to 60s until every live reader process reports"]);
    let deployed = ctx.run(&[
        "deploy",
        b_dir.to_str().unwrap(),
        "--wait-converged=60",
        "--json",
    ]);
    deployed.expect(0);
    let out = deployed.json();
    let b = out["release"]["id"].as_str().unwrap().to_string();
    assert_eq!(out["fleet"]["processes"], 5, "{}", deployed.stdout);
    assert_eq!(out["fleet"]["on_release"], 5);
    assert_eq!(pids_on(&fleet(&ctx), &b), all);
    let told = hook.wait_for(1)[0].json();
    assert_eq!(told["event"], "converged", "{told}");
    assert_eq!(told["release"], b.as_str());
    assert_eq!(told["convergence"]["processes"], 5);

    // A stopped worker keeps the fleet from converging: exit 6 names it,
    // and the switch stands.
    let stopped = *workers.0.iter().next().unwrap();
    unsafe { libc::kill(stopped as i32, libc::SIGSTOP) };
    let run = ctx.run(&["activate", &a, "--wait-converged=3"]);
    run.expect(6).error_has(&[
        &format!("switched to {a}"),
        "did not converge within 3s: 4/5 processes on",
        &format!("{}:{stopped} (on {b})", host()),
    ]);
    let status = ctx.run(&["status", "--json"]);
    assert_eq!(status.json()["current"], a.as_str());
    let told = hook.wait_for(2)[1].json();
    assert_eq!(told["event"], "not_converged", "{told}");
    assert_eq!(told["exit_code"], 6);
    assert_eq!(told["convergence"]["on_release"], 4);
    assert!(
        told["convergence"]["behind"][0]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}:{stopped} ", host())),
        "{told}"
    );

    // Prune keeps B, which only the stopped worker serves now.
    let c_dir = tiny_build(&ctx.work.path().join("c"), "app(3)");
    crate::support::deploy(&ctx, c_dir.to_str().unwrap(), &[]);
    let prune = ctx.run(&[
        "prune",
        "--dry-run",
        "--keep",
        "1",
        "--keep-days",
        "0",
        "--grace",
        "0",
        "--skew-max-age",
        "0",
        "--json",
    ]);
    prune.expect(0);
    let kept = prune.json()["releases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == b.as_str())
        .unwrap()["kept_because"]
        .to_string();
    assert!(
        kept.contains(&format!("a reader process serves it: {}:{stopped}", host())),
        "{kept}"
    );
    unsafe { libc::kill(stopped as i32, libc::SIGCONT) };

    // A killed worker ages out: gone after 3 of its heartbeats.
    let killed = *workers.1.iter().next().unwrap();
    unsafe { libc::kill(killed as i32, libc::SIGKILL) };
    within(30, "the killed worker listed as gone", || {
        fleet(&ctx)
            .iter()
            .any(|p| p["pid"] == killed && p["state"] == "gone")
            .then_some(())
    });
    ctx.run(&["status"])
        .expect(0)
        .stdout_has(&["gone: 1 process silent for more than 3 heartbeats"]);
    drop((rails, node));
}
