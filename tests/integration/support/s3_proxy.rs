//! A fault-injecting HTTP proxy in front of the S3 endpoint: it throttles,
//! resets, and loses answers after S3 carried a request out, and records
//! the SHA-256 every PUT carried. Without faults ([`FaultyProxy::transparent`])
//! it observes: what each multipart part carried against the bytes it
//! carried, PUTs held until the test lets them go, and when every request
//! it forwarded has been answered by S3 (even after the client died).

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
    /// Every request forwarded without a fault (also those that follow on a
    /// kept-alive connection), in order, with what its body carried.
    pub requests: Vec<Request>,
    /// Requests that waited at the gate (see [`FaultyProxy::hold_puts`],
    /// [`FaultyProxy::hold_requests`]).
    pub held: usize,
    /// Connections open now (a request forwarded and not yet answered to its end).
    pub active: usize,
}

/// One request as it went to S3.
#[derive(Debug, Clone)]
pub struct Request {
    /// `PUT /bucket/key?partNumber=1&uploadId=... HTTP/1.1`
    pub line: String,
    /// Its `x-amz-checksum-sha256` header ("" when absent).
    pub checksum: String,
    /// Base64 SHA-256 of the body bytes it carried.
    pub body_sha256: String,
    pub body_len: usize,
}

impl Request {
    pub fn method(&self) -> &str {
        self.line.split_whitespace().next().unwrap_or_default()
    }
    /// The part number, for an UploadPart.
    pub fn part(&self) -> Option<u32> {
        part_number(&self.line)
    }
}

impl ProxyLog {
    /// Requests that write (anything but GET and HEAD), from the `since`-th on.
    pub fn writes(&self, since: usize) -> Vec<&str> {
        self.requests[since..]
            .iter()
            .filter(|r| !matches!(r.method(), "GET" | "HEAD"))
            .map(|r| r.line.as_str())
            .collect()
    }

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
    /// Which requests wait now.
    gate: Arc<tokio::sync::watch::Sender<Gate>>,
}

/// Which requests the proxy holds until the test lets them go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    Open,
    /// Every PUT.
    Puts,
    /// Every request whose request line contains this.
    Matching(String),
}

impl Gate {
    fn holds(&self, line: &str) -> bool {
        match self {
            Gate::Open => false,
            Gate::Puts => put_key(line).is_some(),
            Gate::Matching(s) => line.contains(s.as_str()),
        }
    }
}

impl FaultyProxy {
    /// Listen on a free loopback port in front of `upstream` (`http://host:port`),
    /// injecting faults.
    pub fn start(upstream: &str) -> FaultyProxy {
        FaultyProxy::listen(upstream, true)
    }

    /// The same proxy without faults: it only observes (and holds PUTs when told).
    pub fn transparent(upstream: &str) -> FaultyProxy {
        FaultyProxy::listen(upstream, false)
    }

    /// From now on, PUT requests wait in the proxy until [`release`](Self::release).
    pub fn hold_puts(&self) {
        self.gate.send_replace(Gate::Puts);
    }

    pub fn release(&self) {
        self.gate.send_replace(Gate::Open);
    }

    /// From now on, requests whose request line contains `part` (e.g. a key)
    /// wait in the proxy until [`release`](Self::release).
    pub fn hold_requests(&self, part: &str) {
        self.gate.send_replace(Gate::Matching(part.to_string()));
    }

