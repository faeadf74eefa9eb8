//! Faults: an S3 endpoint that throttles, resets and loses answers, and a
//! deploy killed half-way. Both must end in a complete, correct upload.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use futures::stream::{self, StreamExt};
use md5::Md5;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::harness::{rt, Ctx};

/// A generated webpack-like build in `dir`: `count` small chunks with
/// content-hashed names under `js/`, and a flat manifest naming a few of them.
/// Returns every uploadable file: path inside the build -> bytes.
fn generate_build(dir: &Path, count: usize) -> BTreeMap<String, Vec<u8>> {
    std::fs::create_dir_all(dir.join("js")).unwrap();
    let mut files = BTreeMap::new();
    let mut manifest = serde_json::Map::new();
    for i in 0..count {
        // Salt until the 20-hex hash has a digit and a letter, so every name
        // counts as fingerprinted.
        let (name, body) = (0u32..)
            .map(|salt| {
                let body = format!(
                    "/* chunk {i} ({salt}) */\n(self.webpackChunk=self.webpackChunk||[]).push([[{i}],{{{i}:e=>{{e.exports={:?}}}}}]);\n",
                    "abcdefgh".repeat(1 + i % 23)
                );
                let hash = hex::encode(Sha256::digest(body.as_bytes()))[..20].to_string();
                (format!("js/chunk-{hash}.js"), body)
            })
            .find(|(name, _)| {
                let hash = &name["js/chunk-".len()..name.len() - ".js".len()];
                hash.bytes().any(|b| b.is_ascii_digit())
                    && hash.bytes().any(|b| b.is_ascii_alphabetic())
            })
            .unwrap();
        std::fs::write(dir.join(&name), &body).unwrap();
        if i < 5 {
            manifest.insert(format!("chunk-{i}.js"), format!("/packs/{name}").into());
        }
        files.insert(name, body.into_bytes());
    }
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec_pretty(&manifest).unwrap(),
    )
    .unwrap();
    files
}

/// The S3 key of a build file.
fn key_of(path: &str) -> String {
    format!("packs/{path}")
}

/// Read every object of the build back from S3 (bypassing any proxy) and
/// check the public prefix holds exactly the build: bytes and `sha256` metadata.
async fn assert_s3_holds_exactly(ctx: &Ctx, files: &BTreeMap<String, Vec<u8>>) {
    let listed: BTreeSet<String> = ctx
        .objects()
        .await
        .into_keys()
        .filter(|k| k.starts_with("packs/"))
        .collect();
    let expected: BTreeSet<String> = files.keys().map(|p| key_of(p)).collect();
    let missing: Vec<&String> = expected.difference(&listed).take(10).collect();
    let extra: Vec<&String> = listed.difference(&expected).take(10).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "S3 does not hold exactly the build: missing {missing:?}, extra {extra:?}"
    );
    let s3 = ctx.s3().await;
    let s3 = &s3;
    let problems: Vec<String> = stream::iter(files)
        .map(|(path, bytes)| async move {
            let key = key_of(path);
            let got = s3
                .get_object()
                .bucket(&ctx.bucket)
                .key(&key)
                .send()
                .await
                .unwrap_or_else(|e| panic!("cannot read {key}: {e:?}"));
            let sha = got
                .metadata()
                .and_then(|m| m.get("sha256"))
                .cloned()
                .unwrap_or_default();
            let body = got.body.collect().await.unwrap().into_bytes();
            let want = hex::encode(Sha256::digest(bytes));
            if body.as_ref() != bytes.as_slice() {
                Some(format!(
                    "{key}: {} bytes in S3, {} in the build",
                    body.len(),
                    bytes.len()
                ))
            } else if sha != want {
                Some(format!("{key}: sha256 metadata {sha:?}, expected {want}"))
            } else {
                None
            }
        })
        .buffer_unordered(8)
        .filter_map(|p| async move { p })
        .collect()
        .await;
    assert!(
        problems.is_empty(),
        "{} objects differ from the build: {:?}",
        problems.len(),
        &problems[..problems.len().min(10)]
    );
}

fn status_current(ctx: &Ctx) -> serde_json::Value {
    let status = ctx.run(&["status", "--json"]);
    assert_eq!(status.code, 0, "{status:?}");
    status.json()["current"].clone()
}

// ---------------------------------------------------------------------------
// A fault-injecting TCP proxy in front of the S3 endpoint.

