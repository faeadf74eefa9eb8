// Skew protection, the reader's half (docs/redis.md, "Rollouts and skew
// protection"): reader.releaseSnapshot(id) gives the live release, the canary,
// or a release retired less than skewMaxAge ago (ZSCORE retired, then its
// record, checked like any manifest); ids made up by clients cost Redis one
// look each per 30 s. The request helper over HTTP: request.test.js.
import assert from "node:assert/strict";
import { test } from "node:test";
import { createClient } from "redis";
import { startRedis } from "./support/servers.js";
import { CDN, aclFor, captureLog, liveManifests, rolloutVectors, signRelease, testKeys, waitFor, world } from "./support/world.js";

const DAY = 86_400_000;
const SALT = rolloutVectors.population.salt;

/** Every ZSCORE and GET Redis runs on this world's keys from now on (MONITOR): what skew protection reads. */
async function watch(w) {
  const seen = [];
  const monitor = createClient({ url: w.redisUrl });
  monitor.on("error", () => {});
  await monitor.connect();
  w.onCleanup(() => monitor.destroy());
  await monitor.monitor((line) => line.includes(`{${w.app}}`) && /"(ZSCORE|GET)"/i.test(line) && seen.push(line));
  /** The lines naming `id` since the last call. */
  seen.about = (id) => seen.splice(0).filter((l) => l.includes(id));
  return seen;
}

test("skew: releaseSnapshot gives the live release, the canary, and a release retired inside skewMaxAge from its record", async (t) => {
  const w = await world(t);
  const V = await w.deploy("VITE");
  const { A, B } = await liveManifests(w);
  await w.rollout({ canary: { release: V.id, percent: 5, salt: SALT }, manifest: JSON.stringify(V.manifest) });
  await w.retire(B.id, Date.now() - 1000);
  const reader = await w.reader();
  const seen = await watch(w);

  assert.equal(await reader.releaseSnapshot(A.id), reader.snapshot(), "the live release");
  const canary = await reader.releaseSnapshot(V.id);
  assert.deepEqual({ releaseId: canary?.releaseId, role: canary?.role }, { releaseId: V.id, role: "canary" });
  assert.deepEqual(seen.splice(0), [], "both answered from memory");

  const retired = await reader.releaseSnapshot(B.id);
  assert.ok(retired);
  assert.deepEqual({ releaseId: retired.releaseId, role: retired.role }, { releaseId: B.id, role: "retired" });
  assert.deepEqual(retired.manifest, B.manifest);
  assert.equal(retired.lookup("admin.js"), B.manifest["admin.js"]);
  assert.deepEqual(retired.entrypoint("application").js, [{ src: B.manifest["application.js"], integrity: null }]);
  assert.equal(retired.metaTag(), `<meta name="cutover-release" content="${B.id}">`);
  assert.ok(Object.isFrozen(retired) && Object.isFrozen(retired.manifest));
  const looked = seen.about(B.id);
  assert.equal(looked.length, 2, looked.join("\n"));
  assert.match(looked[0], new RegExp(`"ZSCORE" "${w.key("retired").replace(/[{}]/g, "\\$&")}" "${B.id}"`, "i"));
  assert.match(looked[1], new RegExp(`"GET" "${w.key(`release:${B.id}`).replace(/[{}]/g, "\\$&")}"`, "i"));
  // Kept: asked again, from memory.
  for (let i = 0; i < 5; i++) assert.equal(await reader.releaseSnapshot(B.id), retired);
  assert.deepEqual(seen.about(B.id), []);

  // The live release's answers are unchanged throughout.
  assert.equal(reader.releaseId, A.id);
  assert.equal(reader.lookup("application.js"), A.manifest["application.js"].src);
});

