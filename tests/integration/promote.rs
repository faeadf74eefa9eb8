//! Environments and promote: build once, deploy to staging, promote the
//! same release (same id, same bytes) to production, which has its own
//! bucket, CDN and Redis.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::ctx::redis_at;
use crate::support::fixtures::tiny_build;
use crate::support::{rt, start_redis, Ctx, Run};

/// Two environments: staging on the test's bucket and a private Redis,
/// production on a second bucket, another CDN and another Redis.
struct Envs {
    ctx: Ctx,
    prod_bucket: String,
    staging_redis: u16,
    prod_redis: u16,
}

impl Envs {
    fn new(name: &str) -> Envs {
        let ctx = Ctx::new(name);
        let prod_bucket = format!("{}-prod", &ctx.bucket[..ctx.bucket.len().min(50)]);
        rt().block_on(async {
            ctx.s3()
                .await
                .create_bucket()
                .bucket(&prod_bucket)
                .send()
                .await
                .unwrap()
        });
        let envs = Envs {
            prod_bucket,
            staging_redis: start_redis(&[]),
            prod_redis: start_redis(&[]),
            ctx,
        };
        std::fs::write(
            envs.ctx.work.path().join("cutover.toml"),
            format!(
                "exclude = [\"**/*.map\"]\n\n\
                 [environments.staging]\nbucket = \"{}\"\ncdn_url = \"https://cdn.staging.example\"\nredis_url = \"redis://127.0.0.1:{}\"\n\n\
                 [environments.production]\nbucket = \"{}\"\ncdn_url = \"https://cdn.prod.example\"\nredis_url = \"redis://127.0.0.1:{}\"\n",
                envs.ctx.bucket, envs.staging_redis, envs.prod_bucket, envs.prod_redis
            ),
        )
        .unwrap();
        envs
    }

    /// A run with the per-environment settings left to cutover.toml.
    fn run(&self, args: &[&str]) -> Run {
        self.ctx
            .cutover(args)
            .env("CUTOVER_BUCKET", "")
            .env("CUTOVER_CDN_URL", "")
            .env("REDIS_URL", "")
            .run()
    }

    /// Deploy a build to staging; its release id.
    fn deploy_staging(&self, build: &Path) -> String {
        let run = self.run(&[
            "deploy",
            build.to_str().unwrap(),
            "--env",
            "staging",
            "--json",
        ]);
        run.expect(0);
        run.json()["release"]["id"].as_str().unwrap().to_string()
    }

    fn redis_get(&self, port: u16, name: &str) -> Option<String> {
        redis::from_redis_value(redis_at(port, &["GET", &self.ctx.key(name)])).unwrap()
    }

    /// Every object of a bucket: key -> (size, etag).
    fn objects(&self, bucket: &str) -> std::collections::BTreeMap<String, (i64, String)> {
        rt().block_on(self.ctx.objects_in(bucket))
    }

    /// Both buckets and both Redis, for "nothing changed".
    fn world(&self) -> (Vec<String>, Option<String>, Option<String>, Option<String>) {
        let mut keys: Vec<String> = self.objects(&self.ctx.bucket).into_keys().collect();
        keys.extend(
            self.objects(&self.prod_bucket)
                .into_keys()
                .map(|k| format!("prod:{k}")),
        );
        (
            keys,
            self.redis_get(self.staging_redis, "current"),
            self.redis_get(self.prod_redis, "current"),
            self.redis_get(self.prod_redis, "manifest"),
        )
    }
}

/// A build whose files find each other relatively (webpack's `auto`
/// public path), so it can be served from any CDN.
fn relative_build(dir: &Path, js: &str) -> PathBuf {
    use sha2::{Digest, Sha256};
    let root = dir.join(format!("rel-{}", &hex::encode(Sha256::digest(js))[..8]));
    std::fs::create_dir_all(root.join("js")).unwrap();
    let hash = &hex::encode(Sha256::digest(js.as_bytes()))[..20];
    let script = format!("js/app-{hash}.js");
    std::fs::write(root.join(&script), js).unwrap();
    std::fs::write(root.join(format!("{script}.map")), "{}").unwrap();
    std::fs::write(root.join("js/vendor-0a1b2c3d4e5f60718293.js"), "vendor()").unwrap();
    let manifest = serde_json::json!({
        "application.js": script,
        "vendor.js": "js/vendor-0a1b2c3d4e5f60718293.js",
    });
    std::fs::write(root.join("manifest.json"), manifest.to_string()).unwrap();
    root
}

