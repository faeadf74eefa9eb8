//! Records in S3 are input too: anyone who can write the bucket can write
//! one. A record whose id is not its key's, whose files name keys outside
//! the prefix (`..`, `//`), or whose manifest is on another host is refused
//! (exit 4, naming the record and the problem) by every command that would
//! act on it, and nothing is written to S3 or Redis.

use serde_json::json;

use crate::support::{deploy, fixture, rt, Ctx};

/// The record of `id` as JSON.
async fn record(ctx: &Ctx, id: &str) -> serde_json::Value {
    let key = format!("_cutover/{}/releases/{id}.json", ctx.app);
    serde_json::from_slice(&ctx.object(&key).await).unwrap()
}

/// Write `record` at the key of release `id`.
async fn plant(ctx: &Ctx, id: &str, record: &serde_json::Value) {
    let key = format!("_cutover/{}/releases/{id}.json", ctx.app);
    ctx.put(&key, &serde_json::to_vec(record).unwrap()).await;
}

/// How a case changes a sound record.
type Craft = Box<dyn Fn(&mut serde_json::Value)>;

#[test]
fn crafted_records_are_refused_and_change_nothing() {
    let ctx = Ctx::new("crafted-records");
    let a = deploy(&ctx, fixture("shakapacker").to_str().unwrap(), &[]);
    let real = rt().block_on(record(&ctx, &a));
    // Each crafted record gets its own id; `id` inside is that id unless
    // the case is about the id.
    let cases: Vec<(&str, &str, Craft)> = vec![
        (
            "00000000000000a1",
            "packs/../../_cutover/x/evil",
            Box::new(|r| r["files"][0]["path"] = "../../_cutover/x/evil".into()),
        ),
        (
            "00000000000000a2",
            "packs//abs/evil.js",
            Box::new(|r| r["files"][0]["path"] = "/abs/evil.js".into()),
        ),
        (
            "00000000000000a3",
            "evil.example",
            Box::new(|r| {
                let m = r["manifest"].as_object_mut().unwrap();
                let k = m.keys().next().unwrap().clone();
                m[&k] = "https://evil.example/packs/x.js".into();
            }),
        ),
        (
            "00000000000000a4",
            "says it is release",
            Box::new(|r| r["id"] = "00000000000000b4".into()),
        ),
    ];
    for (id, _, craft) in &cases {
        let mut r = real.clone();
        r["id"] = (*id).into();
        craft(&mut r);
        rt().block_on(plant(&ctx, id, &r));
    }
    let before = ctx.world();
    for (id, problem, _) in &cases {
        let key = format!("_cutover/{}/releases/{id}.json", ctx.app);
        for args in [
            vec!["activate", id],
            vec!["rollback", "--to", id],
            vec!["verify", id],
            vec!["activate", id, "--dry-run"],
        ] {
            ctx.run(&args).expect(4).error_has(&[&key, problem]);
        }
    }
    ctx.assert_unchanged(&before, "commands on crafted records");
    assert_eq!(
        rt().block_on(ctx.get("current")).as_deref(),
        Some(a.as_str())
    );
}

#[test]
fn a_record_in_redis_that_is_not_the_release_is_written_again_from_s3() {
    let ctx = Ctx::new("crafted-redis-record");
    let a = deploy(&ctx, fixture("shakapacker").to_str().unwrap(), &[]);
    let b = deploy(&ctx, fixture("flat").to_str().unwrap(), &[]);
    let key = ctx.key(&format!("release:{a}"));
    let redis::Value::BulkString(raw) = ctx.redis_cmd(&["GET", &key]) else {
        panic!("no record of {a} in Redis")
    };
    let sound: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    // Redis's copy of A claims another id and another host; then only
    // another host: either way it is not A's record.
    for forged in [
        json!({"id": b.as_str(), "cdn_url": "https://evil.example"}),
        json!({"cdn_url": "https://evil.example"}),
    ] {
        let mut copy = sound.clone();
        for (k, v) in forged.as_object().unwrap() {
            copy[k] = v.clone();
        }
        ctx.redis_cmd(&["SET", &key, &copy.to_string()]);
        // What verify reads is the S3 record: sound.
        ctx.run(&["verify", &a]).expect(0);
        // Activating A writes A's own record over the forged one, and
        // publishes nothing of it.
        ctx.run(&["activate", &a]).expect(0);
        assert_eq!(
            rt().block_on(ctx.get("current")).as_deref(),
            Some(a.as_str())
        );
        let redis::Value::BulkString(raw) = ctx.redis_cmd(&["GET", &key]) else {
            panic!("the record of {a} was not written again")
        };
        let copy: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(copy["id"], a.as_str());
        assert_eq!(copy["cdn_url"], sound["cdn_url"]);
        let manifest = rt().block_on(ctx.get("manifest")).unwrap();
        assert!(!manifest.contains("evil.example"), "{manifest}");
        ctx.run(&["activate", &b]).expect(0);
    }
}

#[test]
fn doctor_reports_a_key_of_the_wrong_type_with_its_fix() {
    let ctx = Ctx::new("doctor-wrong-type");
    deploy(&ctx, fixture("shakapacker").to_str().unwrap(), &[]);
    let current = ctx.key("current");
    ctx.redis_cmd(&["DEL", &current]);
    ctx.redis_cmd(&["RPUSH", &current, "x"]);
    let run = ctx.run(&["doctor", "--json"]);
    // A failed check (exit 2, like every ✗), not an error (exit 1).
    run.expect(2);
    let checks = run.json()["checks"].as_array().unwrap().clone();
    let keys = checks
        .iter()
        .find(|c| c["name"] == "keys")
        .unwrap_or_else(|| panic!("no keys check: {checks:?}"));
    assert_eq!(keys["status"], "fail");
    let detail = keys["detail"].as_str().unwrap();
    assert!(
        detail.contains(&current) && detail.contains("list"),
        "{detail}"
    );
    assert!(keys["fix"].as_str().unwrap().contains("DEL"), "{keys}");
    // The other checks still ran.
    for name in ["bucket", "redis", "permissions"] {
        assert!(
            checks.iter().any(|c| c["name"] == name),
            "{name}: {checks:?}"
        );
    }
    let text = ctx.run(&["doctor"]);
    assert!(text.stdout.contains("✗ keys: "), "{text:?}");
}
