// Rollouts (docs/redis.md, "Rollouts and skew protection"): which keys get the
// canary (the shared vectors of tests/contract/rollout.json), what a reader
// reads (canary, canary_manifest and canary_signature, written here by hand
// as `cutover rollout` writes them), what it refuses, and what it reports.
import assert from "node:assert/strict";
import { fork } from "node:child_process";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { createClient } from "redis";
import { bucket } from "cutover-reader";
import { thresholdOf } from "../src/rollout.js";
import { captureLog, liveManifests, population, rolloutVectors as V, signRelease, testKeys, waitFor, world } from "./support/world.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const ME = `${os.hostname()}:${process.pid}`;
const SALT = V.population.salt;

/** The first key `user-N` whose bucket under `salt` is `b`. */
function keyWithBucket(salt, b) {
  for (let i = 0; ; i++) if (bucket(salt, `user-${i}`) === b) return `user-${i}`;
}

/** This process's fleet report, parsed, once it passes `cond`. */
function report(w, what, cond) {
  return waitFor(
    async () => {
      const raw = await (await w.admin()).get(w.key(`fleet:${ME}`));
      const r = raw && JSON.parse(raw);
      return r && cond(r) ? r : null;
    },
    { timeout: 3000, what },
  );
}

/** Events of one kind from a reader. */
function listen(reader, name) {
  const events = [];
  reader.on(name, (e) => events.push(e));
  return events;
}

test("rollout: bucket gives every vector's bucket, and the threshold every vector's", () => {
  assert.ok(V.cases.length >= 10 && V.thresholds.length >= 8);
  for (const c of V.cases) assert.equal(bucket(c.salt, c.key), c.bucket, `salt ${c.salt}, key ${JSON.stringify(c.key)}`);
  for (const { percent, threshold } of V.thresholds) assert.equal(thresholdOf(percent), threshold, `percent ${percent}`);
});

test("rollout: a reader gives the canary to exactly the buckets below each vector's threshold", async (t) => {
  const w = await world(t);
  const { A, B } = await liveManifests(w);
  const reader = await w.reader();
  for (const { percent, threshold } of V.thresholds) {
    await w.rollout({ canary: { release: B.id, percent, salt: SALT }, manifest: B.json });
    await waitFor(() => reader.canary?.percent === percent, { timeout: 2000, what: `the rollout at ${percent} %` });
    const below = keyWithBucket(SALT, threshold - 1);
    const at = keyWithBucket(SALT, threshold);
    assert.equal(reader.snapshot({ key: below }).releaseId, B.id, `${percent} %: bucket ${threshold - 1} (${below}) gets the canary`);
    assert.equal(reader.snapshot({ key: at }).releaseId, A.id, `${percent} %: bucket ${threshold} (${at}) does not`);
  }
});

test("rollout: 10,000 keys at 5 then 25 % give the vectors' counts, and the keys on the canary at 5 % stay on it", async (t) => {
  const w = await world(t);
  const { A, B } = await liveManifests(w);
  await w.rollout({ canary: { release: B.id, percent: 5, salt: SALT }, manifest: B.json });
  const reader = await w.reader();
  const other = await w.reader(); // another reader: the same answers
  const onCanary = (r) => new Set(population.filter((key) => r.snapshot({ key }).releaseId === B.id));

  const at5 = onCanary(reader);
  assert.equal(at5.size, V.population.canary_at_5);
  assert.deepEqual(onCanary(other), at5);
  for (const key of population) {
    const snap = reader.snapshot({ key });
    assert.equal(snap.role, at5.has(key) ? "canary" : "live");
    assert.equal(snap.releaseId, at5.has(key) ? B.id : A.id);
  }

  await w.rollout({ canary: { release: B.id, percent: 25, salt: SALT }, manifest: B.json });
  await waitFor(() => reader.canary?.percent === 25 && other.canary?.percent === 25, { timeout: 2000, what: "raised to 25 %" });
  const at25 = onCanary(reader);
  assert.equal(at25.size, V.population.canary_at_25);
  assert.deepEqual(onCanary(other), at25);
  assert.deepEqual([...at5].filter((key) => !at25.has(key)), [], "every key on the canary at 5 % is on it at 25 %");
});

