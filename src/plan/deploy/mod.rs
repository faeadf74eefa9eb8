//! A deploy's plan, pure: for every file of the build, upload, skip or
//! refuse, decided from [`DeployFacts`] (the scanned build, one listing of
//! the bucket, the release records as a content index, the live state, and
//! the answers to the [questions](md5_needed) the first reads left open);
//! then the [`Step`]s that carry it out.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use crate::build::headers::Headers;
use crate::build::manifest::{diff, Manifest, ManifestDiff};
use crate::config::Config;
use crate::contract::{record_key, Action, CanaryMode, PinChange};
use crate::release::{release_id, IdInput, ReleaseFile, ReleaseRecord};
use crate::state::Inspected;

mod facts;

pub use facts::{header_checks, md5_needed, to_inspect, DeployFacts};
use facts::{headers, seen, Seen};

use super::{invalidation_path, ObjectCopy, Step, Switch};

/// What a deploy does with one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Not in S3: upload it.
    Upload,
    /// Already in S3 with the same bytes.
    Skip,
    /// In S3 with other bytes: never overwritten.
    Conflict,
    /// Same size, but the listing cannot prove the bytes (e.g. an ETag that is
    /// not an MD5): needs a closer look before the plan is final.
    Inspect,
    /// A mutable file with other bytes in S3: overwritten, only if S3 still
    /// holds what the plan saw (`If-Match`).
    Replace,
}

/// One file of the build as the plan sees it: the file as the release will
/// record it (shared with the record, not copied: at 50,000 files a copy
/// would be 20 MB), its key, and what the deploy does with it.
#[derive(Debug, Clone)]
pub struct PlannedFile {
    /// Path, size, digests, headers: what the release records. Planned
    /// files always carry their headers (see [`PlannedFile::headers`]).
    pub file: Arc<ReleaseFile>,
    pub key: String,
    pub decision: Decision,
    /// For conflicts: what S3 holds.
    pub remote: Option<String>,
    /// The ETag S3 listed for the key (the condition of a replacement).
    pub remote_etag: Option<String>,
}

impl PlannedFile {
    /// The headers it is uploaded with.
    pub fn headers(&self) -> &Headers {
        self.file
            .headers
            .as_ref()
            .expect("planned files are made with their headers")
    }
}

/// A planned file as `--json` shows it (docs/output.md, "JSON").
impl Serialize for PlannedFile {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Row<'a> {
            path: &'a str,
            key: &'a str,
            size: u64,
            sha256: &'a str,
            #[serde(flatten)]
            headers: &'a Headers,
            action: Decision,
            #[serde(skip_serializing_if = "Option::is_none")]
            remote: Option<&'a str>,
            #[serde(skip_serializing_if = "std::ops::Not::not")]
            mutable: bool,
        }
        Row {
            path: &self.file.path,
            key: &self.key,
            size: self.file.size,
            sha256: &self.file.sha256,
            headers: self.headers(),
            action: self.decision,
            remote: self.remote.as_deref(),
            mutable: self.file.mutable,
        }
        .serialize(s)
    }
}

/// What a deploy will do.
#[derive(Debug, Clone)]
pub struct DeployPlan {
    /// Shared with the record step, which serializes it only when it runs.
    pub release: Arc<ReleaseRecord>,
    /// Shared with the upload step (no copy of the list it uploads).
    pub files: Vec<Arc<PlannedFile>>,
    /// Content-addressed copies of the mutable files (`META/mutable/<sha256>`),
    /// from which activating a release restores them.
    pub copies: Vec<Arc<PlannedFile>>,
    /// Objects whose headers differ from what this build wants (header rules
    /// changed): rewritten in place, same bytes.
    pub header_updates: Vec<ObjectCopy>,
    pub manifest_diff: ManifestDiff,
    /// The release live when the plan was made (the switch compares-and-sets against it).
    pub live_release: Option<String>,
    /// Each Redis target's state, for the switch's compare-and-set.
    pub expect: Vec<crate::state::Expect>,
    pub already_live: bool,
    /// The app was pinned, or a rollout ran, when the plan was made: the
    /// deploy records and does not switch.
    pub pinned: bool,
    /// The release's record is in S3 already (a release recorded before):
    /// records are immutable, so it is not written again.
    pub recorded: bool,
    /// It is recorded unsigned, and this deploy signs it: the record gains
    /// its signature (in S3 and in Redis).
    pub signs_record: bool,
    pub not_fingerprinted: Vec<String>,
    /// Files `exclude` left out: (count, bytes).
    pub excluded: (usize, u64),
    pub warnings: Vec<String>,
}

