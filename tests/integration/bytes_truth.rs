//! cutover never lies about bytes: what it uploads is what it hashed (on a
//! server that ignores `x-amz-checksum-sha256`, as moto does), and S3's own
//! evidence (a plain-MD5 ETag) wins over cutover's metadata.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{fixture, rt, Ctx};

/// Start a deploy that hashes the build, then waits for a lock held by
/// someone else; run `meddle` while it waits, free the lock, and return the
/// finished run and how long it took after the lock was freed.
fn deploy_meddled(
    ctx: &Ctx,
    build: &std::path::Path,
    meddle: impl FnOnce(),
) -> (crate::support::Run, Duration) {
    ctx.redis_cmd(&["SET", &ctx.key("lock"), "someone-else", "PX", "60000"]);
    let mut cmd = ctx.command();
    cmd.args(["deploy", build.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "the deploy ended before waiting for the lock: {seen}"
        );
        seen.push_str(&line);
        if line.contains("waiting for the deploy lock held by someone-else") {
            break;
        }
    }
    assert!(seen.contains("hashing:"), "hashed before waiting: {seen}");
    meddle();
    ctx.redis_cmd(&["DEL", &ctx.key("lock")]);
    let freed = Instant::now();
    std::io::Read::read_to_string(&mut stderr, &mut seen).unwrap();
    let out = child.wait_with_output().unwrap();
    let took = freed.elapsed();
    let mut run = crate::support::run::finish(out);
    run.stderr = seen;
    (run, took)
}

async fn exists(ctx: &Ctx, key: &str) -> bool {
    match ctx
        .s3()
        .await
        .head_object()
        .bucket(&ctx.bucket)
        .key(key)
        .send()
        .await
    {
        Ok(_) => true,
        Err(e) => {
            let status = e.raw_response().map(|r| r.status().as_u16());
            assert_eq!(status, Some(404), "HEAD {key}: {e:?}");
            false
        }
    }
}

#[test]
fn a_file_changed_after_hashing_is_never_stored() {
    let ctx = Ctx::new("changed-after-hash");
    let build = ctx.build_copy("shakapacker");
    let victim = "js/admin-2de6dd810fd1d9c2202a.js";
    let path = build.join(victim);
    let (run, _) = deploy_meddled(&ctx, &build, || {
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[0] ^= 0x20; // same size, other bytes
        std::fs::write(&path, bytes).unwrap();
    });
    run.expect(2)
        .error_has(&[victim, "changed after it was hashed", "deploy again"]);
    assert!(
        !rt().block_on(exists(&ctx, &format!("packs/{victim}"))),
        "other bytes than were hashed reached S3"
    );
    assert_eq!(rt().block_on(ctx.get("current")), None);
}

#[test]
fn a_file_truncated_after_hashing_fails_at_once() {
    let ctx = Ctx::new("truncated-after-hash");
    let build = ctx.build_copy("shakapacker");
    let victim = "js/application-b62e1c7fb0214cc621a8.js";
    let path = build.join(victim);
    let (run, took) = deploy_meddled(&ctx, &build, || {
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    });
    run.expect(2)
        .error_has(&[victim, "shrank after it was hashed"]);
    // Once it waited out read timeouts and retries (365 s) and blamed the network.
    assert!(took < Duration::from_secs(30), "took {took:?}: {run:?}");
    assert!(!rt().block_on(exists(&ctx, &format!("packs/{victim}"))));
}

#[test]
fn a_file_deleted_after_hashing_is_named() {
    let ctx = Ctx::new("deleted-after-hash");
    let build = ctx.build_copy("shakapacker");
    let victim = "js/runtime-e816341a74ea3f3adc36.js";
    let path = build.join(victim);
    let (run, _) = deploy_meddled(&ctx, &build, || std::fs::remove_file(&path).unwrap());
    run.expect(2)
        .error_has(&[victim, "deleted or changed after it was hashed"]);
}

/// Put `bytes` at `key` with metadata claiming the SHA-256 of `claimed`.
async fn plant_lying(ctx: &Ctx, key: &str, bytes: &[u8], claimed: &[u8]) {
    use sha2::{Digest, Sha256};
    ctx.s3()
        .await
        .put_object()
        .bucket(&ctx.bucket)
        .key(key)
        .metadata("sha256", hex::encode(Sha256::digest(claimed)))
        .body(bytes.to_vec().into())
        .send()
        .await
        .unwrap();
}

#[test]
fn s3s_own_etag_wins_over_metadata_that_lies() {
    let ctx = Ctx::new("lying-metadata");
    let file = "js/admin-2de6dd810fd1d9c2202a.js";
    let key = format!("packs/{file}");
    let real = std::fs::read(fixture("shakapacker").join(file)).unwrap();
    let mut other = real.clone();
    other[0] ^= 0x20;

    // Planning against it: a conflict (exit 3), never a skip.
    rt().block_on(plant_lying(&ctx, &key, &other, &real));
    let before = ctx.world();
    let run = ctx.run(&["deploy", fixture("shakapacker").to_str().unwrap()]);
    run.expect(3)
        .error_has(&[&key, "md5", "would be overwritten"]);
    ctx.assert_unchanged(&before, "a deploy that found a conflict");

    // Checking a release whose object was replaced so: corrupt (exit 4).
    let ctx = Ctx::new("lying-metadata-2");
    let a = ctx.run(&["deploy", fixture("shakapacker").to_str().unwrap(), "--json"]);
    a.expect(0);
    ctx.run(&["deploy", fixture("flat").to_str().unwrap()])
        .expect(0);
    // Both builds come from one webpack run: they share their files.
    let victim = "packs/js/admin-2de6dd810fd1d9c2202a.js.map";
    let real =
        std::fs::read(fixture("shakapacker").join("js/admin-2de6dd810fd1d9c2202a.js.map")).unwrap();
    let mut other = real.clone();
    other[1] ^= 0x20;
    rt().block_on(plant_lying(&ctx, victim, &other, &real));
    let before = ctx.world();
    let run = ctx.run(&["rollback"]);
    run.expect(4).error_has(&[
        victim,
        "other bytes (md5",
        "(its ETag)",
        "nothing was switched",
    ]);
    ctx.assert_unchanged(&before, "a rollback to a corrupt release");
    // And a redeploy of that build does not skip it either.
    let run = ctx.run(&["deploy", fixture("shakapacker").to_str().unwrap()]);
    run.expect(3).error_has(&[victim]);
}