test("skew: outside skewMaxAge, unknown, without a record, or not an id: null, and each id looked up once", async (t) => {
  const w = await world(t);
  const V = await w.deploy("VITE");
  const { A, B } = await liveManifests(w);
  await w.retire(B.id, Date.now() - DAY - 1000); // a day and a second ago: outside the default
  await w.retire(V.id, Date.now() - 1000); // inside, but its record is gone
  await (await w.admin()).del(w.key(`release:${V.id}`));
  const reader = await w.reader();
  const seen = await watch(w);

  const unknown = "0123456789abcdef";
  for (const id of [B.id, V.id, unknown]) {
    // Asked at once by many requests, then again: one look.
    const answers = await Promise.all(Array.from({ length: 10 }, () => reader.releaseSnapshot(id)));
    assert.deepEqual(answers, Array(10).fill(null), id);
    assert.equal(await reader.releaseSnapshot(id), null);
    const looked = seen.about(id);
    assert.equal(looked.filter((l) => /"ZSCORE"/i.test(l)).length, 1, `${id}: ${looked.join("\n")}`);
    // The record is read only for a release retired inside the window.
    assert.equal(looked.filter((l) => /"GET"/i.test(l)).length, id === V.id ? 1 : 0, `${id}: ${looked.join("\n")}`);
  }
  // Only whole release ids are looked up; anything else is null at once.
  for (const id of ["", "0123456789abcde", "0123456789ABCDEF", `${unknown}0`, "../../x", `${B.id}\r\n`, "*", /** @type {any} */ (42), null]) {
    assert.equal(await reader.releaseSnapshot(id), null, JSON.stringify(id));
  }
  assert.deepEqual(seen.splice(0), []);
  assert.equal(reader.releaseId, A.id);

  // skewMaxAge is the reader's: with two days, B is served.
  const longer = await w.reader({ skewMaxAge: 2 * 86_400 });
  assert.equal((await longer.releaseSnapshot(B.id))?.releaseId, B.id);
  // 0: only the live release and the canary.
  const none = await w.reader({ skewMaxAge: 0 });
  await w.retire(B.id, Date.now());
  assert.equal(await none.releaseSnapshot(B.id), null);
  assert.equal(await none.releaseSnapshot(A.id), none.snapshot());
  for (const bad of [-1, Number.NaN, "86400"]) {
    await assert.rejects(w.reader({ skewMaxAge: /** @type {any} */ (bad) }), /skewMaxAge/, String(bad));
  }
});

test("skew: a release named before this process served it is looked up again once it is retired", async (t) => {
  const w = await world(t);
  const { A, B } = await liveManifests(w);
  // No poll to speak of: the reader hears of the canary only by the event.
  const reader = await w.reader({ pollInterval: 60_000 });
  await (await w.admin()).zRem(w.key("retired"), B.id); // never retired, however the CLI made A live again
  await w.rollout({ canary: { release: B.id, percent: 50, salt: SALT }, manifest: B.json, publish: false });
  // Rendered by a faster process, named here before this one serves it: not served, remembered.
  assert.equal(await reader.releaseSnapshot(B.id), null);
  await w.rollout({ canary: { release: B.id, percent: 50, salt: SALT }, manifest: B.json });
  await waitFor(() => reader.canary?.release === B.id, { timeout: 2000, what: "the canary served" });
  assert.equal((await reader.releaseSnapshot(B.id))?.role, "canary");
  const at = await w.endRollout({ complete: false, canary: B.id, previous: A.id });
  await waitFor(() => reader.canary === null, { until: at + 2000, what: "the rollout aborted" });
  assert.equal((await reader.releaseSnapshot(B.id))?.role, "retired");
});

test("skew: the age is checked on every use, from memory", async (t) => {
  const w = await world(t);
  const { B } = await liveManifests(w);
  const retiredAt = Date.now() - 500;
  await w.retire(B.id, retiredAt);
  const reader = await w.reader({ skewMaxAge: 2 });
  const seen = await watch(w);
  assert.equal((await reader.releaseSnapshot(B.id))?.releaseId, B.id);
  assert.equal(seen.about(B.id).length, 2);
  // Served until 2 s after its retirement, then not, without asking Redis again.
  await waitFor(async () => (await reader.releaseSnapshot(B.id)) === null, { timeout: 3000, what: "B too old" });
  assert.ok(Date.now() >= retiredAt + 2000, "not before its time");
  assert.deepEqual(seen.about(B.id), []);
});

