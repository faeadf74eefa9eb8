//! Layered configuration: flags > environment > `cutover.toml` > defaults.
//!
//! Every value remembers where it came from ([`Origin`]) so that a bad value
//! is reported as "`concurrency = "abc"` (from CUTOVER_CONCURRENCY): expected
//! ...". Loading is a pure function of its three inputs; `main` supplies the
//! real process environment and file.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use globset::{Glob, GlobMatcher};

use crate::error::Failure;

/// Where a configuration value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Flag(&'static str),
    Env(String),
    File { path: PathBuf, line: usize },
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Flag(name) => write!(f, "flag --{name}"),
            Origin::Env(var) => write!(f, "environment variable {var}"),
            Origin::File { path, line } => write!(f, "{}:{line}", path.display()),
            Origin::Default => write!(f, "default"),
        }
    }
}

/// One configuration key: its name in `cutover.toml`, its flag, and the
/// environment variables that can set it, in order of preference.
struct Key {
    name: &'static str,
    flag: &'static str,
    env: &'static [&'static str],
}

const KEYS: &[Key] = &[
    Key {
        name: "app",
        flag: "app",
        env: &["CUTOVER_APP"],
    },
    Key {
        name: "bucket",
        flag: "bucket",
        env: &["CUTOVER_BUCKET"],
    },
    Key {
        name: "prefix",
        flag: "prefix",
        env: &["CUTOVER_PREFIX"],
    },
    Key {
        name: "cdn_url",
        flag: "cdn-url",
        env: &["CUTOVER_CDN_URL"],
    },
    Key {
        name: "redis_url",
        flag: "redis-url",
        env: &["CUTOVER_REDIS_URL", "REDIS_URL"],
    },
    Key {
        name: "manifest",
        flag: "manifest",
        env: &["CUTOVER_MANIFEST"],
    },
    Key {
        name: "meta_prefix",
        flag: "meta-prefix",
        env: &["CUTOVER_META_PREFIX"],
    },
    Key {
        name: "cache_control",
        flag: "cache-control",
        env: &["CUTOVER_CACHE_CONTROL"],
    },
    Key {
        name: "concurrency",
        flag: "concurrency",
        env: &["CUTOVER_CONCURRENCY"],
    },
    Key {
        name: "multipart_threshold_mib",
        flag: "multipart-threshold-mib",
        env: &["CUTOVER_MULTIPART_THRESHOLD_MIB"],
    },
    Key {
        name: "s3_endpoint",
        flag: "s3-endpoint",
        env: &["CUTOVER_S3_ENDPOINT"],
    },
    Key {
        name: "s3_path_style",
        flag: "s3-path-style",
        env: &["CUTOVER_S3_PATH_STYLE"],
    },
    Key {
        name: "lock_wait_secs",
        flag: "lock-wait",
        env: &["CUTOVER_LOCK_WAIT"],
    },
    Key {
        name: "lock_ttl_secs",
        flag: "lock-ttl",
        env: &["CUTOVER_LOCK_TTL"],
    },
    Key {
        name: "history_limit",
        flag: "history-limit",
        env: &["CUTOVER_HISTORY_LIMIT"],
    },
    Key {
        name: "redis_timeout_secs",
        flag: "redis-timeout",
        env: &["CUTOVER_REDIS_TIMEOUT"],
    },
    Key {
        name: "deployed_by",
        flag: "by",
        env: &[
            "CUTOVER_DEPLOYED_BY",
            "CIRCLE_USERNAME",
            "GITHUB_ACTOR",
            "GITLAB_USER_LOGIN",
            "USER",
            "LOGNAME",
        ],
    },
    Key {
        name: "git_sha",
        flag: "git-sha",
        env: &[
            "CUTOVER_GIT_SHA",
            "CIRCLE_SHA1",
            "GITHUB_SHA",
            "CI_COMMIT_SHA",
        ],
    },
    Key {
        name: "git_branch",
        flag: "git-branch",
        env: &[
            "CUTOVER_GIT_BRANCH",
            "CIRCLE_BRANCH",
            "GITHUB_REF_NAME",
            "CI_COMMIT_REF_NAME",
        ],
    },
    Key {
        name: "build_url",
        flag: "build-url",
        env: &["CUTOVER_BUILD_URL", "CIRCLE_BUILD_URL", "CI_JOB_URL"],
    },
];

/// Values given on the command line, by key name (see [`KEYS`]).
pub type FlagValues = BTreeMap<&'static str, String>;

