//! The S3 side: one client, one paginated listing (`list.rs`), conditional
//! uploads with the SHA-256 S3 checks (`upload.rs`), release records outside
//! the public prefix, and S3's errors as one-line messages.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::get_object::GetObjectOutput;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ChecksumMode;
use aws_sdk_s3::Client;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::build::headers::Headers;
use crate::config::Config;
use crate::error::Failure;
use crate::state::Inspected;

mod check;
mod list;
mod upload;

use list::PAGE_KEYS;
pub use upload::{PutOutcome, PutSpec};

/// Object metadata key holding the hex SHA-256 of the bytes (`x-amz-meta-sha256`).
pub const META_SHA256: &str = "sha256";

/// Attempts per request (the first and three retries), each waiting up to
/// `s3_timeout_secs` for an answer.
const ATTEMPTS: u32 = 4;

pub struct S3Store {
    client: Client,
    bucket: String,
    /// The region requests are signed for.
    region: String,
    /// `s3_timeout_secs`, for messages.
    wait: Duration,
    /// Where requests go, for messages.
    endpoint: String,
    /// Multipart uploads in flight (key → upload id once S3 gave one),
    /// aborted on interrupt.
    in_flight: Arc<Mutex<HashMap<String, Option<String>>>>,
    /// Keys per listing page: [`PAGE_KEYS`], or 1,000 once the server refused more.
    page_keys: std::sync::atomic::AtomicI32,
}

/// One server-side copy: same bytes, the headers given.
#[derive(Debug, Clone, Copy)]
pub struct CopySpec<'a> {
    /// The source bucket, when not this store's.
    pub from_bucket: Option<&'a str>,
    pub from: &'a str,
    pub to: &'a str,
    pub headers: &'a Headers,
    pub sha256_hex: &'a str,
    /// Copy only if the source still has this ETag.
    pub if_match: Option<&'a str>,
}

