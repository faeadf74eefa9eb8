//! Test harness: real servers, started once per test run on free loopback
//! ports (or taken from the environment), and a runner for the real binary.
//!
//! - S3: `CUTOVER_TEST_S3_ENDPOINT`, else moto_server from `.venv-s3` (see .ci/run).
//! - Redis: `CUTOVER_TEST_REDIS_PORT`-less: a private `redis-server` we start,
//!   so tests may flush and reconfigure it. Never a server we did not start.
//!
//! Every test gets its own bucket and app name.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub struct Servers {
    pub s3_endpoint: String,
    pub redis_port: u16,
}

impl Servers {
    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.redis_port)
    }
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
    port
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

/// One test's world: its own bucket, app name and working directory.
pub struct Ctx {
    pub app: String,
    pub bucket: String,
    pub work: tempfile::TempDir,
    pub redis_url: String,
    pub s3_endpoint: String,
}

#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }
    /// The error line: exactly one line on stderr starting with `error: `.
    pub fn error_line(&self) -> &str {
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| l.starts_with("error: "))
            .collect();
        assert_eq!(lines.len(), 1, "expected one error line: {self:?}");
        lines[0]
    }
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl Ctx {
    pub fn new(name: &str) -> Ctx {
        let s = servers();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let unique = format!("{}-{}-{n}", name.replace('_', "-"), std::process::id());
        let bucket: String = format!("t-{unique}")
            .chars()
            .take(63)
            .collect::<String>()
            .trim_end_matches('-')
            .to_string();
        let ctx = Ctx {
            app: unique.clone(),
            bucket,
            work: tempfile::tempdir().unwrap(),
            redis_url: s.redis_url(),
            s3_endpoint: s.s3_endpoint.clone(),
        };
        rt().block_on(async {
            ctx.s3()
                .await
                .create_bucket()
                .bucket(&ctx.bucket)
                .send()
                .await
                .unwrap()
        });
        ctx
    }

    /// The binary, with a clean environment pointing at this test's world.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cutover"));
        for (k, _) in std::env::vars() {
            if k.starts_with("CUTOVER_")
                || k.starts_with("AWS_")
                || k == "REDIS_URL"
                || k.starts_with("CIRCLE")
                || k.starts_with("GITHUB")
            {
                cmd.env_remove(k);
            }
        }
        cmd.current_dir(self.work.path())
            .env("CI", "true")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("CUTOVER_APP", &self.app)
            .env("CUTOVER_BUCKET", &self.bucket)
            .env("CUTOVER_CDN_URL", "https://cdn.example.com")
            .env("CUTOVER_S3_ENDPOINT", &self.s3_endpoint)
            .env("REDIS_URL", &self.redis_url)
            .env("CUTOVER_LOCK_WAIT", "30")
            .stdin(Stdio::null());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, &[])
    }

    pub fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = self.command();
        cmd.args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        finish(cmd.output().unwrap())
    }

    pub async fn s3(&self) -> aws_sdk_s3::Client {
        s3_client(&self.s3_endpoint).await
    }

    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.redis_url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    pub fn key(&self, name: &str) -> String {
        format!("cutover:{{{}}}:{name}", self.app)
    }

    /// Every object in the bucket: key -> (size, etag).
    pub async fn objects(&self) -> std::collections::BTreeMap<String, (i64, String)> {
        let s3 = self.s3().await;
        let mut out = std::collections::BTreeMap::new();
        let mut pages = s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            for o in page.unwrap().contents() {
                out.insert(
                    o.key().unwrap().to_string(),
                    (o.size().unwrap_or(0), o.e_tag().unwrap_or("").to_string()),
                );
            }
        }
        out
    }

    /// Every Redis key of this app with its value dumped (for "nothing changed").
    pub async fn redis_state(&self) -> Vec<(String, Vec<u8>)> {
        let mut con = self.redis().await;
        let mut keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("cutover:{{{}}}:*", self.app))
            .query_async(&mut con)
            .await
            .unwrap();
        keys.sort();
        let mut out = Vec::new();
        for k in keys {
            let dump: Vec<u8> = redis::cmd("DUMP")
                .arg(&k)
                .query_async(&mut con)
                .await
                .unwrap();
            out.push((k, dump));
        }
        out
    }

    /// The string at one of the app's keys (`current`, `lock`, `release:<id>`, ...).
    pub async fn get(&self, name: &str) -> Option<String> {
        let mut con = self.redis().await;
        redis::cmd("GET")
            .arg(self.key(name))
            .query_async(&mut con)
            .await
            .unwrap()
    }

    /// The port of the shared test Redis.
    pub fn redis_port(&self) -> u16 {
        self.redis_url.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// The app's activation history, newest first.
    pub async fn history(&self) -> Vec<serde_json::Value> {
        let mut con = self.redis().await;
        let raw: Vec<String> = redis::cmd("LRANGE")
            .arg(self.key("history"))
            .arg(0)
            .arg(-1)
            .query_async(&mut con)
            .await
            .unwrap();
        raw.iter()
            .map(|r| serde_json::from_str(r).unwrap())
            .collect()
    }

    /// Fails if a multipart upload was left open in the bucket.
    pub async fn assert_no_open_multipart(&self) {
        let open = self
            .s3()
            .await
            .list_multipart_uploads()
            .bucket(&self.bucket)
            .send()
            .await
            .unwrap();
        assert!(
            open.uploads().is_empty(),
            "multipart uploads left open: {:?}",
            open.uploads()
        );
    }

    pub async fn put(&self, key: &str, body: &[u8]) {
        self.s3()
            .await
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(body.to_vec().into())
            .send()
            .await
            .unwrap();
    }
}

pub fn finish(out: Output) -> Run {
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub async fn s3_client(endpoint: &str) -> aws_sdk_s3::Client {
    let creds = aws_sdk_s3::config::Credentials::new("test", "test", None, None, "tests");
    let conf = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .credentials_provider(creds)
        .endpoint_url(endpoint)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
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

pub fn fixture(name: &str) -> PathBuf {
    repo_root().join("tests/fixtures/builds").join(name)
}

/// Copy a fixture build into the test's work dir (so tests can change it).
pub fn copy_dir(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.unwrap();
        let rel = entry.path().strip_prefix(from).unwrap();
        let dest = to.join(rel);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

impl Ctx {
    /// A private copy of a fixture build, under the work dir.
    pub fn build_copy(&self, name: &str) -> PathBuf {
        let dest = self.work.path().join(name);
        copy_dir(&fixture(name), &dest);
        dest
    }
}