/// A header override from `[[headers]]` in `cutover.toml`.
#[derive(Debug, Clone)]
pub struct HeaderRule {
    pub glob: String,
    pub matcher: GlobMatcher,
    pub cache_control: Option<String>,
    pub content_type: Option<String>,
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub app: Option<String>,
    pub bucket: Option<String>,
    /// Public prefix inside the bucket, without leading or trailing slash ("" = bucket root).
    pub prefix: String,
    /// CDN base URL without trailing slash.
    pub cdn_url: Option<String>,
    pub redis_url: String,
    /// Connect to a Redis Cluster (all of an app's keys share one slot).
    pub redis_cluster: bool,
    pub manifest: String,
    meta_prefix: Option<String>,
    pub cache_control: String,
    pub concurrency: usize,
    pub multipart_threshold: u64,
    pub s3_endpoint: Option<String>,
    pub s3_path_style: Option<bool>,
    pub lock_wait_secs: u64,
    pub lock_ttl_secs: u64,
    pub history_limit: usize,
    pub redis_timeout_secs: u64,
    pub header_rules: Vec<HeaderRule>,
    pub deployed_by: Option<String>,
    pub git_sha: Option<String>,
    pub git_branch: Option<String>,
    pub build_url: Option<String>,
}

pub const DEFAULT_CACHE_CONTROL: &str = "public, max-age=60";
pub const IMMUTABLE_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

fn missing(key: &str, flag: &str, env: &str) -> anyhow::Error {
    Failure::input(format!(
        "no {key} configured: pass --{flag}, set {env}, or add `{key} = \"...\"` to cutover.toml"
    ))
}

impl Config {
    pub fn app(&self) -> anyhow::Result<&str> {
        self.app
            .as_deref()
            .ok_or_else(|| missing("app", "app", "CUTOVER_APP"))
    }
    pub fn bucket(&self) -> anyhow::Result<&str> {
        self.bucket
            .as_deref()
            .ok_or_else(|| missing("bucket", "bucket", "CUTOVER_BUCKET"))
    }
    pub fn cdn_url(&self) -> anyhow::Result<&str> {
        self.cdn_url
            .as_deref()
            .ok_or_else(|| missing("cdn_url", "cdn-url", "CUTOVER_CDN_URL"))
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
        object_key(&self.prefix, path)
    }
    /// The listing prefix of the public files ("" or "prefix/").
    pub fn list_prefix(&self) -> String {
        list_prefix(&self.prefix)
    }
    /// Public URL of a file inside the build.
    pub fn public_url(&self, path: &str) -> anyhow::Result<String> {
        Ok(format!("{}/{}", self.cdn_url()?, self.object_key(path)))
    }
    /// The Redis URL with any password replaced by `***`, for messages.
    pub fn redis_url_masked(&self) -> String {
        mask_url(&self.redis_url)
    }
}

/// The S3 key of `path` under a public prefix ("" = bucket root).
pub fn object_key(prefix: &str, path: &str) -> String {
    if prefix.is_empty() {
        path.to_string()
    } else {
        format!("{prefix}/{path}")
    }
}

/// The listing prefix of a public prefix ("" or "prefix/").
pub fn list_prefix(prefix: &str) -> String {
    if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}/")
    }
}

/// Replace the password of a URL (`redis://user:secret@host`) with `***`.
pub fn mask_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) if !u.username().is_empty() && u.scheme().starts_with("redis") => {
            // `redis://:secret@host` parses with the secret as the username when there is no colon.
            let mut u = u;
            let _ = u.set_username("***");
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "<unparseable URL>".to_string(),
    }
}

/// A raw value and where it came from.
#[derive(Debug, Clone)]
struct Raw {
    value: String,
    origin: Origin,
}

impl Raw {
    fn bad(&self, key: &str, expected: &str) -> anyhow::Error {
        Failure::input(format!(
            "invalid {key} = {:?} (from {}): expected {expected}",
            self.value, self.origin
        ))
    }
}

/// The contents of a configuration file.
pub struct FileSource {
    pub path: PathBuf,
    pub text: String,
}

