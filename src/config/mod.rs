//! Layered configuration: flags > environment > `cutover.toml` > defaults.
//!
//! Every value remembers where it came from ([`Origin`]), so a bad value is
//! reported as "`concurrency = "abc"` (from CUTOVER_CONCURRENCY): expected
//! ...". Every problem is reported at once, not only the first. Loading is a
//! pure function of its three inputs. An empty value counts as not set,
//! whatever its source.

mod file;
pub mod keys;
pub mod sentinel;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

pub use file::FileSource;

use crate::build::headers::{HeaderRule, MutableRule};
use crate::contract;
use crate::error::Failure;
use keys::KEYS;

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
    pub multipart_threshold: u64,
    pub lock_wait_secs: u64,
    pub lock_ttl_secs: u64,
    pub history_limit: usize,
    pub deployed_by: Option<String>,
    pub git_sha: Option<String>,
    pub git_branch: Option<String>,
    pub build_url: Option<String>,
    pub header_rules: Vec<HeaderRule>,
    /// Files and manifest entries left out of the upload and the release.
    pub exclude: crate::build::Exclude,
    /// `[[mutable]]`: files that may change under the same name.
    pub mutable: Vec<MutableRule>,
    /// CloudFront distribution to invalidate changed mutable files on.
    pub cloudfront_distribution_id: Option<String>,
    /// The `[environments.NAME]` in use (`--env`, `CUTOVER_ENV`).
    pub environment: Option<String>,
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
            multipart_threshold: 64 * 1024 * 1024,
            lock_wait_secs: 120,
            lock_ttl_secs: 30,
            history_limit: 100,
            deployed_by: None,
            git_sha: None,
            git_branch: None,
            build_url: None,
            header_rules: Vec::new(),
            exclude: Default::default(),
            mutable: Vec::new(),
            cloudfront_distribution_id: None,
            environment: None,
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

    /// Who is doing this, for records and history.
    pub fn actor(&self) -> String {
        self.deployed_by.clone().unwrap_or_else(|| "unknown".into())
    }
}

/// A value as it may be shown: passwords in URLs replaced by `***`.
pub fn shown(key: &keys::Key, value: &str) -> String {
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

/// Build the configuration from flags, an environment lookup and an optional file.
pub fn load(
    flags: &FlagValues,
    env: &dyn Fn(&str) -> Option<String>,
    file: Option<&FileSource>,
) -> anyhow::Result<Config> {
    let layer = file.map(file::parse).unwrap_or_default();
    let selected = flags
        .get(ENV_FLAG)
        .map(|n| (n.clone(), Origin::Flag("env")))
        .or_else(|| {
            env("CUTOVER_ENV")
                .filter(|v| !v.trim().is_empty())
                .map(|n| (n, Origin::Env("CUTOVER_ENV".into())))
        });
    resolve(
        flags,
        env,
        &layer,
        file,
        selected.as_ref().map(|(n, o)| (n.trim(), o)),
    )
}

/// The two sides of `promote`, each from its own `[environments.NAME]` over
/// the file's top level. Flags and environment variables still apply to
/// both, but not to a key either environment sets: they could not mean
/// both sides, so they are refused, naming them.
pub fn load_pair(
    flags: &FlagValues,
    env: &dyn Fn(&str) -> Option<String>,
    file: Option<&FileSource>,
    from: &str,
    to: &str,
) -> anyhow::Result<(Config, Config)> {
    let layer = file.map(file::parse).unwrap_or_default();
    let (from_origin, to_origin) = (Origin::Flag("from"), Origin::Flag("to"));
    let mut problems = Vec::new();
    let mut per_environment = std::collections::BTreeSet::new();
    for (name, origin) in [(from, &from_origin), (to, &to_origin)] {
        match environment(&layer, file, Some((name, origin))) {
            Ok(Some(raws)) => per_environment.extend(raws.keys().copied()),
            Ok(None) => {}
            Err(p) => problems.push(p),
        }
    }
    for key in KEYS.iter().filter(|k| per_environment.contains(k.name)) {
        let given = flags
            .get(key.name)
            .map(|_| format!("--{}", key.flag.unwrap_or(key.name)))
            .or_else(|| {
                key.env
                    .iter()
                    .find(|v| env(v).is_some_and(|x| !x.trim().is_empty()))
                    .map(|v| v.to_string())
            });
        if let Some(given) = given {
            problems.push(format!(
                "{given} sets {}, which [environments.{from}] or [environments.{to}] sets for its side; \
                 promote cannot apply it to both: unset {given}",
                key.name
            ));
        }
    }
    if !problems.is_empty() {
        return Err(Failure::input(problems.join("; ")));
    }
    let source = resolve(flags, env, &layer, file, Some((from, &from_origin)))?;
    let target = resolve(flags, env, &layer, file, Some((to, &to_origin)))?;
    Ok((source, target))
}

/// The name under which [`FlagValues`] carries `--env NAME`.
pub const ENV_FLAG: &str = "env";

/// The `[environments.NAME]` layer to use, or a problem naming the choices.
fn environment<'a>(
    layer: &'a file::FileLayer,
    file: Option<&FileSource>,
    selected: Option<(&str, &Origin)>,
) -> Result<Option<&'a file::Raws>, String> {
    let Some((name, origin)) = selected else {
        return Ok(None);
    };
    if let Some(raws) = layer.environments.get(name) {
        return Ok(Some(raws));
    }
    let path = file
        .map(|f| f.path.display().to_string())
        .unwrap_or_else(|| "cutover.toml".into());
    let known: Vec<&str> = layer.environments.keys().map(String::as_str).collect();
    Err(if known.is_empty() {
        format!(
            "environment {name:?} (from {origin}) is not defined: {path} has no [environments.{name}]; \
             add one, or drop --env / CUTOVER_ENV"
        )
    } else {
        format!(
            "environment {name:?} (from {origin}) is not defined in {path}; defined: {}",
            known.join(", ")
        )
    })
}

