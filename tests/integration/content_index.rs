//! Release records as a content index: a redeploy whose files the records
//! and S3's listing agree on needs neither MD5s nor HEADs; where S3
//! disagrees with a record, S3 wins; a release is checked before a switch
//! object by object, and a missing one still stops it (exit 4).

use crate::support::{fixture, rt, Ctx};

/// The progress lines of a phase that ended (`hashing: ..., done in 0.0s`).
fn finished(stderr: &str, phase: &str) -> usize {
    stderr
        .lines()
        .filter(|l| l.starts_with(&format!("{phase}:")) && l.contains("done"))
        .count()
}

#[test]
fn a_fresh_copy_of_a_deployed_build_is_settled_by_the_records() {
    let ctx = Ctx::new("index-rebuilt");
    let first = ctx.build_copy("shakapacker");
    let run = ctx.run(&["deploy", first.to_str().unwrap(), "--json"]);
    run.expect(0);
    let files = run.json()["upload"]["files"].as_u64().unwrap();
    assert!(files > 50, "{run:?}");
    // The first deploy hashes twice: SHA-256 while listing, then the MD5s
    // of the files to upload (their ETags, for the record).
    assert_eq!(finished(&run.stderr, "hashing"), 2, "{}", run.stderr);

    // A CI build of the same code: same bytes, new directory, new mtimes.
    let rebuilt = ctx.work.path().join("rebuilt");
    crate::support::fixtures::copy_dir(&fixture("shakapacker"), &rebuilt);
    let run = ctx.run(&["deploy", rebuilt.to_str().unwrap(), "--json"]);
    run.expect(0);
    let out = run.json();
    assert_eq!(out["outcome"], "already_live", "{run:?}");
    assert_eq!(out["skip"]["files"].as_u64(), Some(files), "{run:?}");
    assert_eq!(out["upload"]["files"], 0, "{run:?}");
    // SHA-256 only, and no object looked at closer: the listing and the
    // record decided.
    assert_eq!(finished(&run.stderr, "hashing"), 1, "{}", run.stderr);
    assert!(!run.stderr.contains("verifying"), "{}", run.stderr);
    for phase in ["scan", "list", "plan", "total"] {
        assert!(out["timings"][phase].is_number(), "{phase}: {out}");
    }

    // --timings: the text output ends with the phases.
    let run = ctx.run(&["deploy", rebuilt.to_str().unwrap(), "--timings"]);
    run.expect(0);
    let last = run.stdout.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("timings: scan ") && last.contains("list ") && last.contains("total "),
        "{run:?}"
    );
}

#[test]
fn where_s3_disagrees_with_a_record_s3_wins() {
    let ctx = Ctx::new("index-s3-wins");
    let build = ctx.build_copy("shakapacker");
    ctx.run(&["deploy", build.to_str().unwrap(), "--no-activate"])
        .expect(0);
    // Someone replaces an object with other bytes of the same size.
    let victim = "js/admin-2de6dd810fd1d9c2202a.js";
    let mut other = std::fs::read(build.join(victim)).unwrap();
    other[0] ^= 0x20;
    let key = format!("packs/{victim}");
    rt().block_on(ctx.put(&key, &other));

    // The record says the object holds the build's bytes; the listing's
    // ETag says otherwise: a conflict, not a skip.
    let before = ctx.world();
    let run = ctx.run(&["deploy", build.to_str().unwrap()]);
    run.expect(3).error_has(&[&key, "would be overwritten"]);
    ctx.assert_unchanged(&before, "a deploy that found a conflict");
}

#[test]
fn a_release_missing_an_object_is_not_activated() {
    let ctx = Ctx::new("index-missing");
    let build = ctx.build_copy("shakapacker");
    let run = ctx.run(&["deploy", build.to_str().unwrap(), "--no-activate", "--json"]);
    run.expect(0);
    let id = run.json()["release"]["id"].as_str().unwrap().to_string();
    let victim = "packs/js/runtime-e816341a74ea3f3adc36.js";
    rt().block_on(async {
        ctx.s3()
            .await
            .delete_object()
            .bucket(&ctx.bucket)
            .key(victim)
            .send()
            .await
            .unwrap()
    });
    let before = ctx.world();
    let run = ctx.run(&["activate", &id]);
    run.expect(4)
        .error_has(&[victim, "missing", "nothing was switched"]);
    ctx.assert_unchanged(&before, "an activation of an incomplete release");
    let run = ctx.run(&["verify", &id]);
    assert_eq!(run.code, 4, "{run:?}");
    assert!(
        run.stdout.contains(victim) || run.stderr.contains(victim),
        "{run:?}"
    );
}