/// How a deploy ends, as asked on the command line.
#[derive(Debug, Clone, Default)]
pub struct DeployOptions {
    pub activate: bool,
    pub force: bool,
    pub message: Option<String>,
    /// Check the release's entrypoints through the CDN before the switch
    /// (`--verify-cdn`).
    pub verify_cdn: bool,
    /// CloudFront distribution to invalidate replaced mutable files on, and
    /// whether to wait for it (`--wait`).
    pub invalidate: Option<(String, bool)>,
    /// No Redis: record the release in S3 only (`--no-redis`, or Redis
    /// unreachable with `--no-activate`).
    pub s3_only: bool,
    /// `--wait-converged`: seconds to wait after the switch for the fleet
    /// (0: no wait).
    pub wait_converged: u64,
    /// `--rollout N`: instead of the switch, the step that makes the
    /// release the canary (planned by [`crate::plan::rollout`]).
    pub rollout: Vec<Step>,
}

impl DeployPlan {
    pub fn count(&self, decision: Decision) -> (usize, u64) {
        self.files
            .iter()
            .filter(|f| f.decision == decision)
            .fold((0, 0), |(n, b), f| (n + 1, b + f.file.size))
    }
    pub fn with(&self, decision: Decision) -> impl Iterator<Item = &PlannedFile> {
        self.files
            .iter()
            .map(|f| &**f)
            .filter(move |f| f.decision == decision)
    }

    /// The writes that carry the plan out. None while a conflict stands;
    /// only the repair of missing objects when the release is already live.
    pub fn steps(&self, meta_prefix: &str, opts: &DeployOptions) -> Vec<Step> {
        if self.count(Decision::Conflict).0 > 0 {
            return Vec::new();
        }
        // A deploy that does not switch leaves the live release's mutable
        // files alone (a pinned rollback's service worker stays its own):
        // its versions go to their content-addressed copies only, and the
        // activation restores them.
        let switches = self.already_live || (opts.activate && !opts.s3_only && !self.pinned);
        let in_place = |f: &PlannedFile| switches || !f.file.mutable;
        let uploads: Vec<Arc<PlannedFile>> = self
            .files
            .iter()
            .chain(&self.copies)
            .filter(|f| matches!(f.decision, Decision::Upload | Decision::Replace))
            .filter(|f| in_place(f))
            .map(Arc::clone)
            .collect();
        let mut steps = Vec::new();
        if !uploads.is_empty() {
            steps.push(Step::Upload(uploads));
        }
        if !self.header_updates.is_empty() {
            steps.push(Step::Copy(self.header_updates.clone()));
        }
        // Replaced mutable files and rewritten headers linger in the CDN's cache.
        let stale: Vec<String> = self
            .with(Decision::Replace)
            .filter(|f| in_place(f))
            .map(|f| f.key.as_str())
            .chain(self.header_updates.iter().map(|c| c.to.as_str()))
            .map(|key| invalidation_path(&self.release.cdn_url, key))
            .collect();
        let invalidate = |steps: &mut Vec<Step>| {
            if let (Some((distribution, wait)), false) = (&opts.invalidate, stale.is_empty()) {
                steps.push(Step::Invalidate {
                    distribution: distribution.clone(),
                    paths: stale.clone(),
                    wait: *wait,
                });
            }
        };
        if self.already_live {
            invalidate(&mut steps);
            return steps;
        }
        if !self.recorded || self.signs_record {
            steps.push(Step::PutRecord {
                key: record_key(meta_prefix, &self.release.id),
                record: Arc::clone(&self.release),
                signs: self.signs_record,
            });
        }
        if opts.s3_only {
            return steps;
        }
        steps.push(Step::Register {
            record: Box::new(self.release.summary()),
            replace_broken: false,
        });
        if !opts.rollout.is_empty() {
            steps.extend(opts.rollout.iter().cloned());
        } else if opts.activate {
            if opts.verify_cdn {
                steps.push(Step::VerifyCdn(self.release.cdn_checks(0)));
            }
            steps.push(Step::Switch(Box::new(Switch {
                expect: self.expect.clone(),
                release: self.release.id.clone(),
                manifest: self.release.manifest.clone(),
                action: Action::Deploy,
                by: self.release.deployed_by.clone(),
                message: opts.message.clone(),
                force: opts.force,
                pin: PinChange::Respect,
                rolled_back_from: None,
                signature: self.release.signature.clone(),
                canary: CanaryMode::Refuse,
            })));
            invalidate(&mut steps);
            if opts.wait_converged > 0 {
                steps.push(Step::AwaitFleet {
                    release: self.release.id.clone(),
                    within: opts.wait_converged,
                    serves: crate::fleet::Serves::Live,
                });
            }
        }
        steps
    }
}

