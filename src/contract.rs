//! The names other programs rely on: Redis keys and the history event the
//! Rails app and the readers read, and where things go in the bucket. The
//! "Redis contract" (docs/redis.md) and "S3 layout" (docs/how-it-works.md) sections describe these; keep
//! them in step.

use serde::{Deserialize, Serialize};

/// The Redis key names of one app. All share the hash tag `{APP}`, so they
/// live in one Redis Cluster slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    pub current: String,
    pub manifest: String,
    pub releases: String,
    pub history: String,
    pub lock: String,
    pub pin: String,
    pub rolled_back: String,
    /// Set by every prune before it deletes: a deploy planned against an
    /// older value lists the bucket again under the lock.
    pub pruned: String,
    pub channel: String,
    /// The live release's signature (docs/redis.md, "Signed releases").
    pub signature: String,
    /// The readers' reports: a sorted set of `HOST:PID` scored by the last
    /// report (docs/redis.md, "The fleet").
    pub fleet: String,
    /// The canary of a rollout, its manifest and its signature
    /// (docs/redis.md, "Rollouts and skew protection").
    pub canary: String,
    pub canary_manifest: String,
    pub canary_signature: String,
    /// Releases that stopped being served, scored by when (ms).
    pub retired: String,
    prefix: String,
}

impl Keys {
    pub fn new(app: &str) -> Keys {
        let prefix = format!("cutover:{{{app}}}:");
        Keys {
            current: format!("{prefix}current"),
            manifest: format!("{prefix}manifest"),
            releases: format!("{prefix}releases"),
            history: format!("{prefix}history"),
            lock: format!("{prefix}lock"),
            pin: format!("{prefix}pin"),
            rolled_back: format!("{prefix}rolled_back"),
            pruned: format!("{prefix}pruned"),
            channel: format!("{prefix}events"),
            signature: format!("{prefix}signature"),
            fleet: format!("{prefix}fleet"),
            canary: format!("{prefix}canary"),
            canary_manifest: format!("{prefix}canary_manifest"),
            canary_signature: format!("{prefix}canary_signature"),
            retired: format!("{prefix}retired"),
            prefix,
        }
    }

    /// The key of one process's last report (`HOST:PID`).
    pub fn process(&self, id: &str) -> String {
        format!("{}:{id}", self.fleet)
    }

    /// The key of one release record.
    pub fn release(&self, id: &str) -> String {
        format!("{}release:{id}", self.prefix)
    }
}

/// The exact bytes of a manifest as the activation writes it to
/// `cutover:{APP}:manifest` (compact JSON, keys in their order). The one
/// serialization: the signer hashes these bytes and the activation writes
/// them, so a signature always covers what readers read.
pub fn manifest_text(manifest: &serde_json::Value) -> String {
    serde_json::to_string(manifest).expect("JSON values serialize")
}

/// What changed the live release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Deploy,
    Activate,
    Rollback,
    Promote,
    /// A rollout started, or its percent changed: the canary, not the live release.
    Rollout,
    /// The canary taken off.
    RolloutAbort,
    /// The canary made live for everyone.
    RolloutComplete,
}

impl Action {
    /// Did an event of this action change the live release? (Not a
    /// rollout's start, change or abort: those change the canary.) Events
    /// with an action this version does not know count as switches.
    pub fn switches(action: &str) -> bool {
        !matches!(action, "rollout" | "rollout_abort")
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Deploy => "deploy",
            Action::Activate => "activate",
            Action::Rollback => "rollback",
            Action::Promote => "promote",
            Action::Rollout => "rollout",
            Action::RolloutAbort => "rollout_abort",
            Action::RolloutComplete => "rollout_complete",
        }
    }
}

/// The pin: while set, deploys record but do not activate (docs/operations.md, "Rollback and pin").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pin {
    /// The release live when it was pinned.
    pub release: Option<String>,
    pub by: Option<String>,
    pub at: String,
    pub message: Option<String>,
}

impl Pin {
    /// "since T by B (message)"
    pub fn since(&self) -> String {
        format!(
            "since {} by {}{}",
            self.at,
            self.by.as_deref().unwrap_or("unknown"),
            self.message
                .as_deref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default()
        )
    }

    /// "release X since T by B (message)"
    pub fn describe(&self) -> String {
        format!(
            "{} {}",
            self.release.as_deref().unwrap_or("the live release"),
            self.since()
        )
    }
}

/// What a switch does with the pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinChange {
    /// Refuse to switch while pinned (deploy; activate without --unpin).
    Respect,
    /// Switch and pin the new release (rollback).
    Set(Pin),
    /// Switch and clear the pin (activate --unpin).
    Clear,
}