impl S3Store {
    /// Build the client from the standard AWS chain plus our settings.
    pub async fn connect(config: &Config) -> anyhow::Result<S3Store> {
        let bucket = config.bucket()?.to_string();
        let wait = Duration::from_secs(config.s3_timeout_secs);
        let sdk = super::aws::load(config, |loader| {
            loader
                .retry_config(
                    RetryConfig::standard()
                        .with_max_attempts(ATTEMPTS)
                        .with_initial_backoff(Duration::from_millis(100))
                        .with_max_backoff(Duration::from_secs(4)),
                )
                .timeout_config(
                    TimeoutConfig::builder()
                        .connect_timeout(wait.min(Duration::from_secs(5)))
                        .read_timeout(wait)
                        // An upload's body takes its time; a stalled one ends here.
                        .operation_attempt_timeout(wait * 12)
                        .build(),
                )
        })
        .await?;
        let env_endpoint = crate::config::aws_endpoint(&|k| std::env::var(k).ok()).map(|(_, v)| v);
        let endpoint = config
            .s3_endpoint
            .clone()
            .or(env_endpoint)
            .or_else(|| sdk.endpoint_url().map(str::to_string));
        let mut builder = aws_sdk_s3::config::Builder::from(&sdk)
            // Send exactly the SHA-256 we computed; no CRC32 trailers or
            // aws-chunked bodies, which S3-compatible servers may reject.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .force_path_style(config.s3_path_style.unwrap_or(endpoint.is_some()));
        if let Some(ep) = &config.s3_endpoint {
            builder = builder.endpoint_url(ep);
        }
        let region = sdk
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "us-east-1".into());
        if sdk.region().is_none() {
            builder = builder.region(aws_sdk_s3::config::Region::new("us-east-1"));
        }
        let endpoint = endpoint.unwrap_or_else(|| {
            format!(
                "AWS S3 ({})",
                sdk.region()
                    .map(|r| r.to_string())
                    .unwrap_or_else(|| "us-east-1".into())
            )
        });
        Ok(S3Store {
            client: Client::from_conf(builder.build()),
            bucket,
            region,
            wait,
            endpoint,
            in_flight: Arc::default(),
            page_keys: PAGE_KEYS.into(),
        })
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// Can these credentials reach the bucket (HEAD bucket)?
    pub async fn check_bucket(&self) -> anyhow::Result<()> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                if is_not_found(&e) {
                    return Failure::input(format!(
                        "bucket {} does not exist at {} (NoSuchBucket); create it or fix --bucket / CUTOVER_BUCKET",
                        self.bucket, self.endpoint
                    ));
                }
                self.error("HeadBucket", "reach", &format!("s3://{}", self.bucket), e)
            })
    }

    /// The bucket's region (GetBucketLocation; us-east-1 when S3 says none).
    pub async fn bucket_region(&self) -> anyhow::Result<String> {
        let out = self
            .client
            .get_bucket_location()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| {
                self.error(
                    "GetBucketLocation",
                    "read the region of",
                    &format!("s3://{}", self.bucket),
                    e,
                )
            })?;
        Ok(out
            .location_constraint()
            .map(|c| c.as_str().to_string())
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| "us-east-1".into()))
    }

    /// The bucket's CORS rules: (allowed origins, allowed methods) each;
    /// empty when it has none.
    pub async fn cors_rules(&self) -> anyhow::Result<Vec<(Vec<String>, Vec<String>)>> {
        match self
            .client
            .get_bucket_cors()
            .bucket(&self.bucket)
            .send()
            .await
        {
            Ok(out) => Ok(out
                .cors_rules()
                .iter()
                .map(|r| (r.allowed_origins().to_vec(), r.allowed_methods().to_vec()))
                .collect()),
            Err(e) if e.code() == Some("NoSuchCORSConfiguration") || is_not_found(&e) => {
                Ok(Vec::new())
            }
            Err(e) => Err(self.error(
                "GetBucketCors",
                "read the CORS rules of",
                &format!("s3://{}", self.bucket),
                e,
            )),
        }
    }

    /// The bucket policy, as its JSON text; None when the bucket has none.
    pub async fn bucket_policy(&self) -> anyhow::Result<Option<String>> {
        match self
            .client
            .get_bucket_policy()
            .bucket(&self.bucket)
            .send()
            .await
        {
            Ok(out) => Ok(out.policy().map(str::to_string)),
            Err(e) if e.code() == Some("NoSuchBucketPolicy") => Ok(None),
            Err(e) => Err(self.refused("GetBucketPolicy", "read the policy of", e)),
        }
    }

    /// The bucket ACL's grants to groups (AllUsers, AuthenticatedUsers):
    /// (group URI, permission) each.
    pub async fn bucket_acl_groups(&self) -> anyhow::Result<Vec<(String, String)>> {
        let out = self
            .client
            .get_bucket_acl()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| self.refused("GetBucketAcl", "read the ACL of", e))?;
        Ok(out
            .grants()
            .iter()
            .filter_map(|g| {
                let uri = g.grantee()?.uri()?;
                Some((uri.to_string(), g.permission()?.as_str().to_string()))
            })
            .collect())
    }

    /// A read of the bucket's settings that S3 answered with an error: its
    /// code and message, without a deploy's advice (a network failure is
    /// worded as [`Self::error`] words it).
    fn refused<E>(
        &self,
        call: &'static str,
        op: &str,
        err: SdkError<E, HttpResponse>,
    ) -> anyhow::Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let what = format!("s3://{}", self.bucket);
        match &err {
            _ if is_access_denied(&err) => self.denied(call, op, &what, &err),
            SdkError::ServiceError(_) | SdkError::ResponseError(_) => {
                let code = err
                    .code()
                    .map(str::to_string)
                    .or_else(|| status(&err).map(|s| format!("HTTP {s}")))
                    .unwrap_or_else(|| "unknown".into());
                let detail = err
                    .message()
                    .filter(|m| !m.is_empty())
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default();
                Failure::operation(format!("S3 refused to {op} {what} ({code}{detail})"))
            }
            _ => self.error(call, op, &what, err),
        }
    }

    /// The best evidence of an object's bytes, without a record to compare
    /// it with: S3's own SHA-256 checksum of the bytes, else its ETag when
    /// that is a plain MD5 (not SSE-KMS or SSE-C, not multipart), else the
    /// SHA-256 cutover stored in its metadata, else the hash of its bytes,
    /// read back. A checksum of the parts (composite) proves nothing about
    /// the SHA-256 of the bytes and is passed over. None when it does not
    /// exist.
    pub async fn inspect(&self, key: &str) -> anyhow::Result<Option<Inspected>> {
        let Some(e) = self.head_evidence(key).await? else {
            return Ok(None);
        };
        let checksum = match e.checksum {
            Some(Inspected::Checksum(h)) if !matches!(e.etag, Some(Inspected::PartsEtag(_))) => {
                Some(Inspected::Sha256(h))
            }
            Some(c @ Inspected::Sha256(_)) => Some(c),
            _ => None,
        };
        let etag = e.etag.filter(|t| matches!(t, Inspected::Md5(_)));
        if let Some(found) = checksum.or(etag).or(e.claimed) {
            return Ok(Some(found));
        }
        Ok(self.read_sha256(key).await?.map(Inspected::Sha256))
    }

    /// What an object holds, compared with its record `file`: the first of
    /// S3's own evidence (its checksum, of the bytes or composite; its ETag,
    /// plain or multipart) that proves the same bytes or other bytes; when
    /// S3 gives none, the SHA-256 cutover stored in its metadata; when S3's
    /// evidence cannot tell (a record without the value, another part
    /// layout), the hash of its bytes, read back. So neither "intact" nor
    /// "other bytes" rests on a value that proves nothing. None when it
    /// does not exist.
    pub async fn inspect_as(
        &self,
        key: &str,
        file: &crate::release::ReleaseFile,
    ) -> anyhow::Result<Option<Inspected>> {
        let Some(e) = self.head_evidence(key).await? else {
            return Ok(None);
        };
        let own = [e.checksum, e.etag].into_iter().flatten();
        let mut any = false;
        for found in own {
            any = true;
            if found.verdict(file).is_some() {
                return Ok(Some(found));
            }
        }
        if !any {
            if let Some(claimed) = e.claimed {
                return Ok(Some(claimed));
            }
        }
        Ok(self.read_sha256(key).await?.map(Inspected::Sha256))
    }

    /// What one HEAD says of an object's bytes; None when it does not exist.
    async fn head_evidence(&self, key: &str) -> anyhow::Result<Option<Evidence>> {
        use aws_sdk_s3::types::ChecksumType;
        let head = match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
        {
            Ok(h) => h,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(self.error("HeadObject", "inspect", key, e)),
        };
        let etag = head.e_tag().unwrap_or_default().trim_matches('"');
        let encrypted_by_key = head.sse_customer_algorithm().is_some()
            || head
                .server_side_encryption()
                .is_some_and(|s| s.as_str().starts_with("aws:kms"));
        // S3 says which kind a checksum is (`x-amz-checksum-type`) and marks
        // a composite one `-N`; other servers may say neither.
        let checksum = head.checksum_sha256().and_then(|c| {
            let (b64, parts) = match c.rsplit_once('-') {
                Some((b64, n)) => (b64, Some(n.parse::<u32>().ok()?)),
                None => (c, None),
            };
            let raw = B64.decode(b64).ok().filter(|r| r.len() == 32)?;
            let sha256 = hex::encode(raw);
            Some(match head.checksum_type() {
                _ if parts.is_some() => Inspected::Composite { sha256, parts },
                Some(ChecksumType::Composite) => Inspected::Composite {
                    sha256,
                    parts: None,
                },
                Some(ChecksumType::FullObject) => Inspected::Sha256(sha256),
                _ => Inspected::Checksum(sha256),
            })
        });
        let etag = if encrypted_by_key {
            None
        } else if is_md5(etag) {
            Some(Inspected::Md5(etag.to_ascii_lowercase()))
        } else if is_multipart_etag(etag) {
            Some(Inspected::PartsEtag(etag.to_ascii_lowercase()))
        } else {
            None
        };
        let claimed = head
            .metadata()
            .and_then(|m| m.get(META_SHA256))
            .map(|hex| Inspected::Claimed(hex.to_ascii_lowercase()));
        Ok(Some(Evidence {
            checksum,
            etag,
            claimed,
        }))
    }

    /// The headers an object is served with, and its ETag; None if it does
    /// not exist.
    pub async fn head_headers(&self, key: &str) -> anyhow::Result<Option<(Headers, String)>> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(h) => Ok(Some((
                Headers {
                    content_type: h.content_type().unwrap_or_default().to_string(),
                    content_encoding: h.content_encoding().map(str::to_string),
                    cache_control: h.cache_control().unwrap_or_default().to_string(),
                },
                h.e_tag().unwrap_or_default().trim_matches('"').to_string(),
            ))),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(self.error("HeadObject", "inspect", key, e)),
        }
    }

    /// The SHA-256 of an object's bytes, read back; None if it does not exist.
    pub async fn read_sha256(&self, key: &str) -> anyhow::Result<Option<String>> {
        let Some(obj) = self.get_object(key).await? else {
            return Ok(None);
        };
        let mut body = obj.body;
        let mut h = Sha256::new();
        while let Some(chunk) = body.try_next().await.map_err(|e| self.body_error(key, e))? {
            h.update(&chunk);
        }
        Ok(Some(hex::encode(h.finalize())))
    }

    /// A conditional replacement found the object changed since planning.
    fn changed_since_planned(&self, key: &str) -> anyhow::Error {
        Failure::refused(format!(
            "s3://{}/{key} changed since this deploy planned to replace it; nothing was switched. \
             Another deploy may be writing: run again",
            self.bucket
        ))
    }

    /// Copy `from` to `to` server-side with new headers (same bytes), only
    /// if `from` still has the ETag `if_match`, when given.
    pub async fn copy_object(&self, copy: CopySpec<'_>) -> anyhow::Result<()> {
        use aws_sdk_s3::types::MetadataDirective;
        let (from, to, headers) = (copy.from, copy.to, copy.headers);
        let (sha256_hex, if_match) = (copy.sha256_hex, copy.if_match);
        let bucket = copy.from_bucket.unwrap_or(&self.bucket);
        let source = format!("{bucket}/{}", crate::contract::url_path(from));
        let mut req = self
            .client
            .copy_object()
            .bucket(&self.bucket)
            .key(to)
            .copy_source(source)
            .metadata_directive(MetadataDirective::Replace)
            .content_type(&headers.content_type)
            .cache_control(&headers.cache_control)
            .metadata(META_SHA256, sha256_hex)
            .set_copy_source_if_match(if_match.map(quoted));
        if let Some(enc) = &headers.content_encoding {
            req = req.content_encoding(enc);
        }
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e) if is_precondition_failed(&e) => Err(self.changed_since_planned(from)),
            Err(e) => Err(self.error("CopyObject", "copy to", to, e)),
        }
    }

    /// Delete objects, up to 1,000 a request. Deleting one that is gone
    /// is not an error.
    pub async fn delete_objects(&self, keys: &[String]) -> anyhow::Result<()> {
        use aws_sdk_s3::types::{Delete, ObjectIdentifier};
        for batch in keys.chunks(1000) {
            let ids = batch
                .iter()
                .map(|k| ObjectIdentifier::builder().key(k).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| Failure::operation(format!("cannot describe a deletion: {e}")))?;
            let delete = Delete::builder()
                .set_objects(Some(ids))
                .quiet(true)
                .build()
                .map_err(|e| Failure::operation(format!("cannot describe a deletion: {e}")))?;
            let out = self
                .client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| {
                    self.error(
                        "DeleteObjects",
                        "delete objects under",
                        &format!("s3://{}/{}", self.bucket, batch[0]),
                        e,
                    )
                })?;
            if let Some(err) = out.errors().first() {
                if err.code() == Some("AccessDenied") {
                    return Err(Failure::input(format!(
                        "S3 denied the credentials to delete s3://{}/{} (AccessDenied), and {} more; nothing after it was deleted: \
                         DeleteObjects needs s3:DeleteObject on arn:aws:s3:::{}/{}; grant it (`cutover policy prune` prints all prune needs)",
                        self.bucket,
                        err.key().unwrap_or_default(),
                        out.errors().len() - 1,
                        self.bucket,
                        err.key().unwrap_or_default(),
                    )));
                }
                return Err(Failure::operation(format!(
                    "S3 refused to delete s3://{}/{} ({}: {}) and {} more; nothing after it was deleted. Run prune again",
                    self.bucket,
                    err.key().unwrap_or_default(),
                    err.code().unwrap_or("unknown"),
                    err.message().unwrap_or_default(),
                    out.errors().len() - 1
                )));
            }
        }
        Ok(())
    }

    /// Write a small immutable object (a release record) unless it exists with the same bytes.
    /// `replace`: overwrite an existing record (an unsigned one gaining its signature).
    pub async fn put_record(
        &self,
        key: &str,
        record: &crate::release::ReleaseRecord,
        replace: bool,
    ) -> anyhow::Result<()> {
        let (spooled, sha) = spool(record);
        // A file is streamed as the build's files are, checked against the
        // hash; it lives until the upload is done (each attempt reads it).
        let (body, _file) = match spooled {
            Spooled::File(file, length) => (
                crate::store::body::verified(
                    crate::store::body::Expected {
                        path: file.path().to_path_buf(),
                        offset: 0,
                        length,
                        sha256: sha,
                        to_end: true,
                    },
                    Default::default(),
                ),
                Some(file),
            ),
            Spooled::Memory(bytes) => (ByteStream::from(bytes), None),
        };
        let hex_sha = hex::encode(sha);
        let res = self
            .client
            .put_object()
            .set_if_none_match((!replace).then(|| "*".to_string()))
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .cache_control("no-store")
            .checksum_sha256(base64::engine::general_purpose::STANDARD.encode(sha))
            .metadata(META_SHA256, &hex_sha)
            .body(body)
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            // A record with this id exists: the release is already recorded.
            Err(e) if is_precondition_failed(&e) => Ok(()),
            Err(e) => Err(self.error("PutObject", "write release record", key, e)),
        }
    }

    /// GET an object; None if it does not exist.
    async fn get_object(&self, key: &str) -> anyhow::Result<Option<GetObjectOutput>> {
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(o) => Ok(Some(o)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(self.error("GetObject", "read", key, e)),
        }
    }

    /// Read an object whole; None if it does not exist. Its bytes as
    /// received, not copied again (a 50,000-file record is 20 MB).
    pub async fn get_bytes(&self, key: &str) -> anyhow::Result<Option<bytes::Bytes>> {
        let Some(obj) = self.get_object(key).await? else {
            return Ok(None);
        };
        let data = obj
            .body
            .collect()
            .await
            .map_err(|e| self.body_error(key, e))?;
        Ok(Some(data.into_bytes()))
    }

    /// A response body that broke off while being read.
    fn body_error(&self, key: &str, e: impl std::fmt::Display) -> anyhow::Error {
        Failure::operation(format!(
            "reading s3://{}/{key} failed: {e}; run again",
            self.bucket
        ))
    }

    /// A call S3 refused for want of permission: exit 2, naming the IAM
    /// actions the call needs (from the policy table, [`policy::CALLS`])
    /// and the bucket or object it was for.
    fn denied<E>(
        &self,
        call: &'static str,
        op: &str,
        what: &str,
        err: &SdkError<E, HttpResponse>,
    ) -> anyhow::Error
    where
        E: ProvideErrorMetadata,
    {
        let code = err
            .code()
            .map(str::to_string)
            .or_else(|| status(err).map(|s| format!("HTTP {s}")))
            .unwrap_or_else(|| "AccessDenied".into());
        let arn = if crate::store::permissions::on_bucket(call) {
            format!("arn:aws:s3:::{}", self.bucket)
        } else {
            format!("arn:aws:s3:::{}", what.trim_start_matches("s3://"))
        };
        Failure::input(format!(
            "S3 denied the credentials to {op} {what} ({code}): {call} needs {} on {arn}; \
             grant it (`cutover policy COMMAND` prints all a command needs)",
            crate::store::permissions::actions_of_call(call).join(" and ")
        ))
    }

    /// One line naming the operation, the object, the S3 error code and what to do.
    fn error<E>(
        &self,
        call: &'static str,
        op: &str,
        key: &str,
        err: SdkError<E, HttpResponse>,
    ) -> anyhow::Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let what = if key.starts_with("s3://") {
            key.to_string()
        } else {
            format!("s3://{}/{key}", self.bucket)
        };
        if is_access_denied(&err) {
            return self.denied(call, op, &what, &err);
        }
        match &err {
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
                let cause = error_chain(&err);
                if cause.contains("no credentials found") || cause.contains("CredentialsNotLoaded")
                {
                    return Failure::input(
                        "no AWS credentials found (tried environment, profile, web identity, ECS and instance \
                         metadata); set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or \
                         AWS_ROLE_ARN with AWS_WEB_IDENTITY_TOKEN_FILE (GitHub OIDC) or with CircleCI's CIRCLE_OIDC_TOKEN_V2",
                    );
                }
                Failure::operation(format!(
                    "cannot reach S3 at {} to {op} {what}: {cause}; gave up after {ATTEMPTS} attempts, each waiting up to {}s \
                     for an answer (s3_timeout_secs); check the endpoint (s3_endpoint: --s3-endpoint, CUTOVER_S3_ENDPOINT or AWS_ENDPOINT_URL_S3), region and network",
                    self.endpoint,
                    self.wait.as_secs()
                ))
            }
            _ => {
                let code = err.code().unwrap_or("unknown");
                let message = err.message().unwrap_or("");
                let hint = match code {
                    "NoSuchBucket" => {
                        return Failure::input(format!(
                            "bucket {} does not exist at {} (NoSuchBucket); create it or fix --bucket / CUTOVER_BUCKET",
                            self.bucket, self.endpoint
                        ))
                    }
                    "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "ExpiredToken" | "InvalidToken" => {
                        return Failure::input(format!(
                            "S3 rejected the credentials ({code}) to {op} {what}; check AWS_PROFILE / AWS_ACCESS_KEY_ID"
                        ))
                    }
                    "BadDigest" | "XAmzContentSHA256Mismatch" | "InvalidDigest" => {
                        "S3 received other bytes than were hashed; the file may have changed, rebuild and deploy again"
                    }
                    "SlowDown" | "ServiceUnavailable" | "InternalError" => "S3 kept failing after retries; run the deploy again, it resumes",
                    _ => "run the deploy again; it resumes where it stopped",
                };
                let detail = if message.is_empty() {
                    String::new()
                } else {
                    format!(": {message}")
                };
                Failure::operation(format!("S3 failed to {op} {what} ({code}{detail}); {hint}"))
            }
        }
    }
}

