//! The failures callers branch on, and the one table of exit codes.
//!
//! Library code returns `anyhow::Error` with context; where the exit code
//! matters, the root of the chain is a [`Failure`]. [`exit_code`] walks the
//! chain, so context added on the way up never changes the code.

/// Every exit code cutover uses, with its meaning: docs/output.md's table is
/// checked against this one (a test fails when they differ).
pub const EXIT_CODES: &[(u8, &str)] = &[
    (
        0,
        "success, including \"already live\" and \"recorded, not activated\"",
    ),
    (1, "an operation failed and nothing was switched (unless the message says it cannot tell: then run `cutover status`)"),
    (
        2,
        "bad usage, configuration, input or permissions (the message names the fix)",
    ),
    (
        3,
        "refused for safety: conflict, lock held, live release changed, pinned, a limit",
    ),
    (
        4,
        "verification failed: objects of a release missing or corrupt",
    ),
    (
        5,
        "partially applied: some Redis targets switched and some did not",
    ),
    (
        6,
        "switched, but a step after the switch did not complete (the CloudFront invalidation or its wait, or the fleet did not converge within --wait-converged): the switch stands; the message says which step",
    ),
    (
        130,
        "interrupted: nothing was switched; the next run resumes",
    ),
];

/// The exit-code table of docs/output.md, made from [`EXIT_CODES`].
pub fn exit_codes_markdown() -> String {
    let mut t = String::from("| code | meaning |\n|---|---|\n");
    for (code, meaning) in EXIT_CODES {
        t.push_str(&format!("| {code} | {meaning} |\n"));
    }
    t
}

/// A failure with a documented exit code.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// An S3 or Redis operation failed after retries; nothing was switched: exit 1.
    #[error("{0}")]
    Operation(String),
    /// Bad usage, configuration, input or permissions: exit 2.
    #[error("{0}")]
    Input(String),
    /// Refused for safety (conflict, lock held, live release changed): exit 3.
    #[error("{0}")]
    Refused(String),
    /// Objects missing or corrupt: exit 4.
    #[error("{0}")]
    Verification(String),
    /// Some Redis targets switched and some did not: exit 5.
    #[error("{0}")]
    Partial(String),
    /// Switched, but a step after the switch failed, hung past its bound or
    /// was interrupted: exit 6. The switch stands.
    #[error("{0}")]
    AfterSwitch(String),
    /// Switched, but the reader processes did not all follow within
    /// `--wait-converged`: exit 6, with where they stood.
    #[error("{message}")]
    NotConverged {
        message: String,
        convergence: crate::fleet::Convergence,
    },
    /// SIGINT or SIGTERM before the switch: exit 130.
    #[error("{0}")]
    Interrupted(String),
}

impl Failure {
    pub fn operation(msg: impl Into<String>) -> anyhow::Error {
        Failure::Operation(msg.into()).into()
    }
    pub fn input(msg: impl Into<String>) -> anyhow::Error {
        Failure::Input(msg.into()).into()
    }
    pub fn refused(msg: impl Into<String>) -> anyhow::Error {
        Failure::Refused(msg.into()).into()
    }
    pub fn verification(msg: impl Into<String>) -> anyhow::Error {
        Failure::Verification(msg.into()).into()
    }
    pub fn partial(msg: impl Into<String>) -> anyhow::Error {
        Failure::Partial(msg.into()).into()
    }
    pub fn after_switch(msg: impl Into<String>) -> anyhow::Error {
        Failure::AfterSwitch(msg.into()).into()
    }
    pub fn interrupted(msg: impl Into<String>) -> anyhow::Error {
        Failure::Interrupted(msg.into()).into()
    }

    pub fn code(&self) -> u8 {
        match self {
            Failure::Operation(_) => 1,
            Failure::Input(_) => 2,
            Failure::Refused(_) => 3,
            Failure::Verification(_) => 4,
            Failure::Partial(_) => 5,
            Failure::AfterSwitch(_) | Failure::NotConverged { .. } => 6,
            Failure::Interrupted(_) => 130,
        }
    }
}

/// Exit code for an error: the first [`Failure`] in the chain decides; anything
/// else is an operation failure (1).
pub fn exit_code(err: &anyhow::Error) -> u8 {
    err.chain()
        .find_map(|e| e.downcast_ref::<Failure>())
        .map(Failure::code)
        .unwrap_or(1)
}

/// The secrets of this run (Redis passwords, the Sentinels' password, AWS's
/// secret key and session token, an inline signing key), registered once
/// the configuration is loaded: whatever else goes wrong (an SDK error that
/// echoes a URL, a panic), [`redact`] keeps them out of what is printed.
static SECRETS: std::sync::RwLock<Vec<String>> = std::sync::RwLock::new(Vec::new());

/// Shorter values are not secrets worth the risk of mangling output.
const MIN_SECRET: usize = 8;

/// Remember values that must never be printed.
pub fn register_secrets(values: impl IntoIterator<Item = String>) {
    let mut secrets = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    for v in values {
        let v = v.trim().to_string();
        if v.chars().count() >= MIN_SECRET && !secrets.contains(&v) {
            secrets.push(v);
        }
    }
    // Longest first, so a secret containing another is replaced whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// `text` with every registered secret replaced by `***`.
pub fn redact(text: &str) -> String {
    let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    let mut out = text.to_string();
    for s in secrets.iter() {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), "***");
        }
    }
    out
}

/// A panic prints where it happened and its message, secrets redacted,
/// and asks for a report; never a value it does not know to be safe.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".into());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "error: cutover crashed (a bug){at}: {}; nothing after this point ran. Please report it with this line",
            redact(&message).replace(['\n', '\r'], " ")
        );
    }));
}

/// One line for the user: the whole context chain, `outer: inner: root`,
/// with duplicate adjacent messages folded, newlines flattened and the
/// run's secrets redacted (SDK errors may echo URLs).
pub fn one_line(err: &anyhow::Error) -> String {
    redact(&one_line_raw(err))
}

fn one_line_raw(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string().replace(['\n', '\r'], " ");
        let text = text.trim().to_string();
        if text.is_empty() || parts.last().is_some_and(|p| p.contains(&text)) {
            continue;
        }
        parts.push(text);
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn code_survives_context() {
        let err: anyhow::Result<()> = Err(Failure::refused("lock held by ci-42"));
        let err = err.context("deploy failed").unwrap_err();
        assert_eq!(exit_code(&err), 3);
        assert_eq!(one_line(&err), "deploy failed: lock held by ci-42");
    }

    #[test]
    fn unknown_errors_are_operation_failures() {
        let err = anyhow::anyhow!("socket closed\nby peer");
        assert_eq!(exit_code(&err), 1);
        assert_eq!(one_line(&err), "socket closed by peer");
    }

    #[test]
    fn registered_secrets_never_reach_a_message() {
        register_secrets(["s3cr3t-Pa55word".to_string(), "short".to_string()]);
        let err = anyhow::anyhow!("dispatch failure: redis://:s3cr3t-Pa55word@h:1 short");
        assert_eq!(one_line(&err), "dispatch failure: redis://:***@h:1 short");
    }

    #[test]
    fn every_failure_code_is_in_the_table() {
        for f in [
            Failure::Operation(String::new()),
            Failure::Input(String::new()),
            Failure::Refused(String::new()),
            Failure::Verification(String::new()),
            Failure::Partial(String::new()),
            Failure::AfterSwitch(String::new()),
            Failure::Interrupted(String::new()),
        ] {
            assert!(EXIT_CODES.iter().any(|(c, _)| *c == f.code()), "{f:?}");
        }
    }
}
