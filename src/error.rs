//! The error kinds callers branch on, and the one mapping to exit codes.
//!
//! Library code returns `anyhow::Error` with context; where the exit code
//! matters, the root of the chain is a [`Failure`]. `exit_code` walks the
//! chain, so context added on the way up never changes the code.

/// A failure with a documented exit code (PRODUCT.md, "Output and exit codes").
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Bad usage, configuration or input: exit 2.
    #[error("{0}")]
    Input(String),
    /// Lock held, live release changed, object would be overwritten: exit 3.
    #[error("{0}")]
    Conflict(String),
    /// Objects missing or corrupt: exit 4.
    #[error("{0}")]
    Verification(String),
    /// An S3 or Redis operation failed after retries: exit 1.
    #[error("{0}")]
    Operation(String),
}

impl Failure {
    pub fn input(msg: impl Into<String>) -> anyhow::Error {
        Failure::Input(msg.into()).into()
    }
    pub fn conflict(msg: impl Into<String>) -> anyhow::Error {
        Failure::Conflict(msg.into()).into()
    }
    pub fn verification(msg: impl Into<String>) -> anyhow::Error {
        Failure::Verification(msg.into()).into()
    }
    pub fn operation(msg: impl Into<String>) -> anyhow::Error {
        Failure::Operation(msg.into()).into()
    }

    pub fn code(&self) -> u8 {
        match self {
            Failure::Operation(_) => 1,
            Failure::Input(_) => 2,
            Failure::Conflict(_) => 3,
            Failure::Verification(_) => 4,
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

/// One line for the user: the whole context chain, `outer: inner: root`,
/// with duplicate adjacent messages folded and newlines flattened.
pub fn one_line(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string().replace('\n', " ");
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
        let err: anyhow::Result<()> = Err(Failure::conflict("lock held by ci-42"));
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
}
