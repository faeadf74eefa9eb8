//! Every bad input: one clear error line naming the problem and the fix, the
//! documented exit code, and the live release and S3 untouched.

use std::path::Path;

use crate::support::{fixture, free_port, rt, Ctx, Run};

/// A context with a live release, so "untouched" means something.
fn live_ctx(name: &str) -> Ctx {
    let ctx = Ctx::new(name);
    let run = ctx.run(&["deploy", fixture("flat").to_str().unwrap()]);
    assert_eq!(run.code, 0, "{run:?}");
    ctx
}

/// Run, expect `code` and an error line containing every `needles`, and check nothing changed.
fn expect_error(
    ctx: &Ctx,
    args: &[&str],
    env: &[(&str, &str)],
    code: i32,
    needles: &[&str],
) -> Run {
    let before = ctx.world();
    let run = ctx.run_with(args, env);
    assert_eq!(run.code, code, "{run:?}");
    let line = run.error_line().to_string();
    for n in needles {
        assert!(line.contains(n), "error line {line:?} lacks {n:?}");
    }
    assert!(run.stdout.is_empty(), "an error printed results: {run:?}");
    ctx.assert_unchanged(&before, &format!("a failed {args:?}"));
    run
}

fn copy_build(ctx: &Ctx) -> std::path::PathBuf {
    ctx.build_copy("shakapacker")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn missing_and_empty_directory() {
    let ctx = live_ctx("bad-dirs");
    let missing = ctx.work.path().join("public/packs");
    expect_error(
        &ctx,
        &["deploy", s(&missing)],
        &[],
        2,
        &["does not exist", "run webpack first"],
    );
    std::fs::create_dir_all(&missing).unwrap();
    expect_error(
        &ctx,
        &["deploy", s(&missing)],
        &[],
        2,
        &["has no files", "run webpack"],
    );
}

#[test]
fn manifest_problems() {
    let ctx = live_ctx("bad-manifest");
    let build = copy_build(&ctx);
    let manifest = build.join("manifest.json");
    let good = std::fs::read_to_string(&manifest).unwrap();

    std::fs::remove_file(&manifest).unwrap();
    expect_error(
        &ctx,
        &["deploy", s(&build)],
        &[],
        2,
        &["no manifest.json in", "--manifest"],
    );

    std::fs::write(&manifest, "{\"application.js\": ").unwrap();
    expect_error(
        &ctx,
        &["deploy", s(&build)],
        &[],
        2,
        &["is not valid JSON", "line 1"],
    );

    let missing_file = good.replace(
        "/packs/js/application-b62e1c7fb0214cc621a8.js\"",
        "/packs/js/application-000000000000.js\"",
    );
    assert_ne!(missing_file, good);
    std::fs::write(&manifest, &missing_file).unwrap();
    expect_error(
        &ctx,
        &["deploy", s(&build)],
        &[],
        2,
        &[
            "/packs/js/application-000000000000.js",
            "not a file in the build",
        ],
    );

    let escaping = good.replace(
        "/packs/static/logo-f27f8614b6d283cbb282.svg\"",
        "/packs/../../etc/passwd\"",
    );
    std::fs::write(&manifest, &escaping).unwrap();
    expect_error(&ctx, &["deploy", s(&build)], &[], 2, &["contains `..`"]);

    // The bytes of a file no longer match the integrity webpack recorded.
    std::fs::write(&manifest, &good).unwrap();
    let js = build.join("js/admin-2de6dd810fd1d9c2202a.js");
    let mut bytes = std::fs::read(&js).unwrap();
    bytes.push(b'\n');
    std::fs::write(&js, bytes).unwrap();
    expect_error(
        &ctx,
        &["deploy", s(&build)],
        &[],
        2,
        &[
            "integrity of js/admin-2de6dd810fd1d9c2202a.js does not match",
            "inconsistent",
        ],
    );
}

#[test]
fn symlink_escaping_the_build() {
    let ctx = live_ctx("bad-symlink");
    let build = copy_build(&ctx);
    let secret = ctx.work.path().join("secret.txt");
    std::fs::write(&secret, "s3cr3t").unwrap();
    std::os::unix::fs::symlink(&secret, build.join("js/leak.js")).unwrap();
    expect_error(
        &ctx,
        &["deploy", s(&build)],
        &[],
        2,
        &["points outside the build directory", "copy the file"],
    );
}

#[test]
fn unreadable_file() {
    let ctx = live_ctx("bad-unreadable");
    let build = copy_build(&ctx);
    let file = build.join("js/admin-2de6dd810fd1d9c2202a.js");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o000)).unwrap();
    let before = ctx.world();
    // root reads anything: run the binary as `nobody` then, as a CI user would be.
    let is_root = unsafe { libc::geteuid() } == 0;
    let run = if is_root {
        std::fs::set_permissions(ctx.work.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let cmd = ctx.command();
        let program = cmd.get_program().to_owned();
        let args: Vec<_> = ["--reuid=65534", "--regid=65534", "--clear-groups", "--"]
            .iter()
            .map(std::ffi::OsString::from)
            .chain([program, "deploy".into(), build.clone().into()])
            .collect();
        let mut wrapped = std::process::Command::new("setpriv");
        wrapped.args(args).current_dir(ctx.work.path()).env_clear();
        for (k, v) in cmd.get_envs() {
            if let Some(v) = v {
                wrapped.env(k, v);
            }
        }
        wrapped.env("PATH", std::env::var("PATH").unwrap_or_default());
        crate::support::run::finish(wrapped.output().expect("setpriv (util-linux) is installed"))
    } else {
        ctx.run(&["deploy", s(&build)])
    };
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.error_line().contains("cannot read"), "{run:?}");
    assert!(
        run.error_line().contains("admin-2de6dd810fd1d9c2202a.js"),
        "{run:?}"
    );
    assert!(run.error_line().contains("permissions"), "{run:?}");
    ctx.assert_unchanged(&before, "a deploy with an unreadable file");
}

