//! One function per key of [`super::keys::KEYS`]: it checks a raw value and
//! stores it in the [`Config`], or says what was expected.

use super::Config;

pub(super) fn app(v: &str, c: &mut Config) -> Result<(), String> {
    let ok = v.len() <= 64
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        return Err("1-64 characters of letters, digits, '-', '_' or '.'".into());
    }
    c.app = Some(v.to_string());
    Ok(())
}

pub(super) fn bucket(v: &str, c: &mut Config) -> Result<(), String> {
    let ok = (3..=63).contains(&v.len())
        && v.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.'))
        && !v.starts_with(['-', '.'])
        && !v.ends_with(['-', '.']);
    if !ok {
        return Err(
            "an S3 bucket name: 3-63 lowercase letters, digits, '-' or '.' (no s3:// and no path)"
                .into(),
        );
    }
    c.bucket = Some(v.to_string());
    Ok(())
}

/// A key prefix: `a` or `a/b`, no `.`/`..`/empty segments; leading and
/// trailing slashes are dropped.
pub(super) fn key_prefix(v: &str) -> Option<String> {
    let v = v.trim_matches('/');
    let ok = !v.is_empty()
        && !v.contains('\\')
        && v.split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..");
    ok.then(|| v.to_string())
}

pub(super) fn prefix(v: &str, c: &mut Config) -> Result<(), String> {
    c.prefix = key_prefix(v).ok_or(
        "a key prefix like `packs` or `assets/packs` (not the bucket root, no `..`, no empty segments)",
    )?;
    Ok(())
}

pub(super) fn cdn_url(v: &str, c: &mut Config) -> Result<(), String> {
    let v = v.trim_end_matches('/');
    match url::Url::parse(v) {
        Ok(u)
            if matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some()
                && u.query().is_none()
                && u.fragment().is_none() =>
        {
            // The path as written (the parser would resolve `..` away):
            // URLs built on it must name the objects they seem to.
            let path = v
                .split_once("://")
                .map(|(_, rest)| rest.split_once('/').map_or("", |(_, p)| p))
                .unwrap_or("");
            if path.split('/').any(|seg| {
                let seg = seg.to_ascii_lowercase().replace("%2e", ".");
                seg == "." || seg == ".."
            }) {
                return Err(
                    "a URL without `.` or `..` segments in its path, like https://cdn.example.com/assets"
                        .into(),
                );
            }
            if !u.username().is_empty() || u.password().is_some() {
                return Err(
                    "a URL without credentials: it is published to every browser in the manifest"
                        .into(),
                );
            }
            c.cdn_url = Some(v.to_string());
            Ok(())
        }
        _ => Err("an http(s) URL like https://cdn.example.com".into()),
    }
}

pub(super) fn role_arn(v: &str, c: &mut Config) -> Result<(), String> {
    if !v.starts_with("arn:") || v.split(':').count() < 6 {
        return Err("an IAM role ARN like arn:aws:iam::123456789012:role/deploy".into());
    }
    c.role_arn = Some(v.to_string());
    Ok(())
}

pub(super) fn cloudfront_distribution_id(v: &str, c: &mut Config) -> Result<(), String> {
    if !v.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err("a CloudFront distribution id like E2ABCDEF123456".into());
    }
    c.cloudfront_distribution_id = Some(v.to_string());
    Ok(())
}

pub(super) fn app_origin(v: &str, c: &mut Config) -> Result<(), String> {
    match url::Url::parse(v) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
            c.app_origin = Some(u.origin().ascii_serialization());
            Ok(())
        }
        _ => Err("an origin like https://shop.example".into()),
    }
}

/// One Redis URL, or several (targets switched together).
pub(super) fn redis_url(v: &str, c: &mut Config) -> Result<(), String> {
    let mut urls: Vec<String> = Vec::new();
    for one in v.split_whitespace() {
        if super::sentinel::SentinelUrl::is_sentinel(one) {
            super::sentinel::SentinelUrl::parse(one)?;
        } else {
            match url::Url::parse(one) {
                Ok(u) if matches!(u.scheme(), "redis" | "rediss" | "redis+unix" | "unix") => {}
                _ => {
                    return Err(format!(
                        "redis://[user:password@]host:port[/db], rediss://... or {} (not {})",
                        super::sentinel::EXPECTED,
                        super::mask_url(one)
                    ))
                }
            }
        }
        if urls.iter().any(|u| u == one) {
            return Err(format!(
                "each Redis once ({} is listed twice)",
                super::mask_url(one)
            ));
        }
        urls.push(one.to_string());
    }
    c.redis_url = urls[0].clone();
    c.redis_urls = urls;
    Ok(())
}

