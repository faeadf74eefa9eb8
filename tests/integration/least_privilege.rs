//! Least privilege on a server that enforces it: moto with its IAM
//! enforcement on (its `reset-auth` switch, the one behind
//! `INITIAL_NO_AUTH_ACTION_COUNT`). For each role, an IAM user holding
//! exactly the document `cutover policy ROLE` prints runs the role's
//! commands and succeeds; a user holding that document with any one action
//! removed fails, naming the action and the bucket or object it was for:
//! exit 2 before the switch, exit 6 for CloudFront's invalidation (after
//! the switch, which stands).
//!
//! Two of moto's ways differ from AWS, and the documents are adapted for
//! them here, nowhere else: moto authorizes HeadBucket as `s3:HeadBucket`
//! (AWS checks `s3:ListBucket`), so that action joins `s3:ListBucket`; and
//! it authorizes CloudFront calls against the resource `*` (AWS against the
//! distribution's ARN), so the CloudFront statement's resource is `*`; and
//! it authorizes DeleteObjects as `s3:DeleteObject` on the bucket (AWS on
//! each object), so that grant is added on the bucket too.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::mutable_files::{build as sw_build, distribution};
use crate::support::servers::{free_port, spawn_server, wait_for_port};
use crate::support::tight_prune;
use crate::support::{repo_root, rt, Ctx, Run};

const MIB: usize = 1024 * 1024;

/// Actions a role's document grants that its scenario cannot make it call:
/// cleaning up an interrupted multipart upload. The deploy works without
/// them (the parts are left to the bucket's lifecycle rule), which the test
/// checks too.
const CLEANUP_ONLY: &[&str] = &["s3:AbortMultipartUpload", "s3:ListBucketMultipartUploads"];

/// Granted for AWS's sake where moto cannot show the need: S3 answers a
/// HEAD or GET of a missing object 403 rather than 404 to whoever may not
/// list the bucket, and a rollback must tell a missing object (exit 4) from
/// a refused one (exit 2); moto answers 404 either way. A rollback without
/// it still works: its listings of the release's stretches are refused
/// (403) and every object gets a HEAD, as this case checks. (Activate,
/// prune, deploy and read list the bucket in their scenarios.)
const FOR_AWS_404S: &[(&str, &str)] = &[("rollback", "s3:ListBucket")];

/// A role's world: set up with moto's default credentials before the
/// enforcement starts, then run with the role's user only.
struct World {
    role: &'static str,
    ctx: Ctx,
    /// The commands the role runs, in order; each must exit as `expect` says.
    runs: Vec<Vec<String>>,
    /// Exit codes with every permission: 0, or what the same command gave
    /// before the enforcement started (doctor reports findings of its own).
    expect: Vec<i32>,
    /// Settings for every run (the file's environments for promote).
    env: Vec<(&'static str, String)>,
    /// The buckets the role's document is about.
    buckets: Vec<String>,
}

impl World {
    fn run(&self, args: &[String], keys: Option<&(String, String)>) -> Run {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut c = self
            .ctx
            .cutover(&args)
            .env("AWS_ENDPOINT_URL_CLOUDFRONT", &self.ctx.s3_endpoint)
            .env("CUTOVER_MULTIPART_THRESHOLD_MIB", "5");
        for (k, v) in &self.env {
            c = c.env(k, v);
        }
        if let Some((id, secret)) = keys {
            c = c
                .env("AWS_ACCESS_KEY_ID", id)
                .env("AWS_SECRET_ACCESS_KEY", secret);
        }
        c.run()
    }

