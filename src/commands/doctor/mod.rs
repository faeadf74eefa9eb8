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

mod exposure;
use exposure::{bucket_exposure, redis_exposure, redis_users};

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
        let mut users = Vec::new();
        for target in reg.each() {
            users.push((target.name().to_string(), target.broad_users().await?));
        }
        let loopback = config.redis_urls.iter().all(|u| exposure::on_loopback(u));
        checks.push(redis_users(&users, loopback));
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
        if let (Some(s), Some(l)) = (&store, live.as_ref()) {
            if let Some(id) = &l.current {
                if let Ok(Some(r)) = records::read(s, &config.meta_prefix()?, id).await {
                    // Every Redis target's signature, beyond the first's.
                    let others = super::inspect::target_signature_problems(l, &r);
                    if !others.is_empty() {
                        checks.push(problem(
                            "signature",
                            Status::Fail,
                            others.join("; "),
                            format!("run `cutover activate {id}`"),
                        ));
                    }
                    live_record = Some(r);
                }
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