/// The Display texts of an error and its sources, without Debug dumps.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next: Option<&dyn std::error::Error> = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

fn status<E>(err: &SdkError<E, HttpResponse>) -> Option<u16> {
    match err {
        SdkError::ServiceError(_) | SdkError::ResponseError(_) => {
            err.raw_response().map(|r| r.status().as_u16())
        }
        _ => None,
    }
}

/// S3 refused the call for want of permission: AccessDenied, or a 403
/// without a body (a HEAD), unless the code says the credentials are wrong.
fn is_access_denied<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    match err.code() {
        Some("AccessDenied" | "Forbidden" | "AllAccessDisabled") => true,
        Some(_) => false,
        None => status(err) == Some(403),
    }
}

fn is_precondition_failed<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    status(err) == Some(412) || err.code() == Some("PreconditionFailed")
}

/// An ETag as HTTP conditions want it: in quotes.
fn quoted(etag: &str) -> String {
    format!("\"{}\"", etag.trim_matches('"'))
}

/// An ETag that is an MD5: 32 hex digits.
fn is_md5(etag: &str) -> bool {
    etag.len() == 32 && etag.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A multipart upload's ETag: an MD5 (of the parts' MD5s), `-N`.
fn is_multipart_etag(etag: &str) -> bool {
    etag.split_once('-').is_some_and(|(md5, n)| {
        is_md5(md5) && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
    })
}

