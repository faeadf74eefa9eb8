//! Facts about the remote side, as read before planning: what one listing
//! of the bucket shows, what a closer look at an object found, and the live
//! state in Redis. Stores produce these; planning consumes them.

use std::collections::HashMap;

use crate::release::{ReleaseFile, ReleaseRecord};

/// An object as one listing of the bucket shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteObject {
    pub size: u64,
    /// Without quotes; may be empty (some servers list without ETags).
    pub etag: String,
    /// Last modified, milliseconds since the epoch (0 when not listed).
    pub modified_ms: i64,
}

/// One listing of a prefix: key → object.
pub type Listing = HashMap<String, RemoteObject>;

/// What the release records say the keys of the public prefix hold. Objects
/// are never overwritten (conditional PUTs with the SHA-256 S3 checks), so a
/// record is a content index: where S3's listing agrees with it (the key
/// exists with the recorded size, and the recorded ETag when the listing
/// carries one), the object holds the recorded bytes, without a HEAD or GET.
/// Mutable files are left out (they change under their name), and so is a
/// key two records disagree on.
///
/// The index owns the records and points into them: at 50,000 files a copy
/// of every digest would cost more than the records themselves.
#[derive(Debug, Clone, Default)]
pub struct ContentIndex {
    records: Vec<ReleaseRecord>,
    /// Key → (record, file) that says what it holds.
    by_key: HashMap<String, (u32, u32)>,
}

impl ContentIndex {
    /// The index of the records of objects in `bucket` (the records of
    /// other buckets are kept, not indexed).
    pub fn new(bucket: &str, records: Vec<ReleaseRecord>) -> ContentIndex {
        let mut by_key: HashMap<String, (u32, u32)> = HashMap::new();
        let mut ambiguous = std::collections::HashSet::new();
        for (ri, r) in records
            .iter()
            .enumerate()
            .filter(|(_, r)| r.bucket == bucket)
        {
            let files = r.files.iter().flatten().enumerate();
            for (fi, f) in files.filter(|(_, f)| !f.mutable) {
                let key = crate::contract::object_key(&r.prefix, &f.path);
                match by_key.get(&key).map(|&(r, f)| Self::at(&records, r, f)) {
                    Some(seen)
                        if !seen.sha256.eq_ignore_ascii_case(&f.sha256) || seen.size != f.size =>
                    {
                        ambiguous.insert(key);
                    }
                    Some(_) => {}
                    None => {
                        let at = |i: usize| u32::try_from(i).expect("fewer than 2^32 files");
                        by_key.insert(key, (at(ri), at(fi)));
                    }
                }
            }
        }
        for key in ambiguous {
            by_key.remove(&key);
        }
        by_key.shrink_to_fit();
        ContentIndex { records, by_key }
    }

    /// The index of these records and one more.
    pub fn with(self, bucket: &str, record: ReleaseRecord) -> ContentIndex {
        let mut records = self.records;
        records.push(record);
        ContentIndex::new(bucket, records)
    }

    fn at(records: &[ReleaseRecord], record: u32, file: u32) -> &ReleaseFile {
        &records[record as usize]
            .files
            .as_ref()
            .expect("indexed records list files")[file as usize]
    }

    /// The recorded file at `key`, shared: a new record whose entry is
    /// equal reuses it instead of holding a copy (an unchanged redeploy of
    /// 50,000 files holds one set of entries, not two).
    pub fn shared(&self, key: &str) -> Option<std::sync::Arc<ReleaseFile>> {
        let &(r, f) = self.by_key.get(key)?;
        self.records[r as usize]
            .files
            .as_ref()
            .map(|files| std::sync::Arc::clone(&files[f as usize]))
    }

    /// The number of keys the records settle.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// The record of release `id`, if it is one of the indexed ones.
    pub fn record(&self, id: &str) -> Option<&ReleaseRecord> {
        self.records.iter().find(|r| r.id == id)
    }

    /// What `key` holds, if the records know and S3's listing entry agrees
    /// with them; None when they do not know, or S3 disagrees (S3 wins).
    pub fn confirms(&self, key: &str, listed: &RemoteObject) -> Option<&ReleaseFile> {
        let &(r, f) = self.by_key.get(key)?;
        let k = Self::at(&self.records, r, f);
        let etag = listed.etag.trim_matches('"');
        (k.size == listed.size
            && (etag.is_empty() || etag.eq_ignore_ascii_case(k.etag.trim_matches('"'))))
        .then_some(k)
    }
}

