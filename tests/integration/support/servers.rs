//! Real servers, started once per test run on free loopback ports (or taken
//! from the environment): moto for S3, and private `redis-server`s that
//! tests may flush and reconfigure. Never a server we did not start.

use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::repo_root;

pub struct Servers {
    pub s3_endpoint: String,
    pub redis_port: u16,
}

impl Servers {
    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.redis_port)
    }
}

/// A loopback port for a server a test starts, with port + 10000 free too
/// (a Redis Cluster node's bus port). Chosen below Linux's ephemeral range
/// (32768 and up), where the OS puts outgoing connections, and never twice
/// in a run: so nothing else takes it between choosing and binding.
pub fn free_port() -> u16 {
    use std::sync::Mutex;
    static GIVEN: Mutex<Option<std::collections::BTreeSet<u16>>> = Mutex::new(None);
    let mut given = GIVEN.lock().unwrap();
    let given = given.get_or_insert_with(Default::default);
    let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
    // Spread runs of the suite (and other processes) apart.
    let start = 10_000 + (std::process::id() as u16 % 12_000);
    for i in 0..12_000u16 {
        let port = 10_000 + (start - 10_000 + i) % 12_000;
        if !given.contains(&port) && free(port) && free(port + 10_000) {
            given.insert(port);
            return port;
        }
    }
    panic!("no free loopback port pair in 10000-32000")
}

/// Wait until something accepts connections on the port (a condition, not a sleep).
pub fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not start listening on port {port} within 60s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Spawn a server that dies with the test process (PR_SET_PDEATHSIG), from a
/// thread that lives as long as the process.
pub fn spawn_server(mut cmd: Command) -> u32 {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::os::unix::process::CommandExt;
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn();
        match child {
            Ok(mut c) => {
                tx.send(Ok(c.id())).unwrap();
                let _ = c.wait();
            }
            Err(e) => tx.send(Err(e.to_string())).unwrap(),
        }
    });
    rx.recv()
        .unwrap()
        .unwrap_or_else(|e| panic!("cannot start server: {e}"))
}

pub fn start_redis(extra: &[&str]) -> u16 {
    let port = free_port();
    start_redis_at(port, extra);
    port
}

/// A private redis-server on `port` (e.g. restarting one that was stopped:
/// it comes back empty, as without persistence).
pub fn start_redis_at(port: u16, extra: &[&str]) {
    // Its own directory: a replica's full sync makes the primary write an RDB file.
    let dir =
        std::env::temp_dir().join(format!("cutover-test-redis-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cmd = Command::new("redis-server");
    cmd.arg("--dir").arg(&dir);
    cmd.args([
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]);
    cmd.args(extra);
    spawn_server(cmd);
    wait_for_port(port, "redis-server");
}

pub fn servers() -> &'static Servers {
    static SERVERS: OnceLock<Servers> = OnceLock::new();
    SERVERS.get_or_init(|| {
        let s3_endpoint = match std::env::var("CUTOVER_TEST_S3_ENDPOINT") {
            Ok(ep) if !ep.is_empty() => ep,
            _ => {
                let moto = repo_root().join(".venv-s3/bin/moto_server");
                assert!(
                    moto.exists(),
                    "moto_server not found at {}: run .ci/run (it installs moto into .venv-s3), or set CUTOVER_TEST_S3_ENDPOINT",
                    moto.display()
                );
                let port = free_port();
                let mut cmd = Command::new(moto);
                cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
                spawn_server(cmd);
                wait_for_port(port, "moto_server");
                format!("http://127.0.0.1:{port}")
            }
        };
        Servers { s3_endpoint, redis_port: start_redis(&[]) }
    })
}

/// The s3s-fs binary: `CUTOVER_TEST_S3S_FS`, else the one scripts/setup.sh
/// installs (`.bench-tools/s3s-fs/bin/s3s-fs`, shared with the benchmarks),
/// else `s3s-fs` on PATH.
fn s3s_fs_binary() -> std::path::PathBuf {
    if let Ok(p) = std::env::var("CUTOVER_TEST_S3S_FS") {
        if !p.is_empty() {
            return p.into();
        }
    }
    let installed = repo_root().join(".bench-tools/s3s-fs/bin/s3s-fs");
    if installed.exists() {
        return installed;
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("s3s-fs"))
        .find(|p| p.exists());
    on_path.unwrap_or_else(|| {
        panic!(
            "s3s-fs not found at {} nor on PATH: run scripts/setup.sh (it installs s3s-fs 0.14.1), \
             or set CUTOVER_TEST_S3S_FS",
            installed.display()
        )
    })
}

/// A second S3-compatible server, s3s-fs (files on disk, its own answers to
/// checksums and ETags), started once per run on a free loopback port with
/// a private data directory; for the tests that must hold on every server.
pub fn s3s_fs_endpoint() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("cutover-test-s3s-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let mut cmd = Command::new(s3s_fs_binary());
        cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", "test", "--secret-key", "test"])
            .arg(&dir);
        spawn_server(cmd);
        wait_for_port(port, "s3s-fs");
        format!("http://127.0.0.1:{port}")
    })
}
