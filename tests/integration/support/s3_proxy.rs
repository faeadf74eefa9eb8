//! A fault-injecting HTTP proxy in front of the S3 endpoint: it throttles,
//! resets, and loses answers after S3 carried a request out, and records
//! the SHA-256 every PUT carried.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::rt;

/// Faults at most this many connections in all, so a run always terminates
/// (and the SDK's retry token bucket, 500 tokens at up to 14 per retry, never
/// runs dry).
pub const FAULT_CAP: usize = 24;
/// Never fault one request (request line) more often than this: the client
/// makes 6 attempts, so every request eventually gets through.
const MAX_FAULTS_PER_REQUEST: usize = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// Read the request, answer `503 SlowDown`, close.
    SlowDown,
    /// Close with a TCP reset, without an answer.
    Reset,
    /// Forward the request, let S3 carry it out, then reset the client's
    /// connection before it sees the answer.
    LostAnswer,
}

/// Fault of the n-th connection (0-based), before caps: 30%, deterministic.
fn planned_fault(n: usize) -> Option<Fault> {
    match n % 10 {
        1 => Some(Fault::SlowDown),
        4 => Some(Fault::Reset),
        7 => Some(Fault::LostAnswer),
        _ => None,
    }
}

#[derive(Debug, Default)]
pub struct ProxyLog {
    pub connections: usize,
    pub forwarded: usize,
    /// Every injected fault with the request line it hit.
    pub faults: Vec<(Fault, String)>,
    pub per_request: HashMap<String, usize>,
    /// Keys of PUTs that S3 carried out (200) but whose answer was lost.
    pub applied_unanswered: BTreeSet<String>,
    /// `x-amz-checksum-sha256` of every PUT, by key ("" when absent).
    pub put_checksums: BTreeMap<String, String>,
}

impl ProxyLog {
    pub fn count(&self, kind: Fault) -> usize {
        self.faults.iter().filter(|(k, _)| *k == kind).count()
    }

    fn decide(&mut self, n: usize, request: &str) -> Option<Fault> {
        let kind = planned_fault(n)?;
        if self.faults.len() >= FAULT_CAP {
            return None;
        }
        let seen = self.per_request.entry(request.to_string()).or_default();
        if *seen >= MAX_FAULTS_PER_REQUEST {
            return None;
        }
        *seen += 1;
        self.faults.push((kind, request.to_string()));
        Some(kind)
    }
}

pub struct FaultyProxy {
    pub url: String,
    pub log: Arc<Mutex<ProxyLog>>,
    accept: tokio::task::JoinHandle<()>,
}

impl FaultyProxy {
    /// Listen on a free loopback port in front of `upstream` (`http://host:port`).
    pub fn start(upstream: &str) -> FaultyProxy {
        let parsed = url::Url::parse(upstream).unwrap();
        assert_eq!(
            parsed.scheme(),
            "http",
            "the fault proxy speaks plain HTTP only"
        );
        let upstream = format!(
            "{}:{}",
            parsed.host_str().unwrap(),
            parsed.port_or_known_default().unwrap()
        );
        let listener = rt().block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(ProxyLog::default()));
        let accept = {
            let log = log.clone();
            rt().spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    let n = {
                        let mut l = log.lock().unwrap();
                        l.connections += 1;
                        l.connections - 1
                    };
                    tokio::spawn(serve(client, n, upstream.clone(), log.clone()));
                }
            })
        };
        FaultyProxy { url, log, accept }
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Read up to the end of the request head. Returns the head's length and all
/// bytes read (head plus any body bytes that came with it).
async fn read_head(s: &mut TcpStream) -> Option<(usize, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(p) = find(&buf, b"\r\n\r\n") {
            return Some((p + 4, buf));
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(k) => buf.extend_from_slice(&chunk[..k]),
        }
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The object key of a path-style `PUT /bucket/key?query HTTP/1.1` request line.
fn put_key(request: &str) -> Option<String> {
    let mut parts = request.split_whitespace();
    if parts.next()? != "PUT" {
        return None;
    }
    let path = parts.next()?.split('?').next()?;
    let (_bucket, key) = path.trim_start_matches('/').split_once('/')?;
    Some(key.to_string())
}

/// The status code of the answer S3 starts to send.
async fn read_status(s: &mut tokio::net::tcp::OwnedReadHalf) -> Option<u16> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while find(&buf, b"\r\n").is_none() {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(k) => buf.extend_from_slice(&chunk[..k]),
        }
    }
    String::from_utf8_lossy(&buf)
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

async fn serve(mut client: TcpStream, n: usize, upstream: String, log: Arc<Mutex<ProxyLog>>) {
    let Some((head_len, buf)) = read_head(&mut client).await else {
        return;
    };
    let head = String::from_utf8_lossy(&buf[..head_len]).into_owned();
    let request = head.lines().next().unwrap_or_default().to_string();
    if let Some(key) = put_key(&request) {
        let checksum = header(&head, "x-amz-checksum-sha256").unwrap_or_default();
        log.lock()
            .unwrap()
            .put_checksums
            .insert(key, checksum.to_string());
    }
    let fault = log.lock().unwrap().decide(n, &request);
    match fault {
        None => {
            log.lock().unwrap().forwarded += 1;
            let Ok(mut server) = TcpStream::connect(&upstream).await else {
                return;
            };
            if server.write_all(&buf).await.is_err() {
                return;
            }
            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        }
        Some(Fault::SlowDown) => {
            // Take the whole body first, so that closing sends FIN, not RST,
            // and the client gets to read the answer.
            let expects_continue =
                header(&head, "expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
            if !expects_continue {
                let length: usize = header(&head, "content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let mut left = length.saturating_sub(buf.len() - head_len);
                let mut chunk = [0u8; 16 * 1024];
                while left > 0 {
                    match client.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => left = left.saturating_sub(k),
                    }
                }
            }
            let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>";
            let answer = format!(
                "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = client.write_all(answer.as_bytes()).await;
            let _ = client.shutdown().await;
        }
        Some(Fault::Reset) => {
            let _ = client.set_zero_linger();
            drop(client);
        }
        Some(Fault::LostAnswer) => {
            let Ok(server) = TcpStream::connect(&upstream).await else {
                return;
            };
            let (mut server_r, mut server_w) = server.into_split();
            if server_w.write_all(&buf).await.is_err() {
                return;
            }
            let _ = client.set_zero_linger();
            let (mut client_r, client_w) = client.into_split();
            // The rest of the body goes on to S3...
            let pump = tokio::spawn(async move {
                let _ = tokio::io::copy(&mut client_r, &mut server_w).await;
            });
            // ...S3 answers, so it has carried the request out; the client
            // is reset instead of hearing about it.
            let status = read_status(&mut server_r).await;
            pump.abort();
            let _ = pump.await;
            drop(client_w);
            if status == Some(200) {
                if let Some(key) = put_key(&request) {
                    log.lock().unwrap().applied_unanswered.insert(key);
                }
            }
        }
    }
}
