//! The CDN, as browsers see it: fetch files by their public URL and compare
//! bytes (SHA-256) and headers with what the release says.

use std::time::Duration;

use futures::stream::{self, StreamExt};
use sha2::{Digest, Sha256};

use crate::error::Failure;
use crate::release::CdnCheck;

pub struct Cdn {
    client: reqwest::Client,
}

impl Cdn {
    pub fn new(timeout: Duration) -> anyhow::Result<Cdn> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("cutover/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Failure::operation(format!("cannot start an HTTP client: {e}")))?;
        Ok(Cdn { client })
    }

    /// GET one URL: its status and body.
    pub async fn get(&self, url: &str) -> anyhow::Result<(u16, bytes::Bytes)> {
        let response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| Failure::operation(format!("cannot fetch {url} ({e})")))?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| Failure::operation(format!("{url}: the body broke off ({e})")))?;
        Ok((status, body))
    }

    /// Fetch every file; one line per file that is not served as it must be.
    pub async fn check(&self, checks: &[CdnCheck], concurrency: usize) -> Vec<String> {
        let problems: Vec<Vec<String>> = stream::iter(checks)
            .map(|c| self.check_one(c))
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        let mut problems: Vec<String> = problems.into_iter().flatten().collect();
        problems.sort();
        problems
    }

    async fn check_one(&self, c: &CdnCheck) -> Vec<String> {
        let response = match self.client.get(&c.url).send().await {
            Ok(r) => r,
            Err(e) => return vec![format!("{}: cannot fetch it ({e})", c.url)],
        };
        let status = response.status();
        if !status.is_success() {
            return vec![format!("{}: HTTP {status}", c.url)];
        }
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let (content_type, content_encoding, cache_control) = (
            header("content-type"),
            header("content-encoding"),
            header("cache-control"),
        );
        let mut problems = Vec::new();
        if let Some(h) = &c.headers {
            let mut expect = |name: &str, want: Option<&str>, got: &Option<String>| {
                if want != got.as_deref() {
                    problems.push(format!(
                        "{}: {name} is {:?}, expected {:?}",
                        c.url,
                        got.as_deref().unwrap_or("(none)"),
                        want.unwrap_or("(none)")
                    ));
                }
            };
            expect("Content-Type", Some(&h.content_type), &content_type);
            expect(
                "Content-Encoding",
                h.content_encoding.as_deref(),
                &content_encoding,
            );
            expect("Cache-Control", Some(&h.cache_control), &cache_control);
        }
        match response.bytes().await {
            Ok(body) => {
                let sha = hex::encode(Sha256::digest(&body));
                if sha != c.sha256 {
                    problems.push(format!(
                        "{}: other bytes (sha256 {sha}, expected {})",
                        c.url, c.sha256
                    ));
                }
            }
            Err(e) => problems.push(format!("{}: the body broke off ({e})", c.url)),
        }
        problems
    }
}
