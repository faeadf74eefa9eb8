//! The scripts CI pipelines run, run for real against the test servers: the
//! orb's `orb/src/scripts/*.sh` (as CircleCI runs them: bash, parameters as
//! PARAM_* variables, `$BASH_ENV` between steps), the GitHub Action's
//! `scripts/ci/github-action.sh` (GITHUB_OUTPUT and GITHUB_STEP_SUMMARY in
//! temp files), and the release packaging the orb's install downloads from a
//! loopback HTTP server. The same bytes as users' pipelines run.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::run::finish;
use crate::support::{fixture, repo_root, rt, Ctx, Run};

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `bash SCRIPT` with the test world's environment (the binary under test
/// first on PATH), and nothing of the CI variables of the machine running
/// the tests.
pub(crate) fn script(ctx: &Ctx, path: &str) -> Command {
    let base = ctx.command();
    let mut cmd = Command::new("bash");
    cmd.arg(repo_root().join(path));
    if let Some(dir) = base.get_current_dir() {
        cmd.current_dir(dir);
    }
    for (k, _) in std::env::vars() {
        if k.starts_with("PARAM_")
            || k.starts_with("INPUT_")
            || k.starts_with("GITHUB_")
            || k.starts_with("RUNNER_")
            || k == "BASH_ENV"
            || k == "CUTOVER_INSTALL_BASE_URL"
            || k.to_lowercase().ends_with("_proxy")
        {
            cmd.env_remove(k);
        }
    }
    for (k, v) in base.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_cutover")).parent().unwrap();
    let path = std::env::var("PATH").unwrap_or_default();
    cmd.env("PATH", format!("{}:{path}", bin_dir.display()));
    cmd.stdin(Stdio::null());
    cmd
}

pub(crate) fn run(cmd: &mut Command) -> Run {
    finish(cmd.output().expect("bash runs"))
}

pub(crate) fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

pub(crate) fn is_release_id(id: &str) -> bool {
    id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The orb's steps in one test world: the app given as a parameter (not
/// CUTOVER_APP), the release id kept in a directory, `$BASH_ENV` a file.
pub(crate) struct Orb<'a> {
    ctx: &'a Ctx,
    dir: tempfile::TempDir,
}

impl<'a> Orb<'a> {
    pub(crate) fn new(ctx: &'a Ctx) -> Orb<'a> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bash_env"), "").unwrap();
        Orb { ctx, dir }
    }
    fn ids(&self) -> PathBuf {
        self.dir.path().join("workspace")
    }
    pub(crate) fn id_file(&self) -> PathBuf {
        self.ids().join("cutover-release-id")
    }
    fn bash_env(&self) -> String {
        read(&self.dir.path().join("bash_env"))
    }
    pub(crate) fn run(&self, name: &str, params: &[(&str, &str)]) -> Run {
        let mut cmd = script(self.ctx, &format!("orb/src/scripts/{name}.sh"));
        cmd.env_remove("CUTOVER_APP")
            .env("PARAM_APP", &self.ctx.app)
            .env("PARAM_RELEASE_ID_DIR", self.ids())
            .env("BASH_ENV", self.dir.path().join("bash_env"));
        for (k, v) in params {
            cmd.env(k, v);
        }
        run(&mut cmd)
    }
}

pub(crate) fn current(ctx: &Ctx) -> Option<String> {
    rt().block_on(ctx.get("current"))
}

fn last_action(ctx: &Ctx) -> (String, String) {
    let history = rt().block_on(ctx.history());
    (
        history[0]["action"].as_str().unwrap().to_string(),
        history[0]["release"].as_str().unwrap().to_string(),
    )
}

