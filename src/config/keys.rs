//! The one table of settings. Flags, environment variables, `cutover.toml`
//! keys, `--help` and the configuration table in docs/configuration.md all come from
//! [`KEYS`]; a test checks that doc against it.
//!
//! Each key has one function that checks a raw value and stores it in the
//! [`Config`] (in [`super::values`]); it returns what was expected when
//! the value is bad.

use super::values::*;
use super::Config;

/// Where a key's flag appears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// On every command.
    Global,
    /// Only on these commands.
    Only(&'static [&'static str]),
}

/// Commands that take the lock.
const SWITCHING: &[&str] = &[
    "deploy", "activate", "rollback", "promote", "prune", "rollout",
];
/// Commands that say who did what.
const ACTING: &[&str] = &[
    "deploy", "activate", "rollback", "promote", "pin", "rollout",
];

pub struct Key {
    /// Name in `cutover.toml`, and the key's id everywhere.
    pub name: &'static str,
    /// Other names `cutover.toml` accepts for it.
    pub aliases: &'static [&'static str],
    /// Long flag, without `--`.
    pub flag: Option<&'static str>,
    /// Environment variables, in order of preference.
    pub env: &'static [&'static str],
    pub scope: Scope,
    /// A flag without a value (`--redis-cluster`).
    pub switch: bool,
    /// A flag whose value is optional: given only as `--flag=VALUE`, and
    /// `--flag` alone means this value (`--wait-converged`).
    pub bare: Option<&'static str>,
    /// Several values: a repeatable flag, space-separated in the
    /// environment, an array in `cutover.toml`. The value is space-joined.
    pub list: bool,
    /// Never echo the value (it may hold a password).
    pub secret: bool,
    pub value_name: &'static str,
    pub help: &'static str,
    /// The default, as documented.
    pub default: &'static str,
    /// Check a value and store it; `Err` says what is expected.
    pub apply: fn(&str, &mut Config) -> Result<(), String>,
}

impl Key {
    pub fn applies_to(&self, command: &str) -> bool {
        match self.scope {
            Scope::Global => true,
            Scope::Only(cmds) => cmds.contains(&command),
        }
    }
}

const fn key(name: &'static str, apply: fn(&str, &mut Config) -> Result<(), String>) -> Key {
    Key {
        name,
        aliases: &[],
        flag: None,
        env: &[],
        scope: Scope::Global,
        switch: false,
        bare: None,
        list: false,
        secret: false,
        value_name: "VALUE",
        help: "",
        default: "",
        apply,
    }
}

