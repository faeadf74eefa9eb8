//! Sending notifications ([`crate::notify`]) to their webhooks: every
//! (sink, notice) pair at once, each POST bounded by [`ATTEMPT_TIMEOUT`],
//! up to [`ATTEMPTS`] attempts when the connection fails or the webhook
//! answers 5xx, so the whole is bounded by [`BOUND`] (docs/output.md,
//! "Notifications"). A failure is a [`Delivery`] with `ok: false`, never
//! an error: a notification never changes what the command did.

use std::time::Duration;

use crate::notify::{pairs, Delivery, Notice, Sink};

/// Each attempt, connecting included.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts per notification; only a failed connection and a 5xx answer
/// are tried again (an attempt that timed out may have been delivered).
pub const ATTEMPTS: usize = 3;
/// The pauses between attempts.
const BACKOFF: [Duration; ATTEMPTS - 1] = [Duration::from_millis(500), Duration::from_secs(1)];
/// The most notifications add to a command: every attempt at its bound,
/// and the pauses.
pub const BOUND: Duration = Duration::from_millis(3 * 5_000 + 500 + 1_000);

/// Send each notice to each sink that wants it, all at once.
pub async fn send(sinks: &[Sink], notices: &[Notice]) -> Vec<Delivery> {
    let work = pairs(sinks, notices);
    if work.is_empty() {
        return Vec::new();
    }
    let client = reqwest::Client::builder()
        .timeout(ATTEMPT_TIMEOUT)
        .connect_timeout(ATTEMPT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("cutover/", env!("CARGO_PKG_VERSION")))
        .build();
    futures::future::join_all(work.into_iter().map(|(sink, notice)| {
        let client = client.as_ref();
        async move {
            let result = match (client, sink.url.as_deref()) {
                (_, None) => Err(format!(
                    "{} is not set ([[notify]] at {})",
                    sink.url_env.as_deref().unwrap_or("its url_env variable"),
                    sink.origin
                )),
                (Err(e), _) => Err(format!("cannot start an HTTP client: {e}")),
                (Ok(client), Some(url)) => {
                    let body = notice.body(sink.format);
                    match tokio::time::timeout(BOUND, post(client, url, body)).await {
                        Ok(r) => r,
                        Err(_) => Err(format!("no answer within {}s", BOUND.as_secs_f64())),
                    }
                }
            };
            Delivery {
                url: sink.shown(),
                event: notice.event,
                ok: result.is_ok(),
                error: result
                    .err()
                    .map(|e| crate::error::redact(&e.replace(['\n', '\r'], " "))),
            }
        }
    }))
    .await
}

/// POST `body` to `url`, trying again after a failed connection or a 5xx.
async fn post(client: &reqwest::Client, url: &str, body: String) -> Result<(), String> {
    for attempt in 1..=ATTEMPTS {
        let sent = client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone())
            .send()
            .await;
        let again = match sent {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) if r.status().is_server_error() => format!("HTTP {}", r.status()),
            Ok(r) => {
                let status = r.status();
                // Slack says why in the body ("invalid_payload", "no_text").
                let said = r.text().await.unwrap_or_default();
                let said = said.lines().next().unwrap_or("").trim();
                let said: String = said.chars().take(200).collect();
                return Err(if said.is_empty() {
                    format!("HTTP {status}")
                } else {
                    format!("HTTP {status}: {said}")
                });
            }
            Err(e) if e.is_timeout() => {
                return Err(format!("no answer within {}s", ATTEMPT_TIMEOUT.as_secs()))
            }
            Err(e) if e.is_connect() => format!("cannot connect: {}", root_cause(&e)),
            Err(e) => return Err(causes(&e)),
        };
        match BACKOFF.get(attempt - 1) {
            Some(pause) => tokio::time::sleep(*pause).await,
            None => return Err(format!("{again} after {ATTEMPTS} attempts")),
        }
    }
    unreachable!("the last attempt returns")
}

/// The innermost cause of an error: "Connection refused (os error 111)",
/// not reqwest's layers around it.
fn root_cause(e: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    cause.to_string()
}

/// An error and its causes, one line, without the URL (reqwest's own
/// line names it).
fn causes(e: &reqwest::Error) -> String {
    let own = match e.url() {
        Some(url) => e.to_string().replace(&format!(" for url ({url})"), ""),
        None => e.to_string(),
    };
    let mut parts = vec![own.trim().to_string()];
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let text = c.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cause = c.source();
    }
    parts.join(": ")
}
