//! A proxy in front of Redis that drops the connection around an
//! activation script, to test what cutover reports when it cannot know;
//! or lets another client write just before the activation script reaches
//! Redis (a lost race, on cue); and counts the lock renewals Redis answered.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::rt;

#[derive(Clone, PartialEq)]
pub enum Drop {
    /// Redis runs the activation script; its answer never reaches cutover.
    AfterEval,
    /// The connection dies as the activation script is sent: Redis never sees it.
    BeforeEval,
    /// Redis runs the activation script; its answer (and everything after it
    /// on that connection) arrives this much later.
    Stall(std::time::Duration),
    /// Another client runs these commands on Redis, then the activation
    /// script goes on to Redis: whatever cutover planned against changed
    /// after it planned and before it switched. Once.
    Interpose(Vec<Vec<String>>),
    /// Nothing: pass everything through (and count).
    Nothing,
}

/// A running proxy.
pub struct RedisProxy {
    pub port: u16,
    /// The fault happened (or the interposed commands ran).
    pub fired: Arc<AtomicBool>,
    /// Lock renewals (the RENEW script) Redis ran and answered.
    pub renewals: Arc<AtomicUsize>,
    /// ...of which Redis answered 0: the lock was not the renewer's.
    pub refused: Arc<AtomicUsize>,
}

impl RedisProxy {
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

fn contains(chunk: &[u8], needle: &[u8]) -> bool {
    chunk.windows(needle.len()).any(|w| w == needle)
}

/// Does this chunk of a client's stream carry `script` (by its SHA1 for
/// EVALSHA, or `text`, a line of it, for EVAL)?
fn carries(chunk: &[u8], script: &str, text: &[u8]) -> bool {
    let sha = redis::Script::new(script).get_hash().to_string();
    contains(chunk, sha.as_bytes()) || contains(chunk, text)
}

/// The activation script (or the rollout's)? Other scripts (the permission check, the lock's
/// renewal) pass untouched.
fn is_activation(chunk: &[u8]) -> bool {
    // Both scripts have that line: the switch and the rollout.
    carries(
        chunk,
        cutover::store::scripts::ACTIVATE,
        b"PUBLISH before any write",
    ) || carries(
        chunk,
        cutover::store::scripts::ROLLOUT,
        b"PUBLISH before any write",
    )
}

fn is_renewal(chunk: &[u8]) -> bool {
    carries(
        chunk,
        cutover::store::scripts::RENEW,
        b"redis.call('PEXPIRE'",
    )
}

/// A proxy in front of Redis that drops the first connection carrying the
/// activation script, once.
pub fn start_proxy(upstream_port: u16, mode: Drop) -> (u16, Arc<AtomicBool>) {
    let proxy = start(upstream_port, mode);
    (proxy.port, proxy.fired)
}

/// A proxy in front of the Redis on `upstream_port`, doing `mode` once.
pub fn start(upstream_port: u16, mode: Drop) -> RedisProxy {
    let listener = rt().block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let port = listener.local_addr().unwrap().port();
    let armed = Arc::new(AtomicBool::new(true));
    let fired = Arc::new(AtomicBool::new(false));
    let renewals = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    {
        let (armed, fired) = (armed.clone(), fired.clone());
        let (renewals, refused) = (renewals.clone(), refused.clone());
        rt().spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let state = State {
                    mode: mode.clone(),
                    armed: armed.clone(),
                    fired: fired.clone(),
                    renewals: renewals.clone(),
                    refused: refused.clone(),
                };
                tokio::spawn(pump(client, upstream_port, state));
            }
        });
    }
    RedisProxy {
        port,
        fired,
        renewals,
        refused,
    }
}

struct State {
    mode: Drop,
    armed: Arc<AtomicBool>,
    fired: Arc<AtomicBool>,
    renewals: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
}

/// Run `commands` on the Redis at `port` over a connection of its own.
async fn interpose(port: u16, commands: &[Vec<String>]) {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    for c in commands {
        let mut cmd = redis::cmd(&c[0]);
        for a in &c[1..] {
            cmd.arg(a);
        }
        let _: redis::Value = cmd.query_async(&mut con).await.unwrap();
    }
}

async fn pump(mut client: TcpStream, upstream: u16, s: State) {
    let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
        return;
    };
    let (mut cbuf, mut sbuf) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    let mut eval_pending = false;
    let mut renew_pending = false;
    loop {
        tokio::select! {
            n = client.read(&mut cbuf) => {
                let Ok(n) = n else { return };
                if n == 0 { return }
                let chunk = &cbuf[..n];
                renew_pending |= is_renewal(chunk);
                let is_eval = is_activation(chunk);
                if is_eval && s.armed.load(Ordering::SeqCst) {
                    match &s.mode {
                        Drop::BeforeEval => {
                            s.armed.store(false, Ordering::SeqCst);
                            s.fired.store(true, Ordering::SeqCst);
                            return; // both sockets close; Redis never saw the script
                        }
                        Drop::Interpose(commands) => {
                            s.armed.store(false, Ordering::SeqCst);
                            interpose(upstream, commands).await;
                            s.fired.store(true, Ordering::SeqCst);
                        }
                        Drop::Nothing => {}
                        Drop::AfterEval | Drop::Stall(_) => eval_pending = true,
                    }
                }
                if server.write_all(chunk).await.is_err() { return }
            }
            n = server.read(&mut sbuf) => {
                let Ok(n) = n else { return };
                if n == 0 { return }
                let chunk = &sbuf[..n];
                // Counted once cutover has the answer.
                let renewed = std::mem::take(&mut renew_pending) && !chunk.starts_with(b"-NOSCRIPT");
                if eval_pending {
                    eval_pending = false;
                    if !chunk.starts_with(b"-NOSCRIPT") {
                        s.armed.store(false, Ordering::SeqCst);
                        s.fired.store(true, Ordering::SeqCst);
                        if let Drop::Stall(delay) = &s.mode {
                            tokio::time::sleep(*delay).await;
                        } else {
                            return; // Redis ran it; the answer is lost
                        }
                    }
                }
                if client.write_all(chunk).await.is_err() { return }
                if renewed {
                    if chunk.starts_with(b":0\r\n") {
                        s.refused.fetch_add(1, Ordering::SeqCst);
                    }
                    s.renewals.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    }
}