pub(super) fn boolean(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err("true or false".into()),
    }
}

pub(super) fn number(v: &str, min: u64, max: u64) -> Result<u64, String> {
    match v.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("a whole number from {min} to {max}")),
    }
}

pub(super) fn redis_cluster(v: &str, c: &mut Config) -> Result<(), String> {
    c.redis_cluster = boolean(v)?;
    Ok(())
}

/// A PEM file that can be read now: a missing or unreadable file is bad
/// input, found before anything connects.
pub(super) fn pem_file(v: &str, what: &str) -> Result<std::path::PathBuf, String> {
    let path = std::path::PathBuf::from(v);
    match std::fs::read(&path) {
        Ok(bytes) if String::from_utf8_lossy(&bytes).contains("-----BEGIN ") => Ok(path),
        Ok(_) => Err(format!(
            "a PEM file of {what} (this file has no -----BEGIN line)"
        )),
        Err(e) => Err(format!("a readable PEM file of {what} ({e})")),
    }
}

pub(super) fn redis_ca_file(v: &str, c: &mut Config) -> Result<(), String> {
    c.redis_ca_file = Some(pem_file(v, "CA certificates")?);
    Ok(())
}

pub(super) fn redis_tls_cert_file(v: &str, c: &mut Config) -> Result<(), String> {
    c.redis_tls_cert_file = Some(pem_file(v, "a client certificate")?);
    Ok(())
}

pub(super) fn redis_tls_key_file(v: &str, c: &mut Config) -> Result<(), String> {
    c.redis_tls_key_file = Some(pem_file(v, "a private key")?);
    Ok(())
}

pub(super) fn redis_tls_insecure(v: &str, c: &mut Config) -> Result<(), String> {
    c.redis_tls_insecure = boolean(v)?;
    Ok(())
}

pub(super) fn redis_sentinel_password(v: &str, c: &mut Config) -> Result<(), String> {
    c.redis_sentinel_password = Some(v.to_string());
    Ok(())
}

pub(super) fn redis_timeout_secs(v: &str, c: &mut Config) -> Result<(), String> {
    c.redis_timeout_secs = number(v, 1, 300)?;
    Ok(())
}

pub(super) fn s3_endpoint(v: &str, c: &mut Config) -> Result<(), String> {
    match url::Url::parse(v) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => {
            c.s3_endpoint = Some(v.to_string());
            Ok(())
        }
        _ => Err("an http(s) URL like http://127.0.0.1:9000".into()),
    }
}

pub(super) fn s3_timeout_secs(v: &str, c: &mut Config) -> Result<(), String> {
    c.s3_timeout_secs = number(v, 1, 600)?;
    Ok(())
}

pub(super) fn s3_path_style(v: &str, c: &mut Config) -> Result<(), String> {
    c.s3_path_style = Some(boolean(v)?);
    Ok(())
}

pub(super) fn meta_prefix(v: &str, c: &mut Config) -> Result<(), String> {
    let p = key_prefix(v).ok_or("a key prefix like `_cutover/myapp`")?;
    c.meta_prefix = Some(format!("{p}/"));
    Ok(())
}

pub(super) fn manifest(v: &str, c: &mut Config) -> Result<(), String> {
    if v.starts_with('/') || v.split(['/', '\\']).any(|s| s == "..") {
        return Err("a path inside the build directory, like manifest.json".into());
    }
    c.manifest = v.to_string();
    Ok(())
}

pub(super) fn manifest_format(v: &str, c: &mut Config) -> Result<(), String> {
    c.manifest_format = crate::build::manifest::Format::parse(v)?;
    Ok(())
}