#[test]
fn bucket_missing_s3_unreachable_redis_unreachable() {
    let ctx = live_ctx("bad-services");
    let build = fixture("shakapacker");
    expect_error(
        &ctx,
        &["deploy", s(&build)],
        &[("CUTOVER_BUCKET", "no-such-bucket-here")],
        2,
        &["bucket no-such-bucket-here does not exist", "NoSuchBucket"],
    );
    let dead = format!("http://127.0.0.1:{}", free_port());
    expect_error(
        &ctx,
        &["deploy", s(&build)],
        &[("CUTOVER_S3_ENDPOINT", &dead)],
        1,
        &["cannot reach S3 at", &dead, "CUTOVER_S3_ENDPOINT"],
    );
    let dead_redis = format!("redis://:hunter2@127.0.0.1:{}", free_port());
    let run = expect_error(
        &ctx,
        &["deploy", s(&build)],
        &[("REDIS_URL", &dead_redis)],
        1,
        &["Redis at redis://:***@127.0.0.1", "check REDIS_URL"],
    );
    assert!(
        !run.stderr.contains("hunter2"),
        "password leaked: {}",
        run.stderr
    );
}

#[test]
fn invalid_config_values_and_unknown_flag() {
    let ctx = live_ctx("bad-config");
    let build = fixture("shakapacker");
    expect_error(
        &ctx,
        &["deploy", s(&build)],
        &[("CUTOVER_CONCURRENCY", "many")],
        2,
        &[
            "invalid concurrency = \"many\"",
            "CUTOVER_CONCURRENCY",
            "1 to 512",
        ],
    );
    expect_error(
        &ctx,
        &["deploy", s(&build), "--cdn-url", "cdn.example.com"],
        &[],
        2,
        &["invalid cdn_url", "flag --cdn-url", "http(s) URL"],
    );
    std::fs::write(
        ctx.work.path().join("cutover.toml"),
        "prefix = \"packs\"\nconcurency = 4\n",
    )
    .unwrap();
    expect_error(
        &ctx,
        &["deploy", s(&build)],
        &[],
        2,
        &["unknown key `concurency`", "cutover.toml:2"],
    );
    std::fs::remove_file(ctx.work.path().join("cutover.toml")).unwrap();
    expect_error(
        &ctx,
        &["deploy", s(&build)],
        &[("CUTOVER_APP", "")],
        2,
        &["no app configured", "CUTOVER_APP"],
    );

    let run = ctx.run(&["deploy", s(&build), "--frobnicate"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("unexpected argument '--frobnicate'"),
        "{run:?}"
    );
}

#[test]
fn missing_aws_credentials() {
    let ctx = live_ctx("bad-credentials");
    let before = rt().block_on(async { (ctx.objects().await, ctx.redis_state().await) });
    let mut cmd = ctx.command();
    cmd.args(["deploy", s(&fixture("shakapacker"))])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("HOME", ctx.work.path());
    let run = crate::support::run::finish(cmd.output().unwrap());
    assert_eq!(run.code, 2, "{run:?}");
    let line = run.error_line();
    assert!(
        line.contains("no AWS credentials found") && line.contains("AWS_PROFILE"),
        "{line}"
    );
    assert!(
        !line.contains("ProviderAttempt"),
        "debug dump in the message: {line}"
    );
    let after = rt().block_on(async { (ctx.objects().await, ctx.redis_state().await) });
    assert!(before == after);
}

#[test]
fn header_values_with_line_breaks_are_refused_before_any_work() {
    let ctx = live_ctx("bad-headers");
    let build = fixture("shakapacker");
    let run = expect_error(
        &ctx,
        &["deploy", s(&build)],
        &[("CUTOVER_CACHE_CONTROL", "public\r\nX-Evil: 1")],
        2,
        &["invalid cache_control", "printable ASCII"],
    );
    assert!(!run.stderr.contains("hashing"), "hashed first: {run:?}");
    std::fs::write(
        ctx.work.path().join("cutover.toml"),
        "[[headers]]\nglob = \"**/*.js\"\ncontent_type = \"text/javascript; charset=ütf-8\"\n",
    )
    .unwrap();
    expect_error(
        &ctx,
        &["deploy", s(&build)],
        &[],
        2,
        &["[[headers]]", "cutover.toml:1", "printable ASCII"],
    );
}

#[test]
fn a_manifest_entry_naming_the_manifest_itself_is_refused() {
    let ctx = live_ctx("bad-self-ref");
    let build = copy_build(&ctx);
    let path = build.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    manifest["manifest.json"] = "/packs/manifest.json".into();
    std::fs::write(&path, manifest.to_string()).unwrap();
    expect_error(
        &ctx,
        &["deploy", s(&build)],
        &[],
        2,
        &["names the manifest itself", "never uploaded"],
    );
}

#[test]
fn rejected_credentials_fail_at_once_without_retrying() {
    // An S3 endpoint that refuses every request as AWS does an unknown key.
    let ctx = live_ctx("bad-key");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    {
        let requests = requests.clone();
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let mut buf = [0u8; 65536];
                let _ = conn.read(&mut buf);
                requests.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let body = "<Error><Code>InvalidAccessKeyId</Code><Message>The AWS Access Key Id you provided does not exist in our records.</Message></Error>";
                let _ = write!(
                    conn,
                    "HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
    }
    expect_error(
        &ctx,
        &["rollback", "--to", "0"],
        &[("CUTOVER_S3_ENDPOINT", &endpoint)],
        2,
        &[
            "rejected the credentials (InvalidAccessKeyId)",
            "AWS_ACCESS_KEY_ID",
        ],
    );
    assert_eq!(
        requests.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "a credential error is not transient: no retries"
    );
}

#[test]
fn a_silent_s3_endpoint_fails_in_bounded_time_saying_so() {
    let ctx = live_ctx("silent-s3");
    // Accepts connections, never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            held.push(conn);
        }
    });
    let started = std::time::Instant::now();
    expect_error(
        &ctx,
        &["rollback", "--to", "0"],
        &[
            ("CUTOVER_S3_ENDPOINT", &endpoint),
            ("CUTOVER_S3_TIMEOUT", "1"),
        ],
        1,
        &[
            "gave up after 4 attempts, each waiting up to 1s",
            "s3_timeout_secs",
        ],
    );
    // Once 361 s; the bound is generous so a busy machine cannot flake it.
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