    /// The document `cutover policy ROLE` prints for this world.
    fn policy(&self) -> Value {
        let mut args = vec!["policy".to_string(), self.role.to_string(), "--json".into()];
        if self.role == "promote" {
            args.extend(["--from", "staging", "--to", "production"].map(String::from));
        }
        let run = self.run(&args, None);
        run.expect(0);
        run.json()["policy"].clone()
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// A release id from `deploy --json`, run with moto's default credentials.
fn deployed(w: &World, dir: &std::path::Path, extra: &[&str]) -> String {
    let mut args = strings(&["deploy", dir.to_str().unwrap(), "--json"]);
    args.extend(strings(extra));
    let run = w.run(&args, None);
    run.expect(0);
    run.json()["release"]["id"].as_str().unwrap().to_string()
}

/// A build with a mutable service worker (restored by activate and
/// rollback, invalidated on CloudFront) and, for `big`, a file uploaded in
/// parts.
fn build(ctx: &Ctx, name: &str, big: bool) -> std::path::PathBuf {
    let dir = sw_build(ctx, name, &format!("self.version = '{name}'"));
    if big {
        let bytes: Vec<u8> = (0..(11 * MIB))
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        std::fs::write(dir.join("js/video-00aa11bb22cc33dd44ee.bin"), bytes).unwrap();
    }
    dir
}

fn world(role: &'static str, moto: &str) -> World {
    let ctx = Ctx::on(&format!("lp-{role}"), moto);
    let mut w = World {
        role,
        runs: Vec::new(),
        expect: Vec::new(),
        env: Vec::new(),
        buckets: vec![ctx.bucket.clone()],
        ctx,
    };
    if role == "promote" {
        promote_world(&mut w);
        return w;
    }
    let dist = rt().block_on(distribution(&w.ctx));
    std::fs::write(
        w.ctx.work.path().join("cutover.toml"),
        format!("cloudfront_distribution_id = \"{dist}\"\n\n[[mutable]]\nglob = \"sw.js\"\n"),
    )
    .unwrap();
    let a = deployed(&w, &build(&w.ctx, "a", false), &[]);
    deployed(&w, &build(&w.ctx, "b", false), &[]);
    w.runs = match role {
        "deploy" => vec![strings(&[
            "deploy",
            build(&w.ctx, "c", true).to_str().unwrap(),
        ])],
        // Recorded in S3 only (Redis lost it): activate by a prefix of its
        // id finds it by listing the records.
        "activate" => {
            let c = deployed(
                &w,
                &build(&w.ctx, "c", false),
                &["--no-redis", "--no-activate"],
            );
            vec![strings(&["activate", &c[..10]])]
        }
        // Redis lost the record of the release to roll back to: it is read
        // from S3, found by listing the records.
        "rollback" => {
            let key = w.ctx.key(&format!("release:{a}"));
            w.ctx.redis_cmd(&["DEL", &key]);
            vec![strings(&["rollback"])]
        }
        "prune" => {
            // c live, b its rollback target: a's record and service worker go.
            deployed(&w, &build(&w.ctx, "c", false), &[]);
            vec![strings(&tight_prune("1"))]
        }
        "read" => ["status", "releases", "history", "verify", "doctor"]
            .iter()
            .map(|c| strings(&[c]))
            .collect(),
        _ => unreachable!("{role}"),
    };
    // With every permission each command exits as it does now, with moto's
    // own credentials (only doctor, read-only, can be run twice to know).
    w.expect = w
        .runs
        .iter()
        .map(|r| match r[0].as_str() {
            "doctor" => w.run(r, None).code,
            _ => 0,
        })
        .collect();
    w
}

/// Staging on the world's bucket, production on a second one: promote
/// copies (the build finds its files relatively, so it may move).
fn promote_world(w: &mut World) {
    let prod = format!("{}-p", &w.ctx.bucket[..w.ctx.bucket.len().min(55)]);
    rt().block_on(async {
        w.ctx
            .s3()
            .await
            .create_bucket()
            .bucket(&prod)
            .send()
            .await
            .unwrap()
    });
    let (staging_redis, prod_redis) = (
        crate::support::start_redis(&[]),
        crate::support::start_redis(&[]),
    );
    std::fs::write(
        w.ctx.work.path().join("cutover.toml"),
        format!(
            "[environments.staging]\nbucket = \"{}\"\ncdn_url = \"https://cdn.staging.example\"\nredis_url = \"redis://127.0.0.1:{staging_redis}\"\n\n\
             [environments.production]\nbucket = \"{prod}\"\ncdn_url = \"https://cdn.prod.example\"\nredis_url = \"redis://127.0.0.1:{prod_redis}\"\n",
            w.ctx.bucket
        ),
    )
    .unwrap();
    w.env = vec![
        ("CUTOVER_BUCKET", String::new()),
        ("CUTOVER_CDN_URL", String::new()),
        ("REDIS_URL", String::new()),
    ];
    let dir = w.ctx.work.path().join("rel");
    std::fs::create_dir_all(dir.join("js")).unwrap();
    std::fs::write(dir.join("js/app-0a1b2c3d4e5f60718293.js"), "app(1)").unwrap();
    std::fs::write(
        dir.join("manifest.json"),
        r#"{"application.js": "js/app-0a1b2c3d4e5f60718293.js"}"#,
    )
    .unwrap();
    let id = deployed(w, &dir, &["--env", "staging"]);
    w.runs = vec![strings(&[
        "promote",
        &id,
        "--from",
        "staging",
        "--to",
        "production",
    ])];
    w.expect = vec![0];
    w.buckets.push(prod);
}

/// The document as moto enforces it (see the module's comment).
fn for_moto(doc: &Value) -> Value {
    let mut doc = doc.clone();
    let statements = doc["Statement"].as_array_mut().unwrap();
    let bucket_deletes: Vec<Value> = statements
        .iter()
        .filter(|s| {
            s["Action"]
                .as_array()
                .unwrap()
                .contains(&json!("s3:DeleteObject"))
        })
        .flat_map(|s| s["Resource"].as_array().unwrap().clone())
        .filter_map(|r| Some(json!(r.as_str()?.split('/').next()?)))
        .collect();
    if !bucket_deletes.is_empty() {
        statements.push(
            json!({"Effect": "Allow", "Action": ["s3:DeleteObject"], "Resource": bucket_deletes}),
        );
    }
    for s in statements.iter_mut() {
        let actions = s["Action"].as_array_mut().unwrap();
        if actions.contains(&json!("s3:ListBucket")) {
            actions.push(json!("s3:HeadBucket"));
        }
        if s["Resource"].to_string().contains("arn:aws:cloudfront") {
            s["Resource"] = json!("*");
        }
    }
    doc
}

/// The document without `action` (and moto's HeadBucket with ListBucket).
fn without(doc: &Value, action: &str) -> Value {
    let mut doc = doc.clone();
    let statements = doc["Statement"].as_array_mut().unwrap();
    for s in statements.iter_mut() {
        s["Action"]
            .as_array_mut()
            .unwrap()
            .retain(|a| a != action && !(action == "s3:ListBucket" && a == "s3:HeadBucket"));
    }
    statements.retain(|s| !s["Action"].as_array().unwrap().is_empty());
    doc
}

fn actions(doc: &Value) -> Vec<String> {
    let mut out: Vec<String> = doc["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["Action"].as_array().unwrap().clone())
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// A moto of its own: its enforcement is for the whole server.
fn start_moto() -> String {
    let port = free_port();
    let mut cmd = Command::new(repo_root().join(".venv-s3/bin/moto_server"));
    cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
    spawn_server(cmd);
    wait_for_port(port, "moto_server");
    format!("http://127.0.0.1:{port}")
}

/// IAM users holding these documents, made with boto3 (another SDK, from
/// moto's venv); then moto's enforcement on. Their access keys by name.
fn users_then_enforce(
    moto: &str,
    users: &BTreeMap<String, Value>,
) -> BTreeMap<String, (String, String)> {
    const SCRIPT: &str = r#"
import json, sys, urllib.request
import boto3
spec = json.load(sys.stdin)
iam = boto3.client("iam", endpoint_url=spec["endpoint"], region_name="us-east-1",
                   aws_access_key_id="test", aws_secret_access_key="test")
out = {}
for name, doc in spec["users"].items():
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="cutover", PolicyDocument=json.dumps(doc))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    out[name] = [key["AccessKeyId"], key["SecretAccessKey"]]
urllib.request.urlopen(urllib.request.Request(spec["endpoint"] + "/moto-api/reset-auth", data=b"0",
                                              headers={"Content-Type": "text/plain"}, method="POST"))
json.dump(out, sys.stdout)
"#;
    let mut child = Command::new(repo_root().join(".venv-s3/bin/python"))
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let spec = json!({"endpoint": moto, "users": users});
    std::io::Write::write_all(
        &mut child.stdin.take().unwrap(),
        spec.to_string().as_bytes(),
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "making IAM users failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let keys: BTreeMap<String, (String, String)> = serde_json::from_slice(&out.stdout).unwrap();
    keys
}

#[test]
fn each_role_works_with_exactly_its_printed_policy_and_a_missing_action_is_named() {
    let moto = start_moto();
    let roles = ["deploy", "activate", "rollback", "prune", "promote", "read"];
    // One world per role with its whole document, and one per (role,
    // action) with that action removed: each is changed by its own runs.
    let mut cases: Vec<(World, Option<String>)> = Vec::new();
    let mut users = BTreeMap::new();
    for role in roles {
        let whole = world(role, &moto);
        let doc = for_moto(&whole.policy());
        let removable = actions(&doc);
        assert!(!removable.is_empty(), "{role}: an empty policy");
        users.insert(format!("u{}", cases.len()), doc.clone());
        cases.push((whole, None));
        for action in removable.iter().filter(|a| *a != "s3:HeadBucket") {
            // Each world has its own bucket, so its own document.
            let w = world(role, &moto);
            let doc = for_moto(&w.policy());
            users.insert(format!("u{}", cases.len()), without(&doc, action));
            cases.push((w, Some(action.clone())));
        }
    }
    let keys = users_then_enforce(&moto, &users);

    // Enforcement is on: moto's own credentials are refused now.
    cases[0]
        .0
        .run(&strings(&["verify"]), None)
        .expect(2)
        .error_has(&["rejected the credentials"]);

    let mut report = Vec::new();
    for (i, (w, removed)) in cases.iter().enumerate() {
        let key = &keys[&format!("u{i}")];
        let results: Vec<Run> = w.runs.iter().map(|r| w.run(r, Some(key))).collect();
        let codes: Vec<i32> = results.iter().map(|r| r.code).collect();
        match removed {
            None => assert_eq!(
                codes,
                w.expect,
                "{}: with exactly its policy: {:?}",
                w.role,
                results.iter().map(Run::error_line).collect::<Vec<_>>()
            ),
            Some(action)
                if CLEANUP_ONLY.contains(&action.as_str())
                    || FOR_AWS_404S.contains(&(w.role, action.as_str())) =>
            {
                assert_eq!(codes, w.expect, "{}: without {action}", w.role)
            }
            Some(action) => {
                // The first run that does not exit as with every permission
                // names what is missing.
                // doctor reports a refused read as a failed check, in its
                // output, and exits as it did for its other findings.
                let Some(at) =
                    results
                        .iter()
                        .zip(&w.runs)
                        .zip(&w.expect)
                        .position(|((r, args), want)| {
                            r.code != *want
                                || (args[0] == "doctor" && r.stdout.contains(action.as_str()))
                        })
                else {
                    panic!(
                        "{}: without {action} every command exited as with it",
                        w.role
                    )
                };
                let failed = &results[at];
                let after_switch = action.starts_with("cloudfront:");
                let doctor = w.runs[at][0] == "doctor";
                let line = if doctor {
                    failed
                        .stdout
                        .lines()
                        .find(|l| l.contains(action.as_str()))
                        .unwrap_or_else(|| panic!("doctor without {action}: {}", failed.stdout))
                } else {
                    failed.error_line()
                };
                report.push(format!("{} -{action}: {} {line}", w.role, failed.code));
                assert_eq!(
                    failed.code,
                    match (after_switch, doctor) {
                        (true, _) => 6,
                        (_, true) => w.expect[at],
                        _ => 2,
                    },
                    "{}: without {action}: {line}",
                    w.role
                );
                assert!(
                    line.contains(action.as_str()),
                    "{}: without {action}: {line}",
                    w.role
                );
                assert!(
                    after_switch || w.buckets.iter().any(|b| line.contains(b.as_str())),
                    "{}: without {action}, the error names no bucket: {line}",
                    w.role
                );
            }
        }
    }
    eprintln!("{}", report.join("\n"));
}

/// The Redis user `cutover policy ROLE --format redis-acl` prints for the
/// CLI, made on the test's redis-server; a URL that logs in as it.
fn printed_redis_user(ctx: &Ctx, role: &str) -> String {
    let run = ctx.run(&["policy", role, "--format", "redis-acl", "--json"]);
    run.expect(0);
    let line = run.json()["redis_acl"]["cli"].as_str().unwrap().to_string();
    let words: Vec<String> = line
        .split_whitespace()
        .skip(3) // ACL SETUSER <name>
        .map(|w| w.replace(">PASSWORD", ">pw"))
        .collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    ctx.acl_user(&format!("p{role}"), &words)
}

#[test]
fn the_printed_redis_lines_are_enough_and_the_read_line_cannot_write() {
    let ctx = Ctx::new("lp-redis");
    let (deployer, reader) = (
        printed_redis_user(&ctx, "deploy"),
        printed_redis_user(&ctx, "read"),
    );
    let as_user = |url: &str, args: &[&str]| ctx.run_with(args, &[("REDIS_URL", url)]);
    let a = crate::support::fixtures::tiny_build(&ctx.work.path().join("a"), "app(1)");
    let b = crate::support::fixtures::tiny_build(ctx.work.path(), "app(2)");
    for args in [
        vec!["deploy", a.to_str().unwrap()],
        vec!["deploy", b.to_str().unwrap()],
        vec!["rollback"],
        vec!["unpin"],
        vec!["pin", "--message", "hold"],
        vec!["unpin"],
        vec!["deploy", b.to_str().unwrap()],
        vec!["unlock", "--force"],
        tight_prune("1").to_vec(),
    ] {
        as_user(&deployer, &args).expect(0);
    }
    let doctor = ctx.run(&["doctor"]).code;
    for args in [
        vec!["status"],
        vec!["releases"],
        vec!["history"],
        vec!["verify"],
        vec!["diff"],
    ] {
        as_user(&reader, &args).expect(0);
    }
    assert_eq!(as_user(&reader, &["doctor"]).code, doctor);
    // The read user changes nothing: a deploy stops before uploading,
    // naming what it may not run.
    let before = ctx.world();
    as_user(&reader, &["deploy", a.to_str().unwrap()])
        .expect(2)
        .error_has(&["eval"]);
    ctx.assert_unchanged(&before, "a deploy as the read user");
    // --wait-converged reads the fleet after the switch: a user that may
    // not (an ACL line from before the fleet, without +zrange) is told
    // before anything is uploaded or switched.
    let run = ctx.run(&["policy", "deploy", "--format", "redis-acl", "--json"]);
    let line = run.json()["redis_acl"]["cli"]
        .as_str()
        .unwrap()
        .replace(" +zrange", "");
    let words: Vec<String> = line
        .split_whitespace()
        .skip(3)
        .map(|w| w.replace(">PASSWORD", ">pw"))
        .collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let older = ctx.acl_user("older", &words);
    let c = crate::support::fixtures::tiny_build(&ctx.work.path().join("c"), "app(3)");
    as_user(&older, &["deploy", c.to_str().unwrap()]).expect(0);
    let before = ctx.world();
    let d = crate::support::fixtures::tiny_build(&ctx.work.path().join("d"), "app(4)");
    as_user(
        &older,
        &["deploy", d.to_str().unwrap(), "--wait-converged=5"],
    )
    .expect(2)
    .error_has(&["ZRANGE"]);
    ctx.assert_unchanged(&before, "a deploy that could not read the fleet");
}