/// What a closer look (HEAD, or reading the object) found out about an
/// object whose listing entry alone did not prove its bytes: the best
/// evidence S3 gives, S3's own before cutover's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inspected {
    /// S3's own SHA-256 of the object, or the hash of its bytes read back.
    Sha256(String),
    /// A plain-MD5 ETag (no SSE-KMS or SSE-C): the MD5 of its bytes.
    Md5(String),
    /// Only the `x-amz-meta-sha256` the uploader set (an SSE-KMS object
    /// without S3 checksum): what cutover recorded when it uploaded it.
    Claimed(String),
    /// S3's SHA-256 checksum of an object uploaded in parts, which S3 says
    /// is composite (`x-amz-checksum-type: COMPOSITE`, or `-N`): the SHA-256
    /// of the parts' SHA-256s (hex), not of the bytes. `parts` when S3 gave
    /// the count.
    Composite { sha256: String, parts: Option<u32> },
    /// S3's SHA-256 checksum, of which the server did not say: of the
    /// bytes, or (moto, for an object uploaded in parts, without `-N`) of
    /// the parts' checksums.
    Checksum(String),
    /// A multipart ETag (the MD5 of the parts' MD5s, `-N`) of an object not
    /// encrypted by key.
    PartsEtag(String),
}

impl Inspected {
    /// Does the object hold the bytes with this SHA-256 and MD5 (hex)?
    /// Evidence of the parts alone (composite checksum, multipart ETag)
    /// cannot say: false. [`Inspected::verdict`] compares it with a record.
    pub fn matches(&self, sha256: &str, md5: Option<&str>) -> bool {
        match self {
            Inspected::Sha256(h) | Inspected::Claimed(h) | Inspected::Checksum(h) => {
                h.eq_ignore_ascii_case(sha256)
            }
            Inspected::Md5(m) => md5.is_some_and(|md5| m.eq_ignore_ascii_case(md5)),
            Inspected::Composite { .. } | Inspected::PartsEtag(_) => false,
        }
    }

    /// Does the object hold the bytes of `file` as its record describes
    /// them? Some(true): proven the same; Some(false): proven other bytes;
    /// None: this evidence cannot tell (another part layout, a record
    /// that does not know the value), so a closer look must decide. Never a
    /// verdict from a value that proves nothing.
    pub fn verdict(&self, file: &ReleaseFile) -> Option<bool> {
        let same = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
        match self {
            Inspected::Sha256(h) | Inspected::Claimed(h) => Some(same(h, &file.sha256)),
            Inspected::Md5(m) => file.md5().map(|md5| same(m, md5)),
            // Either kind of checksum: equal to either recorded value
            // proves the bytes; equal to neither proves nothing about which.
            Inspected::Checksum(h) => (same(h, &file.sha256)
                || file
                    .composite_sha256
                    .as_deref()
                    .is_some_and(|c| same(h, composite_value(c).0)))
            .then_some(true),
            Inspected::Composite { sha256, parts } => {
                let (value, count) = composite_value(file.composite_sha256.as_deref()?);
                (same(sha256, value) && (parts.is_none() || count.is_none() || *parts == count))
                    .then_some(true)
            }
            Inspected::PartsEtag(e) => {
                let recorded = file.etag.trim_matches('"');
                (recorded.contains('-') && same(e, recorded)).then_some(true)
            }
        }
    }
}

/// A composite checksum as the record keeps it (`hex-N`): (hex, N).
fn composite_value(c: &str) -> (&str, Option<u32>) {
    match c.rsplit_once('-') {
        Some((value, n)) => (value, n.parse().ok()),
        None => (c, None),
    }
}

impl std::fmt::Display for Inspected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Inspected::Sha256(h) => write!(f, "sha256 {h}"),
            Inspected::Md5(m) => write!(f, "md5 {m} (its ETag)"),
            Inspected::Claimed(h) => write!(f, "sha256 {h} (per its metadata)"),
            Inspected::Composite {
                sha256,
                parts: Some(n),
            } => write!(f, "composite sha256 {sha256}-{n} (of its parts)"),
            Inspected::Composite {
                sha256,
                parts: None,
            } => {
                write!(f, "composite sha256 {sha256} (of its parts)")
            }
            Inspected::Checksum(h) => write!(f, "sha256 checksum {h}"),
            Inspected::PartsEtag(e) => write!(f, "multipart etag {e}"),
        }
    }
}