/// Faults at most this many connections in all, so a run always terminates
/// (and the SDK's retry token bucket, 500 tokens at up to 14 per retry, never
/// runs dry).
const FAULT_CAP: usize = 24;
/// Never fault one request (request line) more often than this: the client
/// makes 6 attempts, so every request eventually gets through.
const MAX_FAULTS_PER_REQUEST: usize = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Fault {
    /// Read the request, answer `503 SlowDown`, close.
    SlowDown,
    /// Close with a TCP reset, without an answer.
    Reset,
    /// Forward the request, let S3 carry it out, then reset the client's
    /// connection before it sees the answer.
    LostAnswer,
}

/// Fault of the n-th connection (0-based), before caps: 30%, deterministic.
fn planned_fault(n: usize) -> Option<Fault> {
    match n % 10 {
        1 => Some(Fault::SlowDown),
        4 => Some(Fault::Reset),
        7 => Some(Fault::LostAnswer),
        _ => None,
    }
}

#[derive(Debug, Default)]
struct ProxyLog {
    connections: usize,
    forwarded: usize,
    /// Every injected fault with the request line it hit.
    faults: Vec<(Fault, String)>,
    per_request: HashMap<String, usize>,
    /// Keys of PUTs that S3 carried out (200) but whose answer was lost.
    applied_unanswered: BTreeSet<String>,
    /// `x-amz-checksum-sha256` of every PUT, by key ("" when absent).
    put_checksums: BTreeMap<String, String>,
}

impl ProxyLog {
    fn count(&self, kind: Fault) -> usize {
        self.faults.iter().filter(|(k, _)| *k == kind).count()
    }

    fn decide(&mut self, n: usize, request: &str) -> Option<Fault> {
        let kind = planned_fault(n)?;
        if self.faults.len() >= FAULT_CAP {
            return None;
        }
        let seen = self.per_request.entry(request.to_string()).or_default();
        if *seen >= MAX_FAULTS_PER_REQUEST {
            return None;
        }
        *seen += 1;
        self.faults.push((kind, request.to_string()));
        Some(kind)
    }
}

struct FaultyProxy {
    url: String,
    log: Arc<Mutex<ProxyLog>>,
    accept: tokio::task::JoinHandle<()>,
}

impl FaultyProxy {
    /// Listen on a free loopback port in front of `upstream` (`http://host:port`).
    fn start(upstream: &str) -> FaultyProxy {
        let parsed = url::Url::parse(upstream).unwrap();
        assert_eq!(
            parsed.scheme(),
            "http",
            "the fault proxy speaks plain HTTP only"
        );
        let upstream = format!(
            "{}:{}",
            parsed.host_str().unwrap(),
            parsed.port_or_known_default().unwrap()
        );
        let listener = rt().block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(ProxyLog::default()));
        let accept = {
            let log = log.clone();
            rt().spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    let n = {
                        let mut l = log.lock().unwrap();
                        l.connections += 1;
                        l.connections - 1
                    };
                    tokio::spawn(serve(client, n, upstream.clone(), log.clone()));
                }
            })
        };
        FaultyProxy { url, log, accept }
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Read up to the end of the request head. Returns the head's length and all
/// bytes read (head plus any body bytes that came with it).
async fn read_head(s: &mut TcpStream) -> Option<(usize, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(p) = find(&buf, b"\r\n\r\n") {
            return Some((p + 4, buf));
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(k) => buf.extend_from_slice(&chunk[..k]),
        }
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The object key of a path-style `PUT /bucket/key?query HTTP/1.1` request line.
fn put_key(request: &str) -> Option<String> {
    let mut parts = request.split_whitespace();
    if parts.next()? != "PUT" {
        return None;
    }
    let path = parts.next()?.split('?').next()?;
    let (_bucket, key) = path.trim_start_matches('/').split_once('/')?;
    Some(key.to_string())
}

/// The status code of the answer S3 starts to send.
async fn read_status(s: &mut tokio::net::tcp::OwnedReadHalf) -> Option<u16> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while find(&buf, b"\r\n").is_none() {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(k) => buf.extend_from_slice(&chunk[..k]),
        }
    }
    String::from_utf8_lossy(&buf)
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

