//! Facts about the remote side, as read before planning: what one listing
//! of the bucket shows, what a closer look at an object found, and the live
//! state in Redis. Stores produce these; planning consumes them.

use std::collections::HashMap;

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
}

impl Inspected {
    /// Does the object hold the bytes with this SHA-256 and MD5 (hex)?
    pub fn matches(&self, sha256: &str, md5: Option<&str>) -> bool {
        match self {
            Inspected::Sha256(h) | Inspected::Claimed(h) => h.eq_ignore_ascii_case(sha256),
            Inspected::Md5(m) => md5.is_some_and(|md5| m.eq_ignore_ascii_case(md5)),
        }
    }
}

impl std::fmt::Display for Inspected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Inspected::Sha256(h) => write!(f, "sha256 {h}"),
            Inspected::Md5(m) => write!(f, "md5 {m} (its ETag)"),
            Inspected::Claimed(h) => write!(f, "sha256 {h} (per its metadata)"),
        }
    }
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
}

impl LiveState {
    /// Is this release live, with its own manifest (nothing to repair), on
    /// every Redis target?
    pub fn serves(&self, id: &str, manifest: &serde_json::Value) -> bool {
        self.each()
            .all(|(_, current, m)| current == Some(id) && m == Some(manifest))
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
    pub fn expectations(&self, id: &str, manifest: &serde_json::Value) -> Vec<Expect> {
        self.each()
            .map(|(name, current, m)| Expect {
                target: name.to_string(),
                current: current.map(str::to_string),
                serves: current == Some(id) && m == Some(manifest),
            })
            .collect()
    }
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
}
