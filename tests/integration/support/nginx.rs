//! nginx as the CDN: a caching reverse proxy on a free loopback port that
//! maps `/<key>` to the test's bucket on the S3 server, passing the request
//! URI through exactly as the browser sent it (so percent-encoding is tested
//! end to end, as CloudFront passes it to S3).

use std::process::Command;

use super::servers::{free_port, spawn_server, wait_for_port};

pub struct Cdn {
    /// `http://127.0.0.1:PORT`: what stands in for `CDN_URL`.
    pub url: String,
    _dir: tempfile::TempDir,
}

/// Start nginx in front of `bucket` on the S3 server at `s3_endpoint`.
pub fn start(s3_endpoint: &str, bucket: &str) -> Cdn {
    start_with(s3_endpoint, bucket, "")
}

/// Nginx that does not serve the release records (`/_cutover/`), as a CDN
/// whose origin is restricted to the public files answers: 403.
pub fn start_without_records(s3_endpoint: &str, bucket: &str) -> Cdn {
    start_with(
        s3_endpoint,
        bucket,
        "location ^~ /_cutover/ { return 403; }",
    )
}

/// The same, with `locations` (nginx `location` blocks) ahead of the one
/// that proxies everything.
pub fn start_with(s3_endpoint: &str, bucket: &str, locations: &str) -> Cdn {
    let nginx = which("nginx").expect("nginx is installed (scripts/setup.sh installs nginx-light)");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let upstream = s3_endpoint.trim_end_matches('/');
    let host = upstream.trim_start_matches("http://");
    let prefix = dir.path().display();
    let conf = format!(
        r#"
daemon off;
worker_processes 1;
user root;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body;
  proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi;
  uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;
  proxy_cache_path {prefix}/cache keys_zone=cdn:1m;
  server {{
    listen 127.0.0.1:{port};
    {locations}
    location / {{
      # $request_uri is the URI as received, not decoded and re-encoded.
      proxy_pass {upstream}/{bucket}$request_uri;
      proxy_set_header Host {host};
      # The S3 server wants a signed request; it does not check the signature.
      proxy_set_header Authorization "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0";
      proxy_set_header x-amz-content-sha256 UNSIGNED-PAYLOAD;
      proxy_set_header x-amz-date 20260101T000000Z;
      proxy_cache cdn;
      proxy_cache_valid 200 10m;
      add_header X-Cache $upstream_cache_status;
    }}
  }}
}}
"#
    );
    let conf_path = dir.path().join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let mut cmd = Command::new(nginx);
    cmd.arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&conf_path)
        .arg("-e")
        .arg(dir.path().join("startup.log"));
    spawn_server(cmd);
    wait_for_port(port, "nginx");
    Cdn {
        url: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    }
}

fn which(name: &str) -> Option<std::path::PathBuf> {
    ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"]
        .iter()
        .map(|d| std::path::Path::new(d).join(name))
        .find(|p| p.exists())
}
