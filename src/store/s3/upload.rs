//! Uploads: conditional PUTs with the SHA-256 S3 checks, multipart above
//! the threshold, aborted when interrupted.

use std::path::Path;

use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use sha2::{Digest, Sha256};

use super::{is_precondition_failed, quoted, S3Store, META_SHA256};
use crate::build::digest::part_size;
use crate::build::headers::Headers;
use crate::error::Failure;
use crate::store::body::{verified, Expected, Watch};

/// One file to upload: where it goes, where its bytes are, what they are.
#[derive(Debug, Clone, Copy)]
pub struct PutSpec<'a> {
    pub key: &'a str,
    pub path: &'a Path,
    pub size: u64,
    pub sha256_hex: &'a str,
    pub md5_hex: Option<&'a str>,
    pub headers: &'a Headers,
    /// Replace the object only if it still has this ETag; None: only if
    /// there is no object (`If-None-Match: *`).
    pub if_match: Option<&'a str>,
}

/// What happened to one upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    /// With the ETag S3 gave the object (without quotes), when it gave one:
    /// not the MD5 of the bytes in an SSE-KMS bucket, so the record keeps it.
    Uploaded(Option<String>),
    /// Someone else uploaded the same bytes since the plan was made.
    AlreadyThere,
}

impl PutSpec<'_> {
    fn sha256(&self) -> Result<[u8; 32], PutError> {
        hex::decode(self.sha256_hex)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| {
                PutError::Other(Failure::operation(format!(
                    "internal error: {:?} is not a SHA-256",
                    self.sha256_hex
                )))
            })
    }
}

impl S3Store {
    /// Upload one file from disk, never replacing an existing object.
    pub async fn put_file(&self, file: PutSpec<'_>, threshold: u64) -> anyhow::Result<PutOutcome> {
        let result = if file.size >= threshold {
            self.put_multipart(file, threshold).await
        } else {
            self.put_single(file).await
        };
        match result {
            Ok(etag) => Ok(PutOutcome::Uploaded(etag)),
            Err(PutError::Exists) => {
                let what = file.path.display().to_string();
                self.settle_existing(file.key, file.sha256_hex, file.md5_hex, &what)
                    .await
            }
            Err(PutError::Other(e)) => Err(e),
        }
    }

    /// A conditional write found the key taken: same bytes is fine, other bytes is a conflict.
    async fn settle_existing(
        &self,
        key: &str,
        sha256: &str,
        md5: Option<&str>,
        what: &str,
    ) -> anyhow::Result<PutOutcome> {
        match self.inspect(key).await? {
            Some(i) if i.matches(sha256, md5) => Ok(PutOutcome::AlreadyThere),
            Some(i) => Err(Failure::refused(format!(
                "s3://{}/{key} appeared with other bytes ({i}) while {what} was being uploaded; \
                 another deploy is writing the same prefix: nothing was overwritten, investigate before deploying again",
                self.bucket
            ))),
            None => Err(Failure::operation(format!(
                "s3://{}/{key}: the conditional upload was refused but the object is not there; run the deploy again",
                self.bucket
            ))),
        }
    }

    async fn put_single(&self, file: PutSpec<'_>) -> Result<Option<String>, PutError> {
        let sha = file.sha256()?;
        let watch = Watch::default();
        let body = verified(
            Expected {
                path: file.path.to_path_buf(),
                offset: 0,
                length: file.size,
                sha256: sha,
                to_end: true,
            },
            watch.clone(),
        );
        let mut req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(file.key)
            .body(body)
            .content_length(file.size as i64)
            .content_type(&file.headers.content_type)
            .cache_control(&file.headers.cache_control)
            .checksum_sha256(B64.encode(sha))
            .metadata(META_SHA256, file.sha256_hex);
        req = match file.if_match {
            Some(etag) => req.if_match(quoted(etag)),
            None => req.if_none_match("*"),
        };
        if let Some(enc) = &file.headers.content_encoding {
            req = req.content_encoding(enc);
        }
        match req.send().await {
            Ok(out) => Ok(etag_of(out.e_tag())),
            Err(_) if watch.problem().is_some() => Err(local_change(&watch)),
            Err(e) if is_precondition_failed(&e) && file.if_match.is_some() => {
                Err(PutError::Other(self.changed_since_planned(file.key)))
            }
            Err(e) if is_precondition_failed(&e) => Err(PutError::Exists),
            Err(e) => Err(PutError::Other(self.error(
                "PutObject",
                "upload",
                file.key,
                e,
            ))),
        }
    }

    async fn put_multipart(
        &self,
        file: PutSpec<'_>,
        threshold: u64,
    ) -> Result<Option<String>, PutError> {
        let mut req = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(file.key)
            .content_type(&file.headers.content_type)
            .cache_control(&file.headers.cache_control)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .metadata(META_SHA256, file.sha256_hex);
        if let Some(enc) = &file.headers.content_encoding {
            req = req.content_encoding(enc);
        }
        // Known before the request goes out: an interrupt that lands between
        // S3 creating the upload and us hearing its id still finds it.
        self.in_flight
            .lock()
            .unwrap()
            .insert(file.key.to_string(), None);
        let created = req.send().await.map_err(|e| {
            self.in_flight.lock().unwrap().remove(file.key);
            PutError::Other(self.error(
                "CreateMultipartUpload",
                "start multipart upload of",
                file.key,
                e,
            ))
        })?;
        let upload_id = created.upload_id().unwrap_or_default().to_string();
        self.in_flight
            .lock()
            .unwrap()
            .insert(file.key.to_string(), Some(upload_id.clone()));
        let result = self.upload_parts(file, threshold, &upload_id).await;
        if result.is_err() {
            self.abort(file.key, &upload_id).await;
        }
        self.in_flight.lock().unwrap().remove(file.key);
        result
    }

