//! Checking a release's objects before a switch: listings prove what they
//! can (one page per 1,000 objects where listings carry ETags, as S3's and
//! moto's do), a closer look (HEAD) decides the rest, and a missing or
//! changed object is still found and named. Counted at a proxy in front of
//! S3, request by request.

use crate::support::fixtures::generate_build;
use crate::support::run::Run;
use crate::support::s3_proxy::FaultyProxy;
use crate::support::servers::s3s_fs_endpoint;
use crate::support::{deploy, rt, Ctx};

/// A generated build of `n` files in the test's directory `name`, deployed
/// (activated unless `extra` says otherwise): its release id and file paths.
fn release(ctx: &Ctx, name: &str, n: usize, extra: &[&str]) -> (String, Vec<String>) {
    let dir = ctx.work.path().join(name);
    let files = generate_build(&dir, n);
    let id = deploy(ctx, dir.to_str().unwrap(), extra);
    (id, files.into_keys().collect())
}

/// What one rollback sent S3 through the proxy: listings of one key alone
/// (does this server list ETags?), listings of the public prefix that start
/// at a key or continue (a release's stretches, not a deploy's whole
/// listing), and HEADs of public objects.
struct Sent {
    probes: usize,
    stretches: usize,
    heads: Vec<String>,
}

/// `rollback --to ID` through `proxy`: the run, and what it sent S3.
fn rollback_via(ctx: &Ctx, proxy: &FaultyProxy, id: &str) -> (Run, Sent) {
    let since = proxy.log.lock().unwrap().requests.len();
    let run = ctx.run_with(
        &["rollback", "--to", id],
        &[("CUTOVER_S3_ENDPOINT", proxy.url.as_str())],
    );
    let log = proxy.log.lock().unwrap();
    let requests = &log.requests[since..];
    let listings = |cond: &dyn Fn(&str) -> bool| {
        requests
            .iter()
            .filter(|r| r.method() == "GET" && r.line.contains("list-type=2") && cond(&r.line))
            .count()
    };
    let sent = Sent {
        probes: listings(&|l| l.contains("max-keys=1&")),
        stretches: listings(&|l| {
            l.contains("prefix=packs%2F")
                && (l.contains("start-after=") || l.contains("continuation-token="))
        }),
        heads: requests
            .iter()
            .filter(|r| r.method() == "HEAD" && r.line.contains("/packs/"))
            .map(|r| r.line.clone())
            .collect(),
    };
    (run, sent)
}

#[test]
fn listings_prove_a_release_and_a_missing_or_changed_object_is_still_named() {
    let ctx = Ctx::new("listed-checks");
    // 2,100 objects: stretches of 900, 900 and 300 keys.
    let (a, a_files) = release(&ctx, "a", 2_100, &[]);
    let (b, _) = release(&ctx, "b", 3, &[]);
    let proxy = FaultyProxy::transparent(&ctx.s3_endpoint);

    let (
        run,
        Sent {
            stretches, heads, ..
        },
    ) = rollback_via(&ctx, &proxy, &a);
    run.expect(0);
    assert!(
        heads.is_empty(),
        "listings left {} HEADs, the first {:?}",
        heads.len(),
        heads.first()
    );
    // One page a stretch (its keys and some slack), rarely a second.
    assert!(
        (3..=5).contains(&stretches),
        "{stretches} listing pages for 2,100 objects"
    );
    assert_eq!(rt().block_on(ctx.get("current")).as_deref(), Some(&*a));

    // One object of a gone, another with other bytes of the same size.
    let (gone, changed) = (&a_files[10], &a_files[1_500]);
    rt().block_on(async {
        let s3 = ctx.s3().await;
        s3.delete_object()
            .bucket(&ctx.bucket)
            .key(format!("packs/{gone}"))
            .send()
            .await
            .unwrap();
        let key = format!("packs/{changed}");
        let old = s3
            .get_object()
            .bucket(&ctx.bucket)
            .key(&key)
            .send()
            .await
            .unwrap();
        let mut bytes = old.body.collect().await.unwrap().to_vec();
        bytes[0] ^= 0x20;
        s3.put_object()
            .bucket(&ctx.bucket)
            .key(&key)
            .body(bytes.into())
            .send()
            .await
            .unwrap();
    });
    ctx.run(&["activate", &b, "--unpin"]).expect(0);
    let before = ctx.world();
    let (run, sent) = rollback_via(&ctx, &proxy, &a);
    run.expect(4).error_has(&[gone, changed, "missing"]);
    ctx.assert_unchanged(&before, "a refused rollback");
    // Exactly the two listings could not prove had a closer look.
    let heads = sent.heads;
    assert_eq!(heads.len(), 2, "{heads:?}");
    assert!(heads.iter().any(|h| h.contains(gone.as_str())), "{heads:?}");
    assert!(
        heads.iter().any(|h| h.contains(changed.as_str())),
        "{heads:?}"
    );
}

#[test]
fn a_prefix_crowded_with_other_objects_costs_a_page_and_then_heads() {
    let ctx = Ctx::new("crowded-checks");
    let (a, a_files) = release(&ctx, "a", 40, &[]);
    release(&ctx, "b", 3, &[]);
    // 3,000 objects of a release never activated, their keys among a's.
    release(&ctx, "c", 3_000, &["--no-activate"]);
    let proxy = FaultyProxy::transparent(&ctx.s3_endpoint);
    let (
        run,
        Sent {
            stretches, heads, ..
        },
    ) = rollback_via(&ctx, &proxy, &a);
    run.expect(0);
    // The first page (a's 40 keys and some slack) proves one or two of
    // them: too few to page through the other 3,000; the rest are HEADed.
    assert_eq!(stretches, 1, "pages listed for a's 40 objects");
    assert!(
        !heads.is_empty() && heads.len() < a_files.len(),
        "{} HEADs for {} objects",
        heads.len(),
        a_files.len()
    );
    assert_eq!(rt().block_on(ctx.get("current")).as_deref(), Some(&*a));
}

#[test]
fn a_server_listing_without_etags_is_asked_for_one_key_and_heads_every_object() {
    // s3s-fs lists objects without their ETags: a listing proves nothing.
    let ctx = Ctx::on("etagless-checks", s3s_fs_endpoint());
    let (a, a_files) = release(&ctx, "a", 2_100, &[]);
    release(&ctx, "b", 3, &[]);
    let proxy = FaultyProxy::transparent(&ctx.s3_endpoint);
    let (
        run,
        Sent {
            probes,
            stretches,
            heads,
        },
    ) = rollback_via(&ctx, &proxy, &a);
    run.expect(0);
    // One listing of a's first key alone (the key as the prefix) shows its
    // ETag missing; no stretch is listed.
    assert_eq!(
        (probes, stretches),
        (1, 0),
        "listings on a server without ETags"
    );
    assert_eq!(heads.len(), a_files.len());
    assert_eq!(rt().block_on(ctx.get("current")).as_deref(), Some(&*a));
}