pub const KEYS: &[Key] = &[
    Key {
        flag: Some("app"),
        env: &["CUTOVER_APP"],
        value_name: "NAME",
        help: "App name; namespaces the Redis keys and the release records",
        default: "required",
        ..key("app", app)
    },
    Key {
        flag: Some("bucket"),
        env: &["CUTOVER_BUCKET"],
        value_name: "NAME",
        help: "S3 bucket behind the CDN",
        default: "required for S3",
        ..key("bucket", bucket)
    },
    Key {
        flag: Some("prefix"),
        env: &["CUTOVER_PREFIX"],
        value_name: "PREFIX",
        help: "Key prefix of the public files in the bucket",
        default: "packs",
        ..key("prefix", prefix)
    },
    Key {
        flag: Some("cdn-url"),
        env: &["CUTOVER_CDN_URL"],
        value_name: "URL",
        help: "Public base URL of the CDN in front of the bucket",
        default: "required for deploy",
        ..key("cdn_url", cdn_url)
    },
    Key {
        flag: Some("redis-url"),
        env: &["CUTOVER_REDIS_URL", "REDIS_URL"],
        aliases: &["redis_targets"],
        secret: true,
        list: true,
        value_name: "URL",
        help: "Redis the app reads: redis://[user:password@]host:port[/db], rediss:// (TLS), or redis+sentinel://[user:password@]host:port[,host:port...]/MASTER_NAME[/db]; several (pods, switched together): repeat the flag, space-separate, or an array (also `redis_targets`) in cutover.toml",
        default: "redis://127.0.0.1:6379",
        ..key("redis_url", redis_url)
    },
    Key {
        flag: Some("redis-cluster"),
        env: &["CUTOVER_REDIS_CLUSTER"],
        switch: true,
        help: "Redis is a Redis Cluster (redis_url is a seed node)",
        default: "false",
        ..key("redis_cluster", redis_cluster)
    },
    Key {
        flag: Some("redis-ca-file"),
        env: &["CUTOVER_REDIS_CA_FILE"],
        value_name: "PATH",
        help: "PEM file of the CA certificates that sign Redis's TLS certificate (rediss://); trusted instead of the system's",
        default: "the system's CAs",
        ..key("redis_ca_file", redis_ca_file)
    },
    Key {
        flag: Some("redis-tls-cert-file"),
        env: &["CUTOVER_REDIS_TLS_CERT_FILE"],
        value_name: "PATH",
        help: "PEM client certificate for a Redis that asks for one (mTLS; with redis_tls_key_file)",
        default: "none",
        ..key("redis_tls_cert_file", redis_tls_cert_file)
    },
    Key {
        flag: Some("redis-tls-key-file"),
        env: &["CUTOVER_REDIS_TLS_KEY_FILE"],
        value_name: "PATH",
        help: "PEM private key of redis_tls_cert_file",
        default: "none",
        ..key("redis_tls_key_file", redis_tls_key_file)
    },
    Key {
        flag: Some("redis-tls-insecure"),
        env: &["CUTOVER_REDIS_TLS_INSECURE"],
        switch: true,
        help: "Do not verify Redis's TLS certificate (self-signed providers; warned about on every run). Same as rediss://...#insecure",
        default: "false",
        ..key("redis_tls_insecure", redis_tls_insecure)
    },
    Key {
        env: &["CUTOVER_REDIS_SENTINEL_PASSWORD"],
        secret: true,
        help: "Password of the Sentinels themselves, when they require one (redis+sentinel:// credentials are the master's)",
        default: "none",
        ..key("redis_sentinel_password", redis_sentinel_password)
    },
    Key {
        env: &["CUTOVER_REDIS_TIMEOUT"],
        help: "Seconds to connect to Redis and for each command",
        default: "5",
        ..key("redis_timeout_secs", redis_timeout_secs)
    },
    Key {
        flag: Some("s3-endpoint"),
        env: &["CUTOVER_S3_ENDPOINT"],
        value_name: "URL",
        help: "Endpoint of an S3-compatible server (else AWS_ENDPOINT_URL_S3, else AWS)",
        default: "AWS",
        ..key("s3_endpoint", s3_endpoint)
    },
    Key {
        flag: Some("role-arn"),
        env: &["CUTOVER_ROLE_ARN", "AWS_ROLE_ARN"],
        value_name: "ARN",
        help: "IAM role to assume with CircleCI's OIDC token (CIRCLE_OIDC_TOKEN_V2)",
        default: "none",
        ..key("role_arn", role_arn)
    },
    Key {
        env: &["CUTOVER_S3_TIMEOUT"],
        help: "Seconds to wait for each S3 answer (4 attempts per request)",
        default: "10",
        ..key("s3_timeout_secs", s3_timeout_secs)
    },
    Key {
        env: &["CUTOVER_S3_PATH_STYLE"],
        help: "Path-style S3 addressing",
        default: "true with a custom endpoint",
        ..key("s3_path_style", s3_path_style)
    },
    Key {
        env: &["CUTOVER_APP_ORIGIN"],
        value_name: "URL",
        help: "The app's origin (https://shop.example), for doctor's CORS check",
        default: "none",
        ..key("app_origin", app_origin)
    },
    Key {
        flag: Some("cloudfront-distribution-id"),
        env: &["CUTOVER_CLOUDFRONT_DISTRIBUTION_ID"],
        scope: Scope::Only(&["deploy", "activate", "rollback", "promote", "rollout"]),
        value_name: "ID",
        help: "CloudFront distribution whose cache of changed mutable files is invalidated",
        default: "none",
        ..key("cloudfront_distribution_id", cloudfront_distribution_id)
    },
    Key {
        flag: Some("signing-key"),
        env: &["CUTOVER_SIGNING_KEY"],
        scope: Scope::Only(&["deploy", "promote"]),
        value_name: "PATH",
        help: "Ed25519 private key that signs releases (`cutover keygen` makes one): the path of its PEM file, or the PEM itself (a value that starts with -----BEGIN); never printed",
        default: "none: releases are unsigned",
        ..key("signing_key", signing_key)
    },
    Key {
        env: &["CUTOVER_REQUIRE_SIGNATURE"],
        help: "Every release made live must be signed: deploy and promote without signing_key exit 2; doctor fails on an unsigned live release",
        default: "false",
        ..key("require_signature", require_signature)
    },
    Key {
        env: &["CUTOVER_META_PREFIX"],
        help: "Where release records live in the bucket, outside the public prefix",
        default: "_cutover/APP",
        ..key("meta_prefix", meta_prefix)
    },
    Key {
        flag: Some("manifest"),
        env: &["CUTOVER_MANIFEST"],
        scope: Scope::Only(&["deploy", "doctor"]),
        value_name: "PATH",
        help: "Path of the manifest inside the build",
        default: "the format's: manifest.json, .vite/manifest.json, .manifest.json, .sprockets-manifest-*.json",
        ..key("manifest", manifest)
    },
    Key {
        flag: Some("manifest-format"),
        env: &["CUTOVER_MANIFEST_FORMAT"],
        scope: Scope::Only(&["deploy", "doctor"]),
        value_name: "FORMAT",
        help: "Manifest format: auto, shakapacker, webpack, vite, propshaft or sprockets (auto: from the manifest's name and shape)",
        default: "auto",
        ..key("manifest_format", manifest_format)
    },
    Key {
        flag: Some("exclude"),
        env: &["CUTOVER_EXCLUDE"],
        scope: Scope::Only(&["deploy", "doctor"]),
        list: true,
        value_name: "GLOB",
        help: "Files and manifest entries left out of the upload and the release, e.g. \"**/*.map\" (repeat the flag; space-separated in the environment)",
        default: "none",
        ..key("exclude", exclude)
    },
    Key {
        env: &["CUTOVER_CACHE_CONTROL"],
        help: "Cache-Control of files without a content hash in their name",
        default: "public, max-age=60",
        ..key("cache_control", cache_control)
    },
    Key {
        flag: Some("concurrency"),
        env: &["CUTOVER_CONCURRENCY"],
        scope: Scope::Only(&["deploy"]),
        value_name: "N",
        help: "S3 requests in flight at once",
        default: "32",
        ..key("concurrency", concurrency)
    },
    Key {
        flag: Some("check-concurrency"),
        env: &["CUTOVER_CHECK_CONCURRENCY"],
        scope: Scope::Only(&["deploy", "activate", "rollback", "promote", "verify", "rollout"]),
        value_name: "N",
        help: "Requests in flight at once when checking a release's objects (activate, rollback, promote, verify, rollout: its stretch listings, then a HEAD for each object they did not prove; deploy's closer looks): cheap requests, so many at once when S3 is far away",
        default: "256",
        ..key("check_concurrency", check_concurrency)
    },
    Key {
        env: &["CUTOVER_MULTIPART_THRESHOLD_MIB"],
        help: "Files this size (MiB) and up are uploaded in parts (min 5)",
        default: "64",
        ..key("multipart_threshold_mib", multipart_threshold_mib)
    },
    Key {
        flag: Some("wait-converged"),
        env: &["CUTOVER_WAIT_CONVERGED"],
        scope: Scope::Only(&["deploy", "activate", "rollback", "promote", "rollout"]),
        bare: Some("60"),
        value_name: "SECS",
        help: "After the switch, wait up to SECS (`--wait-converged` alone: 60) until every live reader process reports the new release; exit 6 if they do not (docs/redis.md, \"The fleet\"). 0: do not wait",
        default: "0",
        ..key("wait_converged_secs", wait_converged_secs)
    },
    Key {
        flag: Some("skew-max-age"),
        env: &["CUTOVER_SKEW_MAX_AGE"],
        scope: Scope::Only(&["prune"]),
        value_name: "SECS",
        help: "Keep every release retired less than SECS ago: pages rendered with it may still ask for its assets (the readers' skew_max_age; docs/redis.md, \"Rollouts and skew protection\")",
        default: "86400",
        ..key("skew_max_age_secs", skew_max_age_secs)
    },
    Key {
        flag: Some("lock-wait"),
        env: &["CUTOVER_LOCK_WAIT"],
        scope: Scope::Only(SWITCHING),
        value_name: "SECS",
        help: "Seconds to wait for another deploy's lock",
        default: "120",
        ..key("lock_wait_secs", lock_wait_secs)
    },
    Key {
        env: &["CUTOVER_LOCK_TTL"],
        help: "Seconds the deploy lock lives unless renewed",
        default: "30",
        ..key("lock_ttl_secs", lock_ttl_secs)
    },
    Key {
        env: &["CUTOVER_HISTORY_LIMIT"],
        help: "Activation events kept in the history",
        default: "100",
        ..key("history_limit", history_limit)
    },
    Key {
        flag: Some("by"),
        env: &[
            "CUTOVER_DEPLOYED_BY",
            "CIRCLE_USERNAME",
            "GITHUB_ACTOR",
            "GITLAB_USER_LOGIN",
        ],
        scope: Scope::Only(ACTING),
        value_name: "NAME",
        help: "Who deploys",
        default: "CI user, else the OS user",
        ..key("deployed_by", deployed_by)
    },
    Key {
        flag: Some("git-sha"),
        env: &[
            "CUTOVER_GIT_SHA",
            "CIRCLE_SHA1",
            "GITHUB_SHA",
            "CI_COMMIT_SHA",
        ],
        scope: Scope::Only(&["deploy"]),
        value_name: "SHA",
        help: "Git commit of the build",
        default: "from CI",
        ..key("git_sha", git_sha)
    },
    Key {
        flag: Some("git-commit-time"),
        env: &["CUTOVER_GIT_COMMIT_TIME"],
        scope: Scope::Only(&["deploy"]),
        value_name: "TIME",
        help: "When the build's commit was made (RFC 3339, or seconds since the epoch), for the stale-deploy guard",
        default: "git log of git_sha in the working directory, else GitHub's event payload",
        ..key("git_commit_time", git_commit_time)
    },
    Key {
        flag: Some("git-branch"),
        env: &[
            "CUTOVER_GIT_BRANCH",
            "CIRCLE_BRANCH",
            "GITHUB_REF_NAME",
            "CI_COMMIT_REF_NAME",
        ],
        scope: Scope::Only(&["deploy"]),
        value_name: "BRANCH",
        help: "Git branch of the build",
        default: "from CI",
        ..key("git_branch", git_branch)
    },
    Key {
        flag: Some("build-url"),
        env: &["CUTOVER_BUILD_URL", "CIRCLE_BUILD_URL", "CI_JOB_URL"],
        scope: Scope::Only(&["deploy"]),
        value_name: "URL",
        help: "URL of the CI build",
        default: "from CI",
        ..key("build_url", build_url)
    },
];