/// Flags > environment variables > the selected `[environments.NAME]` >
/// the file's top level > defaults.
fn resolve(
    flags: &FlagValues,
    env: &dyn Fn(&str) -> Option<String>,
    layer: &file::FileLayer,
    file: Option<&FileSource>,
    selected: Option<(&str, &Origin)>,
) -> anyhow::Result<Config> {
    let mut problems = layer.problems.clone();
    let mut raws = layer.raws.clone();
    match environment(layer, file, selected) {
        Ok(Some(section)) => raws.extend(section.iter().map(|(k, v)| (*k, v.clone()))),
        Ok(None) => {}
        Err(p) => problems.push(p),
    }
    for key in KEYS {
        if let Some(value) = flags.get(key.name) {
            let origin = Origin::Flag(key.flag.unwrap_or(key.name));
            raws.insert(
                key.name,
                Raw {
                    value: value.clone(),
                    origin,
                },
            );
            continue;
        }
        let from_env = key.env.iter().find_map(|var| {
            env(var).filter(|v| !v.trim().is_empty()).map(|value| Raw {
                value,
                origin: Origin::Env(var.to_string()),
            })
        });
        if let Some(raw) = from_env {
            raws.insert(key.name, raw);
        }
    }
    ci_defaults(&mut raws, env);

    let mut config = Config {
        header_rules: layer.header_rules.clone(),
        mutable: layer.mutable.clone(),
        environment: selected.map(|(n, _)| n.to_string()),
        ..Config::default()
    };
    for key in KEYS {
        let Some(raw) = raws.get(key.name) else {
            continue;
        };
        let value = raw.value.trim();
        if value.is_empty() {
            continue;
        }
        match (key.apply)(value, &mut config) {
            Ok(()) => {
                config.origins.insert(key.name, raw.origin.clone());
                config.values.insert(key.name, value.to_string());
            }
            Err(expected) => {
                problems.push(format!(
                    "invalid {} = {:?} (from {}): expected {expected}",
                    key.name,
                    shown(key, value),
                    raw.origin
                ));
            }
        }
    }
    problems.extend(cross_checks(&config));
    match problems.len() {
        0 => Ok(config),
        1 => Err(Failure::input(problems.remove(0))),
        n => Err(Failure::input(format!(
            "{n} configuration problems: {}",
            problems.join("; ")
        ))),
    }
}

