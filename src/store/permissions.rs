//! Every S3 and CloudFront call the store makes, the IAM action each
//! needs, on what, and which roles make it; and every Redis command the CLI
//! sends. `cutover policy` prints its documents from these tables, and a
//! refused call names its permission from them (a unit test in
//! `commands/policy.rs` keeps the tables and the store's calls equal).

use serde::Serialize;

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

/// What a call acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum On {
    /// The bucket itself (`arn:aws:s3:::BUCKET`).
    Bucket,
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

pub const ALL: &[Role] = &[Deploy, Activate, Rollback, Prune, Promote, Read];
/// The commands that switch (and restore mutable files, and invalidate).
pub const SWITCHING: &[Role] = &[Deploy, Activate, Rollback, Promote];
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
    // listings: what the bucket holds under the prefix; the records. On the
    // bucket, without an s3:prefix condition: S3 answers a HEAD or GET of a
    // missing object 403 instead of 404 to whoever may not list the bucket,
    // and cutover must tell a missing object (exit 4) from a refused one
    // (exit 2). The condition key is absent from those requests, so a
    // conditioned grant would not count.
    call("ListObjectsV2", "s3:ListBucket", &[On::Bucket], ALL, When::Always),
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
    ("zrange", true),
    ("lrange", true),
    ("lpush", false),
    ("ltrim", false),
    ("publish", false),
    ("sadd", false),
    ("srem", false),
    ("smembers", true),
    ("getdel", false),
    ("zrem", false),
    ("zremrangebyscore", false),
    ("multi", false),
    ("exec", false),
    ("eval", false),
    ("evalsha", false),
    ("script|load", false),
];

/// The IAM actions a call needs (CopyObject: its source's and its target's).
pub fn actions_of_call(call: &str) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = CALLS
        .iter()
        .filter(|c| {
            c.call == call
                || c.call
                    .strip_prefix(call)
                    .is_some_and(|r| r.starts_with(" ("))
        })
        .map(|c| c.action)
        .collect();
    out.dedup();
    out
}

/// Whether a call acts on the bucket itself (its permission is granted on
/// `arn:aws:s3:::BUCKET`, not on objects).
pub fn on_bucket(call: &str) -> bool {
    CALLS
        .iter()
        .any(|c| c.call == call && c.on.contains(&On::Bucket))
}