#[test]
fn orb_records_without_activating_activates_that_release_and_rolls_back() {
    let ctx = Ctx::new("orb_flow");
    let orb = Orb::new(&ctx);
    let example = fixture("example");

    // deploy with no_activate: recorded in S3 and Redis, nothing live, the
    // id in the workspace directory and in $BASH_ENV for later steps.
    let r = orb.run(
        "deploy",
        &[
            ("PARAM_BUILD_DIR", example.to_str().unwrap()),
            ("PARAM_NO_ACTIVATE", "true"),
            ("PARAM_MESSAGE", "build one, for approval"),
            ("PARAM_EXTRA_ARGS", "--by ci-bot --concurrency 4"),
        ],
    );
    r.expect(0)
        .stdout_has(&["(recorded)", "recorded, not live"]);
    let id_a = read(&orb.id_file()).trim().to_string();
    assert!(is_release_id(&id_a), "{id_a:?}: {r:#?}");
    assert_eq!(current(&ctx), None, "nothing is live yet");
    let record: serde_json::Value =
        serde_json::from_str(&rt().block_on(ctx.get(&format!("release:{id_a}"))).unwrap()).unwrap();
    assert_eq!(record["message"], "build one, for approval");
    assert_eq!(record["deployed_by"], "ci-bot");
    assert!(rt()
        .block_on(ctx.objects())
        .contains_key(&format!("_cutover/{}/releases/{id_a}.json", ctx.app)));
    assert!(
        orb.bash_env()
            .contains(&format!("export CUTOVER_RELEASE_ID={id_a}\n")),
        "{}",
        orb.bash_env()
    );

    // activate, after the approval: the id comes from the workspace file.
    orb.run("activate", &[("PARAM_MESSAGE", "approved")])
        .expect(0)
        .stdout_has(&[&format!("release:  {id_a} (activated)"), "none ->"]);
    assert_eq!(current(&ctx).as_deref(), Some(id_a.as_str()));
    assert_eq!(last_action(&ctx), ("activate".into(), id_a.clone()));

    // Two more deploys that go live at once; the id file follows.
    let mut ids = vec![id_a.clone()];
    for build in ["shakapacker", "flat"] {
        orb.run(
            "deploy",
            &[("PARAM_BUILD_DIR", fixture(build).to_str().unwrap())],
        )
        .expect(0)
        .stdout_has(&["(activated)"]);
        let id = read(&orb.id_file()).trim().to_string();
        assert_eq!(current(&ctx).as_deref(), Some(id.as_str()), "{build}");
        ids.push(id);
    }

    // rollback: to the release live before; then to a given one (a prefix).
    orb.run("rollback", &[])
        .expect(0)
        .stdout_has(&[&format!("{} -> {}", ids[2], ids[1])]);
    assert_eq!(current(&ctx).as_deref(), Some(ids[1].as_str()));
    assert_eq!(last_action(&ctx), ("rollback".into(), ids[1].clone()));
    orb.run("rollback", &[("PARAM_TO", &id_a[..8])]).expect(0);
    assert_eq!(current(&ctx).as_deref(), Some(id_a.as_str()));
}

#[test]
fn orb_dry_runs_change_nothing_and_save_no_id() {
    let ctx = Ctx::new("orb_dry_run");
    let orb = Orb::new(&ctx);
    let build = fixture("example");
    let before = ctx.world();
    orb.run(
        "deploy",
        &[
            ("PARAM_BUILD_DIR", build.to_str().unwrap()),
            ("PARAM_DRY_RUN", "true"),
        ],
    )
    .expect(0)
    .stdout_has(&["(planned)", "dry run: nothing changed", "S3 PUT"]);
    ctx.assert_unchanged(&before, "the orb's deploy with dry_run");
    assert!(!orb.id_file().exists());
    assert_eq!(orb.bash_env(), "");

    // A recorded release: activate and rollback dry runs leave it as it is.
    orb.run(
        "deploy",
        &[
            ("PARAM_BUILD_DIR", build.to_str().unwrap()),
            ("PARAM_NO_ACTIVATE", "true"),
        ],
    )
    .expect(0);
    let before = ctx.world();
    orb.run("activate", &[("PARAM_DRY_RUN", "true")])
        .expect(0)
        .stdout_has(&["dry run: nothing changed"]);
    // The app parameter left empty: the job's CUTOVER_APP (a context's);
    // given, it wins over the job's.
    let dry = ("PARAM_DRY_RUN", "true");
    orb.run(
        "activate",
        &[dry, ("PARAM_APP", ""), ("CUTOVER_APP", &ctx.app)],
    )
    .expect(0);
    orb.run("activate", &[dry, ("CUTOVER_APP", "another-app")])
        .expect(0);
    orb.run(
        "activate",
        &[dry, ("PARAM_APP", ""), ("CUTOVER_APP", "another-app")],
    )
    .expect(2);
    ctx.assert_unchanged(&before, "the orb's activate with dry_run");
}

