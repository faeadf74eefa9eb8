//! CloudFront invalidations: after a switch, the CDN forgets the paths whose
//! objects changed under the same name (mutable files, rewritten headers).

use std::time::{Duration, Instant};

use aws_sdk_cloudfront::config::http::HttpResponse;
use aws_sdk_cloudfront::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cloudfront::types::{InvalidationBatch, Paths};
use aws_sdk_cloudfront::Client;

use crate::error::Failure;

/// More paths than this are collapsed into one wildcard (CloudFront bills
/// per path, and a wildcard counts as one).
const MAX_PATHS: usize = 15;

pub struct CloudFront {
    client: Client,
}

/// The paths to send: themselves, or one wildcard over their common prefix.
pub fn collapse(paths: &[String]) -> Vec<String> {
    if paths.len() <= MAX_PATHS {
        return paths.to_vec();
    }
    let first = &paths[0];
    let mut common = first.len();
    for p in &paths[1..] {
        common = common.min(
            first
                .bytes()
                .zip(p.bytes())
                .take_while(|(a, b)| a == b)
                .count(),
        );
    }
    // Up to the last `/` of the common part.
    let dir = first[..common]
        .rfind('/')
        .map(|i| &first[..=i])
        .unwrap_or("/");
    vec![format!("{dir}*")]
}

impl CloudFront {
    /// A client whose every request is bounded by `s3_timeout_secs` (an
    /// endpoint that never answers ends the call, not the command's life).
    pub async fn connect(config: &crate::config::Config) -> anyhow::Result<CloudFront> {
        let wait = Duration::from_secs(config.s3_timeout_secs);
        let sdk = super::aws::load(config, |loader| {
            loader.timeout_config(
                aws_smithy_types::timeout::TimeoutConfig::builder()
                    .connect_timeout(wait.min(Duration::from_secs(5)))
                    .read_timeout(wait)
                    .operation_attempt_timeout(wait)
                    .build(),
            )
        })
        .await?;
        Ok(CloudFront {
            client: Client::new(&sdk),
        })
    }

    /// Invalidate `paths` on `distribution`, retrying while CloudFront has too
    /// many invalidations in progress; with `wait`, until it completes.
    /// Returns the invalidation id.
    pub async fn invalidate(
        &self,
        distribution: &str,
        paths: &[String],
        wait: bool,
    ) -> anyhow::Result<String> {
        let items = collapse(paths);
        let batch = InvalidationBatch::builder()
            .caller_reference(format!(
                "cutover-{}-{}",
                std::process::id(),
                crate::release::now().1
            ))
            .paths(
                Paths::builder()
                    .quantity(items.len() as i32)
                    .set_items(Some(items))
                    .build()
                    .map_err(|e| {
                        Failure::operation(format!("cannot describe an invalidation: {e}"))
                    })?,
            )
            .build()
            .map_err(|e| Failure::operation(format!("cannot describe an invalidation: {e}")))?;
        let mut delay = Duration::from_secs(2);
        let deadline = Instant::now() + Duration::from_secs(120);
        let id = loop {
            let sent = self
                .client
                .create_invalidation()
                .distribution_id(distribution)
                .invalidation_batch(batch.clone())
                .send()
                .await;
            match sent {
                Ok(out) => {
                    break out
                        .invalidation()
                        .map(|i| i.id().to_string())
                        .unwrap_or_default()
                }
                Err(e)
                    if e.code() == Some("TooManyInvalidationsInProgress")
                        && Instant::now() + delay < deadline =>
                {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
                Err(e) => {
                    return Err(Failure::operation(format!(
                        "CloudFront refused to invalidate {} on distribution {distribution} ({}){}; the switch is done, \
                         invalidate by hand or wait for the cache to expire",
                        crate::render::some(paths, 3),
                        code_of(&e),
                        needs(&e, "CreateInvalidation", distribution),
                    )))
                }
            }
        };
        if wait {
            self.wait(distribution, &id).await?;
        }
        Ok(id)
    }

    /// Wait (up to 15 minutes) until the invalidation completes.
    async fn wait(&self, distribution: &str, id: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(15 * 60);
        loop {
            let out = self
                .client
                .get_invalidation()
                .distribution_id(distribution)
                .id(id)
                .send()
                .await
                .map_err(|e| {
                    Failure::operation(format!(
                        "cannot read invalidation {id} on {distribution}: {}{}",
                        e.message().unwrap_or_default(),
                        needs(&e, "GetInvalidation", distribution),
                    ))
                })?;
            let status = out.invalidation().map(|i| i.status()).unwrap_or_default();
            if status.eq_ignore_ascii_case("completed") {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Failure::operation(format!(
                    "invalidation {id} on {distribution} is still {status} after 15 minutes; the switch is done"
                )));
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    }
}

/// CloudFront's error code and message, or the HTTP status when it gave none.
fn code_of<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> String {
    let code = err.code().map(str::to_string).unwrap_or_else(|| {
        err.raw_response()
            .map(|r| format!("HTTP {}", r.status().as_u16()))
            .unwrap_or_else(|| "no answer".into())
    });
    match err.message().filter(|m| !m.is_empty()) {
        Some(m) => format!("{code}: {m}"),
        None => code,
    }
}

/// For a call CloudFront refused for want of permission: which IAM action
/// it needs, on which distribution (from [`crate::store::permissions::CALLS`]).
fn needs<E: ProvideErrorMetadata>(
    err: &SdkError<E, HttpResponse>,
    call: &str,
    distribution: &str,
) -> String {
    let status = err.raw_response().map(|r| r.status().as_u16());
    if err.code() != Some("AccessDenied") && status != Some(403) {
        return String::new();
    }
    format!(
        ": {call} needs {} on arn:aws:cloudfront::*:distribution/{distribution}",
        crate::store::permissions::actions_of_call(call).join(" and ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_paths_collapse_into_one_wildcard() {
        let few: Vec<String> = (0..3).map(|i| format!("/packs/sw{i}.js")).collect();
        assert_eq!(collapse(&few), few);
        let many: Vec<String> = (0..20).map(|i| format!("/packs/js/f{i}.js")).collect();
        assert_eq!(collapse(&many), ["/packs/js/*"]);
        let mixed: Vec<String> = (0..20)
            .map(|i| format!("/packs/{}/f.js", if i % 2 == 0 { "a" } else { "b" }))
            .collect();
        assert_eq!(collapse(&mixed), ["/packs/*"]);
    }
}
