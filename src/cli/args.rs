//! Command-line arguments. The commands and their own options are clap
//! derive structs; the settings (`--app`, `--bucket`, ...) come from the one
//! table of configuration keys, so a setting cannot exist in the file and
//! be missing as a flag, or the other way round. Usage errors go through
//! clap, so they exit 2.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Arg, ArgAction, ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::config::keys::{Key, Scope, KEYS};
use crate::config::FlagValues;

const GLOBAL_HEADING: &str = "Global options";
const SETTINGS_HEADING: &str =
    "Settings (flag > CUTOVER_* variable > cutover.toml > REDIS_URL and other shared variables > default)";

#[derive(Debug, Parser)]
#[command(
    name = "cutover",
    version,
    about = "Ship a webpack build to S3/CloudFront and switch the Rails manifest in Redis atomically",
    long_about = None,
    propagate_version = true,
    after_help = "Exit codes: 0 success, 1 failed (nothing switched), 2 bad usage or input, 3 refused for safety, \
                  4 verification failed, 5 partially applied, 130 interrupted."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
#[command(next_help_heading = GLOBAL_HEADING)]
pub struct Global {
    /// Configuration file (default: ./cutover.toml if present).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Use the file's [environments.NAME] (env: CUTOVER_ENV).
    #[arg(long = "env", global = true, value_name = "NAME")]
    pub environment: Option<String>,
    /// Print one JSON document on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// No progress output on stderr (warnings are still printed).
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// List every file in text output, not only the first few.
    #[arg(long, short, global = true)]
    pub verbose: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Hash, plan, upload, record and activate a webpack build.
    Deploy(DeployArgs),
    /// Make an uploaded release live, after checking all its objects are in S3.
    Activate(ActivateArgs),
    /// Go back to the release that was live before the current one.
    Rollback(RollbackArgs),
    /// Serve a release to a share of the requests first; change the share, complete or abort.
    Rollout(RolloutArgs),
    /// Show the live release and its record.
    Status,
    /// List every reader process that reports what it serves, live and gone.
    Fleet,
    /// List uploaded releases, newest first, marking the live one.
    Releases(ReleasesArgs),
    /// Delete what no kept release references (rollback-safe retention).
    Prune(PruneArgs),
    /// Check a release's objects in S3 (and, with --cdn, through the CDN).
    Verify(VerifyArgs),
    /// Check a setup: credentials, bucket, region, Redis, permissions, CORS, CDN.
    Doctor(DoctorArgs),
    /// Show who holds the deploy lock; clear it with --force.
    Unlock(UnlockArgs),
    /// The activation log: who switched what, when, and why.
    History(HistoryArgs),
    /// What changes between two releases (default: live vs the newest recorded).
    Diff(DiffArgs),
    /// Hold the live release: deploys record but do not activate.
    Pin(PinArgs),
    /// Let deploys activate again.
    Unpin(UnpinArgs),
    /// Print the resolved configuration, with where each value comes from.
    Config,
    /// Make a release tested in one environment live in another, unchanged.
    Promote(PromoteArgs),
    /// Write a new Ed25519 key pair for signed releases (PEM files).
    Keygen(KeygenArgs),
    /// Print the least privilege a role needs: the IAM policy or the Redis ACL lines.
    Policy(PolicyArgs),
}

