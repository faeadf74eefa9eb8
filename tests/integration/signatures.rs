//! Signed releases (docs/redis.md, "Signed releases"): keygen, deploy
//! signing, the signature written with current/manifest and reused by
//! rollback and activate without the key, require_signature, and the
//! private key never shown.

use cutover::signing::{Signature, VerifyKey};

use crate::support::fixtures::tiny_build;
use crate::support::{fixture, nginx, rt, Ctx};

/// `cutover keygen --out PREFIX` in the test's directory: (private PEM,
/// public PEM, fingerprint).
fn keygen(ctx: &Ctx, prefix: &str) -> (String, String, String) {
    let run = ctx.run(&["keygen", "--out", prefix, "--json"]);
    run.expect(0);
    let fingerprint = run.json()["fingerprint"].as_str().unwrap().to_string();
    let read = |f: &str| std::fs::read_to_string(ctx.work.path().join(f)).unwrap();
    (
        read(&format!("{prefix}.pem")),
        read(&format!("{prefix}.pub.pem")),
        fingerprint,
    )
}

/// `current`, `manifest` and `signature`, read in one MGET as a reader does.
fn live(ctx: &Ctx) -> (Option<String>, Option<String>, Option<String>) {
    rt().block_on(async {
        let mut con = ctx.redis().await;
        let v: Vec<Option<String>> = redis::cmd("MGET")
            .arg(ctx.key("current"))
            .arg(ctx.key("manifest"))
            .arg(ctx.key("signature"))
            .query_async(&mut con)
            .await
            .unwrap();
        (v[0].clone(), v[1].clone(), v[2].clone())
    })
}

/// The `signature` field of a release's records: (in Redis, in S3).
fn recorded_signatures(ctx: &Ctx, id: &str) -> (Option<String>, Option<String>) {
    let field = |text: &str| {
        serde_json::from_str::<serde_json::Value>(text).unwrap()["signature"]
            .as_str()
            .map(str::to_string)
    };
    let in_redis = rt()
        .block_on(ctx.get(&format!("release:{id}")))
        .map(|t| field(&t))
        .unwrap();
    let key = rt()
        .block_on(ctx.objects())
        .into_keys()
        .find(|k| k.ends_with(&format!("{id}.json")))
        .expect("the S3 record");
    let body = rt().block_on(ctx.object(&key));
    (in_redis, field(std::str::from_utf8(&body).unwrap()))
}

fn deploy_with(ctx: &Ctx, build: &std::path::Path, env: &[(&str, &str)]) -> String {
    let mut args = vec!["deploy", build.to_str().unwrap(), "--json"];
    args.push("-q");
    let run = ctx.run_with(&args, env);
    run.expect(0);
    run.json()["release"]["id"].as_str().unwrap().to_string()
}