/// Who and why, for the release record.
pub struct Provenance {
    pub message: Option<String>,
    /// When the build's commit was made (RFC 3339), when known.
    pub committed_at: Option<String>,
    /// (RFC 3339, milliseconds since the epoch)
    pub created: (String, i64),
}

/// Decide, for every file of the build, what the deploy does: from S3's
/// listing, with the release records as a content index (see
/// [`ContentIndex`]), the MD5s the build has ([`md5_needed`]) and what a
/// closer look found ([`to_inspect`]).
pub fn deploy(config: &Config, facts: &DeployFacts, who: Provenance) -> anyhow::Result<DeployPlan> {
    let (manifest, live) = (facts.manifest, facts.live);
    let files: Vec<Arc<PlannedFile>> = seen(config, facts)
        .map(|s| Arc::new(planned(config, facts, s)))
        .collect();
    let copies = mutable_copies(&files, &config.meta_prefix()?, facts.inspected);
    let not_fingerprinted: Vec<String> = files
        .iter()
        .filter(|f| !manifest.is_fingerprinted(&f.file.path) && !f.file.mutable)
        .map(|f| f.file.path.clone())
        .collect();
    let mut release = record(config, &files, manifest, who)?;
    // A release recorded signed keeps its signature (as activate does),
    // with or without a key here: the record and the live key agree.
    let recorded = facts.index.record(&release.id);
    if let Some(s) = recorded
        .and_then(|r| r.signature.clone())
        .filter(|s| fits(s, &release))
    {
        release.signature = Some(s);
    }
    let signs_record =
        recorded.is_some_and(|r| r.signature.is_none()) && release.signature.is_some();
    let warnings = warnings(config, manifest, &not_fingerprinted);
    let header_updates = header_updates(&files, facts.heads);
    Ok(DeployPlan {
        manifest_diff: diff(live.manifest.as_ref(), &manifest.live),
        // Live means `current` and the live manifest are this release's;
        // a release that is current with a missing or other manifest is repaired.
        already_live: live.serves(&release.id, &manifest.live, release.signature.as_deref()),
        pinned: live.pin.is_some() || live.canary.is_some() || live.canary_damage.is_some(),
        live_release: live.current.clone(),
        expect: live.expectations(&release.id, &manifest.live, release.signature.as_deref()),
        recorded: recorded.is_some(),
        signs_record,
        release: Arc::new(release),
        files,
        copies,
        header_updates,
        not_fingerprinted,
        excluded: (
            facts.build.excluded.len(),
            facts.build.excluded.iter().map(|(_, size)| size).sum(),
        ),
        warnings,
    })
}

