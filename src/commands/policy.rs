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

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    Iam,
    RedisAcl,
}

pub use crate::store::permissions::{Call, On, Role, When, CALLS, REDIS};
use Role::Read;

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
        commands: &[
            "get",
            "mget",
            "zrange",
            "zscore",
            "subscribe",
            "zadd",
            "zremrangebyscore",
            "set",
        ],
    },
    Reader {
        name: "node",
        user: "cutover-reader",
        none: "nocommands",
        commands: &[
            "get",
            "mget",
            "zscore",
            "subscribe",
            "zadd",
            "zremrangebyscore",
            "set",
        ],
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
    out
}

/// The minimal IAM policy document of `role`: one statement per set of
/// resources; actions and resources sorted, so it reads the same each time.
pub fn iam_policy(role: Role, scope: &Scope, wait: bool) -> Value {
    let bucket_arn = format!("arn:aws:s3:::{}", scope.bucket);
    let mut groups: BTreeMap<BTreeSet<On>, BTreeSet<&str>> = BTreeMap::new();
    for (action, on) in actions(role, scope, wait) {
        groups.entry(on).or_default().insert(action);
    }
    let resource = |o: &On| match o {
        On::Bucket => bucket_arn.clone(),
        On::Public => format!("{bucket_arn}/{}*", scope.list_prefix),
        On::Records => format!("{bucket_arn}/{}*", scope.meta_prefix),
        On::Distribution => format!(
            "arn:aws:cloudfront::*:distribution/{}",
            scope.distribution.as_deref().unwrap_or_default()
        ),
    };
    let statements: Vec<Value> = groups
        .into_iter()
        .map(|(on, actions)| {
            let sid = on
                .iter()
                .map(|o| format!("{o:?}"))
                .collect::<Vec<_>>()
                .join("And");
            let resources: BTreeSet<String> = on.iter().map(resource).collect();
            json!({
                "Sid": sid,
                "Effect": "Allow",
                "Action": actions,
                "Resource": resources,
            })
        })
        .collect();
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

/// `cutover policy promote --from ENV --to ENV`: what promote needs on the
/// target, and reads of the source's objects and records where the source
/// is another bucket or prefix.
pub fn run_promote(
    source: &Config,
    target: &Config,
    role: Role,
    format: Format,
    wait: bool,
) -> anyhow::Result<Outcome> {
    if role != Role::Promote {
        return Err(crate::error::Failure::input(format!(
            "--from and --to are for `cutover policy promote`, not {}; drop them",
            serde_json::to_value(role)?.as_str().unwrap_or_default()
        )));
    }
    let mut outcome = run(target, role, format, wait)?;
    if let Some(policy) = &mut outcome.policy {
        let statements = policy["Statement"]
            .as_array_mut()
            .expect("a statement list");
        statements.extend(source_reads(&Scope::of(source)?, &Scope::of(target)?));
    }
    Ok(outcome)
}

/// The source side of a promotion: list its bucket, read its objects and
/// records; nothing when it is the target's own bucket and prefixes.
pub fn source_reads(source: &Scope, target: &Scope) -> Vec<Value> {
    if source.bucket == target.bucket
        && source.list_prefix == target.list_prefix
        && source.meta_prefix == target.meta_prefix
    {
        return Vec::new();
    }
    let arn = format!("arn:aws:s3:::{}", source.bucket);
    let objects: BTreeSet<String> = [
        format!("{arn}/{}*", source.list_prefix),
        format!("{arn}/{}*", source.meta_prefix),
    ]
    .into();
    vec![
        json!({"Sid": "SourceBucket", "Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": [arn]}),
        json!({"Sid": "SourceObjects", "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": objects}),
    ]
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
    use crate::store::permissions::{ALL, SWITCHING};
    use Role::{Activate, Deploy, Promote, Prune, Rollback};

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
    fn the_deploy_policy_lists_the_bucket_and_writes_only_under_its_prefixes() {
        let doc = iam_policy(Deploy, &scope(None), false);
        let statements = doc["Statement"].as_array().unwrap();
        let bucket = statements
            .iter()
            .find(|s| s["Resource"] == json!(["arn:aws:s3:::b"]))
            .unwrap();
        // Unconditioned: a missing object must be a 404, not a 403.
        assert!(bucket.get("Condition").is_none(), "{bucket}");
        assert!(bucket["Action"]
            .as_array()
            .unwrap()
            .contains(&json!("s3:ListBucket")));
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
    }

    #[test]
    fn a_refused_call_names_the_actions_of_its_row() {
        assert_eq!(
            crate::store::permissions::actions_of_call("HeadObject"),
            ["s3:GetObject"]
        );
        assert_eq!(
            crate::store::permissions::actions_of_call("CopyObject"),
            ["s3:GetObject", "s3:PutObject"]
        );
        assert_eq!(
            crate::store::permissions::actions_of_call("ListObjectsV2"),
            ["s3:ListBucket"]
        );
        // Every call the store names when S3 refuses it has a row.
        for source in [
            include_str!("../store/s3/mod.rs"),
            include_str!("../store/s3/list.rs"),
            include_str!("../store/s3/upload.rs"),
        ] {
            for (i, _) in source
                .match_indices("self.error(\"")
                .chain(source.match_indices("self.refused(\""))
            {
                let rest = &source[i..];
                let call = rest.split('"').nth(1).unwrap();
                assert!(
                    !crate::store::permissions::actions_of_call(call).is_empty(),
                    "{call} has no row in CALLS"
                );
            }
        }
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