#[test]
fn a_result_that_cannot_be_written_still_says_what_happened() {
    // stdout on a full disk: the deploy went live; the exit code and stderr say so.
    let ctx = Ctx::new("full-disk");
    let mut cmd = ctx.command();
    cmd.args(["deploy", s(&fixture("flat"))])
        .stdout(std::fs::File::create("/dev/full").unwrap());
    let run = crate::support::run::finish(cmd.output().unwrap());
    run.expect(0)
        .stderr_has(&["cannot write the result to stdout", "is live for"]);
    assert!(rt().block_on(ctx.get("current")).is_some());
}

#[test]
fn a_file_name_with_a_newline_is_refused_before_anything_is_written() {
    let ctx = live_ctx("newline-name");
    let build = copy_build(&ctx);
    std::fs::write(build.join("js/evil\nname.js"), b"x").unwrap();
    expect_error(
        &ctx,
        &["deploy", s(&build)],
        &[],
        2,
        &["\"js/evil\\nname.js\"", "control character", "rename"],
    );
}

#[test]
fn empty_values_leave_the_lower_layers_and_config_shows_the_aws_endpoint() {
    let ctx = Ctx::new("empty-values");
    std::fs::write(ctx.work.path().join("cutover.toml"), "prefix = \"top\"\n").unwrap();
    let build = copy_build(&ctx);
    // `--prefix ''` and `--bucket ''` count as not set: the file's prefix
    // and CUTOVER_BUCKET apply.
    let run = ctx.run(&[
        "deploy",
        s(&build),
        "--prefix",
        "",
        "--bucket",
        "",
        "--json",
    ]);
    run.expect(0);
    let objects = rt().block_on(ctx.objects());
    assert!(objects.keys().any(|k| k.starts_with("top/")), "{objects:?}");
    assert!(
        !objects.keys().any(|k| k.starts_with("packs/")),
        "{objects:?}"
    );
    let run = ctx
        .cutover(&["config", "--json", "--prefix", ""])
        .env("CUTOVER_PREFIX", "env")
        .run();
    run.expect(0);
    let setting = |doc: &serde_json::Value, key: &str| {
        doc["settings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["key"] == key)
            .unwrap()
            .clone()
    };
    assert_eq!(setting(&run.json(), "prefix")["value"], "env");

    // With s3_endpoint unset, `config` shows the AWS variable in effect.
    let run = ctx
        .cutover(&["config", "--json"])
        .env("CUTOVER_S3_ENDPOINT", "")
        .env("AWS_ENDPOINT_URL", &ctx.s3_endpoint)
        .run();
    run.expect(0);
    let endpoint = setting(&run.json(), "s3_endpoint");
    assert_eq!(endpoint["value"], ctx.s3_endpoint.as_str());
    assert_eq!(endpoint["origin"], "environment variable AWS_ENDPOINT_URL");
}