/// One file: its record entry, key, headers and decision.
fn planned(config: &Config, facts: &DeployFacts, s: Seen) -> PlannedFile {
    let (first, remote) = s.first_look();
    let (decision, remote) = match first {
        Decision::Inspect => closer_look(&s, facts.inspected.get(&s.key), remote),
        d => (d, remote),
    };
    // Listed with another ETag than planned, and proven the same bytes by a
    // closer look (SSE-KMS ETags are not MD5s): the record keeps the ETag
    // S3 lists, so that the next listing settles the object by itself. Not
    // for a mutable file: its record entry is checked at its
    // content-addressed copy, not at the key it changes under.
    let listed_etag = s
        .listed
        .filter(|_| first == Decision::Inspect && decision == Decision::Skip && !s.mutable)
        .filter(|o| !o.etag.is_empty())
        .map(|o| o.etag.trim_matches('"').to_string());
    let (md5, etag, composite_sha256) = match (&s.file.digests.md5, s.known) {
        (Some(m), _) => (
            Some(hex::encode(m.md5)),
            listed_etag.unwrap_or_else(|| m.expected_etag()),
            m.composite_sha256.clone(),
        ),
        (None, Some(k)) if s.settled() => (
            k.md5().map(str::to_ascii_lowercase),
            k.etag.trim_matches('"').to_ascii_lowercase(),
            k.composite_sha256.clone(),
        ),
        (None, _) => (None, String::new(), None),
    };
    let headers = headers(config, facts.manifest, &s);
    PlannedFile {
        remote_etag: match decision {
            // Listed, but gone by the closer look.
            Decision::Upload => None,
            _ => s.listed.map(|o| o.etag.clone()),
        },
        file: shared(
            facts,
            &s.key,
            ReleaseFile {
                path: s.file.path.clone(),
                size: s.file.size,
                sha256: s.sha256,
                md5,
                etag,
                composite_sha256,
                headers: Some(headers),
                mutable: s.mutable,
            },
        ),
        key: s.key,
        decision,
        remote,
    }
}

/// `file`, or the equal entry a release record already holds for `key`
/// (shared rather than copied: see [`crate::state::ContentIndex::shared`]).
fn shared(facts: &DeployFacts, key: &str, file: ReleaseFile) -> Arc<ReleaseFile> {
    match facts.index.shared(key) {
        Some(known) if *known == file => known,
        _ => Arc::new(file),
    }
}

/// What a closer look at a key the listing could not decide settles: the
/// same bytes are skipped; an object gone by now is simply uploaded; a
/// mutable one with other bytes, replaced; other bytes, a conflict.
fn closer_look(
    s: &Seen,
    found: Option<&Inspected>,
    listed: Option<String>,
) -> (Decision, Option<String>) {
    let md5 = s.file.digests.md5.as_ref().map(|m| hex::encode(m.md5));
    match found {
        Some(i) if i.matches(&s.sha256, md5.as_deref()) => (Decision::Skip, None),
        Some(_) if s.mutable => (Decision::Replace, listed),
        Some(i) => (Decision::Conflict, Some(i.to_string())),
        None => (Decision::Upload, None),
    }
}

/// The content-addressed copy of each mutable file, as the closer look
/// found it: there with its bytes (skip), missing (upload), or other bytes.
fn mutable_copies(
    files: &[Arc<PlannedFile>],
    meta_prefix: &str,
    inspected: &HashMap<String, Inspected>,
) -> Vec<Arc<PlannedFile>> {
    files
        .iter()
        .filter(|f| f.file.mutable)
        .map(|f| {
            let key = crate::contract::mutable_key(meta_prefix, &f.file.sha256);
            let (decision, remote) = match inspected.get(&key) {
                Some(i) if i.matches(&f.file.sha256, f.file.md5.as_deref()) => {
                    (Decision::Skip, None)
                }
                Some(i) => (Decision::Conflict, Some(i.to_string())),
                None => (Decision::Upload, None),
            };
            PlannedFile {
                key,
                decision,
                remote,
                remote_etag: None,
                // The copy is not itself a mutable file (it never changes).
                file: Arc::new(ReleaseFile {
                    mutable: false,
                    ..ReleaseFile::clone(&f.file)
                }),
            }
        })
        .map(Arc::new)
        .collect()
}