impl FileSource {
    /// Read `--config PATH` (must exist) or `./cutover.toml` (optional).
    pub fn read(explicit: Option<&Path>, cwd: &Path) -> anyhow::Result<Option<FileSource>> {
        let (path, required) = match explicit {
            Some(p) => (p.to_path_buf(), true),
            None => (cwd.join("cutover.toml"), false),
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(FileSource { path, text })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => Ok(None),
            Err(e) => Err(Failure::input(format!(
                "cannot read config file {}: {e}; check the --config path",
                path.display()
            ))),
        }
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

type Spanned = toml::Spanned<toml::Value>;

/// Parse the file layer: scalar keys with their lines, and `[[headers]]` rules.
fn file_layer(
    file: &FileSource,
    raws: &mut BTreeMap<&'static str, Raw>,
) -> anyhow::Result<Vec<HeaderRule>> {
    let table: BTreeMap<String, Spanned> = toml::from_str(&file.text).map_err(|e| {
        let line = e.span().map(|s| line_of(&file.text, s.start)).unwrap_or(0);
        Failure::input(format!(
            "{}:{line}: not valid TOML: {}; fix the file or pass another with --config",
            file.path.display(),
            e.message()
        ))
    })?;
    let mut rules = Vec::new();
    for (name, spanned) in &table {
        let line = line_of(&file.text, spanned.span().start);
        let origin = Origin::File {
            path: file.path.clone(),
            line,
        };
        if name == "headers" {
            rules = header_rules(spanned.get_ref(), &origin)?;
            continue;
        }
        let Some(key) = KEYS.iter().find(|k| k.name == name) else {
            let known: Vec<&str> = KEYS.iter().map(|k| k.name).chain(["headers"]).collect();
            return Err(Failure::input(format!(
                "unknown key `{name}` in {origin}; known keys: {}",
                known.join(", ")
            )));
        };
        let value = match spanned.get_ref() {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                return Err(Failure::input(format!(
                "invalid {name} (from {origin}): expected a string, number or boolean, found {}",
                other.type_str()
            )))
            }
        };
        raws.insert(key.name, Raw { value, origin });
    }
    Ok(rules)
}

fn header_rules(value: &toml::Value, origin: &Origin) -> anyhow::Result<Vec<HeaderRule>> {
    let bad = |what: &str| {
        Failure::input(format!(
            "invalid [[headers]] rule (from {origin}): {what}; each rule is \
             `[[headers]]` with `glob = \"...\"` and `cache_control` and/or `content_type`"
        ))
    };
    let toml::Value::Array(items) = value else {
        return Err(bad("expected an array of tables"));
    };
    let mut rules = Vec::new();
    for item in items {
        let toml::Value::Table(t) = item else {
            return Err(bad("expected a table"));
        };
        for k in t.keys() {
            if !["glob", "cache_control", "content_type"].contains(&k.as_str()) {
                return Err(bad(&format!("unknown field `{k}`")));
            }
        }
        let get = |k: &str| -> anyhow::Result<Option<String>> {
            match t.get(k) {
                None => Ok(None),
                Some(toml::Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
                Some(_) => Err(bad(&format!("`{k}` must be a non-empty string"))),
            }
        };
        let glob = get("glob")?.ok_or_else(|| bad("missing `glob`"))?;
        let matcher = Glob::new(&glob)
            .map_err(|e| bad(&format!("bad glob {glob:?}: {e}")))?
            .compile_matcher();
        let cache_control = get("cache_control")?;
        let content_type = get("content_type")?;
        if cache_control.is_none() && content_type.is_none() {
            return Err(bad(&format!("rule for {glob:?} sets nothing")));
        }
        rules.push(HeaderRule {
            glob,
            matcher,
            cache_control,
            content_type,
        });
    }
    Ok(rules)
}

/// Build the configuration from flags, an environment lookup and an optional file.
pub fn load(
    flags: &FlagValues,
    env: &dyn Fn(&str) -> Option<String>,
    file: Option<&FileSource>,
) -> anyhow::Result<Config> {
    let mut raws: BTreeMap<&'static str, Raw> = BTreeMap::new();
    let header_rules = match file {
        Some(f) => file_layer(f, &mut raws)?,
        None => Vec::new(),
    };
    for key in KEYS {
        if let Some(value) = flags.get(key.name) {
            raws.insert(
                key.name,
                Raw {
                    value: value.clone(),
                    origin: Origin::Flag(key.flag),
                },
            );
            continue;
        }
        let from_env = key.env.iter().find_map(|var| {
            env(var).filter(|v| !v.is_empty()).map(|value| Raw {
                value,
                origin: Origin::Env(var.to_string()),
            })
        });
        if let Some(raw) = from_env {
            raws.insert(key.name, raw);
        }
    }
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
        if let Some(user) = os_user() {
            raws.insert(
                "deployed_by",
                Raw {
                    value: user,
                    origin: Origin::Default,
                },
            );
        }
    }
    validate(raws, header_rules)
}

/// The OS user's name, from /etc/passwd, when no variable names one.
fn os_user() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").ok()?.uid();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        (f.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_string())
    })
}

