//! A proxy in front of Redis that drops the connection around an
//! activation script, to test what cutover reports when it cannot know.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::rt;

#[derive(Clone, Copy, PartialEq)]
pub enum Drop {
    /// Redis runs the activation script; its answer never reaches cutover.
    AfterEval,
    /// The connection dies as the activation script is sent: Redis never sees it.
    BeforeEval,
    /// Redis runs the activation script; its answer (and everything after it
    /// on that connection) arrives this much later.
    Stall(std::time::Duration),
}

/// Does this chunk of a client's stream carry the activation script (by its
/// SHA1 for EVALSHA, or its text for EVAL)? Other scripts (the permission
/// check, the lock's renewal) pass untouched.
fn is_activation(chunk: &[u8]) -> bool {
    let sha = redis::Script::new(cutover::store::scripts::ACTIVATE)
        .get_hash()
        .to_string();
    let contains = |needle: &[u8]| chunk.windows(needle.len()).any(|w| w == needle);
    contains(sha.as_bytes()) || contains(b"PUBLISH before any write")
}

/// A proxy in front of Redis that drops the first connection carrying the
/// activation script, once.
pub fn start_proxy(upstream_port: u16, mode: Drop) -> (u16, Arc<AtomicBool>) {
    let listener = rt().block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let port = listener.local_addr().unwrap().port();
    let armed = Arc::new(AtomicBool::new(true));
    let fired = Arc::new(AtomicBool::new(false));
    {
        let (armed, fired) = (armed.clone(), fired.clone());
        rt().spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (armed, fired) = (armed.clone(), fired.clone());
                tokio::spawn(pump(client, upstream_port, mode, armed, fired));
            }
        });
    }
    (port, fired)
}

async fn pump(
    mut client: TcpStream,
    upstream: u16,
    mode: Drop,
    armed: Arc<AtomicBool>,
    fired: Arc<AtomicBool>,
) {
    let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
        return;
    };
    let (mut cbuf, mut sbuf) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    let mut eval_pending = false;
    loop {
        tokio::select! {
            n = client.read(&mut cbuf) => {
                let Ok(n) = n else { return };
                if n == 0 { return }
                let chunk = &cbuf[..n];
                let is_eval = is_activation(chunk);
                if is_eval && armed.load(Ordering::SeqCst) {
                    if mode == Drop::BeforeEval {
                        armed.store(false, Ordering::SeqCst);
                        fired.store(true, Ordering::SeqCst);
                        return; // both sockets close; Redis never saw the script
                    }
                    eval_pending = true;
                }
                if server.write_all(chunk).await.is_err() { return }
            }
            n = server.read(&mut sbuf) => {
                let Ok(n) = n else { return };
                if n == 0 { return }
                let chunk = &sbuf[..n];
                if eval_pending {
                    eval_pending = false;
                    if !chunk.starts_with(b"-NOSCRIPT") {
                        armed.store(false, Ordering::SeqCst);
                        fired.store(true, Ordering::SeqCst);
                        if let Drop::Stall(delay) = mode {
                            tokio::time::sleep(delay).await;
                        } else {
                            return; // Redis ran it; the answer is lost
                        }
                    }
                }
                if client.write_all(chunk).await.is_err() { return }
            }
        }
    }
}
