//! `cutover policy ROLE [--format iam|redis-acl]`: the least privilege a role
//! needs, for the configured bucket, prefix, records prefix and CloudFront
//! distribution. Both documents come from the tables below, which list every
//! call cutover makes ([`CALLS`]: each S3 and CloudFront call of
//! `store/s3` and `store/cloudfront.rs`; [`REDIS`]: each Redis command) and
//! which roles make it, so a new call is a new row and every printed policy
//! follows.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{json, Value};

use crate::config::Config;
use crate::render::Render;

/// Who runs cutover with the credentials: a command, or the read-only
/// commands together (`status`, `releases`, `history`, `diff`, `verify`,
/// `doctor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Deploy,
    Activate,
    Rollback,
    Prune,
    Promote,
    Read,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    Iam,
    RedisAcl,
}

/// What a call acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum On {
    /// The bucket itself (`arn:aws:s3:::BUCKET`).
    Bucket,
    /// Listing the public prefix: the bucket, with an `s3:prefix` condition.
    ListPublic,
    /// Listing the records prefix: likewise.
    ListRecords,
    /// Objects under the public prefix.
    Public,
    /// Objects under the records prefix (`meta_prefix`: release records,
    /// content-addressed copies of mutable files).
    Records,
    /// The CloudFront distribution (`cloudfront_distribution_id`).
    Distribution,
}

/// When a role makes a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    Always,
    /// Only with `cloudfront_distribution_id` set.
    Distribution,
    /// Only with a distribution and `--wait`.
    Wait,
}

/// One call cutover makes, the IAM action it needs, and who makes it.
#[derive(Debug, Clone, Copy)]
pub struct Call {
    /// The API operation.
    pub call: &'static str,
    pub action: &'static str,
    pub on: &'static [On],
    pub roles: &'static [Role],
    pub when: When,
}

use Role::{Activate, Deploy, Promote, Prune, Read, Rollback};

const ALL: &[Role] = &[Deploy, Activate, Rollback, Prune, Promote, Read];
/// The commands that switch (and restore mutable files, and invalidate).
const SWITCHING: &[Role] = &[Deploy, Activate, Rollback, Promote];
const OBJECTS: &[On] = &[On::Public, On::Records];

const fn call(
    call: &'static str,
    action: &'static str,
    on: &'static [On],
    roles: &'static [Role],
    when: When,
) -> Call {
    Call {
        call,
        action,
        on,
        roles,
        when,
    }
}

/// Every S3 and CloudFront call cutover makes (src/store/s3/*.rs,
/// src/store/cloudfront.rs), the IAM action it needs, on what, and which
/// roles make it.
#[rustfmt::skip]
pub const CALLS: &[Call] = &[
    // doctor
    call("HeadBucket", "s3:ListBucket", &[On::Bucket], &[Read], When::Always),
    call("GetBucketLocation", "s3:GetBucketLocation", &[On::Bucket], &[Read], When::Always),
    call("GetBucketCors", "s3:GetBucketCORS", &[On::Bucket], &[Read], When::Always),
    // doctor: who else may write or list the bucket
    call("GetBucketPolicy", "s3:GetBucketPolicy", &[On::Bucket], &[Read], When::Always),
    call("GetBucketAcl", "s3:GetBucketAcl", &[On::Bucket], &[Read], When::Always),
    // listings: what the bucket holds under the prefix; the records
    call("ListObjectsV2", "s3:ListBucket", &[On::ListPublic], &[Deploy, Prune, Read], When::Always),
    call("ListObjectsV2", "s3:ListBucket", &[On::ListRecords], ALL, When::Always),
    // what an object holds: HEAD, or its bytes read back; records read
    call("HeadObject", "s3:GetObject", OBJECTS, ALL, When::Always),
    call("GetObject", "s3:GetObject", OBJECTS, ALL, When::Always),
    // uploads (conditional: never over another object) and records
    call("PutObject", "s3:PutObject", OBJECTS, &[Deploy, Promote], When::Always),
    call("CreateMultipartUpload", "s3:PutObject", OBJECTS, &[Deploy], When::Always),
    call("UploadPart", "s3:PutObject", OBJECTS, &[Deploy], When::Always),
    call("CompleteMultipartUpload", "s3:PutObject", OBJECTS, &[Deploy], When::Always),
    call("AbortMultipartUpload", "s3:AbortMultipartUpload", OBJECTS, &[Deploy], When::Always),
    call("ListMultipartUploads", "s3:ListBucketMultipartUploads", &[On::Bucket], &[Deploy], When::Always),
    // server-side copies: new headers, restored mutable files, promotion
    call("CopyObject (source)", "s3:GetObject", OBJECTS, SWITCHING, When::Always),
    call("CopyObject (target)", "s3:PutObject", &[On::Public], SWITCHING, When::Always),
    // prune only
    call("DeleteObjects", "s3:DeleteObject", OBJECTS, &[Prune], When::Always),
    // CloudFront
    call("CreateInvalidation", "cloudfront:CreateInvalidation", &[On::Distribution], SWITCHING, When::Distribution),
    call("GetInvalidation", "cloudfront:GetInvalidation", &[On::Distribution], SWITCHING, When::Wait),
];