#[test]
fn promote_ships_the_tested_release_unchanged_to_another_environment() {
    let e = Envs::new("promote");
    let build = relative_build(e.ctx.work.path(), "app(1)");
    let id = e.deploy_staging(&build);
    assert_eq!(
        e.redis_get(e.staging_redis, "current").as_deref(),
        Some(id.as_str())
    );
    let staging_objects = e.objects(&e.ctx.bucket);

    // The dry run shows the copies and the switch, and changes nothing.
    let before = e.world();
    let dry = e.run(&[
        "promote",
        &id[..8],
        "--from",
        "staging",
        "--to",
        "production",
        "--dry-run",
    ]);
    dry.expect(0).stdout_has(&[
        "would promote",
        "2 objects to copy",
        &format!("from s3://{}/packs/js/app-", e.ctx.bucket),
        "Redis EVAL activate",
    ]);
    assert_eq!(before, e.world(), "a dry run changed something");

    let run = e.run(&[
        "promote",
        &id,
        "--from",
        "staging",
        "--to",
        "production",
        "--json",
    ]);
    run.expect(0);
    let out = run.json();
    assert_eq!(out["outcome"], "activated", "{out}");
    assert_eq!(out["copied"]["files"], 2);
    // Same id, same bytes, in production's bucket; its manifest points at
    // production's CDN; staging is untouched.
    assert_eq!(
        e.redis_get(e.prod_redis, "current").as_deref(),
        Some(id.as_str())
    );
    let prod = e.objects(&e.prod_bucket);
    for (key, (size, etag)) in staging_objects
        .iter()
        .filter(|(k, _)| k.starts_with("packs/"))
    {
        assert_eq!(
            prod.get(key),
            Some(&(*size, etag.clone())),
            "{key} in production"
        );
    }
    assert!(prod
        .keys()
        .any(|k| k.starts_with(&format!("_cutover/{}/releases/", e.ctx.app))));
    let manifest: Value =
        serde_json::from_str(&e.redis_get(e.prod_redis, "manifest").unwrap()).unwrap();
    assert!(
        manifest["application.js"]
            .as_str()
            .unwrap()
            .starts_with("https://cdn.prod.example/packs/js/app-"),
        "{manifest}"
    );
    let record: Value =
        serde_json::from_str(&e.redis_get(e.prod_redis, &format!("release:{id}")).unwrap())
            .unwrap();
    assert_eq!(record["promoted_from"]["environment"], "staging");
    assert_eq!(record["cdn_url"], "https://cdn.prod.example");
    assert_eq!(
        staging_objects,
        e.objects(&e.ctx.bucket),
        "staging's bucket changed"
    );
    assert_eq!(
        e.redis_get(e.staging_redis, "current").as_deref(),
        Some(id.as_str())
    );
    e.run(&["status", "--env", "production"])
        .expect(0)
        .stdout_has(&[
            &format!("live release of {}: {id}", e.ctx.app),
            "promoted from staging",
        ]);
    e.run(&["releases", "--env", "production"])
        .expect(0)
        .stdout_has(&["promoted from staging"]);
    e.run(&["verify", &id, "--env", "production"]).expect(0);

    // Again: already live, nothing copied.
    let again = e.run(&[
        "promote",
        &id,
        "--from",
        "staging",
        "--to",
        "production",
        "--json",
    ]);
    again.expect(0);
    assert_eq!(again.json()["outcome"], "already_live");

    // Into a pinned production: recorded (and copied) but not activated, exit 0.
    let second = relative_build(e.ctx.work.path(), "app(2)");
    let id2 = e.deploy_staging(&second);
    e.run(&["pin", "--env", "production", "-m", "freeze"])
        .expect(0);
    let pinned = e.run(&["promote", &id2, "--from", "staging", "--to", "production"]);
    pinned.expect(0).stdout_has(&["NOT activated", "pinned"]);
    assert_eq!(
        e.redis_get(e.prod_redis, "current").as_deref(),
        Some(id.as_str())
    );
    assert!(e
        .redis_get(e.prod_redis, &format!("release:{id2}"))
        .is_some());
    e.run(&["activate", &id2, "--unpin", "--env", "production"])
        .expect(0);
    assert_eq!(
        e.redis_get(e.prod_redis, "current").as_deref(),
        Some(id2.as_str())
    );
}

