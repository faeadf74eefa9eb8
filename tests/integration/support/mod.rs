//! Test support: real servers ([`servers`]), a per-test world ([`ctx`]),
//! runs of the real binary with assertions ([`run`]), fixture builds
//! ([`fixtures`]), fault-injecting proxies for S3 and Redis, and a webhook
//! receiver ([`webhook`]).

pub mod ctx;
pub mod fixtures;
pub mod http;
pub mod nginx;
pub mod readers;
pub mod redis_proxy;
pub mod redis_topology;
pub mod run;
pub mod s3_proxy;
pub mod servers;
pub mod webhook;

use std::path::PathBuf;
use std::sync::OnceLock;

pub use ctx::Ctx;
pub use fixtures::fixture;
pub use run::Run;
pub use servers::{free_port, servers, start_redis};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The documented minimal ACL line (docs/redis.md, "Minimal ACL") as the
/// words of an `ACL SETUSER` for `user` with password `password` on `app`'s
/// keys, followed by `extra` rules (what a topology adds).
pub fn documented_acl(user: &str, password: &str, app: &str, extra: &[&str]) -> Vec<String> {
    let doc = std::fs::read_to_string(repo_root().join("docs/redis.md")).unwrap();
    let line = doc
        .lines()
        .find(|l| l.starts_with("ACL SETUSER cutover-deploy "))
        .expect("docs/redis.md documents the minimal ACL");
    let line = line
        .replace("cutover-deploy", user)
        .replace("{shop}", &format!("{{{app}}}"))
        .replace(">PASSWORD", &format!(">{password}"));
    line.split_whitespace()
        .map(str::to_string)
        .chain(extra.iter().map(|e| e.to_string()))
        .collect()
}

/// `cutover deploy BUILD --json EXTRA...`, which must exit 0; the release id.
pub fn deploy(ctx: &Ctx, build: &str, extra: &[&str]) -> String {
    let mut args = vec!["deploy", build, "--json"];
    args.extend_from_slice(extra);
    let run = ctx.run(&args);
    run.expect(0);
    run.json()["release"]["id"].as_str().unwrap().to_string()
}

/// A shared runtime for the async parts of tests.
pub fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

/// `prune` keeping only the newest `keep` releases and what safety keeps
/// (live, pinned, rollback target, served): no age window, no grace
/// period, no skew window.
pub const fn tight_prune(keep: &'static str) -> [&'static str; 9] {
    [
        "prune",
        "--keep",
        keep,
        "--keep-days",
        "0",
        "--grace",
        "0",
        "--skew-max-age",
        "0",
    ]
}