/// One Redis command the CLI sends, and whether the read-only commands
/// send it. The commands that write send all of them (docs/redis.md,
/// "Minimal ACL", is this table for app `shop`: a unit test holds them equal).
pub const REDIS: &[(&str, bool)] = &[
    ("ping", true),
    ("get", true),
    ("mget", true),
    ("set", false),
    ("del", false),
    ("type", true),
    ("exists", true),
    ("pttl", true),
    ("pexpire", false),
    ("zadd", false),
    ("zrevrange", true),
    ("lrange", true),
    ("lpush", false),
    ("ltrim", false),
    ("publish", false),
    ("sadd", false),
    ("srem", false),
    ("smembers", true),
    ("getdel", false),
    ("zrem", false),
    ("multi", false),
    ("exec", false),
    ("eval", false),
    ("evalsha", false),
    ("script|load", false),
];

/// A reader library: its user name in its README and the commands it sends.
#[derive(Debug, Clone, Copy)]
pub struct Reader {
    pub name: &'static str,
    user: &'static str,
    /// How its README spells "no commands but these".
    none: &'static str,
    commands: &'static [&'static str],
}

/// The readers (ruby/README.md, "Minimal Redis ACL", and node/README.md,
/// "Redis permissions", are these lines for app `shop`).
pub const READERS: &[Reader] = &[
    Reader {
        name: "ruby",
        user: "shop-web",
        none: "-@all",
        commands: &["get", "mget", "zrange", "subscribe", "zadd", "zremrangebyscore", "set"],
    },
    Reader {
        name: "node",
        user: "cutover-reader",
        none: "nocommands",
        commands: &["get", "mget", "subscribe", "zadd", "zremrangebyscore", "set"],
    },
];

/// What a policy is for: the configured places.
#[derive(Debug, Clone)]
pub struct Scope {
    pub bucket: String,
    /// The public prefix as listed ("packs/", or "" for the whole bucket).
    pub list_prefix: String,
    pub meta_prefix: String,
    pub distribution: Option<String>,
}

impl Scope {
    pub fn of(config: &Config) -> anyhow::Result<Scope> {
        Ok(Scope {
            bucket: config.bucket()?.to_string(),
            list_prefix: config.list_prefix(),
            meta_prefix: config.meta_prefix()?,
            distribution: config.cloudfront_distribution_id.clone(),
        })
    }
}

/// The IAM actions `role` needs, with what each acts on.
pub fn actions(role: Role, scope: &Scope, wait: bool) -> BTreeMap<&'static str, BTreeSet<On>> {
    let mut out: BTreeMap<&'static str, BTreeSet<On>> = BTreeMap::new();
    for c in CALLS.iter().filter(|c| c.roles.contains(&role)) {
        let applies = match c.when {
            When::Always => true,
            When::Distribution => scope.distribution.is_some(),
            When::Wait => wait && scope.distribution.is_some(),
        };
        if applies {
            out.entry(c.action)
                .or_default()
                .extend(c.on.iter().copied());
        }
    }
    // Listing the bucket unconditioned (HeadBucket) covers the prefixes.
    if let Some(on) = out.get_mut("s3:ListBucket") {
        if on.contains(&On::Bucket) {
            on.retain(|o| *o == On::Bucket);
        }
    }
    out
}

