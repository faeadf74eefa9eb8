//! AWS configuration shared by the S3 and CloudFront clients: the standard
//! chain (environment, profile, web identity file, ECS, instance metadata),
//! or, in CircleCI, the job's OIDC token exchanged for a role's credentials.

use aws_config::{BehaviorVersion, ConfigLoader, SdkConfig};
use aws_credential_types::Credentials;

use crate::config::Config;
use crate::error::Failure;

/// The environment variable CircleCI puts a job's OIDC token in.
pub const CIRCLE_OIDC_TOKEN: &str = "CIRCLE_OIDC_TOKEN_V2";

/// Load the AWS configuration. `tune` adds client settings (retries,
/// timeouts). With `role_arn` and a CircleCI OIDC token in the environment,
/// the token is exchanged for the role's credentials (AssumeRoleWithWebIdentity)
/// in memory, never written to disk.
pub async fn load(
    config: &Config,
    tune: impl Fn(ConfigLoader) -> ConfigLoader,
) -> anyhow::Result<SdkConfig> {
    let base = tune(aws_config::defaults(BehaviorVersion::latest()));
    let token = std::env::var(CIRCLE_OIDC_TOKEN)
        .ok()
        .filter(|t| !t.is_empty());
    let (Some(role), Some(token)) = (&config.role_arn, token) else {
        return Ok(base.load().await);
    };
    let sts = aws_sdk_sts::Client::new(&base.load().await);
    let session = format!(
        "cutover-{}",
        std::env::var("CIRCLE_BUILD_NUM").unwrap_or_else(|_| std::process::id().to_string())
    );
    let out = sts
        .assume_role_with_web_identity()
        .role_arn(role)
        .role_session_name(&session)
        .web_identity_token(token)
        .send()
        .await
        .map_err(|e| {
            use aws_sdk_sts::error::ProvideErrorMetadata;
            Failure::input(format!(
                "AWS STS refused to let the CircleCI OIDC token ({CIRCLE_OIDC_TOKEN}) assume {role} ({}: {}); \
                 check the role's trust policy (oidc.circleci.com/org/ORG_ID, audience ORG_ID) and that the job uses a context",
                e.code().unwrap_or("no answer"),
                e.message().map(str::to_string).unwrap_or_else(|| e.to_string())
            ))
        })?;
    let creds = out.credentials().ok_or_else(|| {
        Failure::operation(format!(
            "AWS STS assumed {role} but returned no credentials"
        ))
    })?;
    let credentials = Credentials::new(
        creds.access_key_id(),
        creds.secret_access_key(),
        Some(creds.session_token().to_string()),
        std::time::SystemTime::try_from(*creds.expiration()).ok(),
        "circleci-oidc",
    );
    let tuned = tune(aws_config::defaults(BehaviorVersion::latest()));
    Ok(tuned.credentials_provider(credentials).load().await)
}
