//! `cutover doctor [DIR]`: check a setup, one line per check with the fix.
//! Read-only. Exit 0 only when every check passes (warnings allowed), else 2.

use serde::Serialize;

use super::{Ctx, Head};
use crate::error::one_line;
use crate::render::Render;
use crate::store::cdn::Cdn;
use crate::store::records;
use crate::store::redis::Needs;
use crate::store::registries::Registries;
use crate::store::s3::S3Store;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    /// Works, but risky or unchecked: does not fail the doctor.
    Warn,
    Fail,
}

#[derive(Debug, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
    /// What to do, when not passing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Outcome {
    #[serde(flatten)]
    pub head: Head,
    pub checks: Vec<Check>,
    /// Whether the live release is signed, and by which key (absent when
    /// Redis was not reached or nothing is live).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<crate::signing::SignatureState>,
}

fn pass(name: &'static str, detail: impl Into<String>) -> Check {
    Check {
        name,
        status: Status::Pass,
        detail: detail.into(),
        fix: None,
    }
}

fn problem(
    name: &'static str,
    status: Status,
    detail: impl Into<String>,
    fix: impl Into<String>,
) -> Check {
    Check {
        name,
        status,
        detail: detail.into(),
        fix: Some(fix.into()),
    }
}

pub async fn run(ctx: &Ctx, dir: Option<&std::path::Path>) -> anyhow::Result<Outcome> {
    let config = &ctx.config;
    let head = ctx.head("doctor", None)?;
    let mut checks = Vec::new();

    let store = match S3Store::connect(config).await {
        Ok(s) => match s.check_bucket().await {
            Ok(()) => {
                checks.push(pass(
                    "bucket",
                    format!("s3://{} is reachable with these credentials", s.bucket()),
                ));
                Some(s)
            }
            Err(e) => {
                checks.push(problem(
                    "bucket",
                    Status::Fail,
                    one_line(&e),
                    "fix the credentials or the bucket name",
                ));
                None
            }
        },
        Err(e) => {
            checks.push(problem(
                "bucket",
                Status::Fail,
                one_line(&e),
                "set the bucket and AWS credentials",
            ));
            None
        }
    };
    if let Some(s) = &store {
        checks.push(match s.bucket_region().await {
            Ok(r) if r == s.region() => pass(
                "region",
                format!("the bucket is in {r}, as the client expects"),
            ),
            Ok(r) => problem(
                "region",
                Status::Fail,
                format!("the bucket is in {r}, the client signs for {}", s.region()),
                format!("set AWS_REGION={r}"),
            ),
            Err(e) => problem(
                "region",
                Status::Warn,
                one_line(&e),
                "grant s3:GetBucketLocation to check it",
            ),
        });
        checks.push(bucket_exposure(s, &config.meta_prefix()?).await);
    }

    let mut redis = match Registries::connect(config).await {
        Ok(r) => {
            checks.push(pass("redis", format!("{} answers", r.names().join(", "))));
            Some(r)
        }
        Err(e) => {
            checks.push(problem(
                "redis",
                Status::Fail,
                one_line(&e),
                "fix REDIS_URL (and TLS, password)",
            ));
            None
        }
    };
    checks.push(redis_exposure(&config.redis_urls));
    let mut live_record = None;
    let mut signature = None;
    if let Some(reg) = redis.as_mut() {
        let several = reg.several();
        let mut eviction = Vec::new();
        for target in reg.each() {
            let on = if several {
                format!(" on {}", target.name())
            } else {
                String::new()
            };
            eviction.push(match target.maxmemory_policy().await? {
                Some(p) if p.starts_with("allkeys") => problem(
                    "eviction",
                    Status::Warn,
                    format!("maxmemory-policy is {p}{on}: Redis may evict the live manifest under memory pressure"),
                    "use noeviction (or a volatile-* policy: cutover's keys have no expiry)",
                ),
                Some(p) => pass("eviction", format!("maxmemory-policy is {p}{on}: the live keys are never evicted")),
                None => problem(
                    "eviction",
                    Status::Warn,
                    format!("CONFIG GET is refused{on}, so maxmemory-policy is unknown"),
                    "make sure it is noeviction or volatile-* (an allkeys-* policy can evict the live manifest)",
                ),
            });
        }
        // The first warning, else the first pass.
        let worst = eviction
            .iter()
            .position(|c| c.status != Status::Pass)
            .unwrap_or(0);
        checks.push(eviction.swap_remove(worst));
        // A key of the wrong type (e.g. `current` as a list) is a finding
        // with its fix, not the end of the checks.
        let live = match reg.live().await {
            Ok(live) => Some(live),
            Err(e) => {
                checks.push(problem(
                    "keys",
                    Status::Fail,
                    one_line(&e),
                    "check what else writes that key, then delete it (redis-cli DEL KEY); \
                     `cutover activate <id>` writes it again",
                ));
                None
            }
        };
        if let Some(live) = live.as_ref().filter(|l| l.split()) {
            checks.push(problem(
                "targets",
                Status::Fail,
                format!(
                    "the Redis targets serve different releases: {}",
                    live.each()
                        .map(|(name, current, _)| format!(
                            "{name} serves {}",
                            current.unwrap_or("none")
                        ))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
                "run `cutover activate <id>` to bring every target to one release",
            ));
        }
        checks.push(match reg.check_permissions(Needs::Switch).await {
            Ok(()) => pass(
                "permissions",
                "the Redis user may run every command cutover sends",
            ),
            Err(e) => problem(
                "permissions",
                Status::Fail,
                one_line(&e),
                "grant the minimal ACL in docs/redis.md",
            ),
        });
        let known = config.signing_key.as_ref().map(|k| k.verify_key());
        signature = live
            .as_ref()
            .and_then(|l| l.signature_state(known.as_ref()));
        if let (Some(id), Some(state)) =
            (live.as_ref().and_then(|l| l.current.as_ref()), &signature)
        {
            checks.push(signature_check(config, id, state));
        }
        if let (Some(s), Some(id)) = (&store, live.and_then(|l| l.current)) {
            if let Ok(Some(r)) = records::read(s, &config.meta_prefix()?, &id).await {
                live_record = Some(r);
            }
        }
    }

    if let Some(dir) = dir {
        checks.push(public_path(ctx, dir));
    }
    if let Some(s) = &store {
        checks.push(cors(config.app_origin.as_deref(), live_record.as_ref(), s).await);
    }
    let cdn = Cdn::new(config.cdn_timeout())?;
    match &live_record {
        Some(r) => {
            let checks_cdn = r.cdn_checks(0);
            let problems = cdn.check(&checks_cdn, config.concurrency).await;
            checks.push(if problems.is_empty() {
                pass("cdn", format!("{} serves the live release's entrypoint files", r.cdn_url))
            } else {
                problem(
                    "cdn",
                    Status::Fail,
                    crate::render::some(&problems, 3),
                    "check cdn_url and the CDN's origin (it must map CDN_URL/PREFIX/ to the bucket)",
                )
            });
        }
        None => checks.push(problem(
            "cdn",
            Status::Warn,
            "no live release to fetch through the CDN",
            "deploy, then run doctor again",
        )),
    }
    if let Some(r) = &live_record {
        // The CDN configured now (else the one the release was published to).
        let cdn_url = config.cdn_url.as_deref().unwrap_or(&r.cdn_url);
        checks.push(cdn_records(&cdn, config, cdn_url, &config.meta_prefix()?, &r.id).await);
    }
    Ok(Outcome {
        head,
        checks,
        signature,
    })
}

/// Is the live release signed (and must it be)? A signature readers would
/// reject fails; an unsigned release fails only under `require_signature`.
fn signature_check(
    config: &crate::config::Config,
    id: &str,
    state: &crate::signing::SignatureState,
) -> Check {
    if let Some(p) = &state.problem {
        return problem(
            "signature",
            Status::Fail,
            format!("live release {id}: {p}"),
            format!("run `cutover activate {id}` to write its record's signature again, or deploy its build again with signing_key"),
        );
    }
    if !state.signed && config.require_signature {
        return problem(
            "signature",
            Status::Fail,
            format!("live release {id} is unsigned and require_signature is set: readers with verify_keys do not serve it"),
            "deploy with signing_key (a key from `cutover keygen`), or activate a signed release",
        );
    }
    pass(
        "signature",
        format!("live release {id} is {}", state.describe()),
    )
}

/// The build's public path must be `CDN_URL/PREFIX/` (or relative).
fn public_path(ctx: &Ctx, dir: &std::path::Path) -> Check {
    let config = &ctx.config;
    let loaded = crate::build::scan::scan(dir, &config.exclude, &crate::events::Quiet)
        .and_then(|b| super::manifest_of(config, &b));
    let expected = config.public_url("").unwrap_or_default();
    let cdn = config.cdn_url.as_deref().unwrap_or("CDN_URL");
    match loaded {
        Ok(m) => match m.public_path_warning(&expected, cdn) {
            None => pass(
                "public path",
                format!("the build's files load each other from {expected} (or relatively)"),
            ),
            Some(w) => problem(
                "public path",
                Status::Fail,
                w,
                "rebuild with the CDN as the public path",
            ),
        },
        Err(e) => problem(
            "public path",
            Status::Fail,
            one_line(&e),
            "pass the build directory",
        ),
    }
}

/// With SRI (`integrity` + `crossorigin`), browsers fetch with CORS: the
/// bucket must allow a cross-origin GET (from the app's origin, if known).
async fn cors(
    origin: Option<&str>,
    live: Option<&crate::release::ReleaseRecord>,
    s: &S3Store,
) -> Check {
    let sri = live.is_some_and(|r| r.manifest.to_string().contains("\"integrity\""));
    let rules = match s.cors_rules().await {
        Ok(r) => r,
        Err(e) => {
            return problem(
                "cors",
                Status::Warn,
                one_line(&e),
                "grant s3:GetBucketCORS to check it",
            )
        }
    };
    let allows = |o: &str| {
        rules.iter().any(|(origins, methods)| {
            methods.iter().any(|m| m == "GET") && origins.iter().any(|x| x == "*" || x == o)
        })
    };
    match (origin, sri) {
        (Some(o), _) if allows(o) => pass("cors", format!("the bucket allows GET from {o}")),
        (Some(o), true) => problem(
            "cors",
            Status::Fail,
            format!("the live manifest has SRI, so browsers fetch with CORS, but the bucket does not allow GET from {o}"),
            format!("add a CORS rule allowing GET from {o}"),
        ),
        (Some(o), false) => problem(
            "cors",
            Status::Warn,
            format!("the bucket does not allow GET from {o}"),
            format!("add a CORS rule allowing GET from {o} before using SRI"),
        ),
        (None, _) if rules.iter().any(|(_, m)| m.iter().any(|m| m == "GET")) => {
            pass("cors", "the bucket allows cross-origin GETs (set app_origin to check yours)")
        }
        (None, _) => problem(
            "cors",
            Status::Warn,
            "the bucket has no CORS rule allowing GET",
            "add one for the app's origin (and set app_origin so doctor checks it)",
        ),
    }
}

/// Is this Redis host this machine only (loopback)? `localhost`, a name
/// under `.localhost`, 127.0.0.0/8 and ::1 are; anything else may be
/// reached from the network.
fn is_loopback_host(host: &str) -> bool {
    let h = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    h == "localhost"
        || h.ends_with(".localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// What a Redis URL says of its exposure: the hosts it names that are not
/// loopback, whether it logs in with a password, whether it uses TLS. None
/// for a URL that does not parse (the `redis` check reports it).
fn redis_endpoint(raw: &str) -> Option<(Vec<String>, bool, bool)> {
    use crate::config::sentinel::SentinelUrl;
    if SentinelUrl::is_sentinel(raw) {
        let u = SentinelUrl::parse(raw).ok()?;
        let far = u
            .sentinels
            .into_iter()
            .map(|(h, _)| h)
            .filter(|h| !is_loopback_host(h))
            .collect();
        let password = u.password.is_some_and(|p| !p.is_empty());
        return Some((far, password, false));
    }
    let u = url::Url::parse(raw).ok()?;
    let far = match u.host_str() {
        // A Unix socket: this machine only.
        None => Vec::new(),
        Some(h) if is_loopback_host(h) => Vec::new(),
        Some(h) => vec![h.to_string()],
    };
    let password = u.password().is_some_and(|p| !p.is_empty());
    let tls = u.scheme().eq_ignore_ascii_case("rediss");
    Some((far, password, tls))
}

/// A Redis on another host that takes no password lets anyone who reaches
/// it switch the live release (fail); one without TLS sends its password
/// and the manifest in clear (warning). Decided from the URLs alone: a
/// loopback host is fine.
fn redis_exposure(urls: &[String]) -> Check {
    const NAME: &str = "redis exposure";
    let (mut open, mut clear, mut remote) = (Vec::new(), Vec::new(), 0);
    for raw in urls {
        let Some((far, password, tls)) = redis_endpoint(raw) else {
            continue;
        };
        if far.is_empty() {
            continue;
        }
        remote += 1;
        let name = crate::config::mask_url(raw);
        if !password {
            open.push(name.clone());
        }
        if !tls {
            clear.push(name);
        }
    }
    if !open.is_empty() {
        let tls = if clear.is_empty() {
            ""
        } else {
            ", and without TLS"
        };
        return problem(
            NAME,
            Status::Fail,
            format!(
                "{} is on a host other machines can reach, and cutover logs in without a password{tls}: \
                 anyone who reaches it can switch the live release",
                open.join(", ")
            ),
            "require a password (an ACL user with the minimal ACL in docs/redis.md), put it in the URL \
             (redis://USER:PASSWORD@HOST:PORT), and use rediss:// for TLS",
        );
    }
    if !clear.is_empty() {
        return problem(
            NAME,
            Status::Warn,
            format!(
                "{} is on a host other machines can reach, without TLS: its password and the manifest cross the network in clear",
                clear.join(", ")
            ),
            "use TLS: a rediss:// URL (and redis_ca_file for a private CA)",
        );
    }
    if remote == 0 {
        return pass(
            NAME,
            "Redis is on a loopback host: only this machine reaches it, so no password or TLS is needed",
        );
    }
    pass(
        NAME,
        "every Redis on another host takes a password over TLS (rediss://)",
    )
}

/// The group a bucket ACL grant names, in words, if it is one anyone joins.
fn public_group(uri: &str) -> Option<&'static str> {
    if uri.ends_with("/global/AllUsers") {
        Some("anyone")
    } else if uri.ends_with("/global/AuthenticatedUsers") {
        Some("any AWS account")
    } else {
        None
    }
}

/// What the bucket ACL's group grants let anyone do that an attacker would
/// use: write (WRITE, WRITE_ACP, FULL_CONTROL) or list every key, the
/// records included (READ on a bucket is listing).
fn acl_findings(groups: &[(String, String)]) -> Vec<String> {
    groups
        .iter()
        .filter_map(|(uri, permission)| {
            let who = public_group(uri)?;
            match permission.as_str() {
                "WRITE" | "WRITE_ACP" | "FULL_CONTROL" => Some(format!(
                    "the bucket ACL grants {permission} to {who}: they can write objects"
                )),
                "READ" => Some(format!(
                    "the bucket ACL grants READ to {who}: they can list every key, release records included"
                )),
                _ => None,
            }
        })
        .collect()
}

/// An IAM action pattern (`*`, `s3:*`, `s3:Put*`) that covers `action`.
fn action_covers(pattern: &str, action: &str) -> bool {
    fn glob(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => glob(&p[1..], s) || (!s.is_empty() && glob(p, &s[1..])),
            (Some(b'?'), Some(_)) => glob(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => glob(&p[1..], &s[1..]),
            _ => false,
        }
    }
    glob(
        pattern.to_ascii_lowercase().as_bytes(),
        action.to_ascii_lowercase().as_bytes(),
    )
}

/// A JSON string or array of strings, as strings.
fn strings(v: &serde_json::Value) -> Vec<String> {
    match v {
        serde_json::Value::String(s) => vec![s.clone()],
        serde_json::Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// Can a listing allowed by this statement's condition reach the records?
/// Only an `s3:prefix` condition (StringEquals/StringLike) whose every
/// value stays outside `meta_prefix` keeps them out; a listing with prefix
/// "" lists them, so no condition, or a StringNotLike, does not.
fn lists_records(condition: &serde_json::Value, meta_prefix: &str) -> bool {
    let mut allowed: Option<Vec<(String, bool)>> = None;
    if let Some(ops) = condition.as_object() {
        for (op, keys) in ops {
            let like = match op.as_str() {
                "StringEquals" => false,
                "StringLike" => true,
                _ => continue,
            };
            for (key, values) in keys.as_object().into_iter().flatten() {
                if key.eq_ignore_ascii_case("s3:prefix") {
                    allowed
                        .get_or_insert_with(Vec::new)
                        .extend(strings(values).into_iter().map(|v| (v, like)));
                }
            }
        }
    }
    let Some(allowed) = allowed else {
        return true;
    };
    allowed.iter().any(|(value, like)| {
        let head = if *like {
            value.split(['*', '?']).next().unwrap_or_default()
        } else {
            value.as_str()
        };
        meta_prefix.starts_with(head) || head.starts_with(meta_prefix)
    })
}

/// What a bucket policy lets anyone (Principal `*`) do that an attacker
/// would use: put objects, or list the records prefix. Deny statements
/// are not weighed: a finding says which statement to look at.
fn policy_findings(text: &str, meta_prefix: &str) -> Result<Vec<String>, String> {
    let doc: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("the bucket policy is not JSON ({e})"))?;
    let statements = match &doc["Statement"] {
        serde_json::Value::Array(a) => a.clone(),
        s @ serde_json::Value::Object(_) => vec![s.clone()],
        _ => Vec::new(),
    };
    let mut findings = Vec::new();
    for (n, st) in statements.iter().enumerate() {
        if st["Effect"].as_str() != Some("Allow") {
            continue;
        }
        let principal = &st["Principal"];
        let public =
            principal.as_str() == Some("*") || strings(&principal["AWS"]).iter().any(|p| p == "*");
        if !public {
            continue;
        }
        let name = st["Sid"]
            .as_str()
            .map(|s| format!("statement {s:?}"))
            .unwrap_or_else(|| format!("statement {}", n + 1));
        let actions = strings(&st["Action"]);
        if let Some(a) = actions.iter().find(|a| action_covers(a, "s3:PutObject")) {
            findings.push(format!(
                "the bucket policy's {name} allows {a} to Principal \"*\": anyone can write objects"
            ));
        }
        if let Some(a) = actions.iter().find(|a| action_covers(a, "s3:ListBucket")) {
            if lists_records(&st["Condition"], meta_prefix) {
                findings.push(format!(
                    "the bucket policy's {name} allows {a} to Principal \"*\" with no s3:prefix condition keeping out {meta_prefix}: anyone can list the release records"
                ));
            }
        }
    }
    Ok(findings)
}

/// Does the bucket's policy or ACL let anyone write, or list the records?
async fn bucket_exposure(s: &S3Store, meta_prefix: &str) -> Check {
    const NAME: &str = "bucket exposure";
    let mut findings = Vec::new();
    let mut fixes = Vec::new();
    let mut unchecked = Vec::new();
    match s.bucket_policy().await {
        Ok(None) => {}
        Ok(Some(text)) => match policy_findings(&text, meta_prefix) {
            Ok(f) if f.is_empty() => {}
            Ok(f) => {
                findings.extend(f);
                fixes.push(format!(
                    "remove those statements from the bucket policy (aws s3api get-bucket-policy --bucket {b}; edit; put-bucket-policy), \
                     and turn on S3 Block Public Access (aws s3api put-public-access-block --bucket {b} ...): \
                     the CDN reads with its own access (CloudFront origin access control), not a public bucket",
                    b = s.bucket()
                ));
            }
            Err(e) => unchecked.push(e),
        },
        Err(e) => unchecked.push(one_line(&e)),
    }
    match s.bucket_acl_groups().await {
        Ok(groups) => {
            let f = acl_findings(&groups);
            if !f.is_empty() {
                findings.extend(f);
                fixes.push(format!(
                    "make the ACL private: aws s3api put-bucket-acl --bucket {} --acl private",
                    s.bucket()
                ));
            }
        }
        Err(e) => unchecked.push(one_line(&e)),
    }
    if !findings.is_empty() {
        return problem(NAME, Status::Fail, findings.join("; "), fixes.join("; "));
    }
    if !unchecked.is_empty() {
        return problem(
            NAME,
            Status::Warn,
            format!(
                "could not check who may write or list the bucket: {}",
                unchecked.join("; ")
            ),
            format!(
                "grant s3:GetBucketPolicy and s3:GetBucketAcl so doctor can check it; on a server without these calls, \
                 check by hand that only cutover may write and nobody may list {meta_prefix}"
            ),
        );
    }
    pass(
        NAME,
        format!("neither the bucket policy nor its ACL lets anyone write, or list {meta_prefix}"),
    )
}

/// Does the CDN serve the release records (`META_PREFIX/releases/ID.json`:
/// every file of a release, who deployed it)? Fetched at the live
/// release's record: a 200 with that record fails.
async fn cdn_records(
    cdn: &Cdn,
    config: &crate::config::Config,
    cdn_url: &str,
    meta_prefix: &str,
    id: &str,
) -> Check {
    let bucket = config.bucket.as_deref().unwrap_or("BUCKET");
    let public = config.list_prefix();
    const NAME: &str = "cdn records";
    let key = crate::contract::record_key(meta_prefix, id);
    let url = format!(
        "{}/{}",
        cdn_url.trim_end_matches('/'),
        crate::contract::url_path(&key)
    );
    match cdn.get(&url).await {
        Ok((status, body)) if (200..300).contains(&status) => {
            let record = serde_json::from_slice::<serde_json::Value>(&body)
                .is_ok_and(|v| v["id"].as_str() == Some(id));
            if record {
                problem(
                    NAME,
                    Status::Fail,
                    format!("the CDN serves release records: {url} answers {status} with release {id}'s record"),
                    format!(
                        "keep the CDN from reading {meta_prefix}: in the bucket policy, let the CDN's principal \
                         (CloudFront origin access control) s3:GetObject only arn:aws:s3:::{bucket}/{public}*, \
                         or deny it arn:aws:s3:::{bucket}/{meta_prefix}*; or make the CDN refuse /{meta_prefix}*"
                    ),
                )
            } else {
                pass(
                    NAME,
                    format!("{url} answers {status} with something other than the record: the CDN does not serve release records"),
                )
            }
        }
        Ok((status, _)) if status < 500 => pass(
            NAME,
            format!("{url} answers {status}: the CDN does not serve release records"),
        ),
        Ok((status, _)) => problem(
            NAME,
            Status::Warn,
            format!("{url} answers {status}, so whether the CDN serves release records is unknown"),
            "run doctor again once the CDN answers",
        ),
        Err(e) => problem(
            NAME,
            Status::Warn,
            one_line(&e),
            "run doctor again once the CDN answers",
        ),
    }
}

impl Render for Outcome {
    fn text(&self) -> String {
        let mut t = String::new();
        for c in &self.checks {
            let mark = match c.status {
                Status::Pass => "✓",
                Status::Warn => "!",
                Status::Fail => "✗",
            };
            t.push_str(&format!("{mark} {}: {}\n", c.name, c.detail));
            if let Some(fix) = &c.fix {
                t.push_str(&format!("    fix: {fix}\n"));
            }
        }
        t
    }

    fn exit_code(&self) -> u8 {
        if self.checks.iter().any(|c| c.status == Status::Fail) {
            2
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exposure(url: &str) -> (Status, String) {
        let c = redis_exposure(&[url.to_string()]);
        (c.status, c.detail)
    }

    #[test]
    fn a_loopback_redis_needs_no_password_or_tls() {
        for url in [
            "redis://127.0.0.1:6379",
            "redis://127.0.0.2:6379/1",
            "redis://[::1]:6379",
            "redis://localhost:6379",
            "redis://LOCALHOST",
            "redis+sentinel://127.0.0.1:26379,localhost:26380/mymaster",
            "redis+unix:///run/redis.sock",
        ] {
            let (status, detail) = exposure(url);
            assert_eq!(status, Status::Pass, "{url}");
            assert!(detail.contains("loopback"), "{url}: {detail}");
        }
    }

    #[test]
    fn a_redis_other_machines_reach_needs_a_password_and_tls() {
        for host in [
            "10.0.0.5",
            "redis.internal",
            "[fd00::1]",
            "localhost.example.com",
        ] {
            let (status, detail) = exposure(&format!("redis://{host}:6379"));
            assert_eq!(status, Status::Fail, "{host}");
            assert!(detail.contains("without a password"), "{host}: {detail}");
            assert!(detail.contains("without TLS"), "{host}: {detail}");
            let (status, detail) = exposure(&format!("rediss://{host}:6379"));
            assert_eq!(status, Status::Fail, "{host} over TLS, no password");
            assert!(!detail.contains("without TLS"), "{host}: {detail}");
            let (status, detail) = exposure(&format!("redis://app:s3cret@{host}:6379"));
            assert_eq!(status, Status::Warn, "{host} with a password, in clear");
            assert!(
                detail.contains("without TLS") && !detail.contains("s3cret"),
                "{host}: {detail}"
            );
            let (status, _) = exposure(&format!("rediss://app:s3cret@{host}:6379"));
            assert_eq!(status, Status::Pass, "{host} with a password over TLS");
        }
        // An empty password is none; a Sentinel URL has no TLS.
        assert_eq!(exposure("redis://app:@10.0.0.5").0, Status::Fail);
        assert_eq!(
            exposure("redis+sentinel://:pw@10.0.0.5:26379/m").0,
            Status::Warn
        );
        // One exposed target of several is enough, and it is the one named.
        let c = redis_exposure(&[
            "redis://127.0.0.1:6379".to_string(),
            "redis://10.0.0.7:6379".to_string(),
        ]);
        assert_eq!(c.status, Status::Fail);
        assert!(c.detail.contains("10.0.0.7") && !c.detail.contains("127.0.0.1"));
        assert!(c.fix.unwrap().contains("rediss://"));
    }

    const META: &str = "_cutover/shop/";

    fn findings(policy: serde_json::Value) -> Vec<String> {
        policy_findings(&policy.to_string(), META).unwrap()
    }

    #[test]
    fn a_policy_that_lets_anyone_write_or_list_the_records_is_found() {
        let public_write = serde_json::json!({"Statement": [{"Sid": "Upload", "Effect": "Allow",
            "Principal": "*", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": "arn:aws:s3:::b/*"}]});
        let f = findings(public_write);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].contains("\"Upload\"") && f[0].contains("s3:PutObject"));
        for action in ["s3:*", "*", "s3:Put*", "S3:PUTOBJECT"] {
            let p = serde_json::json!({"Statement": {"Effect": "Allow", "Principal": {"AWS": ["*"]}, "Action": action}});
            assert!(!findings(p).is_empty(), "{action}");
        }
        let list = |condition: serde_json::Value| {
            findings(
                serde_json::json!({"Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"},
                "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::b", "Condition": condition}]}),
            )
        };
        assert_eq!(list(serde_json::Value::Null).len(), 1);
        assert_eq!(
            list(serde_json::json!({"StringNotLike": {"s3:prefix": "_cutover/*"}})).len(),
            1,
            "a prefix \"\" still lists the records"
        );
        assert_eq!(
            list(serde_json::json!({"StringLike": {"s3:prefix": ["packs/*", "_cut*"]}})).len(),
            1
        );
        assert_eq!(
            list(serde_json::json!({"StringEquals": {"s3:prefix": ""}})).len(),
            1
        );
        assert!(
            list(serde_json::json!({"StringLike": {"s3:prefix": ["packs/*", "assets/"]}}))
                .is_empty()
        );
        assert!(
            list(serde_json::json!({"StringEquals": {"s3:prefix": "_cutover/other/"}})).is_empty()
        );
    }

    #[test]
    fn a_policy_for_named_principals_or_reads_only_is_not_a_finding() {
        for st in [
            serde_json::json!({"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject"}),
            serde_json::json!({"Effect": "Deny", "Principal": "*", "Action": "s3:*"}),
            serde_json::json!({"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::1:role/ci"}, "Action": "s3:*"}),
            serde_json::json!({"Effect": "Allow", "Principal": {"Service": "cloudfront.amazonaws.com"}, "Action": "s3:GetObject"}),
        ] {
            assert!(
                findings(serde_json::json!({"Statement": [st]})).is_empty(),
                "{st}"
            );
        }
        assert!(policy_findings("not json", META).is_err());
    }

    #[test]
    fn acl_grants_to_everyone_are_found() {
        let all = "http://acs.amazonaws.com/groups/global/AllUsers".to_string();
        let authed = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers".to_string();
        let log = "http://acs.amazonaws.com/groups/s3/LogDelivery".to_string();
        let f = acl_findings(&[
            (all.clone(), "READ".into()),
            (authed.clone(), "WRITE".into()),
            (all.clone(), "READ_ACP".into()),
            (log, "WRITE".into()),
        ]);
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(f[0].contains("anyone") && f[0].contains("list"));
        assert!(f[1].contains("any AWS account") && f[1].contains("write"));
        assert!(acl_findings(&[(all, "FULL_CONTROL".into())])[0].contains("write"));
    }
}