#[test]
fn orb_steps_fail_with_cutovers_exit_code() {
    let ctx = Ctx::new("orb_fail");
    let orb = Orb::new(&ctx);
    let build = fixture("example");
    // Other bytes at a key the build needs: a conflict, exit 3, no id saved.
    let js = std::fs::read_dir(build.join("js"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|n| n.ends_with(".js"))
        .unwrap();
    rt().block_on(ctx.put(&format!("packs/js/{js}"), b"other bytes"));
    orb.run("deploy", &[("PARAM_BUILD_DIR", build.to_str().unwrap())])
        .expect(3)
        .stderr_has(&[
            "conflict",
            "cutover deploy exited with 3 (refused for safety",
        ]);
    assert!(!orb.id_file().exists());
    // activate with no saved id and no release parameter: exit 2, saying how.
    orb.run("activate", &[])
        .expect(2)
        .stderr_has(&["no release to activate", "cutover-release-id"]);
    // An unknown release: cutover's own exit code and message.
    orb.run("activate", &[("PARAM_RELEASE", "0123456789abcdef")])
        .expect(2)
        .stderr_has(&["cutover activate 0123456789abcdef exited with 2"]);
    // Without cutover on PATH: a message naming the install command.
    let mut cmd = script(&ctx, "orb/src/scripts/rollback.sh");
    cmd.env("PATH", "/usr/bin:/bin");
    run(&mut cmd)
        .expect(2)
        .stderr_has(&["run cutover/install first"]);
}

/// A static file server on a loopback port, for install.sh to download from.
struct Files {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Files {
    fn serve(root: PathBuf) -> Files {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => answer(stream, &root),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    Err(_) => return,
                }
            }
        });
        Files {
            port,
            stop,
            thread: Some(thread),
        }
    }
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/releases", self.port)
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn answer(mut stream: TcpStream, root: &Path) {
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split_whitespace().nth(1).unwrap_or("/");
    let file = path
        .strip_prefix("/releases/")
        .filter(|p| !p.split('/').any(|c| c == ".." || c.is_empty()))
        .and_then(|p| std::fs::read(root.join(p)).ok());
    let (status, body) = match file {
        Some(body) => ("200 OK", body),
        None => ("404 Not Found", b"not found\n".to_vec()),
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(&body);
}

/// A stand-in binary that reports `version`, and `note` in a comment (so two
/// stand-ins of one version can differ in bytes).
fn stand_in(dir: &Path, version: &str, note: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("cutover");
    std::fs::write(
        &path,
        format!("#!/bin/sh\n# {note}\necho \"cutover {version}\"\n"),
    )
    .unwrap();
    let mut perms = std::fs::metadata(&path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&path, perms).unwrap();
    path
}

/// The release packaging of the project's CircleCI release job.
fn package_run(binary: &Path, out: &Path) -> Run {
    run(Command::new("bash")
        .arg(repo_root().join("scripts/ci/package-release.sh"))
        .arg(binary)
        .arg(out))
}

fn package(binary: &Path, out: &Path) {
    package_run(binary, out).expect(0);
}

/// The shipped binary is stripped and small: package-release.sh refuses the
/// test build as it is (debug info), takes it stripped (as the dist profile
/// builds it; the suite never builds that profile, too slow for CI), and
/// refuses a stripped binary over its ceiling. Each refusal writes nothing.
#[test]
fn packaging_refuses_debug_info_and_oversized_binaries() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let debug = Path::new(env!("CARGO_BIN_EXE_cutover"));
    let name = format!("cutover-{VERSION}-x86_64-unknown-linux-gnu");

    let out = w.join("debug-out");
    package_run(debug, &out).expect(1).stderr_has(&[
        "carries debug info (.debug_info, .debug_line sections)",
        "--profile dist",
    ]);
    assert!(!out.exists(), "a refused binary was packaged");

    // `strip` from binutils, as `strip = true` does for the dist profile.
    let stripped = w.join("stripped/cutover");
    std::fs::create_dir_all(stripped.parent().unwrap()).unwrap();
    let strip = Command::new("strip")
        .arg("-o")
        .arg(&stripped)
        .arg(debug)
        .output()
        .expect("strip (binutils) is installed");
    assert!(strip.status.success(), "{strip:?}");
    let size = std::fs::metadata(&stripped).unwrap().len();
    let script = read(&repo_root().join("scripts/ci/package-release.sh"));
    let mib: u64 = script
        .lines()
        .find_map(|l| l.strip_prefix("MAX_MIB="))
        .and_then(|v| v.parse().ok())
        .expect("package-release.sh sets MAX_MIB");
    let ceiling = mib * 1024 * 1024;
    assert!(
        size < ceiling,
        "the stripped test binary is {size} bytes, over the {mib} MiB ceiling this test needs it under"
    );
    let out = w.join("stripped-out");
    package_run(&stripped, &out).expect(0);
    let unpacked = w.join("unpacked");
    std::fs::create_dir_all(&unpacked).unwrap();
    let tar = Command::new("tar")
        .arg("-xzf")
        .arg(out.join(format!("v{VERSION}/{name}.tar.gz")))
        .arg("-C")
        .arg(&unpacked)
        .status()
        .unwrap();
    assert!(tar.success());
    assert!(
        std::fs::read(unpacked.join(&name).join("cutover")).unwrap()
            == std::fs::read(&stripped).unwrap(),
        "the tarball holds the stripped binary"
    );

    // Over the ceiling by one byte (zeros after the ELF: it still runs).
    let big = w.join("big/cutover");
    std::fs::create_dir_all(big.parent().unwrap()).unwrap();
    std::fs::copy(&stripped, &big).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&big)
        .unwrap()
        .set_len(ceiling + 1)
        .unwrap();
    let out = w.join("big-out");
    package_run(&big, &out)
        .expect(1)
        .stderr_has(&[&format!("over the {mib} MiB ceiling")]);
    assert!(!out.exists(), "a refused binary was packaged");
}

