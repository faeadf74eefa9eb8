//! A release with a file uploaded in parts (a video, a wasm bundle) checks,
//! rolls back and activates on every server tested: S3 reports a checksum
//! of the parts (composite) there, not of the bytes, and servers differ in
//! how they say so (S3: `x-amz-checksum-type: COMPOSITE` and `-N`; moto:
//! neither; s3s-fs: no checksum at all). Intact is intact, other bytes are
//! other bytes (exit 4), whichever the server.

use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::support::servers::s3s_fs_endpoint;
use crate::support::{rt, Ctx};

const VIDEO: &str = "static/video-0a1b2c3d4e5f.mp4";
const KEY: &str = "packs/static/video-0a1b2c3d4e5f.mp4";
const MIB: usize = 1024 * 1024;
/// Files of 5 MiB and more go in parts (5 MiB each: the smallest S3 takes).
const THRESHOLD: (&str, &str) = ("CUTOVER_MULTIPART_THRESHOLD_MIB", "5");

fn video_bytes(seed: usize) -> Vec<u8> {
    (0..(11 * MIB + 17))
        .map(|i: usize| (i.wrapping_add(seed).wrapping_mul(2654435761) >> 13) as u8)
        .collect()
}

/// A build of one big file (three parts) and a manifest naming it; `page`
/// varies the rest of the build.
fn build(ctx: &Ctx, name: &str, page: &str) -> String {
    let dir = ctx.work.path().join(name);
    std::fs::create_dir_all(dir.join("static")).unwrap();
    std::fs::write(dir.join(VIDEO), video_bytes(0)).unwrap();
    let page_file = format!(
        "static/page-{:x}.js",
        Sha256::digest(page)[0..5]
            .iter()
            .fold(0u64, |a, b| a << 8 | *b as u64)
    );
    std::fs::write(dir.join(&page_file), page).unwrap();
    std::fs::write(
        dir.join("manifest.json"),
        format!(r#"{{"video.mp4": "/packs/{VIDEO}", "page.js": "/packs/{page_file}"}}"#),
    )
    .unwrap();
    dir.to_str().unwrap().to_string()
}

/// Deploy a release with the big file, then another; the first is the one
/// to check, roll back to and activate.
fn two_releases(ctx: &Ctx) -> (String, String) {
    let deploy = |dir: &str| {
        let run = ctx.run_with(&["deploy", dir, "--json"], &[THRESHOLD]);
        run.expect(0);
        run.json()["release"]["id"].as_str().unwrap().to_string()
    };
    let a = deploy(&build(ctx, "a", "console.log('a')"));
    let b = deploy(&build(ctx, "b", "console.log('b')"));
    assert_ne!(a, b);
    (a, b)
}

/// Replace the object at `key` with other bytes of the same size, uploaded
/// in three parts with S3's SHA-256 checksums, its metadata claiming the
/// SHA-256 of the original: only the bytes tell.
async fn replace_in_parts(ctx: &Ctx, key: &str, bytes: &[u8], claimed: &[u8]) {
    let s3 = ctx.s3().await;
    let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(Sha256::digest(d));
    let created = s3
        .create_multipart_upload()
        .bucket(&ctx.bucket)
        .key(key)
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .metadata("sha256", hex::encode(Sha256::digest(claimed)))
        .send()
        .await
        .unwrap();
    let id = created.upload_id().unwrap();
    let mut parts = Vec::new();
    for (i, chunk) in bytes.chunks(5 * MIB).enumerate() {
        let n = i as i32 + 1;
        let out = s3
            .upload_part()
            .bucket(&ctx.bucket)
            .key(key)
            .upload_id(id)
            .part_number(n)
            .checksum_sha256(b64(chunk))
            .body(chunk.to_vec().into())
            .send()
            .await
            .unwrap();
        parts.push(
            CompletedPart::builder()
                .part_number(n)
                .set_e_tag(out.e_tag().map(str::to_string))
                .checksum_sha256(b64(chunk))
                .build(),
        );
    }
    s3.complete_multipart_upload()
        .bucket(&ctx.bucket)
        .key(key)
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .unwrap();
}

/// The record of `id` in S3, rewritten as a record written before it kept
/// the composite checksum of files uploaded in parts.
async fn as_old_record(ctx: &Ctx, id: &str) {
    let key = format!("_cutover/{}/releases/{id}.json", ctx.app);
    let s3 = ctx.s3().await;
    let body = ctx.object(&key).await;
    let mut record: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let mut had = false;
    for f in record["files"].as_array_mut().unwrap() {
        had |= f
            .as_object_mut()
            .unwrap()
            .remove("composite_sha256")
            .is_some();
    }
    assert!(had, "the record keeps the composite checksum: {record:#}");
    s3.put_object()
        .bucket(&ctx.bucket)
        .key(&key)
        .body(serde_json::to_vec(&record).unwrap().into())
        .send()
        .await
        .unwrap();
}

/// On the server `ctx` uses: verify, rollback --to and activate of a
/// release with an intact multipart object succeed, with the record as
/// written today and as written before it kept the composite checksum; the
/// same object with other bytes is corrupt (exit 4), nothing switched.
fn intact_multipart_checks_everywhere(ctx: &Ctx) {
    let (a, b) = two_releases(ctx);
    let record = ctx.run(&["verify", &a, "--json"]);
    record.expect(0);

    ctx.run(&["rollback", "--to", &a]).expect(0);
    assert_eq!(
        rt().block_on(ctx.get("current")).as_deref(),
        Some(a.as_str())
    );
    ctx.run(&["activate", &b, "--unpin"]).expect(0);
    ctx.run(&["activate", &a]).expect(0);
    assert_eq!(
        rt().block_on(ctx.get("current")).as_deref(),
        Some(a.as_str())
    );
    ctx.run(&["activate", &b]).expect(0);

    // A record written before the composite checksum was kept: still intact.
    rt().block_on(as_old_record(ctx, &a));
    ctx.run(&["verify", &a]).expect(0);
    ctx.run(&["rollback", "--to", &a]).expect(0);
    ctx.run(&["activate", &b, "--unpin"]).expect(0);

    // Other bytes at the key, in parts, metadata lying: corrupt.
    let real = video_bytes(0);
    let mut other = real.clone();
    other[6 * MIB] ^= 0x20;
    rt().block_on(replace_in_parts(ctx, KEY, &other, &real));
    let before = ctx.world();
    ctx.run(&["verify", &a])
        .expect(4)
        .stdout_has(&[KEY, "other bytes"]);
    for args in [["rollback", "--to", &a], ["activate", &a, "--unpin"]] {
        ctx.run(&args).expect(4).error_has(&[KEY, "other bytes"]);
    }
    ctx.assert_unchanged(&before, "checks of a corrupt multipart object");
    assert_eq!(
        rt().block_on(ctx.get("current")).as_deref(),
        Some(b.as_str())
    );
}

#[test]
fn multipart_release_checks_and_rolls_back_on_moto() {
    intact_multipart_checks_everywhere(&Ctx::new("multipart-moto"));
}

#[test]
fn multipart_release_checks_and_rolls_back_on_s3s_fs() {
    intact_multipart_checks_everywhere(&Ctx::on("multipart-s3s", s3s_fs_endpoint()));
}

/// A deploy records the composite checksum of a file it uploads in parts
/// (the SHA-256 of the parts' SHA-256s, `-N`); under a record written
/// before it was kept, other bytes in parts are still other bytes.
#[test]
fn a_corrupt_multipart_object_under_an_old_record_is_still_corrupt() {
    let ctx = Ctx::new("multipart-old-corrupt");
    let (a, b) = two_releases(&ctx);
    let real = video_bytes(0);
    let shas: Vec<u8> = real
        .chunks(5 * MIB)
        .flat_map(|c| Sha256::digest(c).to_vec())
        .collect();
    let record = rt().block_on(async {
        let key = format!("_cutover/{}/releases/{a}.json", ctx.app);
        let s3 = ctx.s3().await;
        let o = s3.get_object().bucket(&ctx.bucket).key(&key).send().await;
        let body = o.unwrap().body.collect().await.unwrap().into_bytes();
        serde_json::from_slice::<serde_json::Value>(&body).unwrap()
    });
    let video = record["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == VIDEO)
        .unwrap();
    assert_eq!(
        video["composite_sha256"],
        format!("{}-3", hex::encode(Sha256::digest(&shas))).as_str()
    );
    rt().block_on(as_old_record(&ctx, &a));
    let mut other = real.clone();
    other[0] ^= 1;
    rt().block_on(replace_in_parts(&ctx, KEY, &other, &real));
    let before = ctx.world();
    ctx.run(&["verify", &a])
        .expect(4)
        .stdout_has(&[KEY, "other bytes"]);
    ctx.run(&["rollback", "--to", &a])
        .expect(4)
        .error_has(&[KEY, "other bytes"]);
    ctx.assert_unchanged(&before, "checks of a corrupt multipart object");
    assert_eq!(
        rt().block_on(ctx.get("current")).as_deref(),
        Some(b.as_str())
    );
}