/// What a switch does when a canary is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CanaryMode {
    /// Switch only while no rollout runs (deploy, activate, promote).
    Refuse,
    /// Take the canary off in the same step (rollback).
    Clear,
    /// The release is the canary: make it live, clear the canary
    /// (`rollout complete`); refused if the canary changed.
    Complete,
}

impl CanaryMode {
    /// The mode of a switch made by `action`.
    pub fn of(action: Action) -> CanaryMode {
        match action {
            Action::Rollback => CanaryMode::Clear,
            Action::RolloutComplete => CanaryMode::Complete,
            _ => CanaryMode::Refuse,
        }
    }

    /// The mode as the activation script takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            CanaryMode::Refuse => "refuse",
            CanaryMode::Clear => "clear",
            CanaryMode::Complete => "complete",
        }
    }
}

/// One activation, as pushed to `history` and published on the channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivationEvent {
    pub release: String,
    pub previous: Option<String>,
    pub action: String,
    pub at: String,
    pub by: Option<String>,
    pub message: Option<String>,
    /// A rollout's event: the canary's percent after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<crate::canary::Percent>,
}

/// The S3 key of `path` (inside the build) under a public prefix ("" = bucket root).
pub fn object_key(prefix: &str, path: &str) -> String {
    if prefix.is_empty() {
        path.to_string()
    } else {
        format!("{prefix}/{path}")
    }
}

/// An S3 key as the path of a URL: every byte outside RFC 3986's
/// unreserved characters is percent-encoded, segment by segment, so the URL
/// resolves (through S3 and any CDN) to exactly this key. `+`, `#`, `?`,
/// `%`, spaces and non-ASCII names included.
pub fn url_path(key: &str) -> String {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    key.split('/')
        .map(|seg| utf8_percent_encode(seg, SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// The S3 key a public URL under `cdn_url` resolves to (the inverse of
/// [`url_path`]); None for a URL elsewhere.
pub fn key_of_url(cdn_url: &str, url: &str) -> Option<String> {
    let rest = url
        .strip_prefix(cdn_url.trim_end_matches('/'))?
        .strip_prefix('/')?;
    let path = rest.split(['?', '#']).next().unwrap_or_default();
    percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .ok()
        .map(|k| k.into_owned())
}

/// The listing prefix of a public prefix: "" or "prefix/".
pub fn list_prefix(prefix: &str) -> String {
    if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}/")
    }
}

/// The S3 key of a release record under the records prefix (`_cutover/APP/`).
pub fn record_key(meta_prefix: &str, id: &str) -> String {
    format!("{meta_prefix}releases/{id}.json")
}

/// The S3 key of the content-addressed copy of a mutable file.
pub fn mutable_key(meta_prefix: &str, sha256: &str) -> String {
    format!("{meta_prefix}mutable/{sha256}")
}

/// The listing prefix of the records whose id starts with `id_prefix`.
pub fn records_prefix(meta_prefix: &str, id_prefix: &str) -> String {
    format!("{meta_prefix}releases/{id_prefix}")
}

/// The release id of a record key, if it is one.
pub fn id_of_record_key(key: &str) -> Option<&str> {
    key.rsplit('/').next()?.strip_suffix(".json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_the_app_hash_tag() {
        let k = Keys::new("shop");
        for key in [
            &k.current,
            &k.manifest,
            &k.releases,
            &k.history,
            &k.lock,
            &k.pin,
            &k.rolled_back,
            &k.channel,
            &k.signature,
            &k.fleet,
            &k.canary,
            &k.canary_manifest,
            &k.canary_signature,
            &k.retired,
            &k.release("ab12"),
        ] {
            assert!(key.starts_with("cutover:{shop}:"), "{key}");
        }
        assert_eq!(k.release("ab12"), "cutover:{shop}:release:ab12");
    }

    #[test]
    fn layout() {
        assert_eq!(object_key("packs", "js/a.js"), "packs/js/a.js");
        assert_eq!(object_key("", "js/a.js"), "js/a.js");
        assert_eq!(list_prefix(""), "");
        assert_eq!(list_prefix("a/b"), "a/b/");
        let key = record_key("_cutover/shop/", "ab12");
        assert_eq!(key, "_cutover/shop/releases/ab12.json");
        assert_eq!(id_of_record_key(&key), Some("ab12"));
    }

    #[test]
    fn url_paths_resolve_to_the_key() {
        assert_eq!(
            url_path("packs/js/a b%c#d?e+f-ü.js"),
            "packs/js/a%20b%25c%23d%3Fe%2Bf-%C3%BC.js"
        );
        assert_eq!(url_path("packs/js/app-1a2b.js"), "packs/js/app-1a2b.js");
    }
}