test("rollout: the canary is served to its keys beside the live release, raised and taken off; events and reports say so", async (t) => {
  const w = await world(t);
  const { A, B } = await liveManifests(w);
  await w.rollout({ canary: { release: B.id, percent: 50, salt: SALT }, manifest: B.json });
  // No poll to speak of: the changes come by pub/sub.
  const reader = await w.reader({ reportInterval: 200, pollInterval: 60_000 });
  const canaries = listen(reader, "canary");
  const switches = listen(reader, "switch");
  const on = keyWithBucket(SALT, 4999);
  const off = keyWithBucket(SALT, 5000);

  assert.deepEqual(reader.canary, { release: B.id, percent: 50 });
  const canary = reader.snapshot({ key: on });
  assert.deepEqual({ releaseId: canary.releaseId, role: canary.role }, { releaseId: B.id, role: "canary" });
  assert.equal(canary.lookup("admin.js"), B.manifest["admin.js"]);
  assert.equal(canary.metaTag(), `<meta name="cutover-release" content="${B.id}">`);
  assert.equal(reader.snapshot({ key: on }), canary, "one snapshot object per release");
  const live = reader.snapshot({ key: off });
  assert.equal(live, reader.snapshot());
  assert.deepEqual({ releaseId: live.releaseId, role: live.role }, { releaseId: A.id, role: "live" });
  // The reader's own answers are the live release's.
  assert.equal(reader.releaseId, A.id);
  assert.equal(reader.lookup("application.js"), A.manifest["application.js"].src);
  // Keys: numbers as their decimal string; empty or absent: the live release; others refused.
  const numeric = population.findIndex((_, i) => bucket(SALT, String(i)) < 5000);
  assert.equal(reader.snapshot({ key: numeric }).releaseId, B.id);
  assert.equal(reader.snapshot({ key: "" }), live);
  assert.equal(reader.snapshot({ key: null }), live);
  assert.equal(reader.snapshot({}), live);
  assert.throws(() => reader.snapshot({ key: /** @type {any} */ ({ id: 1 }) }), TypeError);
  const first = await report(w, "the first report", (r) => r.release === A.id);
  assert.equal(first.canary, B.id);
  assert.equal(first.refused, undefined);

  await w.rollout({ canary: { release: B.id, percent: 75, salt: SALT }, manifest: B.json });
  await waitFor(() => canaries.length === 1, { timeout: 2000, what: "the raise announced" });
  assert.deepEqual(canaries[0], { release: B.id, percent: 75, previous: B.id, source: "pubsub" });
  assert.equal(reader.snapshot({ key: on }).releaseId, B.id);
  assert.equal(reader.snapshot({ key: keyWithBucket(SALT, 7499) }).releaseId, B.id);

  const at = await w.endRollout({ complete: false, canary: B.id, previous: A.id });
  await waitFor(() => reader.canary === null, { until: at + 2000, what: "the canary taken off" });
  assert.deepEqual(canaries[1], { release: null, percent: null, previous: B.id, source: "pubsub" });
  assert.equal(reader.snapshot({ key: on }), reader.snapshot());
  assert.equal(reader.releaseId, A.id);
  assert.deepEqual(switches, [], "the live release never changed");
  const after = await report(w, "no canary reported", (r) => r.canary === null);
  assert.deepEqual({ release: after.release, since: after.since, source: after.source }, { release: A.id, since: first.since, source: "start" });
});

