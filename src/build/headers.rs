//! HTTP headers of an uploaded file: Content-Type, Content-Encoding and
//! Cache-Control, decided from the name alone (pure).

use globset::GlobMatcher;
use serde::{Deserialize, Serialize};

use super::{BuildFile, Encoding};

/// Cache-Control of fingerprinted files: their bytes never change.
pub const IMMUTABLE_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Headers {
    pub content_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    pub cache_control: String,
}

/// A header override from `[[headers]]` in `cutover.toml` (last match wins).
#[derive(Debug, Clone)]
pub struct HeaderRule {
    pub glob: String,
    pub matcher: GlobMatcher,
    pub cache_control: Option<String>,
    pub content_type: Option<String>,
}

/// A `[[mutable]]` rule: files matching it may change under the same name.
#[derive(Debug, Clone)]
pub struct MutableRule {
    pub glob: String,
    pub matcher: GlobMatcher,
}

/// Is `path` a mutable file?
pub fn is_mutable(path: &str, rules: &[MutableRule]) -> bool {
    rules.iter().any(|r| r.matcher.is_match(path))
}

/// Types docs/how-it-works.md promises, where the MIME database says otherwise
/// (source maps are JSON; every JavaScript flavour is text/javascript; fonts
/// have their own registered `font/` types).
const OVERRIDES: &[(&str, &str)] = &[
    ("woff", "font/woff"),
    ("otf", "font/otf"),
    ("js", "text/javascript"),
    ("mjs", "text/javascript"),
    ("cjs", "text/javascript"),
    ("map", "application/json"),
    ("webmanifest", "application/manifest+json"),
    ("ico", "image/vnd.microsoft.icon"),
    ("br", "application/x-brotli"),
];

/// Content-Type by extension. Text types carry `charset=utf-8`.
pub fn content_type(path: &str) -> String {
    let name = path.rsplit('/').next().unwrap_or(path);
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    let mime = OVERRIDES
        .iter()
        .find(|(e, _)| *e == ext)
        .map(|(_, m)| m.to_string())
        .or_else(|| {
            (!ext.is_empty())
                .then(|| mime_guess::from_ext(&ext).first_raw().map(str::to_string))
                .flatten()
        })
        .unwrap_or_else(|| "application/octet-stream".to_string());
    if is_text(&mime) {
        format!("{mime}; charset=utf-8")
    } else {
        mime
    }
}

/// Types whose bytes are text, served with `charset=utf-8`.
fn is_text(mime: &str) -> bool {
    mime.starts_with("text/")
        || mime.ends_with("+json")
        || mime.ends_with("+xml")
        || matches!(
            mime,
            "application/json" | "application/javascript" | "application/xml"
        )
}

/// Does the file name carry a content hash (webpack's `[contenthash]`, `[hash:8]`, ...)?
///
/// A name is fingerprinted when one of its `-`/`.`/`_`-separated tokens
/// (ignoring the extensions) is at least 16 hex characters, or at least 8 hex
/// characters with a digit and a letter, or at least 16 characters of a
/// base64url digest with both.
pub fn is_fingerprinted(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.split(['-', '.', '_', '@', '~']).any(|token| {
        let has_digit = token.bytes().any(|b| b.is_ascii_digit());
        let has_alpha = token.bytes().any(|b| b.is_ascii_alphabetic());
        let all_hex = token.bytes().all(|b| b.is_ascii_hexdigit());
        let b64 = token.len() >= 16 && token.bytes().all(|b| b.is_ascii_alphanumeric());
        // A 20-character webpack contenthash is all digits about once in
        // 12,000 files: long hex tokens count whatever their letters.
        (all_hex && token.len() >= 16)
            || (has_digit && has_alpha && ((all_hex && token.len() >= 8) || b64))
    })
}

/// Headers for one build file: precompressed copies take their original's
/// type; `fingerprinted` files (by their name, or as the manifest's format
/// says) are immutable; glob rules override the defaults (last match wins).
pub fn headers_for(
    file: &BuildFile,
    fingerprinted: bool,
    default_cache_control: &str,
    rules: &[HeaderRule],
) -> Headers {
    let (type_path, encoding) = match &file.precompressed {
        Some((original, enc)) => (original.as_str(), Some(*enc)),
        None => (file.path.as_str(), None),
    };
    let mut headers = Headers {
        content_type: content_type(type_path),
        content_encoding: encoding.map(|e: Encoding| e.as_str().to_string()),
        cache_control: if fingerprinted {
            IMMUTABLE_CACHE_CONTROL.to_string()
        } else {
            default_cache_control.to_string()
        },
    };
    for rule in rules.iter().filter(|r| r.matcher.is_match(&file.path)) {
        if let Some(cc) = &rule.cache_control {
            headers.cache_control = cc.clone();
        }
        if let Some(ct) = &rule.content_type {
            headers.content_type = ct.clone();
        }
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_with_charset_for_text() {
        for (path, want) in [
            ("js/app-1.js", "text/javascript; charset=utf-8"),
            ("js/app-1.mjs", "text/javascript; charset=utf-8"),
            ("css/a.CSS", "text/css; charset=utf-8"),
            ("js/app.js.map", "application/json; charset=utf-8"),
            ("manifest.json", "application/json; charset=utf-8"),
            ("static/logo.svg", "image/svg+xml; charset=utf-8"),
            ("static/f.woff2", "font/woff2"),
            ("static/f.woff", "font/woff"),
            ("static/p.png", "image/png"),
            ("static/p.webp", "image/webp"),
            ("m.wasm", "application/wasm"),
            ("LICENSE", "application/octet-stream"),
            ("app.js.LICENSE.txt", "text/plain; charset=utf-8"),
            ("a.webmanifest", "application/manifest+json; charset=utf-8"),
            ("favicon.ico", "image/vnd.microsoft.icon"),
            ("static/f.ttf", "font/ttf"),
            ("static/f.otf", "font/otf"),
        ] {
            assert_eq!(content_type(path), want, "{path}");
        }
    }

    #[test]
    fn fingerprints() {
        for yes in [
            "js/application-7eeb1c2d3a4b5c6d7e8f.js",
            "js/application-7eeb1c2d.js.gz",
            "css/application.7eeb1c2d.css",
            "static/logo-1a2b3c4d5e6f7a8b9c0d.png",
            "js/532-0f1e2d3c4b5a69788796.chunk.js",
            "js/app-Zk3Qp9xY2bV7LmN4.js",
            "js/chunk-61590522899590807205.js",
        ] {
            assert!(is_fingerprinted(yes), "{yes}");
        }
        for no in [
            "manifest.json",
            "js/application.js",
            "robots.txt",
            "js/vendor-deadbeef.js",
            "js/v-12345678.js",
            "favicon.ico",
        ] {
            assert!(!is_fingerprinted(no), "{no}");
        }
    }
}