/// The minimal IAM policy document of `role`: listing under a prefix
/// condition, then one statement per set of resources; actions and
/// resources sorted, so it reads the same each time.
pub fn iam_policy(role: Role, scope: &Scope, wait: bool) -> Value {
    let bucket_arn = format!("arn:aws:s3:::{}", scope.bucket);
    let mut groups: BTreeMap<BTreeSet<On>, BTreeSet<&str>> = BTreeMap::new();
    let mut list_prefixes: BTreeSet<String> = BTreeSet::new();
    for (action, on) in actions(role, scope, wait) {
        let (listing, rest): (BTreeSet<On>, BTreeSet<On>) = on
            .into_iter()
            .partition(|o| matches!(o, On::ListPublic | On::ListRecords));
        for l in listing {
            list_prefixes.insert(match l {
                On::ListPublic => format!("{}*", scope.list_prefix),
                _ => format!("{}*", scope.meta_prefix),
            });
        }
        if !rest.is_empty() {
            groups.entry(rest).or_default().insert(action);
        }
    }
    let resource = |o: &On| match o {
        On::Bucket | On::ListPublic | On::ListRecords => bucket_arn.clone(),
        On::Public => format!("{bucket_arn}/{}*", scope.list_prefix),
        On::Records => format!("{bucket_arn}/{}*", scope.meta_prefix),
        On::Distribution => format!(
            "arn:aws:cloudfront::*:distribution/{}",
            scope.distribution.as_deref().unwrap_or_default()
        ),
    };
    let mut statements = Vec::new();
    if !list_prefixes.is_empty() {
        statements.push(json!({
            "Sid": "ListThePrefixes",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": bucket_arn,
            "Condition": {"StringLike": {"s3:prefix": list_prefixes}},
        }));
    }
    for (on, actions) in groups {
        let sid = on
            .iter()
            .map(|o| format!("{o:?}"))
            .collect::<Vec<_>>()
            .join("And");
        let resources: BTreeSet<String> = on.iter().map(resource).collect();
        statements.push(json!({
            "Sid": sid,
            "Effect": "Allow",
            "Action": actions,
            "Resource": resources,
        }));
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// The `ACL SETUSER` line of the CLI's Redis user for `role`.
pub fn cli_acl(role: Role, app: &str) -> String {
    let commands = REDIS
        .iter()
        .filter(|(_, reads)| role != Read || *reads)
        .map(|(c, _)| format!("+{c}"))
        .collect::<Vec<_>>()
        .join(" ");
    let user = if role == Read {
        "cutover-read"
    } else {
        "cutover-deploy"
    };
    format!(
        "ACL SETUSER {user} on >PASSWORD resetkeys ~cutover:{{{app}}}:* resetchannels &cutover:{{{app}}}:events -@all {commands}"
    )
}

/// The `ACL SETUSER` line of a reader's Redis user: reads on the app's keys,
/// writes only on its fleet keys (docs/redis.md, "The fleet").
pub fn reader_acl(reader: &Reader, app: &str) -> String {
    let commands = reader
        .commands
        .iter()
        .map(|c| format!("+{c}"))
        .collect::<Vec<_>>()
        .join(" ");
    let user = reader.user.replace("shop", app);
    format!(
        "ACL SETUSER {user} on >PASSWORD resetkeys %R~cutover:{{{app}}}:* ~cutover:{{{app}}}:fleet* resetchannels &cutover:{{{app}}}:events {} {commands}",
        reader.none
    )
}

#[derive(Debug, Serialize)]
pub struct Outcome {
    pub command: &'static str,
    pub app: String,
    pub role: Role,
    pub format: Format,
    /// The IAM policy document (`--format iam`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<Value>,
    /// `ACL SETUSER` lines: `cli`, then each reader (`--format redis-acl`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_acl: Option<BTreeMap<String, String>>,
}

pub fn run(config: &Config, role: Role, format: Format, wait: bool) -> anyhow::Result<Outcome> {
    let app = config.app()?.to_string();
    let (policy, redis_acl) = match format {
        Format::Iam => (Some(iam_policy(role, &Scope::of(config)?, wait)), None),
        Format::RedisAcl => {
            let mut lines = BTreeMap::new();
            lines.insert("cli".to_string(), cli_acl(role, &app));
            for r in READERS {
                lines.insert(r.name.to_string(), reader_acl(r, &app));
            }
            (None, Some(lines))
        }
    };
    Ok(Outcome {
        command: "policy",
        app,
        role,
        format,
        policy,
        redis_acl,
    })
}

impl Render for Outcome {
    fn text(&self) -> String {
        if let Some(p) = &self.policy {
            return serde_json::to_string_pretty(p).expect("policies serialize") + "\n";
        }
        let Some(lines) = &self.redis_acl else {
            return String::new();
        };
        let mut out = format!(
            "# the cutover CLI\n{}\n",
            lines.get("cli").cloned().unwrap_or_default()
        );
        for r in READERS {
            if let Some(line) = lines.get(r.name) {
                out.push_str(&format!("# the {} reader\n{line}\n", r.name));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(distribution: Option<&str>) -> Scope {
        Scope {
            bucket: "b".into(),
            list_prefix: "packs/".into(),
            meta_prefix: "_cutover/shop/".into(),
            distribution: distribution.map(str::to_string),
        }
    }

    fn actions_of(role: Role, wait: bool) -> Vec<&'static str> {
        actions(role, &scope(Some("E1")), wait)
            .into_keys()
            .collect()
    }

    #[test]
    fn only_prune_deletes_and_only_deploy_and_promote_put_records() {
        for role in ALL {
            let a = actions(*role, &scope(None), false);
            assert_eq!(
                a.contains_key("s3:DeleteObject"),
                *role == Prune,
                "{role:?}"
            );
            let puts = a.get("s3:PutObject").cloned().unwrap_or_default();
            assert_eq!(
                puts.contains(&On::Records),
                matches!(role, Deploy | Promote),
                "{role:?}"
            );
            assert_eq!(
                puts.contains(&On::Public),
                SWITCHING.contains(role),
                "{role:?}"
            );
        }
        assert_eq!(
            actions_of(Read, false),
            [
                "s3:GetBucketAcl",
                "s3:GetBucketCORS",
                "s3:GetBucketLocation",
                "s3:GetBucketPolicy",
                "s3:GetObject",
                "s3:ListBucket"
            ]
        );
        assert_eq!(
            actions_of(Prune, true),
            ["s3:DeleteObject", "s3:GetObject", "s3:ListBucket"]
        );
    }

    #[test]
    fn invalidation_is_granted_on_the_distribution_when_configured_and_waiting_with_wait() {
        assert!(actions_of(Deploy, false).contains(&"cloudfront:CreateInvalidation"));
        assert!(!actions_of(Deploy, false).contains(&"cloudfront:GetInvalidation"));
        assert!(actions_of(Rollback, true).contains(&"cloudfront:GetInvalidation"));
        assert!(!actions(Deploy, &scope(None), true)
            .keys()
            .any(|a| a.starts_with("cloudfront:")));
        let doc = iam_policy(Activate, &scope(Some("E1")), false).to_string();
        assert!(
            doc.contains("arn:aws:cloudfront::*:distribution/E1"),
            "{doc}"
        );
    }

    #[test]
    fn the_deploy_policy_lists_under_a_prefix_condition_and_writes_only_under_its_prefixes() {
        let doc = iam_policy(Deploy, &scope(None), false);
        let statements = doc["Statement"].as_array().unwrap();
        let list = &statements[0];
        assert_eq!(list["Action"], "s3:ListBucket");
        assert_eq!(list["Resource"], "arn:aws:s3:::b");
        assert_eq!(
            list["Condition"]["StringLike"]["s3:prefix"],
            json!(["_cutover/shop/*", "packs/*"])
        );
        let objects = statements
            .iter()
            .find(|s| {
                s["Action"]
                    .as_array()
                    .is_some_and(|a| a.contains(&json!("s3:PutObject")))
            })
            .unwrap();
        assert_eq!(
            objects["Resource"],
            json!(["arn:aws:s3:::b/_cutover/shop/*", "arn:aws:s3:::b/packs/*"])
        );
        assert!(!doc.to_string().contains("s3:DeleteObject"));
        // Listing the bucket unconditioned is only for doctor's HeadBucket.
        let read = iam_policy(Read, &scope(None), false);
        assert!(!read.to_string().contains("s3:prefix"), "{read}");
    }

    /// Every SDK call in the store has its row: a new call without one fails here.
    #[test]
    fn every_call_of_the_store_has_a_row() {
        let sources = [
            include_str!("../store/s3/mod.rs"),
            include_str!("../store/s3/list.rs"),
            include_str!("../store/s3/upload.rs"),
            include_str!("../store/s3/check.rs"),
            include_str!("../store/cloudfront.rs"),
        ];
        let verbs = [
            "head_",
            "get_",
            "put_",
            "list_",
            "create_",
            "upload_",
            "complete_",
            "abort_",
            "copy_",
            "delete_",
        ];
        let calls: BTreeSet<String> = sources
            .iter()
            .flat_map(|s| s.lines())
            .filter_map(|l| {
                let name = l.trim().strip_prefix('.')?.strip_suffix("()")?;
                let sdk = name.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                    && verbs.iter().any(|v| name.starts_with(v));
                sdk.then(|| name.replace('_', ""))
            })
            .collect();
        for c in &calls {
            assert!(
                CALLS
                    .iter()
                    .any(|row| row.call.to_ascii_lowercase().starts_with(c.as_str())),
                "the store calls {c} and CALLS has no row for it"
            );
        }
        assert!(calls.len() >= 14, "{calls:?}");
    }

    #[test]
    fn the_documented_acl_lines_are_these() {
        let redis_md = include_str!("../../docs/redis.md");
        assert!(
            redis_md.lines().any(|l| l == cli_acl(Deploy, "shop")),
            "docs/redis.md's minimal ACL is not {}",
            cli_acl(Deploy, "shop")
        );
        let ruby = include_str!("../../ruby/README.md");
        assert!(ruby.lines().any(|l| l == reader_acl(&READERS[0], "shop")));
        let node = include_str!("../../node/README.md");
        assert!(node.lines().any(|l| l == reader_acl(&READERS[1], "shop")));
        assert!(!cli_acl(Read, "shop").contains("+set "));
    }
}
