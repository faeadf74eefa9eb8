//! HTTP headers of an uploaded file: Content-Type, Content-Encoding and
//! Cache-Control, decided from the name alone (pure).

use serde::Serialize;

use crate::config::{Config, IMMUTABLE_CACHE_CONTROL};
use crate::scan::{BuildFile, Encoding};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Headers {
    pub content_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    pub cache_control: String,
}

/// Content-Type by extension. Text types carry `charset=utf-8`.
pub fn content_type(path: &str) -> String {
    let name = path.rsplit('/').next().unwrap_or(path);
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    let (mime, text) = match ext.as_str() {
        "js" | "mjs" | "cjs" => ("text/javascript", true),
        "css" => ("text/css", true),
        "map" | "json" => ("application/json", true),
        "webmanifest" => ("application/manifest+json", true),
        "html" | "htm" => ("text/html", true),
        "txt" => ("text/plain", true),
        "xml" => ("application/xml", true),
        "svg" => ("image/svg+xml", true),
        "csv" => ("text/csv", true),
        "md" => ("text/markdown", true),
        "png" => ("image/png", false),
        "jpg" | "jpeg" => ("image/jpeg", false),
        "gif" => ("image/gif", false),
        "webp" => ("image/webp", false),
        "avif" => ("image/avif", false),
        "ico" => ("image/vnd.microsoft.icon", false),
        "bmp" => ("image/bmp", false),
        "woff2" => ("font/woff2", false),
        "woff" => ("font/woff", false),
        "ttf" => ("font/ttf", false),
        "otf" => ("font/otf", false),
        "eot" => ("application/vnd.ms-fontobject", false),
        "wasm" => ("application/wasm", false),
        "mp4" => ("video/mp4", false),
        "webm" => ("video/webm", false),
        "mp3" => ("audio/mpeg", false),
        "ogg" => ("audio/ogg", false),
        "wav" => ("audio/wav", false),
        "pdf" => ("application/pdf", false),
        "zip" => ("application/zip", false),
        "gz" => ("application/gzip", false),
        "br" => ("application/x-brotli", false),
        _ => ("application/octet-stream", false),
    };
    if text {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_string()
    }
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
/// type; glob rules from the config override the defaults (last match wins).
pub fn headers_for(file: &BuildFile, config: &Config) -> Headers {
    let (type_path, encoding) = match &file.precompressed {
        Some((original, enc)) => (original.as_str(), Some(*enc)),
        None => (file.path.as_str(), None),
    };
    let mut headers = Headers {
        content_type: content_type(type_path),
        content_encoding: encoding.map(|e: Encoding| e.as_str().to_string()),
        cache_control: if is_fingerprinted(&file.path) {
            IMMUTABLE_CACHE_CONTROL.to_string()
        } else {
            config.cache_control.clone()
        },
    };
    for rule in &config.header_rules {
        if rule.matcher.is_match(&file.path) {
            if let Some(cc) = &rule.cache_control {
                headers.cache_control = cc.clone();
            }
            if let Some(ct) = &rule.content_type {
                headers.content_type = ct.clone();
            }
        }
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_with_charset_for_text() {
        assert_eq!(
            content_type("js/app-1.js"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type("css/a.CSS"), "text/css; charset=utf-8");
        assert_eq!(
            content_type("js/app.js.map"),
            "application/json; charset=utf-8"
        );
        assert_eq!(
            content_type("manifest.json"),
            "application/json; charset=utf-8"
        );
        assert_eq!(
            content_type("static/logo.svg"),
            "image/svg+xml; charset=utf-8"
        );
        assert_eq!(content_type("static/f.woff2"), "font/woff2");
        assert_eq!(content_type("m.wasm"), "application/wasm");
        assert_eq!(content_type("LICENSE"), "application/octet-stream");
        assert_eq!(
            content_type("app.js.LICENSE.txt"),
            "text/plain; charset=utf-8"
        );
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