/// Values CI systems provide without one variable for them, and the OS user.
fn ci_defaults(raws: &mut BTreeMap<&'static str, Raw>, env: &dyn Fn(&str) -> Option<String>) {
    // GitHub Actions has no single build-URL variable; compose it.
    if !raws.contains_key("build_url") {
        if let (Some(server), Some(repo), Some(run)) = (
            env("GITHUB_SERVER_URL"),
            env("GITHUB_REPOSITORY"),
            env("GITHUB_RUN_ID"),
        ) {
            raws.insert(
                "build_url",
                Raw {
                    value: format!("{server}/{repo}/actions/runs/{run}"),
                    origin: Origin::Env("GITHUB_RUN_ID".into()),
                },
            );
        }
    }
    if !raws.contains_key("deployed_by") {
        let user = env("USER")
            .filter(|u| !u.is_empty())
            .or_else(|| whoami::username().ok());
        if let Some(user) = user {
            raws.insert(
                "deployed_by",
                Raw {
                    value: user,
                    origin: Origin::Default,
                },
            );
        }
    }
}

/// Rules between keys.
fn cross_checks(config: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    if let (Ok(meta), public) = (config.meta_prefix(), config.list_prefix()) {
        if meta.starts_with(&public) || public.starts_with(&meta) {
            let origin = config
                .origins
                .get("meta_prefix")
                .or_else(|| config.origins.get("prefix"))
                .map(|o| format!(" (from {o})"))
                .unwrap_or_default();
            problems.push(format!(
                "the release records prefix `{meta}` and the public prefix `{public}` overlap{origin}: \
                 records would be served from the CDN and listed as build files; choose prefixes that do not contain each other"
            ));
        }
    }
    problems.extend(redis_checks(config));
    problems
}