test("skew: a retired release's record is checked like any manifest: signature, origins, its own id", async (t) => {
  const w = await world(t);
  const { A, B } = await liveManifests(w);
  const admin = await w.admin();
  await w.publish({ id: A.id, manifest: A.json, signature: signRelease("k1", A.id, A.json) });
  const log = captureLog();
  const reader = await w.reader({ verifyKeys: [testKeys.k1.publicPem], logger: log.logger });
  const now = Date.now();

  // The CLI recorded B unsigned: refused, said once.
  await w.retire(B.id, now);
  assert.equal(await reader.releaseSnapshot(B.id), null);
  assert.equal(await reader.releaseSnapshot(B.id), null);
  const said = log.lines.warn.filter((l) => l.includes(B.id));
  assert.equal(said.length, 1, said.join("\n"));
  assert.match(said[0], /unsigned/);

  // Hand-made records, pretty-printed, with integer-like keys: the signature covers the manifest
  // as compact JSON in the record's order, which JSON.stringify of the parsed object is not.
  const manifest = `{"application.js":"${CDN}/packs/app-1.js","10":"${CDN}/packs/10.js","2":"${CDN}/packs/2.js"}`;
  assert.notEqual(JSON.stringify(JSON.parse(manifest)), manifest);
  const pretty = (id, m, signature) =>
    `{\n  "id": "${id}",\n  "app": "${w.app}",\n  "manifest": ${m.replace(/,/g, ",\n    ")},\n  "signature": ${JSON.stringify(signature)}\n}`;
  const records = {
    e000000000000001: pretty("e000000000000001", manifest, signRelease("k1", "e000000000000001", manifest)),
    e000000000000002: pretty("e000000000000002", manifest, signRelease("other", "e000000000000002", manifest)),
    e000000000000003: pretty("e000000000000003", manifest, signRelease("k1", "e000000000000001", manifest)),
    e000000000000004: pretty(
      "e000000000000004",
      manifest.replace(`${CDN}/packs/2.js`, "https://evil.example/2.js"),
      signRelease("k1", "e000000000000004", manifest.replace(`${CDN}/packs/2.js`, "https://evil.example/2.js")),
    ),
    e000000000000005: pretty("e000000000000001", manifest, signRelease("k1", "e000000000000005", manifest)),
    e000000000000006: "{not json",
    e000000000000007: `{"id":"e000000000000007","manifest":null}`,
  };
  for (const [id, text] of Object.entries(records)) {
    await admin.set(w.key(`release:${id}`), text);
    await w.retire(id, now);
  }
  const good = await reader.releaseSnapshot("e000000000000001");
  assert.equal(good?.releaseId, "e000000000000001");
  assert.equal(good.lookup("10"), `${CDN}/packs/10.js`);
  assert.equal(good.lookup("application.js"), `${CDN}/packs/app-1.js`);
  const reasons = {
    e000000000000002: /not in verifyKeys/,
    e000000000000003: /for release/,
    e000000000000004: /not on an allowed origin/,
    e000000000000005: /not the release's/,
    e000000000000006: /not JSON/,
    e000000000000007: /no manifest/,
  };
  for (const [id, reason] of Object.entries(reasons)) {
    assert.equal(await reader.releaseSnapshot(id), null, id);
    const lines = log.lines.warn.filter((l) => l.includes(id));
    assert.equal(lines.length, 1, `${id}: ${lines.join("\n")}`);
    assert.match(lines[0], reason, id);
  }

  // B's record signed (as a deploy with a key would have): served.
  const record = JSON.parse(await admin.get(w.key(`release:${B.id}`)));
  record.signature = signRelease("k1", B.id, B.json);
  await admin.set(w.key(`release:${B.id}`), JSON.stringify(record));
  const fresh = await w.reader({ verifyKeys: [testKeys.k1.publicPem] });
  assert.equal((await fresh.releaseSnapshot(B.id))?.lookup("admin.js"), B.manifest["admin.js"]);
  // Without verifyKeys signatures are ignored; assetOrigins still counts.
  const unverified = await w.reader();
  assert.equal((await unverified.releaseSnapshot("e000000000000002"))?.releaseId, "e000000000000002");
  assert.equal(await unverified.releaseSnapshot("e000000000000004"), null);
});

test("skew: when Redis does not answer or refuses ZSCORE, releaseSnapshot is null and the reader serves on", async (t) => {
  const w = await world(t);
  // A user from the README's line without +zscore (the line of before skew protection).
  const { A, B } = await liveManifests(w);
  await w.retire(B.id);
  const user = `old-${w.app}`;
  const admin = await w.admin();
  await admin.sendCommand(aclFor(w.app, user, "pw-old").filter((word) => word !== "+zscore"));
  const url = new URL(w.redisUrl);
  url.username = user;
  url.password = "pw-old";
  const old = await w.reader({ url: url.toString() });
  assert.equal(await old.releaseSnapshot(B.id), null);
  assert.equal(old.releaseId, A.id);

  // Redis gone: null within the command timeout, and the reader serves on.
  const redis = await startRedis({ args: ["--user", ...aclFor(w.app, `reader-${w.app}`, "pw-down").slice(2)] });
  w.onCleanup(() => redis.kill());
  w.redisUrl = redis.url;
  const again = await liveManifests(w);
  await w.retire(again.B.id);
  const reader = await w.reader({ url: `redis://reader-${w.app}:pw-down@127.0.0.1:${redis.port}`, commandTimeout: 300 });
  await redis.kill();
  const started = Date.now();
  assert.equal(await reader.releaseSnapshot(again.B.id), null);
  assert.ok(Date.now() - started < 1000, `answered in ${Date.now() - started} ms`);
  assert.equal(reader.releaseId, again.A.id);
  assert.equal(reader.lookup("application.js"), A.manifest["application.js"].src);
});