    async fn upload_parts(
        &self,
        file: PutSpec<'_>,
        threshold: u64,
        upload_id: &str,
    ) -> Result<Option<String>, PutError> {
        let path = file.path;
        let part = part_size(file.size, threshold);
        let count = file.size.div_ceil(part).max(1);
        let mut parts = Vec::with_capacity(count as usize);
        // The whole file's SHA-256, from the same reads that hash the parts:
        // each part's body is checked against its hash as it is sent, so
        // this is the hash of the bytes S3 receives.
        let mut whole = Sha256::new();
        for i in 0..count {
            let offset = i * part;
            let length = part.min(file.size - offset);
            let (sha, next) = part_sha256(path, offset, length, whole).await.map_err(|e| {
                PutError::Other(Failure::input(format!(
                    "{} cannot be read any more ({e}); it changed after it was hashed: wait for the build to finish, then deploy again",
                    path.display()
                )))
            })?;
            whole = next;
            let watch = Watch::default();
            let body = verified(
                Expected {
                    path: path.to_path_buf(),
                    offset,
                    length,
                    sha256: sha,
                    to_end: i + 1 == count,
                },
                watch.clone(),
            );
            let out = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(file.key)
                .upload_id(upload_id)
                .part_number((i + 1) as i32)
                .content_length(length as i64)
                .checksum_sha256(B64.encode(sha))
                .body(body)
                .send()
                .await
                .map_err(|e| {
                    if watch.problem().is_some() {
                        local_change(&watch)
                    } else {
                        PutError::Other(self.error("UploadPart", "upload a part of", file.key, e))
                    }
                })?;
            parts.push(
                CompletedPart::builder()
                    .part_number((i + 1) as i32)
                    .set_e_tag(out.e_tag().map(str::to_string))
                    .checksum_sha256(B64.encode(sha))
                    .build(),
            );
        }
        let sent: [u8; 32] = whole.finalize().into();
        if sent != file.sha256()? {
            return Err(PutError::Other(Failure::input(format!(
                "{} changed after it was hashed (its parts have other bytes); the upload was aborted. \
                 Wait for the build to finish, then deploy again",
                path.display()
            ))));
        }
        let done = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(file.key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .set_if_none_match(file.if_match.is_none().then(|| "*".to_string()))
            .set_if_match(file.if_match.map(quoted))
            .send()
            .await;
        match done {
            Ok(out) => Ok(etag_of(out.e_tag())),
            Err(e) if is_precondition_failed(&e) && file.if_match.is_some() => {
                Err(PutError::Other(self.changed_since_planned(file.key)))
            }
            Err(e) if is_precondition_failed(&e) => Err(PutError::Exists),
            Err(e) => Err(PutError::Other(self.error(
                "CompleteMultipartUpload",
                "complete multipart upload of",
                file.key,
                e,
            ))),
        }
    }

    async fn abort(&self, key: &str, upload_id: &str) {
        let _ = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await;
    }

    /// Abort every multipart upload still in flight (on interrupt).
    /// Uploads whose id we never heard are found by listing the key's open
    /// multipart uploads (deploys of one app are serialised by the lock, so
    /// an open upload of our key is ours).
    pub async fn abort_in_flight(&self) {
        let pending: Vec<(String, Option<String>)> =
            self.in_flight.lock().unwrap().drain().collect();
        for (key, id) in pending {
            let ids = match id {
                Some(id) => vec![id],
                None => self.open_uploads(&key).await,
            };
            for id in ids {
                self.abort(&key, &id).await;
            }
        }
    }

    /// Ids of the open multipart uploads of exactly `key`.
    async fn open_uploads(&self, key: &str) -> Vec<String> {
        let Ok(listed) = self
            .client
            .list_multipart_uploads()
            .bucket(&self.bucket)
            .prefix(key)
            .send()
            .await
        else {
            return Vec::new();
        };
        listed
            .uploads()
            .iter()
            .filter(|u| u.key() == Some(key))
            .filter_map(|u| u.upload_id().map(str::to_string))
            .collect()
    }
}

/// The error for a local file that changed after it was hashed (exit 2).
fn local_change(watch: &Watch) -> PutError {
    PutError::Other(Failure::input(watch.problem().unwrap_or_default()))
}

enum PutError {
    /// The key exists (412 on a conditional write).
    Exists,
    Other(anyhow::Error),
}

/// SHA-256 of `length` bytes at `offset`, also fed to `whole` (returned).
async fn part_sha256(
    path: &Path,
    offset: u64,
    length: u64,
    mut whole: Sha256,
) -> std::io::Result<([u8; 32], Sha256)> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = std::fs::File::open(path)?;
        f.seek(SeekFrom::Start(offset))?;
        let mut left = length;
        let mut buf = vec![0u8; 256 * 1024];
        let mut h = Sha256::new();
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            let n = f.read(&mut buf[..want])?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "it is shorter than when it was hashed",
                ));
            }
            h.update(&buf[..n]);
            whole.update(&buf[..n]);
            left -= n as u64;
        }
        Ok((h.finalize().into(), whole))
    })
    .await
    .expect("hashing task does not panic")
}

/// An ETag as S3 gave it, without its quotes; None when absent or empty.
fn etag_of(etag: Option<&str>) -> Option<String> {
    etag.map(|e| e.trim_matches('"').to_string())
        .filter(|e| !e.is_empty())
}