fn validate(
    raws: BTreeMap<&'static str, Raw>,
    header_rules: Vec<HeaderRule>,
) -> anyhow::Result<Config> {
    let text = |k: &str| {
        raws.get(k)
            .map(|r| r.value.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let number = |k: &str, default: u64, min: u64, max: u64| -> anyhow::Result<u64> {
        match raws.get(k) {
            None => Ok(default),
            Some(raw) => match raw.value.trim().parse::<u64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(n),
                _ => Err(raw.bad(k, &format!("a whole number from {min} to {max}"))),
            },
        }
    };

    let app = match raws.get("app") {
        None => None,
        Some(raw) => {
            let v = raw.value.trim();
            let ok = !v.is_empty()
                && v.len() <= 64
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !ok {
                return Err(raw.bad("app", "1-64 characters of letters, digits, '-', '_' or '.'"));
            }
            Some(v.to_string())
        }
    };
    let bucket = match raws.get("bucket") {
        None => None,
        Some(raw) => {
            let v = raw.value.trim();
            let ok = (3..=63).contains(&v.len())
                && v.chars().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.')
                })
                && !v.starts_with(['-', '.'])
                && !v.ends_with(['-', '.']);
            if !ok {
                return Err(raw.bad(
                    "bucket",
                    "an S3 bucket name: 3-63 lowercase letters, digits, '-' or '.' (no s3:// and no path)",
                ));
            }
            Some(v.to_string())
        }
    };
    let prefix = match raws.get("prefix") {
        None => "packs".to_string(),
        Some(raw) => {
            let v = raw.value.trim().trim_matches('/');
            if v.split('/')
                .any(|seg| seg == ".." || seg == "." || (seg.is_empty() && !v.is_empty()))
                || v.contains('\\')
            {
                return Err(raw.bad(
                    "prefix",
                    "a key prefix like `packs` or `assets/packs` (no `..`, no empty segments)",
                ));
            }
            v.to_string()
        }
    };
    let cdn_url = match raws.get("cdn_url") {
        None => None,
        Some(raw) => {
            let v = raw.value.trim().trim_end_matches('/');
            match url::Url::parse(v) {
                Ok(u)
                    if matches!(u.scheme(), "http" | "https")
                        && u.host_str().is_some()
                        && u.query().is_none()
                        && u.fragment().is_none() =>
                {
                    Some(v.to_string())
                }
                _ => return Err(raw.bad("cdn_url", "an http(s) URL like https://cdn.example.com")),
            }
        }
    };
    let redis_url = match raws.get("redis_url") {
        None => "redis://127.0.0.1:6379".to_string(),
        Some(raw) => {
            let v = raw.value.trim();
            match url::Url::parse(v) {
                Ok(u) if matches!(u.scheme(), "redis" | "rediss" | "redis+unix" | "unix") => {
                    v.to_string()
                }
                _ => {
                    // Never echo a value that may hold a password.
                    return Err(Failure::input(format!(
                        "invalid redis_url {:?} (from {}): expected redis://[:password@]host:port[/db] or rediss://...",
                        mask_url(v),
                        raw.origin
                    )));
                }
            }
        }
    };
    let manifest = match raws.get("manifest") {
        None => "manifest.json".to_string(),
        Some(raw) => {
            let v = raw.value.trim();
            if v.is_empty() || v.starts_with('/') || v.split(['/', '\\']).any(|s| s == "..") {
                return Err(raw.bad(
                    "manifest",
                    "a path inside the build directory, like manifest.json",
                ));
            }
            v.to_string()
        }
    };
    let meta_prefix = match raws.get("meta_prefix") {
        None => None,
        Some(raw) => {
            let v = raw.value.trim().trim_matches('/');
            if v.is_empty() || v.split('/').any(|s| s == ".." || s.is_empty()) {
                return Err(raw.bad("meta_prefix", "a key prefix like `_cutover/myapp`"));
            }
            Some(format!("{v}/"))
        }
    };
    if let Some(meta) = &meta_prefix {
        if !prefix.is_empty()
            && (meta.starts_with(&format!("{prefix}/")) || meta == &format!("{prefix}/"))
        {
            let raw = &raws["meta_prefix"];
            return Err(raw.bad(
                "meta_prefix",
                &format!("a prefix outside the public prefix `{prefix}/`"),
            ));
        }
    }
    let cache_control = text("cache_control").unwrap_or_else(|| DEFAULT_CACHE_CONTROL.to_string());
    let boolean = |k: &str| -> anyhow::Result<Option<bool>> {
        match raws.get(k) {
            None => Ok(None),
            Some(raw) => match raw.value.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Ok(Some(true)),
                "false" | "0" | "no" => Ok(Some(false)),
                _ => Err(raw.bad(k, "true or false")),
            },
        }
    };
    let s3_path_style = boolean("s3_path_style")?;
    let redis_cluster = boolean("redis_cluster")?.unwrap_or(false);
    let s3_endpoint = match raws.get("s3_endpoint") {
        None => None,
        Some(raw) => match url::Url::parse(raw.value.trim()) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => Some(raw.value.trim().to_string()),
            _ => return Err(raw.bad("s3_endpoint", "an http(s) URL like http://127.0.0.1:9000")),
        },
    };

    Ok(Config {
        app,
        bucket,
        prefix,
        cdn_url,
        redis_url,
        redis_cluster,
        manifest,
        meta_prefix,
        cache_control,
        concurrency: number("concurrency", 32, 1, 512)? as usize,
        multipart_threshold: number("multipart_threshold_mib", 64, 5, 5 * 1024)? * 1024 * 1024,
        s3_endpoint,
        s3_path_style,
        lock_wait_secs: number("lock_wait_secs", 120, 0, 3600)?,
        lock_ttl_secs: number("lock_ttl_secs", 30, 5, 3600)?,
        history_limit: number("history_limit", 100, 1, 100_000)? as usize,
        redis_timeout_secs: number("redis_timeout_secs", 5, 1, 300)?,
        header_rules,
        deployed_by: text("deployed_by"),
        git_sha: text("git_sha"),
        git_branch: text("git_branch"),
        build_url: text("build_url"),
    })
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
    }

    #[test]
    fn bad_values_name_key_origin_and_allowed() {
        let env = env_of(&[("CUTOVER_CONCURRENCY", "lots")]);
        let err = load(&FlagValues::new(), &env, None).unwrap_err();
        assert_eq!(exit_code(&err), 2);
        let msg = err.to_string();
        assert!(
            msg.contains("concurrency")
                && msg.contains("CUTOVER_CONCURRENCY")
                && msg.contains("1 to 512"),
            "{msg}"
        );

        let f = file("app = \"x\"\n\nbucket = \"Not_A_Bucket\"\n");
        let msg = load(&FlagValues::new(), &env_of(&[]), Some(&f))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("cutover.toml:3") && msg.contains("bucket"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_file_key_and_bad_toml_are_reported_with_line() {
        let msg = load(
            &FlagValues::new(),
            &env_of(&[]),
            Some(&file("app = \"a\"\nbukket = \"b\"\n")),
        )
        .unwrap_err()
        .to_string();
        assert!(
            msg.contains("unknown key `bukket`") && msg.contains("cutover.toml:2"),
            "{msg}"
        );
        let msg = load(&FlagValues::new(), &env_of(&[]), Some(&file("app = \n")))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("not valid TOML") && msg.contains("cutover.toml:1"),
            "{msg}"
        );
    }

    #[test]
    fn redis_password_never_echoed() {
        let env = env_of(&[("REDIS_URL", "http://:hunter2@host:6379")]);
        let msg = load(&FlagValues::new(), &env, None)
            .unwrap_err()
            .to_string();
        assert!(!msg.contains("hunter2"), "{msg}");
        assert_eq!(
            mask_url("redis://user:hunter2@h:6379/0"),
            "redis://user:***@h:6379/0"
        );
        assert_eq!(mask_url("redis://:hunter2@h:6379"), "redis://:***@h:6379");
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
        let bad = file("[[headers]]\nglob = \"*.js\"\n");
        assert!(load(&FlagValues::new(), &env_of(&[]), Some(&bad))
            .unwrap_err()
            .to_string()
            .contains("sets nothing"));
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
    fn meta_prefix_must_stay_outside_public_prefix() {
        let env = env_of(&[("CUTOVER_META_PREFIX", "packs/_meta")]);
        assert!(load(&FlagValues::new(), &env, None).is_err());
    }
}