/// Rules between the Redis keys: TLS options need a `rediss://` URL, a
/// client certificate needs its key, Sentinel is not a cluster.
fn redis_checks(config: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    let from = |key: &str| {
        config
            .origins
            .get(key)
            .map(|o| format!(" (from {o})"))
            .unwrap_or_default()
    };
    let url = config.redis_url.as_str();
    let sentinel = sentinel::SentinelUrl::is_sentinel(url);
    let tls = url
        .get(..9)
        .is_some_and(|s| s.eq_ignore_ascii_case("rediss://"));
    let tls_keys = [
        ("redis_ca_file", config.redis_ca_file.is_some()),
        ("redis_tls_cert_file", config.redis_tls_cert_file.is_some()),
        ("redis_tls_key_file", config.redis_tls_key_file.is_some()),
        ("redis_tls_insecure", config.redis_tls_insecure),
    ];
    for (key, set) in tls_keys {
        if set && !tls {
            let fix = if sentinel {
                "cutover does not connect to Sentinel over TLS (README, \"Redis topologies\")"
                    .to_string()
            } else {
                format!(
                    "use a rediss:// URL in redis_url (now {}), or remove {key}",
                    mask_url(url)
                )
            };
            problems.push(format!(
                "{key}{} applies to TLS connections only: {fix}",
                from(key)
            ));
        }
    }
    match (&config.redis_tls_cert_file, &config.redis_tls_key_file) {
        (Some(_), None) => problems.push(format!(
            "redis_tls_cert_file{} needs redis_tls_key_file too: the private key of that certificate",
            from("redis_tls_cert_file")
        )),
        (None, Some(_)) => problems.push(format!(
            "redis_tls_key_file{} needs redis_tls_cert_file too: the client certificate of that key",
            from("redis_tls_key_file")
        )),
        _ => {}
    }
    if sentinel && config.redis_cluster {
        problems.push(format!(
            "redis_cluster{} and a redis+sentinel:// URL do not go together: Sentinel watches a master and its replicas, not a Redis Cluster; turn redis_cluster off, or give a cluster node's redis:// URL",
            from("redis_cluster")
        ));
    }
    if config.redis_sentinel_password.is_some() && !sentinel {
        problems.push(format!(
            "redis_sentinel_password{} is for a redis+sentinel:// redis_url (now {}): remove it, or give the Sentinels' URL",
            from("redis_sentinel_password"),
            mask_url(url)
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::exit_code;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k: &str| map.get(k).cloned()
    }

    fn file(text: &str) -> FileSource {
        FileSource {
            path: PathBuf::from("cutover.toml"),
            text: text.to_string(),
        }
    }

    fn error(flags: &FlagValues, env: &[(&str, &str)], f: Option<&str>) -> String {
        let f = f.map(file);
        let err = load(flags, &env_of(env), f.as_ref()).unwrap_err();
        assert_eq!(exit_code(&err), 2);
        err.to_string()
    }

    #[test]
    fn flags_beat_env_beat_file_beat_defaults() {
        let f = file("app = \"from-file\"\nbucket = \"file-bucket\"\nprefix = \"file\"\n");
        let env = env_of(&[("CUTOVER_BUCKET", "env-bucket"), ("CUTOVER_PREFIX", "env")]);
        let mut flags = FlagValues::new();
        flags.insert("prefix", "flag/".into());
        let c = load(&flags, &env, Some(&f)).unwrap();
        assert_eq!(c.app.as_deref(), Some("from-file"));
        assert_eq!(c.bucket.as_deref(), Some("env-bucket"));
        assert_eq!(c.prefix, "flag");
        assert_eq!(c.concurrency, 32);
        assert_eq!(c.redis_url, "redis://127.0.0.1:6379");
        assert_eq!(c.origins["prefix"], Origin::Flag("prefix"));
        assert!(matches!(c.origins["app"], Origin::File { line: 1, .. }));
    }

    #[test]
    fn every_key_is_reachable_from_flag_env_and_file() {
        // redis_cluster was once missing from the table and silently ignored.
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("x.pem");
        std::fs::write(&pem, "-----BEGIN CERTIFICATE-----\n").unwrap();
        let pem = pem.to_str().unwrap();
        for key in KEYS {
            // Settings some keys need beside them (cross_checks).
            let companions: Vec<(&str, &str)> = match key.name {
                "redis_ca_file" | "redis_tls_insecure" => vec![("REDIS_URL", "rediss://h:1")],
                "redis_tls_cert_file" => vec![
                    ("REDIS_URL", "rediss://h:1"),
                    ("CUTOVER_REDIS_TLS_KEY_FILE", pem),
                ],
                "redis_tls_key_file" => vec![
                    ("REDIS_URL", "rediss://h:1"),
                    ("CUTOVER_REDIS_TLS_CERT_FILE", pem),
                ],
                "redis_sentinel_password" => vec![("REDIS_URL", "redis+sentinel://h:1/m")],
                _ => vec![],
            };
            let sample = match key.name {
                "app" => "shop",
                "bucket" => "b-1",
                "prefix" | "meta_prefix" => "somewhere",
                "cdn_url" | "s3_endpoint" | "build_url" | "app_origin" => "https://x.example",
                "cloudfront_distribution_id" => "E2ABCDEF",
                "role_arn" => "arn:aws:iam::123456789012:role/deploy",
                "redis_url" => "redis://h:1",
                "redis_cluster" | "s3_path_style" | "redis_tls_insecure" => "true",
                "redis_ca_file" | "redis_tls_cert_file" | "redis_tls_key_file" => pem,
                "manifest" => "m.json",
                "manifest_format" => "vite",
                "cache_control" | "deployed_by" | "git_sha" | "git_branch" => "v",
                _ => "7",
            };
            let text = format!("{} = \"{sample}\"\n", key.name);
            let c = load(&FlagValues::new(), &env_of(&companions), Some(&file(&text)))
                .unwrap_or_else(|e| panic!("{}: {e}", key.name));
            assert!(c.origins.contains_key(key.name), "file: {}", key.name);
            let mut env = companions.clone();
            env.push((key.env[0], sample));
            let c = load(&FlagValues::new(), &env_of(&env), None).unwrap();
            assert!(c.origins.contains_key(key.name), "env: {}", key.name);
            if let Some(flag) = key.flag {
                let mut flags = FlagValues::new();
                flags.insert(key.name, sample.to_string());
                let c = load(&flags, &env_of(&companions), None).unwrap();
                assert_eq!(c.origins[key.name], Origin::Flag(flag));
            }
        }
        let c = load(
            &FlagValues::new(),
            &env_of(&[("CUTOVER_REDIS_CLUSTER", "true")]),
            None,
        )
        .unwrap();
        assert!(c.redis_cluster);
    }

    #[test]
    fn bad_values_name_key_origin_and_allowed() {
        let msg = error(&FlagValues::new(), &[("CUTOVER_CONCURRENCY", "lots")], None);
        assert!(
            msg.contains("concurrency")
                && msg.contains("CUTOVER_CONCURRENCY")
                && msg.contains("1 to 512"),
            "{msg}"
        );
        let msg = error(
            &FlagValues::new(),
            &[],
            Some("app = \"x\"\n\nbucket = \"Not_A_Bucket\"\n"),
        );
        assert!(
            msg.contains("cutover.toml:3") && msg.contains("bucket"),
            "{msg}"
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let msg = error(
            &FlagValues::new(),
            &[("CUTOVER_CONCURRENCY", "lots"), ("CUTOVER_LOCK_TTL", "1")],
            Some("bukket = \"b\"\n"),
        );
        assert!(msg.starts_with("3 configuration problems: "), "{msg}");
        for part in ["concurrency", "lock_ttl_secs", "bukket"] {
            assert!(msg.contains(part), "{part} missing from: {msg}");
        }
    }

    #[test]
    fn unknown_file_key_and_bad_toml_are_reported_with_line() {
        let msg = error(
            &FlagValues::new(),
            &[],
            Some("app = \"a\"\nbukket = \"b\"\n"),
        );
        assert!(
            msg.contains("unknown key `bukket`") && msg.contains("cutover.toml:2"),
            "{msg}"
        );
        let msg = error(&FlagValues::new(), &[], Some("app = \n"));
        assert!(
            msg.contains("not valid TOML") && msg.contains("cutover.toml:1"),
            "{msg}"
        );
    }

    #[test]
    fn redis_password_never_echoed() {
        let msg = error(
            &FlagValues::new(),
            &[("REDIS_URL", "http://:hunter2@host:6379")],
            None,
        );
        assert!(!msg.contains("hunter2"), "{msg}");
        assert_eq!(
            mask_url("redis://user:hunter2@h:6379/0"),
            "redis://user:***@h:6379/0"
        );
        assert_eq!(mask_url("redis://:hunter2@h:6379"), "redis://:***@h:6379");
        assert_eq!(mask_url("redis://hunter2@h:6379"), "redis://***@h:6379");
        assert_eq!(mask_url("redis://h:6379"), "redis://h:6379");
    }

    #[test]
    fn header_rules_and_keys() {
        let f = file(
            "app = \"shop\"\ncdn_url = \"https://cdn.example.com/\"\n[[headers]]\nglob = \"**/*.wasm\"\ncache_control = \"no-cache\"\n",
        );
        let c = load(&FlagValues::new(), &env_of(&[]), Some(&f)).unwrap();
        assert_eq!(c.header_rules.len(), 1);
        assert!(c.header_rules[0].matcher.is_match("js/a.wasm"));
        assert_eq!(c.meta_prefix().unwrap(), "_cutover/shop/");
        assert_eq!(c.object_key("js/a.js"), "packs/js/a.js");
        assert_eq!(
            c.public_url("js/a.js").unwrap(),
            "https://cdn.example.com/packs/js/a.js"
        );
        let msg = error(
            &FlagValues::new(),
            &[],
            Some("[[headers]]\nglob = \"*.js\"\n"),
        );
        assert!(msg.contains("sets nothing"), "{msg}");
    }

    #[test]
    fn exclude_is_a_list_in_every_layer_and_later_layers_replace_it() {
        let f = file("exclude = [\"**/*.map\", \"stats.json\"]\n");
        let c = load(&FlagValues::new(), &env_of(&[]), Some(&f)).unwrap();
        assert_eq!(c.exclude.globs, ["**/*.map", "stats.json"]);
        assert!(c.exclude.matches("js/a.js.map") && c.exclude.matches("a.js.map"));
        assert!(!c.exclude.matches("js/a.js"));
        // The environment replaces the file's list; a flag replaces both.
        let c = load(
            &FlagValues::new(),
            &env_of(&[("CUTOVER_EXCLUDE", " *.txt  *.md ")]),
            Some(&f),
        )
        .unwrap();
        assert_eq!(c.exclude.globs, ["*.txt", "*.md"]);
        let flags = FlagValues::from([("exclude", "*.LICENSE.txt".to_string())]);
        let c = load(&flags, &env_of(&[("CUTOVER_EXCLUDE", "*.md")]), Some(&f)).unwrap();
        assert_eq!(c.exclude.globs, ["*.LICENSE.txt"]);
        assert!(c.exclude.leaves_out("x.LICENSE.txt.gz"));

        let msg = error(&FlagValues::new(), &[], Some("exclude = [\"a b\"]\n"));
        assert!(
            msg.contains("without spaces") && msg.contains("cutover.toml:1"),
            "{msg}"
        );
        let msg = error(&FlagValues::new(), &[], Some("exclude = [1]\n"));
        assert!(msg.contains("array of strings"), "{msg}");
        let msg = error(&FlagValues::new(), &[("CUTOVER_EXCLUDE", "js/[")], None);
        assert!(
            msg.contains("exclude") && msg.contains("CUTOVER_EXCLUDE") && msg.contains("bad glob"),
            "{msg}"
        );
        // A list key only: other keys still refuse arrays.
        let msg = error(&FlagValues::new(), &[], Some("app = [\"a\"]\n"));
        assert!(msg.contains("expected a string"), "{msg}");
    }

    #[test]
    fn several_redis_targets_from_every_layer() {
        let f = file("redis_targets = [\"redis://a:1\", \"redis://:pw@b:2/1\"]\n");
        let c = load(&FlagValues::new(), &env_of(&[]), Some(&f)).unwrap();
        assert_eq!(c.redis_urls, ["redis://a:1", "redis://:pw@b:2/1"]);
        assert_eq!(c.redis_url, "redis://a:1");
        assert_eq!(c.for_redis("redis://b:2").redis_urls, ["redis://b:2"]);
        let c = load(
            &FlagValues::new(),
            &env_of(&[("REDIS_URL", "redis://x:1 redis://y:1")]),
            Some(&f),
        )
        .unwrap();
        assert_eq!(c.redis_urls, ["redis://x:1", "redis://y:1"]);
        // Default: one.
        let c = load(&FlagValues::new(), &env_of(&[]), None).unwrap();
        assert_eq!(c.redis_urls, ["redis://127.0.0.1:6379"]);

        let msg = error(
            &FlagValues::new(),
            &[],
            Some("redis_url = \"redis://a:1\"\nredis_targets = [\"redis://b:1\"]\n"),
        );
        assert!(
            msg.contains("redis_url is set twice") && msg.contains("redis_targets is another name"),
            "{msg}"
        );
        let msg = error(
            &FlagValues::new(),
            &[("REDIS_URL", "redis://:hunter2@a:1 redis://:hunter2@a:1")],
            None,
        );
        assert!(
            msg.contains("listed twice") && !msg.contains("hunter2"),
            "{msg}"
        );
        let msg = error(
            &FlagValues::new(),
            &[("REDIS_URL", "redis://:hunter2@a:1 http://:hunter2@b")],
            None,
        );
        assert!(
            msg.contains("redis://") && !msg.contains("hunter2"),
            "{msg}"
        );
    }

    #[test]
    fn environments_layer_between_the_top_level_and_the_environment() {
        let text = "app = \"shop\"\nbucket = \"shared\"\n\n[environments.staging]\ncdn_url = \"https://staging-cdn.example\"\nredis_targets = [\"redis://s:1\"]\n\n[environments.production]\ncdn_url = \"https://cdn.example\"\nbucket = \"prod-assets\"\n";
        let f = file(text);
        let flags = FlagValues::from([(ENV_FLAG, "production".to_string())]);
        let c = load(&flags, &env_of(&[]), Some(&f)).unwrap();
        assert_eq!(c.environment.as_deref(), Some("production"));
        assert_eq!(c.bucket.as_deref(), Some("prod-assets"));
        assert_eq!(c.cdn_url.as_deref(), Some("https://cdn.example"));
        assert_eq!(c.app.as_deref(), Some("shop"));
        assert_eq!(
            c.origins["bucket"].to_string(),
            "cutover.toml:10 [environments.production]"
        );
        // CUTOVER_ENV selects too; environment variables still win over it.
        let c = load(
            &FlagValues::new(),
            &env_of(&[
                ("CUTOVER_ENV", "staging"),
                ("CUTOVER_CDN_URL", "https://x.example"),
            ]),
            Some(&f),
        )
        .unwrap();
        assert_eq!(c.bucket.as_deref(), Some("shared"));
        assert_eq!(c.redis_urls, ["redis://s:1"]);
        assert_eq!(c.cdn_url.as_deref(), Some("https://x.example"));
        // No environment selected: the top level alone.
        let c = load(&FlagValues::new(), &env_of(&[]), Some(&f)).unwrap();
        assert_eq!(c.cdn_url, None);

        let flags = FlagValues::from([(ENV_FLAG, "prod".to_string())]);
        let msg = error(&flags, &[], Some(text));
        assert!(
            msg.contains("environment \"prod\" (from flag --env) is not defined")
                && msg.contains("defined: production, staging"),
            "{msg}"
        );
        let msg = error(&flags, &[], None);
        assert!(msg.contains("has no [environments.prod]"), "{msg}");
        // Errors name the environment and the line.
        let flags = FlagValues::from([(ENV_FLAG, "production".to_string())]);
        let msg = error(
            &flags,
            &[],
            Some("[environments.production]\ncdn_url = \"ftp://x\"\nbogus = 1\n"),
        );
        assert!(
            msg.contains(
                "invalid cdn_url = \"ftp://x\" (from cutover.toml:2 [environments.production])"
            ),
            "{msg}"
        );
        assert!(
            msg.contains("unknown key `bogus` in cutover.toml:3 [environments.production]"),
            "{msg}"
        );
        let msg = error(&flags, &[], Some("[environments]\nproduction = 1\n"));
        assert!(msg.contains("invalid environments"), "{msg}");
    }

    #[test]
    fn header_values_are_printable_ascii() {
        let msg = error(
            &FlagValues::new(),
            &[("CUTOVER_CACHE_CONTROL", "public\r\nX-Evil: 1")],
            None,
        );
        assert!(
            msg.contains("cache_control") && msg.contains("printable ASCII"),
            "{msg}"
        );
        let msg = error(
            &FlagValues::new(),
            &[],
            Some("[[headers]]\nglob = \"*.js\"\ncache_control = \"caché\"\n"),
        );
        assert!(msg.contains("printable ASCII"), "{msg}");
    }

    #[test]
    fn ci_metadata_from_circleci_and_github() {
        let env = env_of(&[
            ("CIRCLE_SHA1", "abc"),
            ("CIRCLE_BRANCH", "main"),
            ("USER", "root"),
        ]);
        let c = load(&FlagValues::new(), &env, None).unwrap();
        assert_eq!(
            (c.git_sha.as_deref(), c.git_branch.as_deref()),
            (Some("abc"), Some("main"))
        );
        assert_eq!(c.deployed_by.as_deref(), Some("root"));
        let env = env_of(&[
            ("GITHUB_SERVER_URL", "https://github.com"),
            ("GITHUB_REPOSITORY", "o/r"),
            ("GITHUB_RUN_ID", "7"),
            ("GITHUB_ACTOR", "octo"),
            ("USER", "root"),
        ]);
        let c = load(&FlagValues::new(), &env, None).unwrap();
        assert_eq!(
            c.build_url.as_deref(),
            Some("https://github.com/o/r/actions/runs/7")
        );
        assert_eq!(c.deployed_by.as_deref(), Some("octo"));
    }

    #[test]
    fn prefixes_one_rule_and_no_overlap() {
        // Empty means "not set" from every source.
        let mut flags = FlagValues::new();
        flags.insert("prefix", String::new());
        let c = load(&flags, &env_of(&[("CUTOVER_PREFIX", "")]), None).unwrap();
        assert_eq!(c.prefix, "packs");
        // The bucket root is refused: release records would be public.
        let msg = error(&FlagValues::new(), &[("CUTOVER_PREFIX", "/")], None);
        assert!(msg.contains("not the bucket root"), "{msg}");
        for (prefix, meta) in [("_cutover", ""), ("packs", "packs/_meta"), ("a", "a")] {
            let mut env = vec![("CUTOVER_APP", "shop"), ("CUTOVER_PREFIX", prefix)];
            if !meta.is_empty() {
                env.push(("CUTOVER_META_PREFIX", meta));
            }
            let msg = error(&FlagValues::new(), &env, None);
            assert!(msg.contains("overlap"), "{prefix} {meta}: {msg}");
        }
    }

    #[test]
    fn redis_tls_and_sentinel_settings_are_checked_together() {
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("ca.pem");
        std::fs::write(&pem, "-----BEGIN CERTIFICATE-----\n").unwrap();
        let pem = pem.to_str().unwrap();
        let msg = error(
            &FlagValues::new(),
            &[("REDIS_URL", "redis://h:1"), ("CUTOVER_REDIS_CA_FILE", pem)],
            None,
        );
        assert!(
            msg.contains("redis_ca_file (from environment variable CUTOVER_REDIS_CA_FILE) applies to TLS connections only")
                && msg.contains("rediss://"),
            "{msg}"
        );
        let msg = error(
            &FlagValues::new(),
            &[
                ("REDIS_URL", "rediss://h:1"),
                ("CUTOVER_REDIS_TLS_CERT_FILE", pem),
            ],
            None,
        );
        assert!(msg.contains("needs redis_tls_key_file"), "{msg}");
        let missing = dir.path().join("nope.pem");
        let msg = error(
            &FlagValues::new(),
            &[
                ("REDIS_URL", "rediss://h:1"),
                ("CUTOVER_REDIS_CA_FILE", missing.to_str().unwrap()),
            ],
            None,
        );
        assert!(
            msg.contains("invalid redis_ca_file") && msg.contains("readable PEM file"),
            "{msg}"
        );
        let msg = error(
            &FlagValues::new(),
            &[
                ("REDIS_URL", "redis+sentinel://:hunter2@h:1/m"),
                ("CUTOVER_REDIS_CLUSTER", "true"),
            ],
            None,
        );
        assert!(
            msg.contains("Sentinel") && !msg.contains("hunter2"),
            "{msg}"
        );
        let msg = error(
            &FlagValues::new(),
            &[("REDIS_URL", "redis+sentinel://:hunter2@h:1")],
            None,
        );
        assert!(
            msg.contains("master's name is missing") && !msg.contains("hunter2"),
            "{msg}"
        );
        let c = load(
            &FlagValues::new(),
            &env_of(&[
                (
                    "REDIS_URL",
                    "redis+sentinel://:pw@h:26379,h2:26379/mymaster",
                ),
                ("CUTOVER_REDIS_SENTINEL_PASSWORD", "s"),
            ]),
            None,
        )
        .unwrap();
        assert_eq!(
            c.redis_url_masked(),
            "redis+sentinel://:***@h:26379,h2:26379/mymaster"
        );
    }

    #[test]
    fn cdn_url_with_credentials_is_refused() {
        let msg = error(
            &FlagValues::new(),
            &[("CUTOVER_CDN_URL", "https://user:secret@cdn.example.com")],
            None,
        );
        assert!(msg.contains("without credentials"), "{msg}");
        assert!(!msg.contains("secret"), "{msg}");
    }
}
