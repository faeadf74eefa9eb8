//! `cutover verify [RELEASE]`: is every object of a release in S3 with its
//! bytes, and (with `--cdn`) does the CDN serve its files with their bytes
//! and headers? Read-only; exit 4 naming each problem.

use serde::Serialize;

use super::{resolve_release, Ctx, Head};
use crate::error::Failure;
use crate::plan::switch::problems;
use crate::render::{count, Render};
use crate::signing::{sha256_hex, SignatureState};
use crate::store::cdn::Cdn;

pub struct Request {
    pub release: Option<String>,
    pub cdn: bool,
    /// Files to fetch through the CDN besides the entrypoints.
    pub sample: usize,
    /// Read every object and hash it, rather than trust S3's checksum or ETag.
    pub read: bool,
}

#[derive(Debug, Serialize)]
pub struct Outcome {
    #[serde(flatten)]
    pub head: Head,
    pub release: String,
    pub objects: usize,
    /// One line per object missing or with other bytes.
    pub s3_problems: Vec<String>,
    /// Files fetched through the CDN (empty without `--cdn`).
    pub cdn_checked: Vec<String>,
    /// One line per file the CDN does not serve as uploaded.
    pub cdn_problems: Vec<String>,
    /// Whether the release is signed and by which key: the live signature
    /// when the release is live, else its record's.
    pub signature: SignatureState,
    /// What is wrong with the signature (it does not fit or verify; the
    /// release is unsigned under `require_signature`).
    pub signature_problems: Vec<String>,
}

pub async fn run(ctx: &Ctx, req: Request) -> anyhow::Result<Outcome> {
    let config = &ctx.config;
    let app = config.app()?.to_string();
    let (store, mut redis) = ctx.connect().await?;
    let live = redis.live().await?;
    let wanted = match req.release {
        Some(r) => r,
        None => live.current.clone().ok_or_else(|| {
            Failure::input(format!(
                "no release is live for {app}; name one: `cutover verify RELEASE`"
            ))
        })?,
    };
    let record = resolve_release(config, &mut redis, &store, &wanted, false)
        .await?
        .record;
    let found = store
        .release_objects(
            &record,
            &config.meta_prefix()?,
            // Reading the bytes back moves data: as many as uploads; HEADs
            // are cheap.
            if req.read {
                config.concurrency
            } else {
                config.check_concurrency
            },
            req.read,
            ctx.observer.as_ref(),
        )
        .await?;
    let s3_problems = problems(&found);
    let (mut cdn_checked, mut cdn_problems) = (Vec::new(), Vec::new());
    if req.cdn {
        let checks = record.cdn_checks(req.sample);
        cdn_problems = Cdn::new(config.cdn_timeout())?
            .check(&checks, config.concurrency)
            .await;
        cdn_checked = checks.into_iter().map(|c| c.url).collect();
    }
    let known = config.signing_key.as_ref().map(|k| k.verify_key());
    let signature = match live.signature_state(known.as_ref()) {
        Some(s) if live.current.as_deref() == Some(record.id.as_str()) => s,
        _ => SignatureState::of(
            record.signature.as_deref(),
            &record.id,
            Some(&sha256_hex(
                crate::contract::manifest_text(&record.manifest).as_bytes(),
            )),
            known.as_ref(),
        ),
    };
    let mut signature_problems: Vec<String> = signature.problem.iter().cloned().collect();
    signature_problems.extend(super::inspect::target_signature_problems(&live, &record));
    if !signature.signed && config.require_signature {
        signature_problems.push(format!(
            "release {} is unsigned and require_signature is set",
            record.id
        ));
    }
    Ok(Outcome {
        signature,
        signature_problems,
        head: ctx.head("verify", None)?,
        release: record.id.clone(),
        objects: record.file_count,
        s3_problems,
        cdn_checked,
        cdn_problems,
    })
}

impl Render for Outcome {
    fn text(&self) -> String {
        let mut t = String::new();
        let mark = |ok: bool| if ok { "✓" } else { "✗" };
        t.push_str(&format!(
            "{} S3: {} of release {} of {}{}\n",
            mark(self.s3_problems.is_empty()),
            count(self.objects, "object"),
            self.release,
            self.head.app,
            if self.s3_problems.is_empty() {
                ", all present with their bytes".to_string()
            } else {
                format!(", {} wrong", self.s3_problems.len())
            }
        ));
        for p in &self.s3_problems {
            t.push_str(&format!("    {p}\n"));
        }
        t.push_str(&format!(
            "{} signature: {}\n",
            mark(self.signature_problems.is_empty()),
            self.signature.describe()
        ));
        for p in &self.signature_problems {
            t.push_str(&format!("    {p}\n"));
        }
        if !self.cdn_checked.is_empty() {
            t.push_str(&format!(
                "{} CDN: {} fetched{}\n",
                mark(self.cdn_problems.is_empty()),
                count(self.cdn_checked.len(), "file"),
                if self.cdn_problems.is_empty() {
                    ", each with its bytes and headers".to_string()
                } else {
                    format!(", {} wrong", self.cdn_problems.len())
                }
            ));
            for p in &self.cdn_problems {
                t.push_str(&format!("    {p}\n"));
            }
        }
        t
    }

    fn exit_code(&self) -> u8 {
        if self.s3_problems.is_empty()
            && self.cdn_problems.is_empty()
            && self.signature_problems.is_empty()
        {
            0
        } else {
            4
        }
    }
}