/// Objects this build keeps whose headers S3 has otherwise than the build
/// gives them: rewritten in place (same bytes), only if the object still
/// has the ETag S3 showed.
fn header_updates(
    files: &[Arc<PlannedFile>],
    heads: &HashMap<String, (Headers, String)>,
) -> Vec<ObjectCopy> {
    files
        .iter()
        .filter(|f| f.decision == Decision::Skip)
        .filter_map(|f| {
            let (actual, etag) = heads.get(&f.key)?;
            (actual != f.headers()).then(|| ObjectCopy {
                from_bucket: None,
                from: f.key.clone(),
                to: f.key.clone(),
                headers: f.headers().clone(),
                sha256: f.file.sha256.clone(),
                if_match: Some(etag.clone()),
            })
        })
        .collect()
}

/// The release record: a content-derived id and where it came from.
fn record(
    config: &Config,
    files: &[Arc<PlannedFile>],
    manifest: &Manifest,
    who: Provenance,
) -> anyhow::Result<ReleaseRecord> {
    let (bucket, cdn_url) = (config.bucket()?, config.cdn_url()?);
    let id_files: Vec<(&str, &str, &Headers)> = files
        .iter()
        .map(|f| (f.file.path.as_str(), f.file.sha256.as_str(), f.headers()))
        .collect();
    let id = release_id(&IdInput {
        bucket,
        prefix: &config.prefix,
        cdn_url,
        files: &id_files,
        manifest: &manifest.live,
    });
    // Signed over the exact bytes the activation writes (manifest_text).
    let signature = config.signing_key.as_ref().map(|k| {
        k.sign(
            &id,
            crate::contract::manifest_text(&manifest.live).as_bytes(),
        )
        .to_json()
    });
    Ok(ReleaseRecord {
        id,
        app: config.app()?.to_string(),
        created_at: who.created.0,
        created_at_ms: who.created.1,
        file_count: files.len(),
        bytes: files.iter().map(|f| f.file.size).sum(),
        git_sha: config.git_sha.clone(),
        git_branch: config.git_branch.clone(),
        git_committed_at: who.committed_at.clone(),
        build_url: config.build_url.clone(),
        deployed_by: config.deployed_by.clone(),
        message: who.message,
        bucket: bucket.to_string(),
        prefix: config.prefix.clone(),
        cdn_url: cdn_url.to_string(),
        manifest: manifest.live.clone(),
        public_path: Some(manifest.public_path.clone()),
        promoted_from: None,
        signature,
        files: Some(files.iter().map(|f| Arc::clone(&f.file)).collect()),
    })
}

/// What the user should know before going live.
fn warnings(config: &Config, manifest: &Manifest, not_fingerprinted: &[String]) -> Vec<String> {
    let mut warnings = Vec::new();
    let expected_public = format!(
        "{}/",
        config
            .public_url("")
            .unwrap_or_default()
            .trim_end_matches('/')
    );
    let cdn_url = config.cdn_url.as_deref().unwrap_or("CDN_URL");
    warnings.extend(manifest.public_path_warning(&expected_public, cdn_url));
    warnings.extend(manifest.warnings.iter().cloned());
    if !not_fingerprinted.is_empty() {
        warnings.push(format!(
            "{} without a content hash in their name ({}): they get `{}` and a change to them in a later build \
             will be a conflict; add a content hash to their file names (webpack: [contenthash])",
            crate::render::count(not_fingerprinted.len(), "file"),
            crate::render::some(not_fingerprinted, 5),
            config.cache_control
        ));
    }
    warnings
}

/// Does a stored signature fit this release (its id, its manifest's bytes)?
pub fn fits(signature: &str, record: &ReleaseRecord) -> bool {
    crate::signing::Signature::parse(signature).is_ok_and(|s| {
        s.fits(
            &record.id,
            crate::contract::manifest_text(&record.manifest).as_bytes(),
        )
        .is_ok()
    })
}