/// A field of a `[[notify]]` entry (a webhook; docs/output.md,
/// "Notifications"): an array of tables, so no flag or variable of its own.
pub struct Field {
    pub name: &'static str,
    pub help: &'static str,
    /// The default, as documented.
    pub default: &'static str,
}

/// The fields of `[[notify]]`, in the table's order.
pub const NOTIFY_FIELDS: &[Field] = &[
    Field {
        name: "url",
        help: "A webhook notified after each switching command (docs/output.md, \"Notifications\"); a secret: shown as https://HOST/***, never whole. `[[notify]]` may repeat, and an `[[environments.NAME.notify]]` list replaces the top level's",
        default: "required, or url_env",
    },
    Field {
        name: "url_env",
        help: "The environment variable holding the webhook URL instead (e.g. SLACK_WEBHOOK_URL, a CI secret); while it is unset that webhook is skipped with a warning",
        default: "none",
    },
    Field {
        name: "events",
        help: "Which events it is sent: activated, rolled_back, pinned, unpinned, promoted, failed, converged, not_converged, rollout_started, rollout_changed, rollout_aborted",
        default: "all",
    },
    Field {
        name: "format",
        help: "json (the documented payload) or slack (`{\"text\": \"...\"}`, one readable line)",
        default: "json",
    },
];

