//! The quick start a newcomer runs: its example build deploys without a
//! warning, `env` prints what to keep using, and a port another program
//! listens on is refused rather than reused.

use std::process::Command;

use crate::support::{fixture, free_port, repo_root, Ctx};

#[test]
fn the_example_build_deploys_without_a_warning() {
    let ctx = Ctx::new("example-build");
    let run = ctx.run(&["deploy", fixture("example").to_str().unwrap()]);
    run.expect(0);
    assert!(!run.stderr.contains("warning"), "{run:?}");
}

#[test]
fn quickstart_env_prints_the_exports_for_its_servers() {
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/quickstart.sh"))
        .arg("env")
        .env("QUICKSTART_S3_PORT", "5999")
        .env("QUICKSTART_REDIS_PORT", "6999")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "export AWS_ACCESS_KEY_ID=",
        "CUTOVER_APP=example",
        "CUTOVER_BUCKET=example-assets",
        "CUTOVER_S3_ENDPOINT=http://127.0.0.1:5999",
        "REDIS_URL=redis://127.0.0.1:6999",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
}

#[test]
fn quickstart_refuses_a_port_another_program_listens_on() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/quickstart.sh"))
        .env("QUICKSTART_REDIS_PORT", port.to_string())
        .env("QUICKSTART_S3_PORT", free_port().to_string())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("port {port} is taken by another program"))
            && stderr.contains("QUICKSTART_REDIS_PORT"),
        "{stderr}"
    );
    drop(taken);
}
