//! Command-line interface: clap definitions, turned into a [`Config`] and a
//! [`Command`] in one place. Usage errors go through clap, so they exit 2.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::FlagValues;

#[derive(Debug, Parser)]
#[command(
    name = "cutover",
    version,
    about = "Ship a webpack build to S3/CloudFront and switch the Rails manifest in Redis atomically",
    long_about = None,
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Configuration file (default: ./cutover.toml if present).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// App name; namespaces the Redis keys (CUTOVER_APP).
    #[arg(long, global = true)]
    pub app: Option<String>,
    /// S3 bucket behind the CDN (CUTOVER_BUCKET).
    #[arg(long, global = true)]
    pub bucket: Option<String>,
    /// Key prefix of the public files in the bucket (CUTOVER_PREFIX, default "packs").
    #[arg(long, global = true)]
    pub prefix: Option<String>,
    /// Public base URL of the CDN (CUTOVER_CDN_URL).
    #[arg(long, global = true, value_name = "URL")]
    pub cdn_url: Option<String>,
    /// Redis URL (REDIS_URL, default redis://127.0.0.1:6379).
    #[arg(long, global = true, value_name = "URL")]
    pub redis_url: Option<String>,
    /// Connect to a Redis Cluster (CUTOVER_REDIS_CLUSTER).
    #[arg(long, global = true)]
    pub redis_cluster: bool,
    /// S3 endpoint of an S3-compatible server (otherwise AWS_ENDPOINT_URL_S3 / AWS).
    #[arg(long, global = true, value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// Print one JSON document on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// No progress output on stderr.
    #[arg(long, short, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Hash, plan, upload, record and activate a webpack build.
    Deploy(DeployArgs),
    /// Make an uploaded release live, after checking all its objects are in S3.
    Activate(ActivateArgs),
    /// Go back to the release that was live before the current one.
    Rollback(RollbackArgs),
    /// Show the live release and its record.
    Status,
    /// List uploaded releases, newest first, marking the live one.
    Releases(ReleasesArgs),
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The webpack output directory, e.g. public/packs.
    pub dir: PathBuf,
    /// Print exactly what would change, using read-only calls; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Upload and record the release, but leave the live release as it is.
    #[arg(long)]
    pub no_activate: bool,
    /// Activate even if the live release changed since planning.
    #[arg(long)]
    pub force: bool,
    /// A note kept in the release record and the history.
    #[arg(long, short)]
    pub message: Option<String>,
    /// Path of the manifest inside the build (CUTOVER_MANIFEST, default manifest.json).
    #[arg(long, value_name = "PATH")]
    pub manifest: Option<String>,
    /// Uploads in flight at once (CUTOVER_CONCURRENCY, default 32).
    #[arg(long, value_name = "N")]
    pub concurrency: Option<String>,
    /// Seconds to wait for another deploy's lock (CUTOVER_LOCK_WAIT, default 120).
    #[arg(long, value_name = "SECS")]
    pub lock_wait: Option<String>,
    /// Git commit of the build (default: CIRCLE_SHA1, GITHUB_SHA, ...).
    #[arg(long, value_name = "SHA")]
    pub git_sha: Option<String>,
    /// Git branch of the build (default: CIRCLE_BRANCH, GITHUB_REF_NAME, ...).
    #[arg(long, value_name = "BRANCH")]
    pub git_branch: Option<String>,
    /// CI build URL (default: CIRCLE_BUILD_URL, ...).
    #[arg(long, value_name = "URL")]
    pub build_url: Option<String>,
    /// Who deploys (default: CI user variable, else the OS user).
    #[arg(long, value_name = "NAME")]
    pub by: Option<String>,
}

#[derive(Debug, Args)]
pub struct ActivateArgs {
    /// Release id (a unique prefix is enough).
    pub release: String,
    #[command(flatten)]
    pub switch: SwitchFlags,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// Roll back to this release instead of the previous one.
    #[arg(long, value_name = "RELEASE")]
    pub to: Option<String>,
    #[command(flatten)]
    pub switch: SwitchFlags,
}

/// Flags shared by the commands that switch the live release.
#[derive(Debug, Args)]
pub struct SwitchFlags {
    /// Print the switch (after checking the release's objects); change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Switch even if the live release changes while checking.
    #[arg(long)]
    pub force: bool,
    /// A note kept in the history.
    #[arg(long, short)]
    pub message: Option<String>,
    /// Who switches (default: CI user variable, else the OS user).
    #[arg(long, value_name = "NAME")]
    pub by: Option<String>,
    /// Seconds to wait for a running deploy's lock (CUTOVER_LOCK_WAIT, default 120).
    #[arg(long, value_name = "SECS")]
    pub lock_wait: Option<String>,
}

#[derive(Debug, Args)]
pub struct ReleasesArgs {
    /// How many releases to show.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
}

impl Cli {
    /// The values given as flags, by configuration key.
    pub fn flag_values(&self) -> FlagValues {
        let g = &self.global;
        let mut f = FlagValues::new();
        let mut put = |k: &'static str, v: &Option<String>| {
            if let Some(v) = v {
                f.insert(k, v.clone());
            }
        };
        put("app", &g.app);
        put("bucket", &g.bucket);
        put("prefix", &g.prefix);
        put("cdn_url", &g.cdn_url);
        put("redis_url", &g.redis_url);
        put("s3_endpoint", &g.s3_endpoint);
        match &self.command {
            Command::Deploy(d) => {
                put("manifest", &d.manifest);
                put("concurrency", &d.concurrency);
                put("lock_wait_secs", &d.lock_wait);
                put("git_sha", &d.git_sha);
                put("git_branch", &d.git_branch);
                put("build_url", &d.build_url);
                put("deployed_by", &d.by);
            }
            Command::Activate(ActivateArgs { switch, .. })
            | Command::Rollback(RollbackArgs { switch, .. }) => {
                put("deployed_by", &switch.by);
                put("lock_wait_secs", &switch.lock_wait);
            }
            Command::Status | Command::Releases(_) => {}
        }
        if g.redis_cluster {
            f.insert("redis_cluster", "true".into());
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_after_subcommand() {
        let cli = Cli::try_parse_from([
            "cutover",
            "deploy",
            "public/packs",
            "--dry-run",
            "--app",
            "shop",
            "--json",
        ])
        .unwrap();
        assert!(cli.global.json);
        assert_eq!(
            cli.flag_values().get("app").map(String::as_str),
            Some("shop")
        );
        let err = Cli::try_parse_from(["cutover", "deploy", "x", "--bogus"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }
}
