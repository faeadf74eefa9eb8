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
}

/// One listing of a prefix: key → object.
pub type Listing = HashMap<String, RemoteObject>;

/// What a closer look (HEAD, or reading the object) found out about an
/// object whose listing entry alone did not prove its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspected {
    pub sha256_hex: String,
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
    pub manifest: Option<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_comparison() {
        let o = RemoteObject {
            size: 3,
            etag: "\"ABC\"".into(),
        };
        assert_eq!(o.compare(3, &["abc"]), Listed::Same);
        assert_eq!(o.compare(4, &["abc"]), Listed::OtherSize);
        assert_eq!(o.compare(3, &["def"]), Listed::Unsure);
        let no_etag = RemoteObject {
            size: 3,
            etag: String::new(),
        };
        assert_eq!(no_etag.compare(3, &[""]), Listed::Unsure);
    }
}