test("rollout: the poll (MGET current canary) finds a rollout started, raised or ended without an event; a change re-reads all six keys at once", async (t) => {
  const w = await world(t);
  const { A, B } = await liveManifests(w);
  const seen = [];
  const monitor = createClient({ url: w.redisUrl });
  monitor.on("error", () => {});
  await monitor.connect();
  w.onCleanup(() => monitor.destroy());
  await monitor.monitor((line) => line.includes(`{${w.app}}`) && seen.push(line));
  const reader = await w.reader({ pollInterval: 50, reportInterval: 0 });
  const canaries = listen(reader, "canary");

  await w.rollout({ canary: { release: B.id, percent: 5, salt: SALT }, manifest: B.json, publish: false });
  await waitFor(() => canaries.length === 1, { timeout: 2000, what: "the rollout found by the poll" });
  assert.deepEqual(canaries[0], { release: B.id, percent: 5, previous: null, source: "poll" });
  await w.rollout({ canary: { release: B.id, percent: 25, salt: SALT }, manifest: B.json, publish: false });
  await waitFor(() => canaries.length === 2, { timeout: 2000, what: "the raise found by the poll" });
  assert.equal(canaries[1].percent, 25);
  await (await w.admin()).del([w.key("canary"), w.key("canary_manifest")]);
  await waitFor(() => canaries.length === 3, { timeout: 2000, what: "the end found by the poll" });
  assert.equal(canaries[2].release, null);
  assert.equal(reader.releaseId, A.id);

  const k = (name) => `"${w.key(name)}"`;
  const poll = `"MGET" ${k("current")} ${k("canary")}`;
  const all = `"MGET" ${["current", "manifest", "signature", "canary", "canary_manifest", "canary_signature"].map(k).join(" ")}`;
  const mine = seen.filter((l) => !l.includes('"MONITOR"'));
  assert.ok(mine.filter((l) => l.endsWith(poll)).length >= 3, "polled");
  // The start's read, and one per change.
  assert.equal(mine.filter((l) => l.endsWith(all)).length, 4, mine.filter((l) => !l.endsWith(poll)).join("\n"));
  assert.deepEqual(
    mine.filter((l) => !l.endsWith(poll) && !l.endsWith(all) && !/"(MULTI|EXEC|SET|DEL|ACL|SUBSCRIBE)"/i.test(l)),
    [],
    "nothing else read",
  );
});

test("rollout: a canary with a bad signature, a foreign origin or an unreadable manifest is served to no one, logged once and reported", async (t) => {
  const w = await world(t);
  const { A, B } = await liveManifests(w);
  await w.publish({ id: A.id, manifest: A.json, signature: signRelease("k1", A.id, A.json) });
  const log = captureLog();
  const reader = await w.reader({ verifyKeys: [testKeys.k1.publicPem], reportInterval: 200, logger: log.logger });
  const rejected = listen(reader, "rejected");
  // A good canary first: a bad one replaces it, and then nobody gets one.
  await w.rollout({ canary: { release: B.id, percent: 50, salt: SALT }, manifest: B.json, signature: signRelease("k1", B.id, B.json) });
  await waitFor(() => reader.canary?.release === B.id, { timeout: 2000, what: "the signed canary served" });

  const forged = JSON.stringify({ ...JSON.parse(B.json), "admin.js": "https://evil.example/x.js" });
  const bad = [
    ["signed by a key not configured", B.json, (id) => signRelease("other", id, B.json), /not in verifyKeys/],
    ["unsigned", B.json, () => null, /unsigned/],
    ["the live release's signature", B.json, () => signRelease("k1", A.id, A.json), /for release/],
    ["over other bytes", B.json, (id) => signRelease("k1", id, A.json), /other manifest bytes/],
    ["a foreign origin", forged, (id) => signRelease("k1", id, forged), /not on an allowed origin/],
    ["not JSON", "{not json", (id) => signRelease("k1", id, "{not json"), /not JSON/],
    ["no known format", '{"x":1}', (id) => signRelease("k1", id, '{"x":1}'), /format|cannot be read/],
    ["no canary_manifest", null, () => null, /canary_manifest is empty/],
  ];
  let n = 0;
  for (const [what, manifest, sign, reason] of bad) {
    const id = `c00000000000000${n++}`;
    await w.rollout({ canary: { release: id, percent: 50, salt: SALT }, manifest, signature: sign(id) });
    const event = await waitFor(() => rejected.find((e) => e.release === id), { timeout: 2000, what: `${what}: refused` });
    assert.equal(event.canary, true, what);
    assert.match(event.reason, reason, what);
    assert.equal(reader.canary, null, what);
    assert.deepEqual(
      population.filter((key) => reader.snapshot({ key }).releaseId !== A.id),
      [],
      `${what}: nobody gets the canary`,
    );
    const r = await report(w, `${what}: reported`, (r) => r.refused?.release === id);
    assert.deepEqual({ release: r.release, canary: r.canary, reason: r.refused.reason }, { release: A.id, canary: null, reason: event.reason });
  }
  // Raised, the last one is not said again; the next one is.
  const last = `c00000000000000${n - 1}`;
  await w.rollout({ canary: { release: last, percent: 60, salt: SALT }, manifest: null });
  await w.rollout({ canary: { release: "c0000000000000ff", percent: 60, salt: SALT }, manifest: null });
  await waitFor(() => rejected.some((e) => e.release === "c0000000000000ff"), { timeout: 2000, what: "the next one refused" });
  for (const id of [...Array(n).keys()].map((i) => `c00000000000000${i}`)) {
    assert.equal(rejected.filter((e) => e.release === id).length, 1, id);
    assert.equal(log.lines.error.filter((l) => l.includes(`canary release ${id} rejected`)).length, 1, id);
  }
  assert.equal(reader.releaseId, A.id);

  // Refused at start: said once the reader is returned, and in its first report.
  await reader.close();
  const boot = Date.now();
  const booting = await w.reader({ verifyKeys: [testKeys.k1.publicPem], reportInterval: 200 });
  const atStart = listen(booting, "rejected");
  await waitFor(() => atStart.length === 1, { timeout: 2000, what: "refused at start" });
  assert.deepEqual(atStart[0], { release: "c0000000000000ff", reason: atStart[0].reason, canary: true });
  assert.equal(booting.canary, null);
  assert.equal(booting.releaseId, A.id);
  const first = await report(w, "refused at start, reported", (r) => r.since >= boot && r.refused?.release === "c0000000000000ff");
  assert.equal(first.canary, null);
});