#[test]
fn install_downloads_checks_and_installs_a_pinned_release() {
    let ctx = Ctx::new("orb_install");
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let served = w.join("served");
    // The release as the release job makes it.
    package(&stand_in(&w.join("good"), VERSION, "good"), &served);
    let name = format!("cutover-{VERSION}-x86_64-unknown-linux-gnu.tar.gz");
    let sums = read(&served.join(format!("v{VERSION}/SHA256SUMS")));
    let sha = sums.split_whitespace().next().unwrap().to_string();
    assert_eq!(sums, format!("{sha}  {name}\n"));
    // 0.0.1: a tarball whose bytes are not those SHA256SUMS names.
    package(&stand_in(&w.join("a"), "0.0.1", "a"), &w.join("a-out"));
    package(&stand_in(&w.join("b"), "0.0.1", "b"), &served);
    std::fs::copy(
        w.join("a-out/v0.0.1/SHA256SUMS"),
        served.join("v0.0.1/SHA256SUMS"),
    )
    .unwrap();
    // 0.0.2: named 0.0.2, but the binary inside says 0.0.3.
    let bad = w.join("bad/cutover-0.0.2-x86_64-unknown-linux-gnu");
    stand_in(&bad, "0.0.3", "bad");
    let status = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -e; mkdir -p {out}; tar -C {src} -czf {out}/cutover-0.0.2-x86_64-unknown-linux-gnu.tar.gz cutover-0.0.2-x86_64-unknown-linux-gnu; cd {out}; sha256sum *.tar.gz > SHA256SUMS",
            src = w.join("bad").display(),
            out = served.join("v0.0.2").display()
        ))
        .status()
        .unwrap();
    assert!(status.success());
    let files = Files::serve(served.clone());

    let install = |dir: &str, params: &[(&str, &str)]| -> (Run, PathBuf) {
        let target = w.join(dir);
        let mut cmd = script(&ctx, "orb/src/scripts/install.sh");
        cmd.env("PARAM_VERSION", VERSION)
            .env("PARAM_BASE_URL", files.url())
            .env("PARAM_INSTALL_DIR", &target)
            .env("BASH_ENV", w.join(format!("{dir}.bash_env")))
            .env("GITHUB_PATH", w.join(format!("{dir}.github_path")));
        for (k, v) in params {
            cmd.env(k, v);
        }
        (run(&mut cmd), target.join("cutover"))
    };

    // Installed, runnable, and on PATH for the following steps (CircleCI's
    // $BASH_ENV, GitHub's $GITHUB_PATH).
    let (r, bin) = install("ok", &[]);
    r.expect(0)
        .stdout_has(&[&format!("installed cutover {VERSION}"), &sha]);
    let out = Command::new(&bin).arg("--version").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("cutover {VERSION}")
    );
    let dir = w.join("ok");
    assert_eq!(
        read(&w.join("ok.bash_env")),
        format!("export PATH=\"{}:$PATH\"\n", dir.display())
    );
    assert_eq!(
        read(&w.join("ok.github_path")),
        format!("{}\n", dir.display())
    );
    // The base URL from CUTOVER_INSTALL_BASE_URL, a trailing slash, and a
    // pinned sha256 that agrees.
    let (r, bin) = install(
        "pinned",
        &[
            ("PARAM_BASE_URL", ""),
            ("CUTOVER_INSTALL_BASE_URL", &format!("{}/", files.url())),
            ("PARAM_SHA256", &sha),
        ],
    );
    r.expect(0);
    assert!(bin.exists());

    // Each refusal installs nothing.
    let wrong_pin = "0".repeat(64);
    // (install dir, parameters, the message)
    type Refusal<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);
    let refusals: [Refusal; 5] = [
        (
            "wrong-pin",
            vec![("PARAM_SHA256", wrong_pin.as_str())],
            "but the pinned sha256 is 0000",
        ),
        (
            "tampered",
            vec![("PARAM_VERSION", "0.0.1")],
            "checksum mismatch for cutover-0.0.1-x86_64-unknown-linux-gnu.tar.gz",
        ),
        (
            "mislabelled",
            vec![("PARAM_VERSION", "0.0.2")],
            "reports \"cutover 0.0.3\", not \"cutover 0.0.2\"",
        ),
        (
            "missing",
            vec![("PARAM_VERSION", "9.9.9")],
            "could not download http://127.0.0.1",
        ),
        (
            "no-url",
            vec![("PARAM_BASE_URL", "")],
            "no base URL: set the base_url parameter or CUTOVER_INSTALL_BASE_URL",
        ),
    ];
    for (dir, params, message) in refusals {
        let (r, bin) = install(dir, &params);
        r.expect(1).stderr_has(&[message]);
        assert!(!bin.exists(), "{dir}: installed anyway");
        assert_eq!(read(&w.join(format!("{dir}.bash_env"))), "", "{dir}");
    }
}