/// The configuration table of docs/configuration.md, made from [`KEYS`]
/// and [`NOTIFY_FIELDS`] (a test checks that doc holds exactly this).
pub fn markdown() -> String {
    let mut t = String::from(
        "| key (`cutover.toml`) | flag | environment | default | what |\n|---|---|---|---|---|\n",
    );
    for k in KEYS {
        let flag = match (k.flag, k.scope) {
            (None, _) => String::new(),
            (Some(f), Scope::Global) => format!("`--{f}`"),
            (Some(f), Scope::Only(cmds)) => format!("`--{f}` ({})", cmds.join(", ")),
        };
        let env: Vec<String> = k.env.iter().map(|e| format!("`{e}`")).collect();
        t.push_str(&format!(
            "| `{}` | {flag} | {} | {} | {} |\n",
            k.name,
            env.join(", "),
            k.default,
            k.help
        ));
    }
    for f in NOTIFY_FIELDS {
        t.push_str(&format!(
            "| `[[notify]]` `{}` |  |  | {} | {} |\n",
            f.name, f.default, f.help
        ));
    }
    t
}

/// The key named `name` (or one of its aliases).
pub fn find(name: &str) -> Option<&'static Key> {
    KEYS.iter()
        .find(|k| k.name == name || k.aliases.contains(&name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_flags_and_variables_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for k in KEYS {
            assert!(seen.insert(k.name), "{}", k.name);
            for a in k.aliases {
                assert!(seen.insert(a), "alias {a}");
            }
            if let Some(f) = k.flag {
                assert!(seen.insert(f) || f == k.name, "flag {f}");
            }
            for e in k.env {
                assert!(seen.insert(e), "variable {e}");
            }
            assert!(!k.help.is_empty(), "{} has no help", k.name);
            assert!(
                !k.default.is_empty(),
                "{} has no documented default",
                k.name
            );
        }
    }

    #[test]
    fn the_notify_fields_name_every_event_and_format() {
        let events = NOTIFY_FIELDS.iter().find(|f| f.name == "events").unwrap();
        for k in crate::notify::Kind::ALL {
            assert!(events.help.contains(k.as_str()), "{}", k.as_str());
        }
        let format = NOTIFY_FIELDS.iter().find(|f| f.name == "format").unwrap();
        for f in [crate::notify::Format::Json, crate::notify::Format::Slack] {
            assert!(format.help.contains(f.as_str()));
        }
        assert_eq!(format.default, crate::notify::Format::default().as_str());
        // A pipe would break the generated Markdown table.
        assert!(NOTIFY_FIELDS.iter().all(|f| !f.help.contains('|')));
    }
}
