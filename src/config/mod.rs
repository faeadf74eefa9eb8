//! Layered configuration: flags > `CUTOVER_*` variables > `cutover.toml`
//! (its `[environments.NAME]`, then its top level) > variables other tools
//! also set (`REDIS_URL`) > defaults.
//!
//! Every value remembers where it came from ([`Origin`]), so a bad value is
//! reported as "`concurrency = "abc"` (from CUTOVER_CONCURRENCY): expected
//! ...". Every problem is reported at once, not only the first. Loading is a
//! pure function of its three inputs. An empty value counts as not set,
//! whatever its source.

mod file;
pub mod keys;
mod resolve;
pub mod sentinel;
#[cfg(test)]
mod tests;
mod values;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

pub use file::FileSource;
pub use resolve::{is_generic, load, load_pair, ENV_FLAG};

use crate::build::headers::{HeaderRule, MutableRule};
use crate::contract;
use crate::error::Failure;

/// Where a configuration value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Flag(&'static str),
    Env(String),
    /// A line of the file; `section` is `environments.NAME` inside one.
    File {
        path: PathBuf,
        line: usize,
        section: Option<String>,
    },
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Flag(name) => write!(f, "flag --{name}"),
            Origin::Env(var) => write!(f, "environment variable {var}"),
            Origin::File {
                path,
                line,
                section: None,
            } => write!(f, "{}:{line}", path.display()),
            Origin::File {
                path,
                line,
                section: Some(s),
            } => write!(f, "{}:{line} [{s}]", path.display()),
            Origin::Default => write!(f, "default"),
        }
    }
}

/// A raw value and where it came from.
#[derive(Debug, Clone)]
pub struct Raw {
    pub value: String,
    pub origin: Origin,
}

/// Values given on the command line, by key name (see [`KEYS`]).
pub type FlagValues = BTreeMap<&'static str, String>;

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub app: Option<String>,
    pub bucket: Option<String>,
    /// Public prefix inside the bucket, without leading or trailing slash.
    pub prefix: String,
    /// CDN base URL without trailing slash.
    pub cdn_url: Option<String>,
    /// The app's origin, for doctor's CORS check.
    pub app_origin: Option<String>,
    /// The first of `redis_urls`.
    pub redis_url: String,
    /// Every Redis target, in the order given (one, unless pods).
    pub redis_urls: Vec<String>,
    /// Connect to a Redis Cluster (all of an app's keys share one slot).
    pub redis_cluster: bool,
    /// PEM CA certificates trusted for `rediss://` instead of the system's.
    pub redis_ca_file: Option<PathBuf>,
    /// PEM client certificate and key, for Redis servers that ask for one (mTLS).
    pub redis_tls_cert_file: Option<PathBuf>,
    pub redis_tls_key_file: Option<PathBuf>,
    /// Skip verifying the Redis server's certificate (warned about on every run).
    pub redis_tls_insecure: bool,
    /// The Sentinels' own password (a `redis+sentinel://` URL's credentials
    /// are the master's).
    pub redis_sentinel_password: Option<String>,
    pub redis_timeout_secs: u64,
    pub s3_endpoint: Option<String>,
    pub s3_path_style: Option<bool>,
    pub s3_timeout_secs: u64,
    /// IAM role to assume with CircleCI's OIDC token.
    pub role_arn: Option<String>,
    meta_prefix: Option<String>,
    pub manifest: String,
    /// None: `auto`.
    pub manifest_format: Option<crate::build::manifest::Format>,
    pub cache_control: String,
    pub concurrency: usize,
    /// HEADs in flight at once when checking objects (`check_concurrency`).
    pub check_concurrency: usize,
    pub multipart_threshold: u64,
    pub lock_wait_secs: u64,
    /// `--wait-converged`: seconds to wait after a switch for every live
    /// reader process to report the release (0: not at all).
    pub wait_converged_secs: u64,
    /// Prune keeps releases retired less than this long ago (skew protection).
    pub skew_max_age_secs: u64,
    pub lock_ttl_secs: u64,
    pub history_limit: usize,
    pub deployed_by: Option<String>,
    pub git_sha: Option<String>,
    /// When `git_sha` was committed (RFC 3339, UTC); else read from git at deploy.
    pub git_commit_time: Option<String>,
    pub git_branch: Option<String>,
    pub build_url: Option<String>,
    pub header_rules: Vec<HeaderRule>,
    /// Files and manifest entries left out of the upload and the release.
    pub exclude: crate::build::Exclude,
    /// `[[mutable]]`: files that may change under the same name.
    pub mutable: Vec<MutableRule>,
    /// CloudFront distribution to invalidate changed mutable files on.
    pub cloudfront_distribution_id: Option<String>,
    /// The key that signs releases (`signing_key`); None: unsigned.
    pub signing_key: Option<crate::signing::SigningKey>,
    /// Refuse to make an unsigned release live (`require_signature`).
    pub require_signature: bool,
    /// `[[notify]]`: the webhooks told about switches and failures.
    pub notify: Vec<crate::notify::Sink>,
    /// The `[environments.NAME]` in use (`--env`, `CUTOVER_ENV`).
    pub environment: Option<String>,
    /// Settings the file hides from a variable other tools also set
    /// (`REDIS_URL`), one line each, values masked: `config` shows them, and
    /// every command at `-v`.
    pub notes: Vec<String>,
    /// Where each set key came from.
    pub origins: BTreeMap<&'static str, Origin>,
    /// The raw value of each set key, as given (for `cutover config`).
    pub values: BTreeMap<&'static str, String>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            app: None,
            bucket: None,
            prefix: "packs".into(),
            cdn_url: None,
            app_origin: None,
            redis_url: "redis://127.0.0.1:6379".into(),
            redis_urls: vec!["redis://127.0.0.1:6379".into()],
            redis_cluster: false,
            redis_ca_file: None,
            redis_tls_cert_file: None,
            redis_tls_key_file: None,
            redis_tls_insecure: false,
            redis_sentinel_password: None,
            redis_timeout_secs: 5,
            s3_endpoint: None,
            s3_path_style: None,
            s3_timeout_secs: 10,
            role_arn: None,
            meta_prefix: None,
            manifest: "manifest.json".into(),
            manifest_format: None,
            cache_control: "public, max-age=60".into(),
            concurrency: 32,
            check_concurrency: 256,
            multipart_threshold: 64 * 1024 * 1024,
            lock_wait_secs: 120,
            wait_converged_secs: 0,
            skew_max_age_secs: 86_400,
            lock_ttl_secs: 30,
            history_limit: 100,
            deployed_by: None,
            git_sha: None,
            git_commit_time: None,
            git_branch: None,
            build_url: None,
            header_rules: Vec::new(),
            exclude: Default::default(),
            mutable: Vec::new(),
            cloudfront_distribution_id: None,
            signing_key: None,
            require_signature: false,
            notify: Vec::new(),
            environment: None,
            notes: Vec::new(),
            origins: BTreeMap::new(),
            values: BTreeMap::new(),
        }
    }
}

