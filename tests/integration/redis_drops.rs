//! A Redis connection that drops during activation: cutover must find out
//! whether the switch applied, and say so truthfully.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::harness::{fixture, rt, Ctx};

#[derive(Clone, Copy, PartialEq)]
enum Drop {
    /// Redis runs the activation script; its answer never reaches cutover.
    AfterEval,
    /// The connection dies as the activation script is sent: Redis never sees it.
    BeforeEval,
}

/// A proxy in front of Redis that drops the first connection carrying an
/// EVAL/EVALSHA, once.
fn start_proxy(upstream_port: u16, mode: Drop) -> (u16, Arc<AtomicBool>) {
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
                let is_eval = chunk.windows(4).any(|w| w.eq_ignore_ascii_case(b"EVAL"));
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
                        return; // Redis ran it; the answer is lost
                    }
                }
                if client.write_all(chunk).await.is_err() { return }
            }
        }
    }
}

fn current(ctx: &Ctx) -> Option<String> {
    rt().block_on(ctx.get("current"))
}

#[test]
fn activation_whose_answer_is_lost_is_read_back_as_applied() {
    let ctx = Ctx::new("drop-after");
    let a = ctx.run(&["deploy", fixture("shakapacker").to_str().unwrap(), "--json"]);
    assert_eq!(a.code, 0, "{a:?}");
    let (port, fired) = start_proxy(ctx.redis_port(), Drop::AfterEval);
    let url = format!("redis://127.0.0.1:{port}");
    let b = ctx.run_with(
        &["deploy", fixture("flat").to_str().unwrap(), "--json"],
        &[("REDIS_URL", &url)],
    );
    assert!(
        fired.load(Ordering::SeqCst),
        "the proxy never dropped the activation"
    );
    assert_eq!(
        b.code, 0,
        "the switch applied, so the deploy succeeded: {b:?}"
    );
    let b_id = b.json()["release"]["id"].as_str().unwrap().to_string();
    assert_eq!(current(&ctx).as_deref(), Some(b_id.as_str()));
    let history = rt().block_on(ctx.history());
    assert_eq!(
        history.len(),
        2,
        "the activation ran exactly once: {history:?}"
    );
    // The lock was released over the new connection.
    assert_eq!(rt().block_on(ctx.get("lock")), None);
}

#[test]
fn activation_that_never_reached_redis_is_reported_as_not_applied() {
    let ctx = Ctx::new("drop-before");
    let a = ctx.run(&["deploy", fixture("shakapacker").to_str().unwrap(), "--json"]);
    assert_eq!(a.code, 0, "{a:?}");
    let a_id = a.json()["release"]["id"].as_str().unwrap().to_string();
    let (port, fired) = start_proxy(ctx.redis_port(), Drop::BeforeEval);
    let url = format!("redis://127.0.0.1:{port}");
    let b = ctx.run_with(
        &["deploy", fixture("flat").to_str().unwrap()],
        &[("REDIS_URL", &url)],
    );
    assert!(
        fired.load(Ordering::SeqCst),
        "the proxy never dropped the activation"
    );
    // The script never ran: cutover must say so, name what is still live,
    // and Redis must agree.
    assert_eq!(b.code, 1, "{b:?}");
    assert!(b.error_line().contains("did NOT apply"), "{b:?}");
    assert!(
        b.error_line().contains(&a_id),
        "names the release still live: {b:?}"
    );
    assert_eq!(current(&ctx).as_deref(), Some(a_id.as_str()));
    assert_eq!(rt().block_on(ctx.history()).len(), 1);
}