impl Command {
    /// The subcommand's name, as typed.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Deploy(_) => "deploy",
            Command::Activate(_) => "activate",
            Command::Rollback(_) => "rollback",
            Command::Rollout(_) => "rollout",
            Command::Status => "status",
            Command::Fleet => "fleet",
            Command::Releases(_) => "releases",
            Command::Prune(_) => "prune",
            Command::Verify(_) => "verify",
            Command::Doctor(_) => "doctor",
            Command::Unlock(_) => "unlock",
            Command::History(_) => "history",
            Command::Diff(_) => "diff",
            Command::Pin(_) => "pin",
            Command::Unpin(_) => "unpin",
            Command::Config => "config",
            Command::Promote(_) => "promote",
            Command::Keygen(_) => "keygen",
            Command::Policy(_) => "policy",
        }
    }
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The webpack output directory, e.g. public/packs.
    pub dir: PathBuf,
    /// Print exactly what would change, using read-only calls; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Upload and record the release, but leave the live release as it is
    /// (without a reachable Redis: recorded in S3 only).
    #[arg(long)]
    pub no_activate: bool,
    /// Do not use Redis at all: record the release in S3 only.
    #[arg(long, requires = "no_activate")]
    pub no_redis: bool,
    /// Activate even if the live release changed since planning.
    #[arg(long)]
    pub force: bool,
    /// A note kept in the release record and the history.
    #[arg(long, short)]
    pub message: Option<String>,
    /// Switch only if the CDN serves the entrypoint files with their bytes and headers.
    #[arg(long)]
    pub verify_cdn: bool,
    /// Activate although the build is from an older commit than the live release's.
    #[arg(long)]
    pub allow_older: bool,
    /// Do not make it live: roll it out to N % of the requests (`cutover rollout` goes on from there).
    #[arg(long, value_name = "N", value_parser = crate::canary::Percent::parse, conflicts_with = "no_activate")]
    pub rollout: Option<crate::canary::Percent>,
    /// Wait for the CloudFront invalidation of changed files to complete.
    #[arg(long)]
    pub wait: bool,
    /// Also say how long each phase took (scan, list, plan, upload, record, switch).
    #[arg(long)]
    pub timings: bool,
}

#[derive(Debug, Args)]
pub struct ActivateArgs {
    /// Release id (a unique prefix is enough).
    pub release: String,
    /// Switch although the app is pinned, and clear the pin.
    #[arg(long)]
    pub unpin: bool,
    /// Switch only if the CDN serves the entrypoint files with their bytes and headers.
    #[arg(long)]
    pub verify_cdn: bool,
    /// Switch although the release is built from an older commit than the live one's.
    #[arg(long)]
    pub allow_older: bool,
    #[command(flatten)]
    pub switch: SwitchFlags,
}

#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// Release id in the source environment (a unique prefix is enough).
    pub release: String,
    /// The environment it was tested in ([environments.NAME] of cutover.toml).
    #[arg(long, value_name = "ENV")]
    pub from: String,
    /// The environment to make it live in.
    #[arg(long, value_name = "ENV")]
    pub to: String,
    /// Switch only if the target's CDN serves the entrypoint files with their bytes and headers.
    #[arg(long)]
    pub verify_cdn: bool,
    #[command(flatten)]
    pub switch: SwitchFlags,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// How many events to show (0: all kept).
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub limit: usize,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The release to compare from (id or unique prefix; default: the live one).
    pub from: Option<String>,
    /// The release to compare to (default: the newest recorded).
    pub to: Option<String>,
}

#[derive(Debug, Args)]
pub struct PinArgs {
    /// Why (shown by status, deploys and releases).
    #[arg(long, short)]
    pub message: Option<String>,
    /// Show the change; make none.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct UnpinArgs {
    /// Show the change; make none.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// Roll back to this release instead of the previous one.
    #[arg(long, value_name = "RELEASE")]
    pub to: Option<String>,
    #[command(flatten)]
    pub switch: SwitchFlags,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  cutover rollout 3f2a9c --percent 5    start: 5% of the keys get 3f2a9c, the others the live release\n  \
                        cutover rollout --percent 25          raise it (every key on it stays on it)\n  \
                        cutover rollout complete              make the canary live for everyone\n  \
                        cutover rollout abort                 take the canary off\n\
                        Readers pick the release per request by a key (docs/redis.md, \"Rollouts and skew protection\")."
)]
pub struct RolloutArgs {
    /// A release to roll out (id or unique prefix); `complete` makes the canary live for everyone; `abort` takes it off. Omitted: change the running rollout's --percent.
    #[arg(value_name = "RELEASE|complete|abort")]
    pub what: Option<String>,
    /// The share of the requests (chosen by key) served the canary: above 0, below 100, at most two decimals.
    #[arg(long, value_name = "N", value_parser = crate::canary::Percent::parse)]
    pub percent: Option<crate::canary::Percent>,
    /// Roll out although the release is built from an older commit than the live one's.
    #[arg(long)]
    pub allow_older: bool,
    /// `complete`: switch only if the CDN serves the entrypoint files with their bytes and headers.
    #[arg(long)]
    pub verify_cdn: bool,
    #[command(flatten)]
    pub switch: SwitchFlags,
}