test("rollout: a canary key that is not as the contract says is served to no one and logged once", async (t) => {
  const w = await world(t);
  const { A, B } = await liveManifests(w);
  const log = captureLog();
  const reader = await w.reader({ logger: log.logger });
  const rejected = listen(reader, "rejected");
  const good = { v: 1, release: B.id, percent: 50, salt: SALT };
  const bad = [
    ["version 2", { ...good, v: 2 }, /version/],
    ["percent 0", { ...good, percent: 0 }, /percent/],
    ["percent 100", { ...good, percent: 100 }, /percent/],
    ["percent as a string", { ...good, percent: "50" }, /percent/],
    ["a short salt", { ...good, salt: SALT.slice(1) }, /salt/],
    ["a salt that is not hex", { ...good, salt: "z".repeat(32) }, /salt/],
  ];
  for (const [what, canary, reason] of bad) {
    // Served first, so that the refusal visibly takes it off, and is said again.
    await w.rollout({ canary: JSON.stringify(good), manifest: B.json });
    await waitFor(() => reader.canary?.release === B.id, { timeout: 2000, what: `${what}: the good one first` });
    const before = rejected.length;
    await w.rollout({ canary: JSON.stringify(canary), manifest: B.json });
    await waitFor(() => rejected.length === before + 1, { timeout: 2000, what: `${what}: refused` });
    const event = rejected.at(-1);
    assert.deepEqual({ release: event.release, canary: event.canary }, { release: B.id, canary: true }, what);
    assert.match(event.reason, reason, what);
    assert.equal(reader.canary, null, what);
    assert.equal(reader.snapshot({ key: keyWithBucket(SALT, 0) }).releaseId, A.id, what);
  }
  // Naming no release, or not JSON at all: logged once, nothing to emit or report.
  for (const value of [JSON.stringify({ ...good, release: undefined }), "{not json"]) {
    await w.rollout({ canary: value, manifest: B.json });
    await waitFor(() => log.lines.error.some((l) => l.includes("canary in") && l.includes(value === "{not json" ? "not JSON" : "names no release")), {
      timeout: 2000,
      what: `${value}: logged`,
    });
    assert.equal(reader.canary, null);
  }
  assert.equal(rejected.length, bad.length);
});

