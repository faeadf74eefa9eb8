//! One test's world: its own bucket, app name and working directory, and
//! helpers to look at S3 and Redis as another client would.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::fixtures::{copy_dir, fixture};
use super::run::{Cutover, Run};
use super::{rt, servers};

/// One test's world: its own bucket, app name and working directory.
pub struct Ctx {
    pub app: String,
    pub bucket: String,
    pub work: tempfile::TempDir,
    pub redis_url: String,
    pub s3_endpoint: String,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl Ctx {
    pub fn new(name: &str) -> Ctx {
        Ctx::on(name, &servers().s3_endpoint)
    }

    /// A world on another S3-compatible server (e.g.
    /// [`super::servers::s3s_fs_endpoint`]); Redis as usual.
    pub fn on(name: &str, s3_endpoint: &str) -> Ctx {
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
            s3_endpoint: s3_endpoint.to_string(),
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

    /// A run of the binary in this world, to add variables to and run.
    pub fn cutover(&self, args: &[&str]) -> Cutover {
        let mut cmd = self.command();
        cmd.args(args);
        Cutover { cmd }
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.cutover(args).run()
    }

    pub fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        env.iter()
            .fold(self.cutover(args), |c, (k, v)| c.env(k, v))
            .run()
    }

    /// S3 objects and Redis keys of this test's world, to compare before
    /// and after a command that must change nothing.
    pub fn world(&self) -> World {
        rt().block_on(async {
            World {
                objects: self.objects().await,
                redis: self.redis_state().await,
            }
        })
    }

    /// Assert nothing in S3 or Redis changed since `before`.
    #[track_caller]
    pub fn assert_unchanged(&self, before: &World, what: &str) {
        let after = self.world();
        assert!(
            before.objects == after.objects,
            "{what} changed S3: {:?}",
            diff_keys(&before.objects, &after.objects)
        );
        assert!(
            before.redis == after.redis,
            "{what} changed Redis: {:?}",
            diff_keys(
                &before.redis.iter().cloned().collect(),
                &after.redis.iter().cloned().collect()
            )
        );
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
        self.objects_in(&self.bucket).await
    }

    /// Every object in a bucket: key -> (size, etag).
    pub async fn objects_in(
        &self,
        bucket: &str,
    ) -> std::collections::BTreeMap<String, (i64, String)> {
        let s3 = self.s3().await;
        let mut out = std::collections::BTreeMap::new();
        let mut pages = s3.list_objects_v2().bucket(bucket).into_paginator().send();
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

    /// A Redis ACL user of this test with `rules` (e.g. `~cutover:{APP}:*
    /// +@all -publish`); returns a URL that logs in as it.
    pub fn acl_user(&self, name: &str, rules: &[&str]) -> String {
        let user = format!("{name}-{}", self.app);
        rt().block_on(async {
            let mut con = self.redis().await;
            let mut cmd = redis::cmd("ACL");
            cmd.arg("SETUSER")
                .arg(&user)
                .arg("reset")
                .arg("on")
                .arg(">pw");
            for r in rules {
                cmd.arg(r.replace("APP", &self.app));
            }
            let _: () = cmd.query_async(&mut con).await.unwrap();
        });
        format!("redis://{user}:pw@127.0.0.1:{}", self.redis_port())
    }

    /// Run a Redis command on the shared test Redis.
    pub fn redis_cmd(&self, args: &[&str]) -> redis::Value {
        redis_at(self.redis_port(), args)
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

    /// The bytes of an object of this test's bucket (it must exist).
    pub async fn object(&self, key: &str) -> Vec<u8> {
        let out = self
            .s3()
            .await
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .unwrap();
        out.body.collect().await.unwrap().into_bytes().to_vec()
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

impl Ctx {
    /// A private copy of a fixture build, under the work dir.
    pub fn build_copy(&self, name: &str) -> PathBuf {
        let dest = self.work.path().join(name);
        copy_dir(&fixture(name), &dest);
        dest
    }
}

/// What a test's world holds, for "nothing changed" checks.
#[derive(Debug, Clone, PartialEq)]
pub struct World {
    pub objects: std::collections::BTreeMap<String, (i64, String)>,
    pub redis: Vec<(String, Vec<u8>)>,
}

/// Keys whose values differ between two maps.
fn diff_keys<V: PartialEq>(
    a: &std::collections::BTreeMap<String, V>,
    b: &std::collections::BTreeMap<String, V>,
) -> Vec<String> {
    a.keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// A command to the Redis on a loopback port (a test's private server).
pub fn redis_at(port: u16, args: &[&str]) -> redis::Value {
    rt().block_on(async {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
        let mut con = client.get_multiplexed_async_connection().await.unwrap();
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query_async(&mut con).await.unwrap()
    })
}