/// Flags shared by the commands that switch the live release.
#[derive(Debug, Clone, Args)]
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
    /// Wait for the CloudFront invalidation of restored mutable files to complete.
    #[arg(long)]
    pub wait: bool,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Keep the newest N releases.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub keep: usize,
    /// Keep releases live within D days, and recorded ones younger than D days.
    #[arg(long, default_value_t = 7, value_name = "D")]
    pub keep_days: u64,
    /// Never delete objects younger than this many seconds (in-flight deploys).
    #[arg(long, default_value_t = 3600, value_name = "SECS")]
    pub grace: u64,
    /// Refuse (exit 3) to delete more objects than this.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub max_delete: usize,
    /// Also delete objects under the prefix that no release references.
    #[arg(long)]
    pub include_unreferenced: bool,
    /// Show what would be kept and deleted; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Release id or unique prefix (default: the live release).
    pub release: Option<String>,
    /// Also fetch the entrypoint files through CDN_URL, comparing bytes and headers.
    #[arg(long)]
    pub cdn: bool,
    /// With --cdn, also fetch this many other files.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub sample: usize,
    /// Read and hash every object instead of trusting S3's listing.
    #[arg(long)]
    pub read: bool,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// A build directory, to check its public path against CDN_URL/PREFIX.
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// Whose permissions: a command, or `read` (status, releases, history, diff, verify, doctor).
    #[arg(value_enum, default_value = "deploy")]
    pub role: crate::commands::policy::Role,
    /// The IAM policy document, or the Redis ACL lines (the CLI's and each reader's).
    #[arg(long, value_enum, default_value = "iam")]
    pub format: crate::commands::policy::Format,
    /// Include what `--wait` needs (cloudfront:GetInvalidation).
    #[arg(long)]
    pub wait: bool,
    /// For `promote`: the environment it reads from ([environments.NAME]);
    /// its bucket is read, the target's (`--to`) written.
    #[arg(long, value_name = "ENV", requires = "to")]
    pub from: Option<String>,
    /// For `promote`: the environment it makes the release live in.
    #[arg(long, value_name = "ENV", requires = "from")]
    pub to: Option<String>,
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Write PREFIX.pem (the private key, mode 0600) and PREFIX.pub.pem
    /// (the public key, for the readers' verify_keys); never overwrites.
    #[arg(long, value_name = "PREFIX", default_value = crate::commands::keygen::DEFAULT_PREFIX)]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct UnlockArgs {
    /// Delete the lock (only if it still has the owner shown).
    #[arg(long)]
    pub force: bool,
    /// Show what --force would delete; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct ReleasesArgs {
    /// How many releases to show (0: all).
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub limit: usize,
}

fn setting(order: usize, key: &Key, flag: &'static str) -> Arg {
    let env = key.env.join(", ");
    let help = format!("{} [env: {env}] [default: {}]", key.help, key.default);
    let arg = Arg::new(key.name)
        .long(flag)
        .help(help)
        .help_heading(SETTINGS_HEADING)
        .display_order(order);
    if key.switch {
        arg.action(ArgAction::SetTrue)
    } else if let Some(bare) = key.bare {
        arg.value_name(key.value_name)
            .action(ArgAction::Set)
            .num_args(0..=1)
            .require_equals(true)
            .default_missing_value(bare)
    } else if key.list {
        arg.value_name(key.value_name).action(ArgAction::Append)
    } else {
        arg.value_name(key.value_name).action(ArgAction::Set)
    }
}