#[test]
fn deploy_signs_rollback_without_the_key_keeps_it_and_unsigned_deletes_it() {
    let ctx = Ctx::new("signed");
    let (private, public, fingerprint) = keygen(&ctx, "ci");
    let public = VerifyKey::from_pem(&public).unwrap();
    assert_eq!(public.fingerprint, fingerprint);
    let path = ctx.work.path().join("ci.pem");
    let path = path.to_str().unwrap();

    // The dry run is the plan: it shows the signature write.
    let run = ctx.run_with(
        &[
            "deploy",
            fixture("shakapacker").to_str().unwrap(),
            "--dry-run",
        ],
        &[("CUTOVER_SIGNING_KEY", path)],
    );
    run.expect(0).stdout_has(&[&format!(
        "SET {} (signed by key {fingerprint})",
        ctx.key("signature")
    )]);

    // Signed with the key's file, then with the PEM itself in the variable.
    let a = deploy_with(
        &ctx,
        &fixture("shakapacker"),
        &[("CUTOVER_SIGNING_KEY", path)],
    );
    let (current, manifest, sig_a) = live(&ctx);
    assert_eq!(current.as_deref(), Some(a.as_str()));
    let sig_a = sig_a.expect("a signed deploy writes the signature");
    let parsed = Signature::parse(&sig_a).unwrap();
    assert_eq!(
        parsed
            .verify(
                &a,
                manifest.unwrap().as_bytes(),
                std::slice::from_ref(&public)
            )
            .unwrap(),
        fingerprint
    );
    assert_eq!(
        recorded_signatures(&ctx, &a),
        (Some(sig_a.clone()), Some(sig_a.clone()))
    );
    let b = deploy_with(&ctx, &fixture("flat"), &[("CUTOVER_SIGNING_KEY", &private)]);
    let (_, manifest_b, sig_b) = live(&ctx);
    Signature::parse(sig_b.as_deref().unwrap())
        .unwrap()
        .verify(
            &b,
            manifest_b.unwrap().as_bytes(),
            std::slice::from_ref(&public),
        )
        .unwrap();

    // On-call rolls back with no key: the old release's own signature.
    ctx.run(&["rollback"]).expect(0);
    let (current, manifest, sig) = live(&ctx);
    assert_eq!(current.as_deref(), Some(a.as_str()));
    assert_eq!(sig.as_deref(), Some(sig_a.as_str()));
    Signature::parse(&sig_a)
        .unwrap()
        .verify(
            &a,
            manifest.unwrap().as_bytes(),
            std::slice::from_ref(&public),
        )
        .unwrap();
    let status = ctx.run(&["status", "--json"]);
    status.expect(0);
    let s = status.json();
    assert_eq!(s["signature"]["signed"], true, "{s}");
    assert_eq!(s["signature"]["key"], fingerprint.as_str());
    assert_eq!(s["problems"], serde_json::json!([]));
    ctx.run(&["status"])
        .expect(0)
        .stdout_has(&[&format!("signed by key {fingerprint}")]);
    let verify = ctx.run(&["verify", "--json"]);
    verify.expect(0);
    assert_eq!(verify.json()["signature"]["key"], fingerprint.as_str());

    // An unsigned release made live deletes the signature with the switch.
    let c_dir = tiny_build(ctx.work.path(), "console.log('unsigned')");
    let c = deploy_with(&ctx, &c_dir, &[]);
    ctx.run(&["activate", &c, "--unpin"]).expect(0);
    let (current, _, sig) = live(&ctx);
    assert_eq!(current.as_deref(), Some(c.as_str()));
    assert_eq!(sig, None, "an unsigned release leaves no signature behind");
    assert_eq!(recorded_signatures(&ctx, &c), (None, None));
    let status = ctx.run(&["status", "--json"]);
    assert_eq!(status.json()["signature"]["signed"], false);
    // Unsigned but required: verify fails (4) and says so.
    ctx.run_with(&["verify"], &[("CUTOVER_REQUIRE_SIGNATURE", "true")])
        .expect(4)
        .stdout_has(&["unsigned", "require_signature"]);

    // Activating the signed one again brings its signature back.
    ctx.run(&["activate", &b]).expect(0);
    assert_eq!(live(&ctx).2, sig_b);
}

#[test]
fn require_signature_without_a_key_changes_nothing() {
    let ctx = Ctx::new("sig-required");
    crate::support::deploy(&ctx, fixture("shakapacker").to_str().unwrap(), &[]);
    let before = ctx.world();
    let run = ctx.run_with(
        &["deploy", fixture("flat").to_str().unwrap()],
        &[("CUTOVER_REQUIRE_SIGNATURE", "true")],
    );
    run.expect(2)
        .error_has(&["require_signature", "signing_key", "nothing was uploaded"]);
    ctx.assert_unchanged(&before, "a deploy refused for want of a key");

    // With a key it goes through, signed.
    let (private, _, fingerprint) = keygen(&ctx, "k");
    let run = ctx.run_with(
        &["deploy", fixture("flat").to_str().unwrap(), "--json"],
        &[
            ("CUTOVER_REQUIRE_SIGNATURE", "true"),
            ("CUTOVER_SIGNING_KEY", &private),
        ],
    );
    run.expect(0);
    let sig = Signature::parse(&live(&ctx).2.unwrap()).unwrap();
    assert_eq!(sig.key, fingerprint);
}