fn missing(name: &str) -> anyhow::Error {
    let key = keys::find(name).expect("a known key");
    let flag = key
        .flag
        .map(|f| format!("pass --{f}, "))
        .unwrap_or_default();
    Failure::input(format!(
        "no {name} configured: {flag}set {}, or add `{name} = \"...\"` to cutover.toml",
        key.env[0]
    ))
}

impl Config {
    pub fn app(&self) -> anyhow::Result<&str> {
        self.app.as_deref().ok_or_else(|| missing("app"))
    }
    pub fn bucket(&self) -> anyhow::Result<&str> {
        self.bucket.as_deref().ok_or_else(|| missing("bucket"))
    }
    pub fn cdn_url(&self) -> anyhow::Result<&str> {
        self.cdn_url.as_deref().ok_or_else(|| missing("cdn_url"))
    }
    /// Where release records live in S3: `_cutover/APP/` unless configured.
    pub fn meta_prefix(&self) -> anyhow::Result<String> {
        match &self.meta_prefix {
            Some(p) => Ok(p.clone()),
            None => Ok(format!("_cutover/{}/", self.app()?)),
        }
    }
    /// The S3 key of a file inside the build.
    pub fn object_key(&self, path: &str) -> String {
        contract::object_key(&self.prefix, path)
    }
    /// The listing prefix of the public files ("prefix/").
    pub fn list_prefix(&self) -> String {
        contract::list_prefix(&self.prefix)
    }
    /// Public URL of a file inside the build, percent-encoded so that it
    /// resolves to the object's key.
    pub fn public_url(&self, path: &str) -> anyhow::Result<String> {
        Ok(format!(
            "{}/{}",
            self.cdn_url()?,
            contract::url_path(&self.object_key(path))
        ))
    }
    /// The Redis URL with any password replaced by `***`, for messages.
    pub fn redis_url_masked(&self) -> String {
        mask_url(&self.redis_url)
    }
    /// The same settings, talking to one Redis target of several.
    pub fn for_redis(&self, url: &str) -> Config {
        Config {
            redis_url: url.to_string(),
            redis_urls: vec![url.to_string()],
            ..self.clone()
        }
    }
    /// Bound on each request to the CDN (`s3_timeout_secs` × 3).
    pub fn cdn_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.s3_timeout_secs * 3)
    }

    /// `require_signature` without a key: exit 2 naming `signing_key`.
    pub fn check_can_sign(&self) -> anyhow::Result<()> {
        if self.require_signature && self.signing_key.is_none() {
            let from = self
                .origins
                .get("require_signature")
                .map(|o| format!(" (from {o})"))
                .unwrap_or_default();
            return Err(Failure::input(format!(
                "require_signature is set{from} but no signing_key is configured: set CUTOVER_SIGNING_KEY \
                 (the PEM, or the path of its file) or signing_key in cutover.toml; nothing was uploaded or switched"
            )));
        }
        Ok(())
    }

    /// The values of this configuration that must never be printed: each
    /// Redis URL's password (or lone user-info, which redis-rs reads as
    /// one), raw and decoded, the Sentinels' password, and every webhook
    /// URL but its scheme and host (see
    /// [`crate::error::register_secrets`]).
    pub fn secrets(&self) -> Vec<String> {
        let mut out = Vec::new();
        for u in &self.redis_urls {
            if sentinel::SentinelUrl::is_sentinel(u) {
                if let Ok(s) = sentinel::SentinelUrl::parse(u) {
                    out.extend(s.password);
                }
                // Raw user-info too, before any decoding.
                if let Some(info) = u
                    .split_once("://")
                    .and_then(|(_, rest)| rest.split('/').next())
                    .and_then(|auth| auth.rsplit_once('@'))
                    .map(|(info, _)| info)
                {
                    out.push(info.rsplit(':').next().unwrap_or(info).to_string());
                }
                continue;
            }
            if let Ok(parsed) = url::Url::parse(u) {
                let secret = parsed.password().map(str::to_string).or_else(|| {
                    (!parsed.username().is_empty()).then(|| parsed.username().to_string())
                });
                if let Some(raw) = secret {
                    if let Ok(decoded) = percent_encoding::percent_decode_str(&raw).decode_utf8() {
                        out.push(decoded.into_owned());
                    }
                    out.push(raw);
                }
            }
        }
        out.extend(self.redis_sentinel_password.clone());
        for sink in &self.notify {
            out.extend(
                sink.url
                    .as_deref()
                    .map(crate::notify::secrets)
                    .unwrap_or_default(),
            );
        }
        out
    }

    /// Who is doing this, for records and history.
    pub fn actor(&self) -> String {
        self.deployed_by.clone().unwrap_or_else(|| "unknown".into())
    }
}