/// The whole command line: the derive structs plus a flag per setting.
pub fn command() -> clap::Command {
    let mut cmd = Cli::command();
    // Settings are listed in the table's order.
    for (order, key) in KEYS.iter().enumerate() {
        let Some(flag) = key.flag else { continue };
        match key.scope {
            Scope::Global => cmd = cmd.arg(setting(order, key, flag).global(true)),
            Scope::Only(names) => {
                for name in names {
                    cmd = cmd.mut_subcommand(*name, |sub| sub.arg(setting(order, key, flag)));
                }
            }
        }
    }
    // `--keep -1` is a bad value of `--keep`, not an unknown flag `-1`:
    // the error names the option.
    cmd.mut_subcommands(|sub| sub.allow_negative_numbers(true))
}

/// Parse arguments into the command and the settings given as flags.
pub fn parse<I, T>(args: I) -> Result<(Cli, FlagValues), clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let matches = command().try_get_matches_from(args)?;
    let cli = Cli::from_arg_matches(&matches)?;
    let mut flags = FlagValues::new();
    let sub = matches.subcommand().map(|(_, m)| m);
    for key in KEYS.iter().filter(|k| k.flag.is_some()) {
        let found = [Some(&matches), sub]
            .into_iter()
            .flatten()
            .find_map(|m| value(m, key));
        if let Some(v) = found {
            flags.insert(key.name, v);
        }
    }
    if let Some(env) = &cli.global.environment {
        flags.insert(crate::config::ENV_FLAG, env.clone());
    }
    Ok((cli, flags))
}

/// A setting's value in one level of matches, if it was given there.
fn value(m: &ArgMatches, key: &Key) -> Option<String> {
    if key.switch {
        return matches!(m.try_get_one::<bool>(key.name), Ok(Some(true))).then(|| "true".into());
    }
    if key.list {
        let values: Vec<&String> = m.try_get_many::<String>(key.name).ok()??.collect();
        return Some(
            values
                .iter()
                .map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    m.try_get_one::<String>(key.name).ok().flatten().cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn settings_flags_reach_the_configuration() {
        let (cli, flags) = parse([
            "cutover",
            "deploy",
            "public/packs",
            "--dry-run",
            "--app",
            "shop",
            "--json",
            "--redis-cluster",
            "--concurrency",
            "4",
        ])
        .unwrap();
        assert!(cli.global.json);
        assert_eq!(flags.get("app").map(String::as_str), Some("shop"));
        assert_eq!(flags.get("redis_cluster").map(String::as_str), Some("true"));
        assert_eq!(flags.get("concurrency").map(String::as_str), Some("4"));
        // Global settings before the subcommand work too.
        let (_, flags) = parse(["cutover", "--bucket", "b-1", "status"]).unwrap();
        assert_eq!(flags.get("bucket").map(String::as_str), Some("b-1"));
        // A setting scoped to deploy is unknown elsewhere: exit 2.
        let err = parse(["cutover", "status", "--concurrency", "4"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let err = parse(["cutover", "deploy", "x", "--bogus"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        // A list setting is repeatable; its values are space-joined.
        let (_, flags) = parse([
            "cutover",
            "deploy",
            "x",
            "--exclude",
            "**/*.map",
            "--exclude",
            "stats.json",
        ])
        .unwrap();
        assert_eq!(
            flags.get("exclude").map(String::as_str),
            Some("**/*.map stats.json")
        );
    }

    #[test]
    fn every_flagged_setting_is_on_its_commands() {
        let cmd = command();
        for key in KEYS {
            let Some(flag) = key.flag else { continue };
            for sub in cmd.get_subcommands() {
                let has = sub.get_arguments().any(|a| a.get_long() == Some(flag))
                    || cmd
                        .get_arguments()
                        .any(|a| a.get_long() == Some(flag) && a.is_global_set());
                assert_eq!(
                    has,
                    key.applies_to(sub.get_name()),
                    "--{flag} on {}",
                    sub.get_name()
                );
            }
        }
    }
}