async fn serve(mut client: TcpStream, n: usize, upstream: String, log: Arc<Mutex<ProxyLog>>) {
    let Some((head_len, buf)) = read_head(&mut client).await else {
        return;
    };
    let head = String::from_utf8_lossy(&buf[..head_len]).into_owned();
    let request = head.lines().next().unwrap_or_default().to_string();
    if let Some(key) = put_key(&request) {
        let checksum = header(&head, "x-amz-checksum-sha256").unwrap_or_default();
        log.lock()
            .unwrap()
            .put_checksums
            .insert(key, checksum.to_string());
    }
    let fault = log.lock().unwrap().decide(n, &request);
    match fault {
        None => {
            log.lock().unwrap().forwarded += 1;
            let Ok(mut server) = TcpStream::connect(&upstream).await else {
                return;
            };
            if server.write_all(&buf).await.is_err() {
                return;
            }
            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        }
        Some(Fault::SlowDown) => {
            // Take the whole body first, so that closing sends FIN, not RST,
            // and the client gets to read the answer.
            let expects_continue =
                header(&head, "expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
            if !expects_continue {
                let length: usize = header(&head, "content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let mut left = length.saturating_sub(buf.len() - head_len);
                let mut chunk = [0u8; 16 * 1024];
                while left > 0 {
                    match client.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => left = left.saturating_sub(k),
                    }
                }
            }
            let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>";
            let answer = format!(
                "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = client.write_all(answer.as_bytes()).await;
            let _ = client.shutdown().await;
        }
        Some(Fault::Reset) => {
            let _ = client.set_zero_linger();
            drop(client);
        }
        Some(Fault::LostAnswer) => {
            let Ok(server) = TcpStream::connect(&upstream).await else {
                return;
            };
            let (mut server_r, mut server_w) = server.into_split();
            if server_w.write_all(&buf).await.is_err() {
                return;
            }
            let _ = client.set_zero_linger();
            let (mut client_r, client_w) = client.into_split();
            // The rest of the body goes on to S3...
            let pump = tokio::spawn(async move {
                let _ = tokio::io::copy(&mut client_r, &mut server_w).await;
            });
            // ...S3 answers, so it has carried the request out; the client
            // is reset instead of hearing about it.
            let status = read_status(&mut server_r).await;
            pump.abort();
            let _ = pump.await;
            drop(client_w);
            if status == Some(200) {
                if let Some(key) = put_key(&request) {
                    log.lock().unwrap().applied_unanswered.insert(key);
                }
            }
        }
    }
}

#[test]
fn flaky_s3_still_ends_in_a_complete_correct_upload() {
    let ctx = Ctx::new("flaky-s3");
    let build = ctx.work.path().join("build");
    let files = generate_build(&build, 200);
    let proxy = FaultyProxy::start(&ctx.s3_endpoint);
    let run = ctx.run_with(
        &[
            "deploy",
            build.to_str().unwrap(),
            "--concurrency",
            "8",
            "--json",
        ],
        &[("CUTOVER_S3_ENDPOINT", &proxy.url)],
    );
    let log = std::mem::take(&mut *proxy.log.lock().unwrap());
    drop(proxy);
    assert_eq!(
        run.code, 0,
        "the deploy did not survive the faults {:?}: {run:?}",
        log.faults
    );

    // The faults happened: each kind at least once (the first ten connections
    // already plan one of each, and a deploy of 200 files at concurrency 8
    // opens far more than ten).
    assert!(
        log.connections > 10,
        "only {} connections; {log:?}",
        log.connections
    );
    for kind in [Fault::SlowDown, Fault::Reset, Fault::LostAnswer] {
        assert!(
            log.count(kind) > 0,
            "no {kind:?} fault was injected: {log:?}"
        );
    }
    assert!(log.faults.len() <= FAULT_CAP);

    let doc = run.json();
    assert_eq!(doc["outcome"], "activated", "{run:?}");
    assert_eq!(doc["upload"]["files"], 200);
    // A PUT whose answer was lost is retried, refused (If-None-Match), found
    // to hold the same bytes and counted as already there; every other file
    // as uploaded.
    let lost: BTreeSet<&String> = log
        .applied_unanswered
        .iter()
        .filter(|k| k.starts_with("packs/"))
        .collect();
    let stats = &doc["stats"]["upload"];
    assert_eq!(
        stats["already_there"],
        lost.len(),
        "answers lost for {lost:?}: {run:?}"
    );
    assert_eq!(stats["uploaded_files"], 200 - lost.len(), "{run:?}");

    // Every PUT carried the file's SHA-256 for S3 to check the bytes against.
    for (path, bytes) in &files {
        let want = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(bytes));
        assert_eq!(
            log.put_checksums.get(&key_of(path)),
            Some(&want),
            "PUT of {path} did not carry its x-amz-checksum-sha256"
        );
    }

    // Straight from S3, not through the proxy.
    rt().block_on(assert_s3_holds_exactly(&ctx, &files));
    assert_eq!(status_current(&ctx), doc["release"]["id"]);
}

// ---------------------------------------------------------------------------
// A deploy killed half-way.

/// Kills the child if the test fails before it does.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Lists until two listings in a row agree, so that requests the killed
/// process left in flight at the server have settled.
fn settled_objects(ctx: &Ctx) -> BTreeMap<String, (i64, String)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = rt().block_on(ctx.objects());
    loop {
        let now = rt().block_on(ctx.objects());
        if now == last {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "the bucket kept changing for 30s after the deploy was killed"
        );
        last = now;
    }
}