/// `k=v` lines of a GITHUB_OUTPUT file; the last value of each key.
pub(crate) fn outputs(path: &Path) -> BTreeMap<String, String> {
    read(path)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn github_action_writes_outputs_summary_and_annotations() {
    let ctx = Ctx::new("gh_action");
    let gh = tempfile::tempdir().unwrap();
    let output = gh.path().join("output");
    let summary = gh.path().join("summary");
    std::fs::write(&output, "").unwrap();
    std::fs::write(&summary, "").unwrap();
    let action = |inputs: &[(&str, &str)]| -> Run {
        let mut cmd = script(&ctx, "scripts/ci/github-action.sh");
        cmd.env("GITHUB_ACTIONS", "true")
            .env("GITHUB_OUTPUT", &output)
            .env("GITHUB_STEP_SUMMARY", &summary);
        for (k, v) in inputs {
            cmd.env(k, v);
        }
        run(&mut cmd)
    };
    // The Shakapacker build's public path is not the CDN: a warning.
    let build = fixture("shakapacker");
    let dir = build.to_str().unwrap();

    // First deploy: uploaded and live.
    let r = action(&[("INPUT_BUILD_DIR", dir), ("INPUT_MESSAGE", "from GitHub")]);
    r.expect(0)
        .stderr_has(&["::warning::the build's public path is \"/packs/\""]);
    let out = outputs(&output);
    let id = current(&ctx).expect("live");
    let uploaded = rt()
        .block_on(ctx.objects())
        .keys()
        .filter(|k| k.starts_with("packs/"))
        .count();
    assert!(uploaded > 0);
    assert_eq!(out["release-id"], id);
    assert_eq!(out["live-release"], id);
    assert_eq!(out["uploaded"], uploaded.to_string());
    assert_eq!(out["outcome"], "activated");
    assert_eq!(out["activated"], "true");
    let text = read(&summary);
    for needle in [
        format!("### cutover deploy {dir}: release `{id}` is live"),
        format!("| uploaded | {uploaded} |"),
        "| already in S3 (skipped) | 0 | 0 B |".to_string(),
        "Manifest against the live release: ".to_string(),
        format!("Switch: none → `{id}`."),
        "**Warnings**".to_string(),
        "- the build's public path is".to_string(),
        "<details><summary>Writes (4)</summary>".to_string(),
    ] {
        assert!(text.contains(&needle), "summary lacks {needle:?}:\n{text}");
    }

    // The same build again: already live, nothing uploaded.
    std::fs::write(&summary, "").unwrap();
    action(&[("INPUT_BUILD_DIR", dir)]).expect(0);
    let out = outputs(&output);
    assert_eq!(out["outcome"], "already_live");
    assert_eq!(out["uploaded"], "0");
    assert_eq!(out["live-release"], id);
    assert!(read(&summary).contains(&format!("| already in S3 (skipped) | {uploaded} |")));

    // Another build with no-activate: recorded, the live release stays.
    std::fs::write(&summary, "").unwrap();
    let flat = fixture("flat");
    action(&[
        ("INPUT_BUILD_DIR", flat.to_str().unwrap()),
        ("INPUT_NO_ACTIVATE", "true"),
    ])
    .expect(0);
    let out = outputs(&output);
    let recorded = out["release-id"].clone();
    assert!(is_release_id(&recorded) && recorded != id);
    assert_eq!(out["live-release"], id);
    assert_eq!(out["outcome"], "recorded");
    assert_eq!(out["activated"], "false");
    assert_eq!(current(&ctx).as_deref(), Some(id.as_str()));
    let text = read(&summary);
    assert!(
        text.contains("recorded, not activated")
            && text.contains(&format!("Activate it with `cutover activate {recorded}`")),
        "{text}"
    );

    // A dry run changes nothing and says so.
    std::fs::write(&summary, "").unwrap();
    let example = fixture("example");
    let before = ctx.world();
    action(&[
        ("INPUT_BUILD_DIR", example.to_str().unwrap()),
        ("INPUT_DRY_RUN", "true"),
    ])
    .expect(0);
    ctx.assert_unchanged(&before, "the Action with dry-run");
    // `uploaded` counts files uploaded, not files a plan would upload.
    let out = outputs(&output);
    assert_eq!(out["outcome"], "planned");
    assert_eq!(out["uploaded"], "0");
    let text = read(&summary);
    assert!(
        text.contains("dry run, nothing changed")
            && !text.contains("| to upload | 0 |")
            && text.contains("| to upload |")
            && text.contains(&format!("Switch: none (dry run); live release: `{id}`.")),
        "{text}"
    );

    // A failure: cutover's exit code, an ::error:: annotation, a summary,
    // and no outputs.
    std::fs::write(&summary, "").unwrap();
    let before_outputs = read(&output);
    let missing = gh.path().join("no-such-build");
    let r = action(&[("INPUT_BUILD_DIR", missing.to_str().unwrap())]);
    r.expect(2).stdout_has(&[
        "::error title=cutover deploy failed (exit 2)::build directory",
        "does not exist",
    ]);
    assert_eq!(read(&output), before_outputs);
    assert!(read(&summary).contains("failed (exit 2)"));
}