test("rollout: a canary naming the live release is ignored: nobody refused, nothing reported", async (t) => {
  const w = await world(t);
  const { A, B } = await liveManifests(w);
  await w.rollout({ canary: { release: A.id, percent: 50, salt: SALT }, manifest: A.json });
  const log = captureLog();
  const reader = await w.reader({ reportInterval: 200, logger: log.logger });
  const rejected = listen(reader, "rejected");
  const canaries = listen(reader, "canary");
  assert.equal(reader.canary, null);
  assert.equal(reader.snapshot({ key: keyWithBucket(SALT, 0) }).role, "live");

  // Served, then the canary names the live release: taken off, not refused.
  await w.rollout({ canary: { release: B.id, percent: 50, salt: SALT }, manifest: B.json });
  await waitFor(() => reader.canary?.release === B.id, { timeout: 2000, what: "B served" });
  await report(w, "B reported", (r) => r.canary === B.id);
  await w.rollout({ canary: { release: A.id, percent: 50, salt: SALT }, manifest: A.json });
  await waitFor(() => reader.canary === null, { timeout: 2000, what: "the canary naming A ignored" });
  assert.deepEqual(canaries.map((e) => e.release), [B.id, null]);
  const r = await report(w, "reported without a canary", (r) => r.canary === null);
  assert.equal(r.refused, undefined);
  assert.deepEqual(rejected, []);
  assert.deepEqual(log.lines.error, []);
});

test("rollout: a running reader and node:cluster workers follow an abort and a completion within 2 s, live and canary swapped together", async (t) => {
  const w = await world(t);
  const { A, B } = await liveManifests(w);
  await w.rollout({ canary: { release: B.id, percent: 25, salt: SALT }, manifest: B.json });
  const reader = await w.reader();
  const primary = fork(path.join(here, "fixtures/cluster-app.mjs"), [], {
    env: { ...process.env, CUTOVER_APP: w.app, REDIS_URL: await w.readerUrl(), WORKERS: "2" },
    stdio: ["ignore", "ignore", "inherit", "ipc"],
  });
  w.onCleanup(() => primary.kill("SIGKILL"));
  const serving = new Map(); // worker id -> {release, canary, at}
  primary.on("message", (m) => m.type !== "exit" && serving.set(m.worker, m));
  let exited = null;
  primary.once("exit", (code, signal) => (exited = { code, signal }));
  const all = (release, canary) =>
    reader.releaseId === release &&
    (reader.canary?.release ?? null) === canary &&
    serving.size === 2 &&
    [...serving.values()].every((s) => s.release === release && s.canary === canary);
  await waitFor(() => all(A.id, B.id), { timeout: 15_000, what: "the reader and both workers serve A with canary B" });

  const aborted = await w.endRollout({ complete: false, canary: B.id, previous: A.id });
  await waitFor(() => all(A.id, null), { until: aborted + 2000, what: "everyone drops the canary" });
  for (const s of serving.values()) assert.ok(s.at <= aborted + 2000);

  await w.rollout({ canary: { release: B.id, percent: 25, salt: SALT }, manifest: B.json });
  await waitFor(() => all(A.id, B.id), { timeout: 2000, what: "the rollout again" });
  // A key on the canary gets B throughout the completion; one off it gets A, then B, never back.
  const on = keyWithBucket(SALT, 0);
  const off = keyWithBucket(SALT, 9999);
  const wrong = [];
  let offSawB = false;
  let sampling = true;
  const sample = () => {
    if (reader.snapshot({ key: on }).releaseId !== B.id) wrong.push("the canary's key left B");
    const offId = reader.snapshot({ key: off }).releaseId;
    if (offId === B.id) offSawB = true;
    else if (offSawB || offId !== A.id) wrong.push(`the other key got ${offId}`);
    if (sampling) setImmediate(sample);
  };
  sample();
  const completed = await w.endRollout({ complete: true, canary: B.id, manifest: B.json, previous: A.id });
  await waitFor(() => all(B.id, null), { until: completed + 2000, what: "everyone serves B, without a canary" });
  sampling = false;
  assert.deepEqual(wrong, []);
  assert.ok(offSawB);

  primary.send("stop");
  await waitFor(() => exited, { timeout: 10_000, what: "workers and primary exit" });
  assert.deepEqual(exited, { code: 0, signal: null });
});