/// What S3 holds at a release's object, compared with its record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    Intact,
    Missing,
    /// Other bytes: what S3 says they are.
    Other(String),
}

/// What one listing entry says about an object expected to hold `size`
/// bytes whose upload would have one of `etags`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listed {
    Same,
    OtherSize,
    /// Same size, but the ETag proves nothing (SSE-KMS, other servers, none
    /// in the listing): needs a closer look.
    Unsure,
}

impl RemoteObject {
    pub fn compare(&self, size: u64, etags: &[&str]) -> Listed {
        if self.size != size {
            return Listed::OtherSize;
        }
        let etag = self.etag.trim_matches('"');
        if !etag.is_empty() && etags.iter().any(|e| etag.eq_ignore_ascii_case(e)) {
            Listed::Same
        } else {
            Listed::Unsure
        }
    }
}

/// The live state of the app in Redis: `current` and `manifest`, read together.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveState {
    pub current: Option<String>,
    /// None when missing or unreadable.
    pub manifest: Option<serde_json::Value>,
    /// Why the live manifest cannot be used (missing, not JSON), if so.
    pub damage: Option<String>,
    /// Set while the app is pinned.
    pub pin: Option<crate::contract::Pin>,
    /// What the last prune marked (`cutover:{APP}:pruned`): when it differs
    /// from what a deploy listed against, objects may have gone since.
    pub pruned: Option<String>,
    /// The live signature, as stored (None: absent).
    pub signature: Option<String>,
    /// The SHA-256 of the live manifest's bytes as read (None: absent).
    pub manifest_sha256: Option<String>,
    /// The canary of a running rollout (None: none, or unreadable).
    pub canary: Option<crate::canary::Canary>,
    /// Why the canary key cannot be used, when it is there but unreadable.
    pub canary_damage: Option<String>,
    /// The canary's release as the scripts read the key for their
    /// compare-and-set: its JSON's `release` string, `?` when it has none
    /// (not JSON, another type), None when there is no key.
    pub canary_stored: Option<String>,
    /// With several Redis targets (pods): what each holds, in their order.
    /// The fields above are the first target's. Empty: one Redis.
    pub targets: Vec<TargetLive>,
}

/// What one Redis target of several holds.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetLive {
    /// Its URL, password masked.
    pub name: String,
    pub current: Option<String>,
    pub manifest: Option<serde_json::Value>,
    pub signature: Option<String>,
    /// Its canary (None: none, or unreadable).
    pub canary: Option<crate::canary::Canary>,
    /// Its canary's release as the scripts read it ([`LiveState::canary_stored`]).
    pub canary_stored: Option<String>,
}

impl LiveState {
    /// Each target as (name, current, canary, canary as the scripts read
    /// it); one Redis is one target.
    #[allow(clippy::type_complexity)]
    fn canaries(
        &self,
    ) -> Vec<(
        &str,
        Option<&str>,
        Option<&crate::canary::Canary>,
        Option<&str>,
    )> {
        if self.targets.is_empty() {
            return vec![(
                "",
                self.current.as_deref(),
                self.canary.as_ref(),
                self.canary_stored.as_deref(),
            )];
        }
        self.targets
            .iter()
            .map(|t| {
                (
                    t.name.as_str(),
                    t.current.as_deref(),
                    t.canary.as_ref(),
                    t.canary_stored.as_deref(),
                )
            })
            .collect()
    }

    /// The canary of `release` on the first target that has one (a rerun
    /// after a split keeps its salt), or any canary with `release` None.
    pub fn canary_of(&self, release: Option<&str>) -> Option<&crate::canary::Canary> {
        self.canaries()
            .into_iter()
            .filter_map(|(_, _, c, _)| c)
            .find(|c| release.is_none_or(|r| c.release == r))
    }

    /// A rollout's precondition on each target: what it serves and its
    /// canary, and whether it holds `after` already (the same release,
    /// percent and salt; `after` None: no canary at all): left alone.
    pub fn rollout_expectations(
        &self,
        after: Option<&crate::canary::Canary>,
    ) -> Vec<RolloutExpect> {
        self.canaries()
            .into_iter()
            .map(|(name, current, canary, stored)| RolloutExpect {
                target: name.to_string(),
                current: current.map(str::to_string),
                canary: stored.map(str::to_string),
                done: match (after, canary) {
                    (Some(a), Some(c)) => {
                        a.release == c.release && a.percent == c.percent && a.salt == c.salt
                    }
                    (None, None) => stored.is_none(),
                    _ => false,
                },
            })
            .collect()
    }

