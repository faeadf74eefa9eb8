//! Test support: real servers ([`servers`]), a per-test world ([`ctx`]),
//! runs of the real binary with assertions ([`run`]), fixture builds
//! ([`fixtures`]) and fault-injecting proxies for S3 and Redis.

pub mod ctx;
pub mod fixtures;
pub mod http;
pub mod nginx;
pub mod redis_proxy;
pub mod redis_topology;
pub mod run;
pub mod s3_proxy;
pub mod servers;

use std::path::PathBuf;
use std::sync::OnceLock;

pub use ctx::Ctx;
pub use fixtures::fixture;
pub use run::Run;
pub use servers::{free_port, servers, start_redis};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
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
