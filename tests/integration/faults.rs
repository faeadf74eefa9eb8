//! Faults: an S3 endpoint that throttles, resets and loses answers, and a
//! deploy killed half-way. Both must end in a complete, correct upload.

use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use md5::Md5;
use sha2::{Digest, Sha256};

use crate::support::fixtures::{assert_s3_holds_exactly, generate_build, key_of};
use crate::support::s3_proxy::{Fault, FaultyProxy, FAULT_CAP};
use crate::support::{rt, Ctx};

fn status_current(ctx: &Ctx) -> serde_json::Value {
    let status = ctx.run(&["status", "--json"]);
    assert_eq!(status.code, 0, "{status:?}");
    status.json()["current"].clone()
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
    let stats = &doc["uploaded"];
    assert_eq!(
        stats["already_there"],
        lost.len(),
        "answers lost for {lost:?}: {run:?}"
    );
    assert_eq!(stats["files"], 200 - lost.len(), "{run:?}");

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

#[test]
fn killed_deploy_is_resumed_by_the_next_run() {
    // Enough that a deploy one request at a time is still running when its
    // first object appears (moto takes a few ms per PUT).
    const FILES: usize = 300;
    let ctx = Ctx::new("killed-deploy");
    let build = ctx.work.path().join("build");
    let files = generate_build(&build, FILES);
    assert_eq!(files.len(), FILES);
    let stderr_path = ctx.work.path().join("first-run.stderr");
    let first_stderr = || std::fs::read_to_string(&stderr_path).unwrap_or_default();

    // Through a proxy that knows when S3 has answered every request it was
    // sent: after the kill, nothing sent can still land.
    let proxy = FaultyProxy::transparent(&ctx.s3_endpoint);
    let mut cmd = ctx.command();
    cmd.args(["deploy", build.to_str().unwrap(), "--concurrency", "1"])
        .env("CUTOVER_S3_ENDPOINT", &proxy.url)
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
    proxy.wait_idle();
    let before = rt().block_on(ctx.objects());
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

    // The next deploy (after the dead process's lock expired, or waiting
    // for it to: that a held lock is waited for is lock_ownership's to prove).
    let run = ctx.run(&["deploy", build.to_str().unwrap(), "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    assert_eq!(doc["outcome"], "activated", "{run:?}");
    assert_eq!(doc["upload"]["files"], missing.len(), "{run:?}");
    assert_eq!(doc["skip"]["files"], present.len(), "{run:?}");
    let uploaded: BTreeSet<String> = doc["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap().to_string())
        .collect();
    assert!(
        uploaded == missing,
        "the resumed deploy uploaded other objects than were missing"
    );
    assert_eq!(doc["uploaded"]["files"], missing.len());

    // Complete and live.
    rt().block_on(assert_s3_holds_exactly(&ctx, &files));
    assert_eq!(status_current(&ctx), doc["release"]["id"]);
}