    /// Is this release live, with its own manifest and signature (nothing
    /// to repair), on every Redis target?
    pub fn serves(&self, id: &str, manifest: &serde_json::Value, signature: Option<&str>) -> bool {
        self.expectations(id, manifest, signature)
            .iter()
            .all(|e| e.serves)
    }

    /// Whether the live release is signed, and by which key (None: no
    /// release is live), checked with `known` (the configured signing
    /// key's public half) when it is the key named. The first target's.
    pub fn signature_state(
        &self,
        known: Option<&crate::signing::VerifyKey>,
    ) -> Option<crate::signing::SignatureState> {
        let current = self.current.as_deref()?;
        Some(crate::signing::SignatureState::of(
            self.signature.as_deref(),
            current,
            self.manifest_sha256.as_deref(),
            known,
        ))
    }

    /// Every target's signature, in target order.
    fn signatures(&self) -> Vec<Option<&str>> {
        if self.targets.is_empty() {
            vec![self.signature.as_deref()]
        } else {
            self.targets
                .iter()
                .map(|t| t.signature.as_deref())
                .collect()
        }
    }

    /// Every target as (name, current, manifest); one Redis is one target.
    pub fn each(
        &self,
    ) -> Box<dyn Iterator<Item = (&str, Option<&str>, Option<&serde_json::Value>)> + '_> {
        if self.targets.is_empty() {
            Box::new(std::iter::once((
                "",
                self.current.as_deref(),
                self.manifest.as_ref(),
            )))
        } else {
            Box::new(
                self.targets
                    .iter()
                    .map(|t| (t.name.as_str(), t.current.as_deref(), t.manifest.as_ref())),
            )
        }
    }

    /// Do the targets serve different releases?
    pub fn split(&self) -> bool {
        let mut currents = self.each().map(|(_, c, _)| c);
        let first = currents.next().flatten();
        currents.any(|c| c != first)
    }

    /// The switch's precondition on each target: the release it serves,
    /// and whether it already serves `id` with `manifest` (left alone).
    pub fn expectations(
        &self,
        id: &str,
        manifest: &serde_json::Value,
        signature: Option<&str>,
    ) -> Vec<Expect> {
        self.each()
            .zip(self.signatures())
            .map(|((name, current, m), sig)| Expect {
                target: name.to_string(),
                current: current.map(str::to_string),
                serves: current == Some(id) && m == Some(manifest) && sig == signature,
            })
            .collect()
    }
}

/// What one Redis target served when a rollout was planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutExpect {
    /// The target's name (masked URL); empty with one Redis.
    pub target: String,
    pub current: Option<String>,
    /// Its canary's release (`?`: unreadable).
    pub canary: Option<String>,
    /// It holds the canary the rollout writes already: left alone.
    pub done: bool,
}

/// What one Redis target served when a switch was planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    /// The target's name (masked URL); empty with one Redis.
    pub target: String,
    /// Compare-and-set: switch only if it still serves this.
    pub current: Option<String>,
    /// Already serves the release and its manifest: nothing to do there.
    pub serves: bool,
}

/// A value read from a store: absent, usable, or there but unreadable.
#[derive(Debug, Clone, PartialEq)]
pub enum Stored<T> {
    Missing,
    Valid(T),
    /// Present but not what it should be, and why.
    Broken(String),
}