#[test]
fn promote_refuses_what_it_cannot_do_and_changes_nothing() {
    let e = Envs::new("promote-refusals");
    let build = relative_build(e.ctx.work.path(), "app(3)");
    let id = e.deploy_staging(&build);
    let promote = [
        "promote",
        id.as_str(),
        "--from",
        "staging",
        "--to",
        "production",
    ];

    // A per-environment setting given for both sides is refused (a
    // generic REDIS_URL, which the harness sets, ranks below the
    // environments: it could not override either side).
    let before = e.world();
    e.ctx
        .cutover(&promote)
        .env("CUTOVER_BUCKET", "")
        .env("CUTOVER_CDN_URL", "")
        .env("CUTOVER_REDIS_URL", "redis://127.0.0.1:1")
        .run()
        .expect(2)
        .error_has(&[
            "CUTOVER_REDIS_URL sets redis_url",
            "unset CUTOVER_REDIS_URL",
        ]);
    e.run(&["promote", &id, "--from", "staging", "--to", "staging"])
        .expect(2);
    e.run(&["promote", &id, "--from", "staging", "--to", "prod"])
        .expect(2)
        .error_has(&["environment \"prod\" (from flag --to) is not defined"]);
    assert_eq!(before, e.world());

    // A foreign lock on production: waits, then exit 3 naming it, nothing copied.
    let lock = e.ctx.key("lock");
    redis_at(
        e.prod_redis,
        &["SET", &lock, "someone-else/1/0", "PX", "60000"],
    );
    e.ctx
        .cutover(&[&promote[..], &["--lock-wait", "0"]].concat())
        .env("CUTOVER_BUCKET", "")
        .env("CUTOVER_CDN_URL", "")
        .env("REDIS_URL", "")
        .run()
        .expect(3)
        .error_has(&["someone-else/1/0"]);
    assert_eq!(
        e.redis_get(e.prod_redis, "lock").as_deref(),
        Some("someone-else/1/0")
    );
    assert_eq!(before, e.world(), "a refused promote changed something");
    redis_at(e.prod_redis, &["DEL", &lock]);

    // A build whose public path names staging's CDN cannot be served by production's.
    let absolute = tiny_build(e.ctx.work.path(), "tied()");
    let tied = e.deploy_staging(&absolute);
    e.run(&["promote", &tied, "--from", "staging", "--to", "production"])
        .expect(2)
        .error_has(&["public path", "https://cdn.prod.example/packs/"]);
    assert_eq!(e.redis_get(e.prod_redis, "current"), None);

    // An object of the release missing in staging: exit 4, nothing changed.
    let key = e
        .objects(&e.ctx.bucket)
        .into_keys()
        .find(|k| k.starts_with("packs/js/vendor-"))
        .unwrap();
    rt().block_on(async {
        e.ctx
            .s3()
            .await
            .delete_object()
            .bucket(&e.ctx.bucket)
            .key(&key)
            .send()
            .await
            .unwrap();
    });
    let before = e.world();
    e.run(&promote)
        .expect(4)
        .error_has(&["in staging", &key, "missing"]);
    assert_eq!(
        before,
        e.world(),
        "a promote of a broken release changed something"
    );
}

