//! Runs of the real binary: a builder (`ctx.cutover(&[...]).env(..).run()`)
//! and a finished [`Run`] with assertions that print everything when they
//! fail, so a test reads as a spec:
//! `ctx.cutover(&["deploy", dir]).run().expect(3).error_has(&["conflict"])`.

use std::process::{Command, Output};

/// A command line about to run, in a test's world.
pub struct Cutover {
    pub cmd: Command,
}

impl Cutover {
    pub fn env(mut self, key: &str, value: &str) -> Cutover {
        self.cmd.env(key, value);
        self
    }
    pub fn run(mut self) -> Run {
        finish(self.cmd.output().expect("the cutover binary runs"))
    }
}

#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Assert the exit code.
    #[track_caller]
    pub fn expect(&self, code: i32) -> &Run {
        assert_eq!(self.code, code, "exit code: {self:#?}");
        self
    }
    /// Assert stderr contains every needle.
    #[track_caller]
    pub fn stderr_has(&self, needles: &[&str]) -> &Run {
        for n in needles {
            assert!(self.stderr.contains(n), "stderr lacks {n:?}: {self:#?}");
        }
        self
    }
    /// Assert stdout contains every needle.
    #[track_caller]
    pub fn stdout_has(&self, needles: &[&str]) -> &Run {
        for n in needles {
            assert!(self.stdout.contains(n), "stdout lacks {n:?}: {self:#?}");
        }
        self
    }
    /// Assert stdout contains none of the needles.
    #[track_caller]
    pub fn stdout_lacks(&self, needles: &[&str]) -> &Run {
        for n in needles {
            assert!(!self.stdout.contains(n), "stdout has {n:?}: {self:#?}");
        }
        self
    }
    /// Assert one error line, containing every needle, and nothing on stdout
    /// (unless `--json`, which prints the error document there).
    #[track_caller]
    pub fn error_has(&self, needles: &[&str]) -> &Run {
        let line = self.error_line();
        for n in needles {
            assert!(line.contains(n), "error line lacks {n:?}: {self:#?}");
        }
        self
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:#?}"))
    }
    /// The error line: exactly one line on stderr starting with `error: `.
    #[track_caller]
    pub fn error_line(&self) -> &str {
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| l.starts_with("error: "))
            .collect();
        assert_eq!(lines.len(), 1, "expected one error line: {self:#?}");
        lines[0]
    }
}

pub fn finish(out: Output) -> Run {
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