impl<T> Stored<T> {
    pub fn valid(self) -> Option<T> {
        match self {
            Stored::Valid(v) => Some(v),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_comparison() {
        let o = RemoteObject {
            size: 3,
            etag: "\"ABC\"".into(),
            modified_ms: 0,
        };
        assert_eq!(o.compare(3, &["abc"]), Listed::Same);
        assert_eq!(o.compare(4, &["abc"]), Listed::OtherSize);
        assert_eq!(o.compare(3, &["def"]), Listed::Unsure);
        let no_etag = RemoteObject {
            size: 3,
            etag: String::new(),
            modified_ms: 0,
        };
        assert_eq!(no_etag.compare(3, &[""]), Listed::Unsure);
    }

    fn record(id: &str, files: &[(&str, u64, &str, bool)]) -> ReleaseRecord {
        serde_json::from_value(serde_json::json!({
            "id": id, "app": "shop", "created_at": "", "created_at_ms": 0, "file_count": files.len(),
            "bytes": 0, "git_sha": null, "git_branch": null, "build_url": null, "deployed_by": null,
            "message": null, "bucket": "assets", "prefix": "packs", "cdn_url": "https://cdn", "manifest": {},
            "files": files.iter().map(|(path, size, sha, mutable)| serde_json::json!({
                "path": path, "size": size, "sha256": sha, "md5": format!("md5-{sha}"),
                "etag": format!("md5-{sha}"), "mutable": mutable,
            })).collect::<Vec<_>>(),
        }))
        .unwrap()
    }

    #[test]
    fn evidence_of_parts_is_compared_like_with_like() {
        let file: ReleaseFile = serde_json::from_value(serde_json::json!({
            "path": "v.mp4", "size": 9, "sha256": "aa", "md5": "m1", "etag": "e1-3",
            "composite_sha256": "cc-3",
        }))
        .unwrap();
        let old = ReleaseFile {
            composite_sha256: None,
            ..file.clone()
        };
        let composite = |h: &str, parts| Inspected::Composite {
            sha256: h.into(),
            parts,
        };
        // S3's composite, suffixed or not, against the recorded composite.
        assert_eq!(composite("CC", Some(3)).verdict(&file), Some(true));
        assert_eq!(composite("cc", None).verdict(&file), Some(true));
        // Another count, another value, or a record without it: cannot tell.
        assert_eq!(composite("cc", Some(4)).verdict(&file), None);
        assert_eq!(composite("dd", Some(3)).verdict(&file), None);
        assert_eq!(composite("cc", Some(3)).verdict(&old), None);
        // A checksum of unsaid kind (moto): either recorded value proves it.
        assert_eq!(Inspected::Checksum("aa".into()).verdict(&file), Some(true));
        assert_eq!(Inspected::Checksum("cc".into()).verdict(&file), Some(true));
        assert_eq!(Inspected::Checksum("cc".into()).verdict(&old), None);
        assert_eq!(Inspected::Checksum("dd".into()).verdict(&file), None);
        // The multipart ETag the record has; a plain MD5 against the MD5.
        assert_eq!(
            Inspected::PartsEtag("E1-3".into()).verdict(&old),
            Some(true)
        );
        assert_eq!(Inspected::PartsEtag("e2-3".into()).verdict(&old), None);
        assert_eq!(Inspected::Md5("m2".into()).verdict(&old), Some(false));
        let no_md5 = ReleaseFile {
            md5: None,
            ..old.clone()
        };
        assert_eq!(Inspected::Md5("m1".into()).verdict(&no_md5), None);
        // The bytes' SHA-256 decides either way.
        assert_eq!(Inspected::Sha256("ab".into()).verdict(&file), Some(false));
        // Evidence of the parts says nothing about the SHA-256 of the bytes.
        assert!(!composite("aa", None).matches("aa", Some("m1")));
    }

    #[test]
    fn content_index_trusts_records_only_where_the_listing_agrees() {
        let a = record(
            "a",
            &[
                ("js/a.js", 3, "aa", false),
                ("sw.js", 1, "s1", true),
                ("x.js", 2, "x1", false),
            ],
        );
        let b = record(
            "b",
            &[("js/a.js", 3, "aa", false), ("x.js", 2, "x2", false)],
        );
        let index = ContentIndex::new("assets", vec![a.clone(), b]);
        let listed = |size, etag: &str| RemoteObject {
            size,
            etag: etag.into(),
            modified_ms: 0,
        };
        // No ETag in the listing (s3s-fs): the size and the record decide.
        assert_eq!(
            index
                .confirms("packs/js/a.js", &listed(3, ""))
                .unwrap()
                .sha256,
            "aa"
        );
        // The recorded ETag agrees; another ETag or size: S3 wins, not known.
        assert!(index
            .confirms("packs/js/a.js", &listed(3, "\"MD5-AA\""))
            .is_some());
        assert!(index
            .confirms("packs/js/a.js", &listed(3, "other"))
            .is_none());
        assert!(index.confirms("packs/js/a.js", &listed(4, "")).is_none());
        // Mutable files change under their name; records that disagree prove nothing.
        assert!(index.confirms("packs/sw.js", &listed(1, "")).is_none());
        assert!(index.confirms("packs/x.js", &listed(2, "")).is_none());
        // Records of another bucket describe other objects.
        assert!(ContentIndex::new("elsewhere", vec![a]).is_empty());
        assert_eq!(index.len(), 1);
    }
}