    /// Wait (a condition, with a deadline) until `cond` holds for the log.
    #[track_caller]
    pub fn wait_for(&self, what: &str, cond: impl Fn(&ProxyLog) -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !cond(&self.log.lock().unwrap()) {
            assert!(
                std::time::Instant::now() < deadline,
                "{what}: not within 60s; {:?}",
                self.log.lock().unwrap()
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// Wait until S3 has answered every request forwarded to it (or closed
    /// the connection): nothing sent through this proxy can land later.
    #[track_caller]
    pub fn wait_idle(&self) {
        self.wait_for("every forwarded request answered", |l| l.active == 0);
    }

    fn listen(upstream: &str, faults: bool) -> FaultyProxy {
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
        let gate = Arc::new(tokio::sync::watch::channel(Gate::Open).0);
        let accept = {
            let (log, gate) = (log.clone(), gate.clone());
            rt().spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    let n = {
                        let mut l = log.lock().unwrap();
                        l.connections += 1;
                        l.active += 1;
                        l.connections - 1
                    };
                    let (log, upstream, open) = (log.clone(), upstream.clone(), gate.subscribe());
                    tokio::spawn(async move {
                        serve(client, n, upstream, log.clone(), faults, open).await;
                        log.lock().unwrap().active -= 1;
                    });
                }
            })
        };
        FaultyProxy {
            url,
            log,
            accept,
            gate,
        }
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

/// The part number of an UploadPart request line (`PUT /b/k?partNumber=2&uploadId=..`).
fn part_number(request: &str) -> Option<u32> {
    let query = request.split_whitespace().nth(1)?.split_once('?')?.1;
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("partNumber="))?
        .parse()
        .ok()
}

/// The requests on one connection as they stream by: each head is parsed
/// (and held at the gate if it is a PUT while the gate is closed) before it
/// is forwarded; each body is hashed as it is forwarded.
struct Requests {
    log: Arc<Mutex<ProxyLog>>,
    open: tokio::sync::watch::Receiver<Gate>,
    head: Vec<u8>,
    /// The request whose body is streaming, and how much of it is left.
    current: Option<(Request, sha2::Sha256)>,
    body_left: usize,
    /// A body without a length (chunked): the rest is forwarded unparsed.
    opaque: bool,
}

impl Requests {
    /// Forward `data` to `server`. False when the connection is over.
    async fn forward(
        &mut self,
        mut data: &[u8],
        server: &mut tokio::net::tcp::OwnedWriteHalf,
    ) -> bool {
        use sha2::Digest;
        while !data.is_empty() {
            if self.opaque {
                return server.write_all(data).await.is_ok();
            }
            if self.body_left > 0 {
                let n = self.body_left.min(data.len());
                if let Some((req, hash)) = &mut self.current {
                    hash.update(&data[..n]);
                    req.body_len += n;
                }
                if server.write_all(&data[..n]).await.is_err() {
                    return false;
                }
                self.body_left -= n;
                data = &data[n..];
                if self.body_left == 0 {
                    self.finish();
                }
                continue;
            }
            // A head: collect it whole before forwarding it.
            let before = self.head.len();
            self.head.extend_from_slice(data);
            let Some(end) = find(&self.head, b"\r\n\r\n").map(|p| p + 4) else {
                return true;
            };
            data = &data[end - before..];
            self.head.truncate(end);
            let head = String::from_utf8_lossy(&self.head).into_owned();
            let line = head.lines().next().unwrap_or_default().to_string();
            let checksum = header(&head, "x-amz-checksum-sha256")
                .unwrap_or_default()
                .to_string();
            if let Some(key) = put_key(&line) {
                self.log
                    .lock()
                    .unwrap()
                    .put_checksums
                    .insert(key, checksum.clone());
            }
            if self.open.borrow().holds(&line) {
                self.log.lock().unwrap().held += 1;
                if self.open.wait_for(|g| !g.holds(&line)).await.is_err() {
                    return false; // the proxy is gone: never forwarded
                }
            }
            if server.write_all(&self.head).await.is_err() {
                return false;
            }
            self.head.clear();
            self.opaque = header(&head, "transfer-encoding").is_some();
            self.body_left = header(&head, "content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let req = Request {
                line,
                checksum,
                body_sha256: String::new(),
                body_len: 0,
            };
            self.current = Some((req, sha2::Sha256::new()));
            if self.body_left == 0 || self.opaque {
                self.finish();
            }
        }
        true
    }

    fn finish(&mut self) {
        use base64::Engine;
        use sha2::Digest;
        if let Some((mut req, hash)) = self.current.take() {
            req.body_sha256 = base64::engine::general_purpose::STANDARD.encode(hash.finalize());
            self.log.lock().unwrap().requests.push(req);
        }
    }
}

/// Forward a connection whose first bytes are `initial`, both ways. If the
/// client goes away, S3's answer is still awaited, so that when this
/// returns S3 has carried out (or dropped) every request it was sent.
async fn forward(
    client: TcpStream,
    initial: Vec<u8>,
    upstream: &str,
    log: Arc<Mutex<ProxyLog>>,
    open: tokio::sync::watch::Receiver<Gate>,
) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut client_r, mut client_w) = client.into_split();
    let (mut server_r, mut server_w) = server.into_split();
    let to_server = async move {
        let mut requests = Requests {
            log,
            open,
            head: Vec::new(),
            current: None,
            body_left: 0,
            opaque: false,
        };
        let mut ok = requests.forward(&initial, &mut server_w).await;
        let mut chunk = vec![0u8; 64 * 1024];
        while ok {
            match client_r.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(k) => ok = requests.forward(&chunk[..k], &mut server_w).await,
            }
        }
        let _ = server_w.shutdown().await;
    };
    let to_client = async move {
        let mut chunk = vec![0u8; 64 * 1024];
        let mut client_gone = false;
        loop {
            match server_r.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(k) if !client_gone => {
                    client_gone = client_w.write_all(&chunk[..k]).await.is_err();
                }
                Ok(_) => {} // nobody to tell; wait for S3 to finish
            }
        }
        let _ = client_w.shutdown().await;
    };
    tokio::join!(to_server, to_client);
}

async fn serve(
    mut client: TcpStream,
    n: usize,
    upstream: String,
    log: Arc<Mutex<ProxyLog>>,
    faults: bool,
    open: tokio::sync::watch::Receiver<Gate>,
) {
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
    let fault = if faults {
        log.lock().unwrap().decide(n, &request)
    } else {
        None
    };
    match fault {
        None => {
            log.lock().unwrap().forwarded += 1;
            forward(client, buf, &upstream, log, open).await;
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