/// What one HEAD says of an object's bytes, each piece as S3 gave it.
struct Evidence {
    /// S3's SHA-256 checksum: of the bytes, composite, or of either kind.
    checksum: Option<Inspected>,
    /// Its ETag, when it is an MD5 or a multipart MD5-of-MD5s and the
    /// object is not encrypted by key.
    etag: Option<Inspected>,
    /// The `x-amz-meta-sha256` the uploader set.
    claimed: Option<Inspected>,
}

fn is_not_found<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    status(err) == Some(404) || matches!(err.code(), Some("NoSuchKey") | Some("NotFound"))
}

/// A release record's JSON, made for its upload: in a temporary file (at
/// 50,000 files it is 20 MB, which would be held on top of everything else
/// the deploy holds at its end), or in memory where no temporary file can
/// be made.
enum Spooled {
    /// The file and its length.
    File(tempfile::NamedTempFile, u64),
    Memory(Vec<u8>),
}

/// The record's JSON (pretty, as records are written) and its SHA-256,
/// hashed as it is written.
fn spool(record: &crate::release::ReleaseRecord) -> (Spooled, [u8; 32]) {
    use std::io::Write;
    struct Hashing<W>(W, Sha256);
    impl<W: Write> Write for Hashing<W> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let n = self.0.write(buf)?;
            self.1.update(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.0.flush()
        }
    }
    let to_file = tempfile::NamedTempFile::new().and_then(|file| {
        let mut w = Hashing(std::io::BufWriter::new(file), Sha256::new());
        serde_json::to_writer_pretty(&mut w, record)?;
        w.flush()?;
        let Hashing(buffered, hash) = w;
        let file = buffered.into_inner().map_err(|e| e.into_error())?;
        let length = file.as_file().metadata()?.len();
        Ok((Spooled::File(file, length), hash.finalize().into()))
    });
    to_file.unwrap_or_else(|_| {
        let bytes = serde_json::to_vec_pretty(record).expect("records serialize");
        let sha = Sha256::digest(&bytes).into();
        (Spooled::Memory(bytes), sha)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spooled_record_is_its_pretty_json_and_the_hash_of_that() {
        let record: crate::release::ReleaseRecord = serde_json::from_value(serde_json::json!({
            "id": "0123456789abcdef", "app": "shop", "created_at": "", "created_at_ms": 0,
            "file_count": 1, "bytes": 1, "git_sha": null, "git_branch": null,
            "build_url": null, "deployed_by": null, "message": null, "bucket": "b",
            "prefix": "packs", "cdn_url": "https://cdn.example.com", "manifest": {"a.js": "x"},
            "files": [{"path": "js/a.js", "size": 1, "sha256": "aa", "etag": "m1"}],
        }))
        .unwrap();
        let (spooled, sha) = spool(&record);
        let Spooled::File(file, length) = spooled else {
            panic!("no temporary file could be made")
        };
        let written = std::fs::read(file.path()).unwrap();
        assert_eq!(written, serde_json::to_vec_pretty(&record).unwrap());
        assert_eq!(length, written.len() as u64);
        assert_eq!(sha, <[u8; 32]>::from(Sha256::digest(&written)));
    }
}