/// A value as it may be shown: passwords in URLs replaced by `***`, a
/// PEM given as the value itself (a private key) never shown.
pub fn shown(key: &keys::Key, value: &str) -> String {
    if values::is_inline_pem(value) {
        return "<PEM given inline, not shown>".into();
    }
    // A signing key that is not a file may be the key itself in another
    // form (base64 without its PEM lines): never quoted.
    if key.name == "signing_key" && !std::path::Path::new(value).is_file() {
        return "<not a readable file; not shown>".into();
    }
    let has_password = value
        .split_whitespace()
        .any(|v| url::Url::parse(v).is_ok_and(|u| u.password().is_some()));
    if key.secret || has_password {
        value
            .split_whitespace()
            .map(mask_url)
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        value.to_string()
    }
}

/// Replace the password of a URL (`redis://user:secret@host`) with `***`.
pub fn mask_url(raw: &str) -> String {
    if sentinel::SentinelUrl::is_sentinel(raw) {
        return match sentinel::SentinelUrl::parse(raw) {
            Ok(u) => u.masked(),
            Err(_) => "<unparseable URL>".to_string(),
        };
    }
    match url::Url::parse(raw) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(mut u) if !u.username().is_empty() && u.scheme().starts_with("redis") => {
            // `redis://secret@host` (no colon) carries the secret as the username.
            let _ = u.set_username("***");
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "<unparseable URL>".to_string(),
    }
}

/// The S3 endpoint the AWS variables set when `s3_endpoint` is not:
/// `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL` (empty counts as unset),
/// with the variable that set it.
pub fn aws_endpoint(env: &dyn Fn(&str) -> Option<String>) -> Option<(&'static str, String)> {
    ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
        .into_iter()
        .find_map(|var| env(var).filter(|v| !v.trim().is_empty()).map(|v| (var, v)))
}

/// Where a Redis URL points, as a switching command names it: `host:port/db`
/// (`rediss://` adds ` (TLS)`; a Sentinel URL: `MASTER via host:port,.../db`).
/// Never the credentials.
pub fn redis_target(raw: &str) -> String {
    let host_port = |h: &str, p: u16| {
        if h.contains(':') && !h.starts_with('[') {
            format!("[{h}]:{p}")
        } else {
            format!("{h}:{p}")
        }
    };
    if sentinel::SentinelUrl::is_sentinel(raw) {
        return match sentinel::SentinelUrl::parse(raw) {
            Ok(u) => {
                let hosts: Vec<String> =
                    u.sentinels.iter().map(|(h, p)| host_port(h, *p)).collect();
                format!("{} via {}/{}", u.master, hosts.join(","), u.db)
            }
            Err(_) => "<unparseable URL>".into(),
        };
    }
    match url::Url::parse(raw) {
        Ok(u) if u.scheme().starts_with("redis+unix") || u.scheme() == "unix" => {
            u.path().to_string()
        }
        Ok(u) => {
            let db = u
                .path()
                .trim_start_matches('/')
                .split('/')
                .next()
                .filter(|d| !d.is_empty())
                .unwrap_or("0");
            let tls = if u.scheme().eq_ignore_ascii_case("rediss") {
                " (TLS)"
            } else {
                ""
            };
            format!(
                "{}/{db}{tls}",
                host_port(u.host_str().unwrap_or(""), u.port().unwrap_or(6379))
            )
        }
        Err(_) => "<unparseable URL>".into(),
    }
}