pub(super) fn exclude(v: &str, c: &mut Config) -> Result<(), String> {
    let globs: Vec<String> = v.split_whitespace().map(str::to_string).collect();
    c.exclude =
        crate::build::Exclude::new(globs).map_err(|e| format!("globs like \"**/*.map\" ({e})"))?;
    Ok(())
}

/// A header value S3 and browsers accept: printable ASCII, no line breaks.
pub(super) fn header_value(v: &str) -> Result<String, String> {
    if v.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        Ok(v.to_string())
    } else {
        Err("a header value of printable ASCII (no line breaks, no other characters)".into())
    }
}

pub(super) fn cache_control(v: &str, c: &mut Config) -> Result<(), String> {
    c.cache_control = header_value(v)?;
    Ok(())
}

pub(super) fn concurrency(v: &str, c: &mut Config) -> Result<(), String> {
    c.concurrency = number(v, 1, 512)? as usize;
    Ok(())
}

pub(super) fn check_concurrency(v: &str, c: &mut Config) -> Result<(), String> {
    c.check_concurrency = number(v, 1, 1024)? as usize;
    Ok(())
}

pub(super) fn multipart_threshold_mib(v: &str, c: &mut Config) -> Result<(), String> {
    c.multipart_threshold = number(v, 5, 5 * 1024)? * 1024 * 1024;
    Ok(())
}

pub(super) fn lock_wait_secs(v: &str, c: &mut Config) -> Result<(), String> {
    c.lock_wait_secs = number(v, 0, 3600)?;
    Ok(())
}

pub(super) fn skew_max_age_secs(v: &str, c: &mut Config) -> Result<(), String> {
    c.skew_max_age_secs = number(v, 0, 30 * 86_400)?;
    Ok(())
}

pub(super) fn wait_converged_secs(v: &str, c: &mut Config) -> Result<(), String> {
    c.wait_converged_secs = number(v, 0, 3600)?;
    Ok(())
}

pub(super) fn lock_ttl_secs(v: &str, c: &mut Config) -> Result<(), String> {
    c.lock_ttl_secs = number(v, 5, 3600)?;
    Ok(())
}

pub(super) fn history_limit(v: &str, c: &mut Config) -> Result<(), String> {
    c.history_limit = number(v, 1, 100_000)? as usize;
    Ok(())
}

pub(super) fn deployed_by(v: &str, c: &mut Config) -> Result<(), String> {
    c.deployed_by = Some(v.to_string());
    Ok(())
}

pub(super) fn git_sha(v: &str, c: &mut Config) -> Result<(), String> {
    c.git_sha = Some(v.to_string());
    Ok(())
}

pub(super) fn git_commit_time(v: &str, c: &mut Config) -> Result<(), String> {
    c.git_commit_time = Some(crate::release::utc_time(v).ok_or_else(|| {
        "an RFC 3339 time (2026-12-07T10:00:00Z) or seconds since the epoch".to_string()
    })?);
    Ok(())
}

pub(super) fn git_branch(v: &str, c: &mut Config) -> Result<(), String> {
    c.git_branch = Some(v.to_string());
    Ok(())
}

pub(super) fn build_url(v: &str, c: &mut Config) -> Result<(), String> {
    c.build_url = Some(v.to_string());
    Ok(())
}

/// Is this value a PEM itself (rather than the path of a PEM file)?
pub(super) fn is_inline_pem(v: &str) -> bool {
    v.trim_start().starts_with("-----BEGIN")
}

/// A PEM file's path, or (starting with `-----BEGIN`) the PEM itself.
/// What is wrong is said without quoting the key.
pub(super) fn signing_key(v: &str, c: &mut Config) -> Result<(), String> {
    let pem = if is_inline_pem(v) {
        v.to_string()
    } else {
        std::fs::read_to_string(v).map_err(|e| {
            format!("the path of a PEM file of an Ed25519 private key, or the PEM itself ({e})")
        })?
    };
    c.signing_key = Some(crate::signing::SigningKey::from_pem(&pem)?);
    Ok(())
}

pub(super) fn require_signature(v: &str, c: &mut Config) -> Result<(), String> {
    c.require_signature = boolean(v)?;
    Ok(())
}
