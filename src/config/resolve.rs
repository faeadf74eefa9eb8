//! The layers resolved into one [`Config`]: flags > `CUTOVER_*` variables >
//! the selected `[environments.NAME]` > the file's top level > variables
//! other tools also set (`REDIS_URL`, CI metadata) > defaults, then the
//! checks that span several keys.

use std::collections::BTreeMap;

use super::file::{self, FileSource};
use super::keys::KEYS;
use super::{mask_url, sentinel, shown, Config, FlagValues, Origin, Raw};
use crate::error::Failure;

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
                // Generic variables (`REDIS_URL`) rank below the
                // environment sections: they cannot override either side.
                key.env
                    .iter()
                    .filter(|v| !is_generic(v))
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

/// Flags > `CUTOVER_*` variables > the selected `[environments.NAME]` >
/// the file's top level > generic variables ([`is_generic`]) > defaults.
fn resolve(
    flags: &FlagValues,
    env: &dyn Fn(&str) -> Option<String>,
    layer: &file::FileLayer,
    file: Option<&FileSource>,
    selected: Option<(&str, &Origin)>,
) -> anyhow::Result<Config> {
    let mut problems = layer.problems.clone();
    let mut notes = Vec::new();
    let mut raws = layer.raws.clone();
    match environment(layer, file, selected) {
        Ok(Some(section)) => raws.extend(
            section
                .iter()
                .filter(|(_, v)| !v.value.trim().is_empty())
                .map(|(k, v)| (*k, v.clone())),
        ),
        Ok(None) => {}
        Err(p) => problems.push(p),
    }
    for key in KEYS {
        // An empty value counts as not set: the lower layers apply.
        if let Some(value) = flags.get(key.name).filter(|v| !v.trim().is_empty()) {
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
        let from_env = |generic: bool| {
            key.env
                .iter()
                .filter(|var| is_generic(var) == generic)
                .find_map(|var| {
                    env(var).filter(|v| !v.trim().is_empty()).map(|value| Raw {
                        value,
                        origin: Origin::Env(var.to_string()),
                    })
                })
        };
        if let Some(raw) = from_env(false) {
            raws.insert(key.name, raw);
            continue;
        }
        // Variables other tools also set (`REDIS_URL`) rank below the file.
        match (raws.get(key.name), from_env(true)) {
            (Some(file), Some(generic)) if file.value.trim() != generic.value.trim() => {
                notes.push(hidden_note(key, file, &generic));
            }
            (None, Some(generic)) => {
                raws.insert(key.name, generic);
            }
            _ => {}
        }
    }
    ci_defaults(&mut raws, env);

    let mut config = Config {
        header_rules: layer.header_rules.clone(),
        mutable: layer.mutable.clone(),
        environment: selected.map(|(n, _)| n.to_string()),
        notes,
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
                // A key given inline is kept as it may be shown, never as given.
                let kept = if super::values::is_inline_pem(value) {
                    shown(key, value)
                } else {
                    value.to_string()
                };
                config.values.insert(key.name, kept);
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
    // The environment's webhooks replace the top level's.
    let sinks = selected
        .and_then(|(name, _)| layer.environment_notify.get(name))
        .or(layer.notify.as_ref());
    for raw in sinks.into_iter().flatten() {
        match sink(raw, env) {
            Ok(sink) => config.notify.push(sink),
            Err(p) => problems.push(p),
        }
    }
    // AWS's own variables keep the SDK's chain; the one that can send
    // cutover's requests elsewhere than meant is an endpoint another tool
    // set (a CI image's local S3): say so beside the hidden variables.
    if config.s3_endpoint.is_none() {
        if let Some((var, value)) = super::aws_endpoint(env) {
            config.notes.push(format!(
                "S3 requests go to {} from {var}, which other tools also read, since s3_endpoint is not set; \
                 set s3_endpoint (or CUTOVER_S3_ENDPOINT) to pin it",
                super::mask_url(value.trim())
            ));
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

/// A `[[notify]]` entry with its URL: given, or read from the variable
/// `url_env` names (unset: kept, without a URL, to be warned about when a
/// notification would go to it). A bad URL is never quoted.
fn sink(
    raw: &file::RawSink,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<crate::notify::Sink, String> {
    let url = match (&raw.url, &raw.url_env) {
        (Some(url), _) => Some(url.value.clone()),
        (None, Some(var)) => match env(&var.value).filter(|v| !v.trim().is_empty()) {
            Some(url) => {
                crate::notify::check_url(&url).map_err(|expected| {
                    format!(
                        "invalid [[notify]] url_env = {:?} (from {}): the variable {} should hold {expected}",
                        var.value, var.origin, var.value
                    )
                })?;
                Some(url.trim().to_string())
            }
            None => None,
        },
        (None, None) => None,
    };
    Ok(crate::notify::Sink {
        url,
        url_env: raw.url_env.as_ref().map(|v| v.value.clone()),
        events: raw.events.clone(),
        format: raw.format,
        origin: raw.origin.to_string(),
    })
}

/// A variable other tools also set (`REDIS_URL`, `AWS_ROLE_ARN`, CI
/// metadata), as opposed to cutover's own `CUTOVER_*`: it ranks below the
/// file, so a CI image's `REDIS_URL` never overrides `cutover.toml`.
pub fn is_generic(var: &str) -> bool {
    !var.starts_with("CUTOVER_")
}

/// The note that a file value hides a generic variable (values as they may
/// be shown: passwords masked).
fn hidden_note(key: &super::keys::Key, file: &Raw, generic: &Raw) -> String {
    let own = key
        .env
        .iter()
        .find(|v| !is_generic(v))
        .map(|v| v.to_string())
        .into_iter()
        .chain(key.flag.map(|f| format!("--{f}")))
        .collect::<Vec<_>>()
        .join(" or ");
    let over = if own.is_empty() {
        String::new()
    } else {
        format!("; {own} overrides the file")
    };
    format!(
        "{} = {} from {} hides {} = {}: variables other tools also set rank below cutover.toml{over}",
        key.name,
        shown(key, file.value.trim()),
        file.origin,
        match &generic.origin {
            Origin::Env(v) => v.as_str(),
            _ => "a variable",
        },
        shown(key, generic.value.trim()),
    )
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
                "cutover does not connect to Sentinel over TLS (docs/redis.md, \"Redis topologies\")"
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
