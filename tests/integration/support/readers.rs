//! The readers as processes of their own: the Ruby reader (ruby/lib) and
//! the Node reader (node/src), each answering one JSON line per question,
//! for tests that watch them follow a switch on a topology.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

/// The Ruby reader (ruby/lib) with a redis gem client given as a template:
/// prints `{"release", "js"}` once booted, then, for each release id read
/// on stdin, once it serves that release (or after 10 s).
pub const RUBY_READER: &str = r#"
require "cutover"
require "json"
require "logger"
app, mode, arg = ARGV
timeouts = { connect_timeout: 1.0, read_timeout: 1.0, write_timeout: 1.0 }
redis = case mode
        when "cluster" then Redis.new(cluster: [arg], **timeouts)
        when "sentinel"
          o = JSON.parse(arg)
          Redis.new(url: o["url"], role: :master, **timeouts,
                    sentinels: o["sentinels"].map { |s| s.transform_keys(&:to_sym) })
        end
reader = Cutover::Reader.new(app: app, redis: redis, logger: Logger.new($stderr, level: :warn))
say = -> { puts JSON.generate("release" => reader.release_id, "js" => reader.lookup("application.js")); STDOUT.flush }
say.()
while (want = STDIN.gets)
  deadline = Time.now + 10
  sleep 0.02 until reader.release_id == want.strip || Time.now > deadline
  say.()
end
reader.close
"#;

/// The same for the Node reader (node/src), on a Redis Cluster.
pub const NODE_READER: &str = r#"
import readline from "node:readline";
import { createReader } from "./src/index.js";
const reader = await createReader({ app: process.env.APP, url: process.env.SEED, cluster: true, logger: false });
const say = () => console.log(JSON.stringify({ release: reader.releaseId, js: reader.lookup("application.js") ?? null }));
say();
for await (const want of readline.createInterface({ input: process.stdin })) {
  const deadline = Date.now() + 10000;
  while (reader.releaseId !== want.trim() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  say();
}
await reader.close();
"#;

/// A reader process: one JSON line per answer.
pub struct ReaderProc {
    child: std::process::Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl ReaderProc {
    pub fn spawn(mut cmd: std::process::Command) -> ReaderProc {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the reader starts");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        ReaderProc { child, lines }
    }

    pub fn answer(&mut self) -> Value {
        let line = self.lines.next().expect("the reader answers").unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    /// Tell it which release to wait for; how long it took to serve it.
    pub fn follow(&mut self, release: &str) -> (Value, Duration) {
        use std::io::Write;
        let started = std::time::Instant::now();
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{release}").unwrap();
        stdin.flush().unwrap();
        let v = self.answer();
        (v, started.elapsed())
    }

    pub fn finish(mut self) {
        drop(self.child.stdin.take());
        assert!(self.child.wait().unwrap().success());
    }
}

pub fn ruby_reader(app: &str, mode: &str, arg: &str) -> ReaderProc {
    let mut cmd = std::process::Command::new("ruby");
    cmd.arg("-I")
        .arg(crate::support::repo_root().join("ruby/lib"))
        .args(["-e", RUBY_READER, app, mode, arg]);
    ReaderProc::spawn(cmd)
}

/// node/node_modules, installed from the lockfile as scripts/test-node.sh does.
pub fn node_modules() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let node = crate::support::repo_root().join("node");
        if !node.join("node_modules/redis").exists() {
            let ok = std::process::Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&node)
                .status()
                .expect("npm is installed (scripts/setup.sh installs it)");
            assert!(ok.success(), "npm ci in node/");
        }
    });
}