#[test]
fn keygen_never_overwrites() {
    let ctx = Ctx::new("keygen");
    let (private, public, _) = keygen(&ctx, "release");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(ctx.work.path().join("release.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let run = ctx.run(&["keygen", "--out", "release"]);
    run.expect(2)
        .error_has(&["release.pem exists", "never overwrites"]);
    // Only the public half there: still refused, and no private key written.
    std::fs::remove_file(ctx.work.path().join("release.pem")).unwrap();
    ctx.run(&["keygen", "--out", "release"])
        .expect(2)
        .error_has(&["release.pub.pem exists"]);
    assert!(!ctx.work.path().join("release.pem").exists());
    let read = |f: &str| std::fs::read_to_string(ctx.work.path().join(f)).unwrap();
    assert_eq!(read("release.pub.pem"), public);
    assert!(private.starts_with("-----BEGIN PRIVATE KEY-----"));
    // The default prefix.
    ctx.run(&["keygen"]).expect(0).stdout_has(&[
        "cutover-signing-key.pem",
        "cutover-signing-key.pub.pem",
        "fingerprint: ",
    ]);
}

#[test]
fn the_private_key_never_appears_in_any_output() {
    let ctx = Ctx::new("sig-secret");
    let cdn = nginx::start(&ctx.s3_endpoint, &ctx.bucket);
    let (private, _, fingerprint) = keygen(&ctx, "secret");
    // Every line of the key's body, and the body joined.
    let body: Vec<String> = private
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::to_string)
        .collect();
    let joined = body.concat();
    let one_line = private.trim().replace('\n', "\\n");
    let env = [
        ("CUTOVER_SIGNING_KEY", one_line.as_str()),
        ("CUTOVER_CDN_URL", cdn.url.as_str()),
    ];
    let build = fixture("shakapacker");
    let build = build.to_str().unwrap();
    let runs = [
        ctx.run_with(&["deploy", build, "--json"], &env),
        ctx.run_with(&["deploy", build, "--dry-run", "-v"], &env),
        ctx.run_with(&["config"], &env),
        ctx.run_with(&["config", "--json"], &env),
        ctx.run_with(&["status", "--json"], &env),
        ctx.run_with(&["status"], &env),
        ctx.run_with(&["doctor", "--json"], &env),
        // Errors: a damaged key, the key without its PEM lines, a bad deploy.
        ctx.run_with(
            &["deploy", build, "--json"],
            &[(
                "CUTOVER_SIGNING_KEY",
                &private.replace(&body[0][8..24], "AAAAAAAAAAAAAAAA"),
            )],
        ),
        ctx.run_with(&["config", "--json"], &[("CUTOVER_SIGNING_KEY", &joined)]),
        ctx.run_with(&["deploy", "no-such-dir", "--json"], &env),
    ];
    for run in &runs {
        for text in [&run.stdout, &run.stderr] {
            for line in &body {
                // Fragments too: a key shown in part is shown.
                for part in line.as_bytes().chunks(12).filter(|c| c.len() == 12) {
                    let part = std::str::from_utf8(part).unwrap();
                    assert!(!text.contains(part), "the key shown: {run:?}");
                }
            }
        }
    }
    runs[0].expect(0);
    runs[2]
        .expect(0)
        .stdout_has(&["signing_key", "not shown", &fingerprint]);
    let doctor = runs[6].json();
    let check = doctor["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "signature")
        .unwrap()
        .clone();
    assert_eq!(check["status"], "pass", "{doctor}");
    assert_eq!(doctor["signature"]["key"], fingerprint.as_str());
    runs[7].expect(2).error_has(&["signing_key"]);
    runs[8].expect(2).error_has(&["signing_key"]);

    // Doctor flags an unsigned live release when signatures are required.
    let unsigned = tiny_build(ctx.work.path(), "console.log('u')");
    ctx.run_with(
        &["deploy", unsigned.to_str().unwrap()],
        &[("CUTOVER_CDN_URL", cdn.url.as_str())],
    )
    .expect(0);
    let run = ctx.run_with(
        &["doctor", "--json"],
        &[
            ("CUTOVER_CDN_URL", cdn.url.as_str()),
            ("CUTOVER_REQUIRE_SIGNATURE", "true"),
        ],
    );
    let doc = run.json();
    let check = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "signature")
        .unwrap()
        .clone();
    assert_eq!(check["status"], "fail", "{doc}");
    assert!(check["detail"].as_str().unwrap().contains("unsigned"));
}
