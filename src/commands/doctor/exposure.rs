//! Doctor's checks of what an attacker would use: a Redis other machines
//! reach without a password or TLS, a bucket anyone may write or whose
//! records anyone may list, Redis users broader than their printed line.

use super::{pass, problem, Check, Status};
use crate::error::one_line;
use crate::store::redis::BroadUser;
use crate::store::s3::S3Store;

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

/// Only this machine reaches the Redis of this URL (loopback hosts, a
/// Unix socket); an unparsable URL is not.
pub(super) fn on_loopback(raw: &str) -> bool {
    redis_endpoint(raw).is_some_and(|(far, _, _)| far.is_empty())
}

/// A Redis on another host that takes no password lets anyone who reaches
/// it switch the live release (fail); one without TLS sends its password
/// and the manifest in clear (warning). Decided from the URLs alone: a
/// loopback host is fine.
pub(super) fn redis_exposure(urls: &[String]) -> Check {
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
pub(super) async fn bucket_exposure(s: &S3Store, meta_prefix: &str) -> Check {
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

/// Redis users broader than a reader needs: each target's other users
/// (see `Registry::broad_users`) that may write the live keys or wipe or
/// reconfigure the server. A warning where other machines reach the Redis
/// (on a loopback one, only this machine's processes can log in), and when
/// the users cannot be listed (say so: check them by hand).
pub(super) fn redis_users(found: &[(String, Option<Vec<BroadUser>>)], loopback: bool) -> Check {
    const NAME: &str = "redis users";
    const FIX: &str = "give each reader the line `cutover policy --format redis-acl` prints for it \
                       (ACL SETUSER NAME reset, then that line); only cutover's own user writes the live keys";
    let unlisted: Vec<&str> = found
        .iter()
        .filter(|(_, users)| users.is_none())
        .map(|(t, _)| t.as_str())
        .collect();
    let broad: Vec<String> = found
        .iter()
        .flat_map(|(target, users)| {
            let on = if found.len() > 1 {
                format!(" on {target}")
            } else {
                String::new()
            };
            users
                .iter()
                .flatten()
                .map(move |b| format!("{}{on} may {}", b.user, b.may.join(", ")))
        })
        .collect();
    if !broad.is_empty() && !loopback {
        return problem(
            NAME,
            Status::Warn,
            format!(
                "{}: whoever logs in as them can make the app render any script",
                broad.join("; ")
            ),
            FIX,
        );
    }
    if !unlisted.is_empty() {
        return problem(
            NAME,
            Status::Warn,
            format!(
                "cannot list the other Redis users of {} (ACL LIST or ACL DRYRUN refused to cutover's user), \
                 so whether a reader may write the live keys is unchecked",
                unlisted.join(", ")
            ),
            format!("check by hand, or run doctor as a user with +acl|whoami +acl|list +acl|dryrun: {FIX}"),
        );
    }
    if broad.is_empty() {
        pass(
            NAME,
            "no other Redis user may write the live keys, FLUSHALL or CONFIG SET",
        )
    } else {
        pass(
            NAME,
            format!(
                "{}; the Redis is on a loopback host: only this machine's processes log in",
                broad.join("; ")
            ),
        )
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
    fn redis_users_broader_than_a_reader_are_found_where_others_reach_them() {
        let broad = vec![(
            "redis://r:6379/0".to_string(),
            Some(vec![BroadUser {
                user: "shop-web".to_string(),
                may: vec!["write cutover:{shop}:current".to_string()],
            }]),
        )];
        let far = redis_users(&broad, false);
        assert_eq!(far.status, Status::Warn);
        assert!(
            far.detail
                .starts_with("shop-web may write cutover:{shop}:current"),
            "{}",
            far.detail
        );
        assert_eq!(redis_users(&broad, true).status, Status::Pass);
        let unlisted = vec![("redis://r:6379/0".to_string(), None)];
        assert_eq!(redis_users(&unlisted, true).status, Status::Warn);
        let fine = vec![("redis://r:6379/0".to_string(), Some(Vec::new()))];
        assert_eq!(redis_users(&fine, false).status, Status::Pass);
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