#[test]
fn killed_deploy_is_resumed_by_the_next_run() {
    const FILES: usize = 3000;
    let ctx = Ctx::new("killed-deploy");
    let build = ctx.work.path().join("build");
    let files = generate_build(&build, FILES);
    assert_eq!(files.len(), FILES);
    let stderr_path = ctx.work.path().join("first-run.stderr");
    let first_stderr = || std::fs::read_to_string(&stderr_path).unwrap_or_default();

    let mut cmd = ctx.command();
    cmd.args(["deploy", build.to_str().unwrap(), "--concurrency", "2"])
        // The killed process's lock must expire soon for the next run.
        .env("CUTOVER_LOCK_TTL", "5")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap());
    let mut child = KillOnDrop(cmd.spawn().unwrap());

    // Kill it as soon as its first object is in S3.
    let s3 = rt().block_on(ctx.s3());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            panic!(
                "the deploy ended ({status}) before it could be caught uploading; make the build bigger. stderr: {}",
                first_stderr()
            );
        }
        let listed = rt()
            .block_on(
                s3.list_objects_v2()
                    .bucket(&ctx.bucket)
                    .prefix("packs/")
                    .max_keys(1)
                    .send(),
            )
            .unwrap();
        if listed.key_count().unwrap_or(0) > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no object appeared within 60s; stderr: {}",
            first_stderr()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child.0.kill().unwrap();
    let status = child.0.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "the deploy was not killed but ended ({status}); make the build bigger. stderr: {}",
        first_stderr()
    );

    // Some objects, not all; no release record; nothing live.
    let before = settled_objects(&ctx);
    let present: BTreeSet<String> = before
        .keys()
        .filter(|k| k.starts_with("packs/"))
        .cloned()
        .collect();
    assert!(
        !present.is_empty() && present.len() < FILES,
        "{} of {FILES} objects present after the kill",
        present.len()
    );
    let strays: Vec<&String> = before.keys().filter(|k| !k.starts_with("packs/")).collect();
    assert!(
        strays.is_empty(),
        "a killed deploy must not have written its release record: {strays:?}"
    );
    assert_eq!(status_current(&ctx), serde_json::Value::Null);

    // No object is partial: S3's own size and MD5 of what it stored match the file.
    for (path, bytes) in &files {
        let key = key_of(path);
        if let Some((size, etag)) = before.get(&key) {
            assert_eq!(*size as usize, bytes.len(), "{key} is partial");
            assert_eq!(
                etag.trim_matches('"'),
                hex::encode(Md5::digest(bytes)),
                "{key} holds other bytes than the file"
            );
        }
    }
    let missing: BTreeSet<String> = files
        .keys()
        .map(|p| key_of(p))
        .filter(|k| !present.contains(k))
        .collect();

    // The next deploy: it may have to wait for the dead process's lock to expire.
    let lock_ms: i64 = rt().block_on(async {
        let mut con = ctx.redis().await;
        redis::cmd("PTTL")
            .arg(ctx.key("lock"))
            .query_async(&mut con)
            .await
            .unwrap()
    });
    let run = ctx.run(&["deploy", build.to_str().unwrap(), "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    // Either it waited for the lock, or the lock had expired and it went ahead.
    if lock_ms > 1500 {
        assert!(
            run.stderr.contains("waiting for the deploy lock held by"),
            "the lock had {lock_ms}ms left, yet the deploy did not say it waited: {}",
            run.stderr
        );
    }
    let doc = run.json();
    assert_eq!(doc["outcome"], "activated", "{run:?}");
    assert_eq!(doc["upload"]["files"], missing.len(), "{run:?}");
    assert_eq!(doc["skip"]["files"], present.len(), "{run:?}");
    let uploaded: BTreeSet<String> = doc["upload"]["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap().to_string())
        .collect();
    assert!(
        uploaded == missing,
        "the resumed deploy uploaded other objects than were missing"
    );
    assert_eq!(doc["stats"]["upload"]["uploaded_files"], missing.len());

    // Complete and live.
    rt().block_on(assert_s3_holds_exactly(&ctx, &files));
    assert_eq!(status_current(&ctx), doc["release"]["id"]);
}