#[test]
fn the_orb_deploys_to_staging_then_promotes_that_release_to_production() {
    let e = Envs::new("promote-orb");
    let build = relative_build(e.ctx.work.path(), "app(orb)");
    let workspace = e.ctx.work.path().join("workspace");
    let orb = |name: &str, params: &[(&str, &str)]| {
        let mut cmd = crate::ci_pipeline::script(&e.ctx, &format!("orb/src/scripts/{name}.sh"));
        cmd.env("CUTOVER_BUCKET", "")
            .env("CUTOVER_CDN_URL", "")
            .env("REDIS_URL", "")
            .env("PARAM_RELEASE_ID_DIR", &workspace)
            .env("BASH_ENV", e.ctx.work.path().join("bash_env"));
        for (k, v) in params {
            cmd.env(k, v);
        }
        crate::support::run::finish(cmd.output().unwrap())
    };
    orb(
        "deploy",
        &[
            ("PARAM_BUILD_DIR", build.to_str().unwrap()),
            ("PARAM_EXTRA_ARGS", "--env staging"),
        ],
    )
    .expect(0);
    let id = std::fs::read_to_string(workspace.join("cutover-release-id")).unwrap();
    let id = id.trim();
    assert_eq!(e.redis_get(e.staging_redis, "current").as_deref(), Some(id));
    assert_eq!(e.redis_get(e.prod_redis, "current"), None);

    orb(
        "promote",
        &[
            ("PARAM_FROM", "staging"),
            ("PARAM_TO", "production"),
            ("PARAM_DRY_RUN", "true"),
        ],
    )
    .expect(0)
    .stdout_has(&["dry run: nothing changed", "copied:   2 objects"]);
    assert_eq!(e.redis_get(e.prod_redis, "current"), None);
    orb(
        "promote",
        &[("PARAM_FROM", "staging"), ("PARAM_TO", "production")],
    )
    .expect(0)
    .stdout_has(&[
        &format!("release:  {id} (activated)"),
        "from:     staging -> production",
    ]);
    assert_eq!(e.redis_get(e.prod_redis, "current").as_deref(), Some(id));
    orb("promote", &[("PARAM_FROM", "staging")])
        .expect(2)
        .stderr_has(&["needs the from and to parameters"]);

    // The GitHub Action in promote mode: outputs and a summary.
    let second = relative_build(e.ctx.work.path(), "app(action)");
    let id2 = e.deploy_staging(&second);
    let (outputs_path, summary_path) =
        (e.ctx.work.path().join("out"), e.ctx.work.path().join("sum"));
    let (outputs, summary) = (outputs_path.clone(), summary_path.clone());
    let mut cmd = crate::ci_pipeline::script(&e.ctx, "scripts/ci/github-action.sh");
    cmd.env("CUTOVER_BUCKET", "")
        .env("CUTOVER_CDN_URL", "")
        .env("REDIS_URL", "")
        .env("INPUT_PROMOTE_TO", "production")
        .env("INPUT_PROMOTE_FROM", "staging")
        .env("INPUT_RELEASE", &id2)
        .env("GITHUB_OUTPUT", &outputs)
        .env("GITHUB_STEP_SUMMARY", &summary);
    crate::support::run::finish(cmd.output().unwrap()).expect(0);
    let outputs = std::fs::read_to_string(outputs).unwrap();
    for line in [
        format!("release-id={id2}"),
        format!("live-release={id2}"),
        "outcome=activated".to_string(),
        "activated=true".to_string(),
        // Only the new script: the vendor file is there from the first promote.
        "copied=1".to_string(),
    ] {
        assert!(outputs.lines().any(|l| l == line), "{line} in {outputs}");
    }
    let summary = std::fs::read_to_string(summary).unwrap();
    assert!(
        summary.contains("staging → production")
            && summary.contains("Objects copied: 1")
            && summary.contains("already there: 1"),
        "{summary}"
    );
    assert_eq!(
        e.redis_get(e.prod_redis, "current").as_deref(),
        Some(id2.as_str())
    );

    // A failed promote: cutover's exit code, an ::error:: annotation and a
    // summary, as for deploy; no outputs.
    let before = std::fs::read_to_string(&outputs_path).unwrap();
    let mut cmd = crate::ci_pipeline::script(&e.ctx, "scripts/ci/github-action.sh");
    cmd.env("CUTOVER_BUCKET", "")
        .env("CUTOVER_CDN_URL", "")
        .env("REDIS_URL", "")
        .env("INPUT_PROMOTE_TO", "production")
        .env("INPUT_PROMOTE_FROM", "staging")
        .env("INPUT_RELEASE", "0123456789abcdef")
        .env("GITHUB_OUTPUT", &outputs_path)
        .env("GITHUB_STEP_SUMMARY", &summary_path);
    crate::support::run::finish(cmd.output().unwrap())
        .expect(2)
        .stdout_has(&["::error title=cutover promote failed (exit 2)::"]);
    assert_eq!(std::fs::read_to_string(&outputs_path).unwrap(), before);
    assert!(std::fs::read_to_string(&summary_path)
        .unwrap()
        .contains("### cutover promote `0123456789abcdef`: staging → production: failed (exit 2)"));
}

#[test]
fn promote_rewrites_from_where_the_release_was_recorded_not_from_todays_settings() {
    let e = Envs::new("promote-moved-cdn");
    let build = relative_build(e.ctx.work.path(), "app(moved)");
    let id = e.deploy_staging(&build);
    // Staging moves to another CDN after the release was recorded.
    let toml = e.ctx.work.path().join("cutover.toml");
    let moved = std::fs::read_to_string(&toml).unwrap().replace(
        "https://cdn.staging.example",
        "https://cdn2.staging.example",
    );
    std::fs::write(&toml, moved).unwrap();
    e.run(&["promote", &id, "--from", "staging", "--to", "production"])
        .expect(0);
    let manifest = e.redis_get(e.prod_redis, "manifest").unwrap();
    assert!(
        !manifest.contains("staging.example"),
        "production serves only its own CDN: {manifest}"
    );
    let manifest: Value = serde_json::from_str(&manifest).unwrap();
    for entry in ["application.js", "vendor.js"] {
        assert!(
            manifest[entry]
                .as_str()
                .unwrap()
                .starts_with("https://cdn.prod.example/packs/js/"),
            "{manifest}"
        );
    }
}
