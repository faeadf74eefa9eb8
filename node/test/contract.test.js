// The reader contract scenarios (tests/contract/scenarios.md), one test each,
// against the real cutover binary deploying the fixture builds (A: shakapacker,
// B: flat webpack-manifest-plugin) to the run's S3 server and Redis.
import assert from "node:assert/strict";
import { fork, spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { isDeepStrictEqual } from "node:util";
import { MissingEntryError, UnavailableError, createReader } from "cutover-reader";
import { freePort, startRedis } from "./support/servers.js";
import { CDN, aclFor, captureLog, signRelease, testKeys, waitFor, world } from "./support/world.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const tags = (list) => list.map(({ src, integrity }) => ({ src, integrity }));

test("contract: boot", async (t) => {
  const w = await world(t);
  const A = await w.deploy("A");
  const reader = await w.reader();

  const admin = await w.admin();
  const [current, json] = await admin.mGet([w.key("current"), w.key("manifest")]);
  const live = JSON.parse(json);
  assert.equal(current, A.id);
  assert.equal(reader.releaseId, current);
  assert.equal(reader.lookup("application.js"), live["application.js"].src);
  assert.match(reader.lookup("application.js"), /^https:\/\/cdn\.example\.com\/packs\/js\/application-[0-9a-f]+\.js$/);

  const { assets } = live.entrypoints.application;
  const ep = reader.entrypoint("application");
  assert.deepEqual(ep, { js: tags(assets.js), css: tags(assets.css), preload: [] });
  // runtime, the shared chunk, then the entry itself; each with its SRI hash
  assert.deepEqual(
    ep.js.map((s) => s.src.replace(/-[0-9a-f]+\.js$/, "")),
    ["runtime", "841", "application"].map((n) => `https://cdn.example.com/packs/js/${n}`),
  );
  assert.equal(ep.css.length, 2);
  for (const s of [...ep.js, ...ep.css]) assert.match(s.integrity, /^sha384-[A-Za-z0-9+/]{64}$/);
});

test("contract: missing-entry", async (t) => {
  const w = await world(t);
  const A = await w.deploy("A");
  const reader = await w.reader();

  assert.equal(reader.lookup("nope.js"), undefined);
  assert.equal(reader.lookup("constructor"), undefined, "no inherited Object properties");
  assert.equal(reader.lookupOrThrow("application.js"), reader.lookup("application.js"));
  assert.throws(
    () => reader.lookupOrThrow("nope.js"),
    (err) => {
      assert.ok(err instanceof MissingEntryError);
      assert.equal(err.entry, "nope.js");
      assert.equal(err.release, A.id);
      assert.match(err.message, new RegExp(`"nope\\.js".*release ${A.id}`));
      return true;
    },
  );
  assert.throws(
    () => reader.entrypoint("nope"),
    (err) => err instanceof MissingEntryError && err.entry === "nope" && err.message.includes(A.id),
  );
});

test("contract: switch", async (t) => {
  const w = await world(t);
  const A = await w.deploy("A");
  // A poll far away: only pub/sub can bring B within 2 s.
  const reader = await w.reader({ pollInterval: 60_000 });
  const events = [];
  reader.on("switch", (e) => events.push(e));

  const B = await w.deploy("B");
  const activation = await w.lastActivation();
  assert.equal(activation.release, B.id);
  await waitFor(() => reader.releaseId === B.id, { until: activation.at + 2000, what: "reader serves B" });
  assert.deepEqual(events, [{ release: B.id, previous: A.id, source: "pubsub" }]);

  // B is a flat manifest: the entrypoint is its application.js and application.css.
  assert.equal(reader.lookup("admin.js"), B.manifest["admin.js"]);
  assert.deepEqual(reader.entrypoint("application"), {
    js: [{ src: B.manifest["application.js"], integrity: null }],
    css: [{ src: B.manifest["application.css"], integrity: null }],
    preload: [],
  });

  // Announced once: the next event is the next activation's.
  await w.rollback();
  const back = await w.lastActivation();
  await waitFor(() => reader.releaseId === A.id, { until: back.at + 2000, what: "reader serves A again" });
  assert.deepEqual(events, [
    { release: B.id, previous: A.id, source: "pubsub" },
    { release: A.id, previous: B.id, source: "pubsub" },
  ]);
});

test("contract: rollback", async (t) => {
  const w = await world(t);
  const A = await w.deploy("A");
  const B = await w.deploy("B");
  const reader = await w.reader();
  assert.equal(reader.releaseId, B.id);
  const events = [];
  reader.on("switch", (e) => events.push(e));

  assert.equal(await w.rollback(), A.id);
  const { at } = await w.lastActivation();
  await waitFor(() => reader.releaseId === A.id, { until: at + 2000, what: "reader serves A after rollback" });
  assert.deepEqual(reader.snapshot().manifest, A.manifest);
  assert.equal(reader.entrypoint("application").js.length, 3);
  assert.deepEqual(
    events.map(({ release, previous }) => ({ release, previous })),
    [{ release: A.id, previous: B.id }],
  );
});

test("contract: consistent-pair", async (t) => {
  const w = await world(t);
  const A = await w.deploy("A");
  const B = await w.deploy("B");
  const manifests = { [A.id]: A.manifest, [B.id]: B.manifest };
  // One reader as configured by default, one polling every 10 ms so GET/MGET run throughout.
  const readers = [await w.reader(), await w.reader({ pollInterval: 10 })];
  const wrong = [];
  const switches = [0, 0];
  readers.forEach((reader, i) =>
    reader.on("switch", () => {
      switches[i]++;
      const snap = reader.snapshot();
      if (!isDeepStrictEqual(snap.manifest, manifests[snap.releaseId])) wrong.push(`switch to ${snap.releaseId}`);
    }),
  );

  // Between every turn of the event loop, each answer pairs an id with its own manifest.
  let samples = 0;
  let sampling = true;
  const sample = () => {
    for (const reader of readers) {
      const id = reader.releaseId;
      const isA = "entrypoints" in reader.snapshot().manifest;
      const jsCount = reader.entrypoint("application").js.length;
      if (!(id === A.id ? isA && jsCount === 3 : id === B.id && !isA && jsCount === 1)) wrong.push(`${id} answered ${isA ? "A" : "B"}`);
      samples++;
    }
    if (sampling) setImmediate(sample);
  };
  sample();

  const turns = 16;
  for (let i = 0; i < turns; i++) await w.activate(i % 2 === 0 ? A.id : B.id);
  const last = await w.lastActivation();
  assert.equal(last.release, B.id);
  await waitFor(() => readers.every((r) => r.releaseId === B.id), { until: last.at + 2000, what: "readers serve the last release" });
  sampling = false;

  assert.deepEqual(wrong, []);
  assert.ok(samples > 1000, `only ${samples} samples`);
  for (const n of switches) assert.ok(n >= 2 && n <= turns, `a reader switched ${n} times for ${turns} activations`);
});

test("contract: workers", async (t) => {
  const w = await world(t);
  const A = await w.deploy("A");
  const primary = fork(path.join(here, "fixtures/cluster-app.mjs"), [], {
    env: { ...process.env, CUTOVER_APP: w.app, REDIS_URL: await w.readerUrl(), WORKERS: "2" },
    stdio: ["ignore", "ignore", "inherit", "ipc"],
  });
  w.onCleanup(() => primary.kill("SIGKILL"));
  const serving = new Map(); // worker id -> {pid, release, at}
  const exits = [];
  primary.on("message", (m) => {
    if (m.type === "exit") exits.push(m);
    else serving.set(m.worker, m);
  });
  let exited = null;
  primary.once("exit", (code, signal) => (exited = { code, signal }));
  const all = (id) => serving.size === 2 && [...serving.values()].every((s) => s.release === id);

  await waitFor(() => all(A.id), { timeout: 15_000, what: "both workers start serving A" });
  assert.equal(new Set([...serving.values()].map((s) => s.pid)).size, 2, "two worker processes");

  const B = await w.deploy("B");
  const deployed = await w.lastActivation();
  await waitFor(() => all(B.id), { until: deployed.at + 2000, what: "every worker serves B" });
  for (const s of serving.values()) assert.ok(s.at <= deployed.at + 2000);

  await w.rollback();
  const rolledBack = await w.lastActivation();
  await waitFor(() => all(A.id), { until: rolledBack.at + 2000, what: "every worker serves A after rollback" });

  // close() leaves nothing open: each worker exits by itself once it leaves the IPC channel.
  primary.send("stop");
  await waitFor(() => exited, { timeout: 10_000, what: "workers and primary exit" });
  assert.deepEqual(exited, { code: 0, signal: null });
  assert.deepEqual(
    exits.map(({ code, signal }) => ({ code, signal })),
    [
      { code: 0, signal: null },
      { code: 0, signal: null },
    ],
  );
});

test("contract: subscriber-dropped", async (t) => {
  const w = await world(t);
  const A = await w.deploy("A");
  const url = await w.readerUrl({ password: "pw-1" });
  const polled = await w.reader({ url });
  // No poll to speak of: only pub/sub or the re-read on reconnect can reach it.
  const unpolled = await w.reader({ url, pollInterval: 60_000 });
  const events = { polled: [], unpolled: [] };
  polled.on("switch", (e) => events.polled.push(e));
  unpolled.on("switch", (e) => events.unpolled.push(e));

  // Kill the readers' subscriber connections and keep them out: existing
  // connections stay logged in, new ones of this user are refused.
  const admin = await w.admin();
  const user = `reader-${w.app}`;
  await admin.sendCommand(["ACL", "SETUSER", user, "resetpass", ">pw-2"]);
  assert.equal(await admin.sendCommand(["CLIENT", "KILL", "TYPE", "pubsub", "USER", user]), 2);

  const B = await w.deploy("B");
  const { at } = await w.lastActivation();
  await waitFor(() => polled.releaseId === B.id, { until: at + 2000, what: "the polling reader serves B" });
  assert.deepEqual(events.polled, [{ release: B.id, previous: A.id, source: "poll" }]);
  assert.equal(unpolled.releaseId, A.id, "pub/sub was really gone");

  // Let the subscribers back in: the re-read after reconnecting brings B.
  await admin.sendCommand(["ACL", "SETUSER", user, "resetpass", ">pw-1"]);
  await waitFor(() => unpolled.releaseId === B.id, { timeout: 2000, what: "the other reader re-reads on reconnect" });
  assert.deepEqual(events.unpolled, [{ release: B.id, previous: A.id, source: "reconnect" }]);
});

test("contract: redis-down", async (t) => {
  const w = await world(t);
  // A Redis of its own to stop, with the reader's ACL user in its config (it keeps no data).
  const user = `reader-${w.app}`;
  const redis = await startRedis({ args: ["--user", ...aclFor(w.app, user, "pw-down").slice(2)] });
  w.onCleanup(() => redis.kill());
  w.redisUrl = redis.url;
  const A = await w.deploy("A");
  const log = captureLog();
  const reader = await w.reader({ url: `redis://${user}:pw-down@127.0.0.1:${redis.port}`, pollInterval: 100, logger: log.logger });

  await redis.kill();
  const url = reader.lookup("application.js");
  assert.equal(typeof url, "string", "answered at once, not a promise");
  assert.equal(url, A.manifest["application.js"].src);
  assert.equal(reader.releaseId, A.id);
  assert.equal(reader.entrypoint("application").js.length, 3);

  const failedPolls = () => log.lines.debug.filter((l) => l.includes("(poll:")).length;
  await waitFor(() => failedPolls() >= 5, { timeout: 5000, what: "five failed polls" });
  const lost = log.lines.warn.filter((l) => l.includes("lost Redis"));
  assert.equal(lost.length, 1, `logged once:\n${log.lines.warn.join("\n")}`);
  assert.ok(lost[0].includes(`redis://${user}:***@127.0.0.1:${redis.port}`), lost[0]);
  assert.ok(lost[0].includes(`release ${A.id}`), lost[0]);
  assert.ok(!lost[0].includes("pw-down"));
  assert.equal(reader.releaseId, A.id);

  // Back, but empty (no persistence): the reader keeps A, then takes the next activation.
  await redis.start();
  await waitFor(() => log.lines.info.some((l) => l.includes("answers again")), { timeout: 3000, what: "reconnected" });
  assert.equal(reader.releaseId, A.id);
  const B = await w.deploy("B");
  const { at } = await w.lastActivation();
  await waitFor(() => reader.releaseId === B.id, { until: at + 2000, what: "reader serves B after Redis came back" });
  assert.equal(log.lines.warn.filter((l) => l.includes("lost Redis")).length, 1);
  assert.equal(log.lines.info.filter((l) => l.includes("answers again")).length, 1);
});

test("contract: boot-without-redis", async (t) => {
  const w = await world(t);
  const port = await freePort(); // nothing listens there
  const url = `redis://reader:s3cret@127.0.0.1:${port}`;
  const masked = `redis://reader:***@127.0.0.1:${port}`;

  await assert.rejects(createReader({ app: w.app, url, connectTimeout: 300, logger: false }), (err) => {
    assert.ok(err instanceof UnavailableError, err.stack);
    assert.equal(err.key, `cutover:{${w.app}}:manifest`);
    assert.equal(err.url, masked);
    assert.ok(err.message.includes(err.key) && err.message.includes(masked), err.message);
    assert.ok(!err.message.includes("s3cret"), err.message);
    return true;
  });

  // A process whose reader failed to start can still exit by itself.
  const child = spawn(
    process.execPath,
    [
      "--input-type=module",
      "-e",
      `import { createReader } from "cutover-reader";
       await createReader({ app: "x", url: ${JSON.stringify(url)}, connectTimeout: 300, logger: false })
         .catch((err) => console.log(err.name));`,
    ],
    { cwd: here, stdio: ["ignore", "pipe", "inherit"] },
  );
  w.onCleanup(() => child.kill("SIGKILL"));
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  let code = null;
  child.once("exit", (c) => (code = c));
  await waitFor(() => code !== null, { timeout: 10_000, what: "process exits" });
  assert.equal(code, 0);
  assert.equal(out.trim(), "UnavailableError");

  // With a fallback it starts on it, and takes the live release once Redis is there.
  const fallback = { "application.js": "https://cdn.example.com/packs/js/fallback.js" };
  const file = path.join(w.work, "fallback-manifest.json");
  writeFileSync(file, JSON.stringify(fallback));
  const log = captureLog();
  const started = Date.now();
  const reader = await w.reader({ url: `redis://127.0.0.1:${port}`, fallbackManifest: file, connectTimeout: 300, logger: log.logger });
  assert.ok(Date.now() - started < 2000, "gave up on Redis quickly");
  assert.equal(reader.releaseId, null);
  assert.equal(reader.lookup("application.js"), fallback["application.js"]);
  assert.throws(() => reader.lookupOrThrow("admin.js"), /fallback manifest/);
  // One warning about the fallback (and, with no Redis either, one about the fleet report).
  const fleet = `cutover:{${w.app}}:fleet`;
  const warned = log.lines.warn.filter((l) => !l.includes(fleet));
  assert.equal(warned.length, 1, warned.join("\n"));
  assert.ok(warned[0].includes(`cutover:{${w.app}}:manifest`), warned[0]);

  const events = [];
  reader.on("switch", (e) => events.push(e));
  const redis = await startRedis({ port });
  w.onCleanup(() => redis.kill());
  w.redisUrl = redis.url;
  const A = await w.deploy("A");
  const { at } = await w.lastActivation();
  await waitFor(() => reader.releaseId === A.id, { until: at + 2000, what: "reader leaves the fallback for A" });
  assert.equal(events.length, 1);
  assert.equal(events[0].previous, null);
  assert.equal(reader.lookup("application.js"), A.manifest["application.js"].src);
  // The fleet hears of it too (a re-read after a reconnect counts as the poll), said once.
  const admin = await w.admin();
  const report = await waitFor(async () => JSON.parse((await admin.get(`${fleet}:${os.hostname()}:${process.pid}`)) ?? "null"), {
    timeout: 2000,
    what: "the switch reported",
  });
  const source = events[0].source === "pubsub" ? "pubsub" : "poll";
  assert.deepEqual({ release: report.release, source: report.source }, { release: A.id, source });
  assert.equal(log.lines.warn.filter((l) => l.includes(fleet)).length, 1, log.lines.warn.join("\n"));
});

test("contract: idle-worker-first-request", async (t) => {
  const w = await world(t);
  const A = await w.deploy("A");
  const B = await w.deploy("B");
  await w.activate(A.id);
  const manifests = { [A.id]: A.manifest, [B.id]: B.manifest };
  const primary = fork(path.join(here, "fixtures/idle-workers.mjs"), [], {
    env: { ...process.env, CUTOVER_APP: w.app, REDIS_URL: await w.readerUrl(), WORKERS: "2", CDN },
    stdio: ["ignore", "ignore", "inherit", "ipc"],
  });
  w.onCleanup(() => primary.kill("SIGKILL"));
  const answers = []; // first answers, in order
  let booted;
  primary.on("message", (m) => (m.type === "primary" ? (booted = m.release) : answers.push(m)));
  await waitFor(() => booted, { timeout: 10_000, what: "the primary read the boot release" });
  assert.equal(booted, A.id);

  // 20 switches with no traffic at all; after each, new workers come up and take one request.
  const switches = 20;
  for (let round = 1; round <= switches; round++) {
    const live = round % 2 === 1 ? B : A;
    await w.activate(live.id);
    primary.send("fork");
    const mine = () => answers.filter((a) => a.round === round);
    await waitFor(() => mine().length === 2, { timeout: 15_000, what: `round ${round}: both new workers answer` });
    for (const a of mine()) {
      assert.equal(a.primary, A.id, "the primary's copy is stale: the workers cannot have it from there");
      assert.equal(a.release, live.id, `round ${round}: worker ${a.worker}'s first answer is the live release`);
      const entry = manifests[live.id]["application.js"];
      assert.equal(a.application, typeof entry === "string" ? entry : entry.src);
    }
    assert.equal(new Set(mine().map((a) => a.pid)).size, 2, "two worker processes");
  }
  assert.equal(answers.length, 2 * switches);
});

/** A's and B's live manifests as the CLI wrote them (exact strings), for publishing by hand. */
async function liveManifests(w) {
  const A = await w.deploy("A");
  const a = await w.liveManifest();
  const B = await w.deploy("B");
  const b = await w.liveManifest();
  await w.activate(A.id);
  return { A: { ...A, json: a }, B: { ...B, json: b } };
}

/** Events of one kind from a reader, and a wait for the next one about a release. */
function listen(reader, name) {
  const events = [];
  reader.on(name, (e) => events.push(e));
  events.next = (release, what) => waitFor(() => events.find((e) => e.release === release), { timeout: 2000, what });
  return events;
}

test("contract: foreign-origin-rejected", async (t) => {
  const w = await world(t);
  const { A, B } = await liveManifests(w);
  const log = captureLog();
  const reader = await w.reader({ assetOrigins: [CDN], logger: log.logger });
  assert.equal(reader.releaseId, A.id);
  const rejected = listen(reader, "rejected");
  const switches = listen(reader, "switch");
  const good = reader.lookup("application.js");

  const forgeries = {
    "f000000000000001": "https://evil.example/x.js",
    "f000000000000002": "//evil.example/x.js",
    "f000000000000003": "data:text/javascript,alert(1)",
    "f000000000000004": "javascript:alert(1)",
    "f000000000000005": `${CDN}/x.js"><script>alert(1)</script>`,
    "f000000000000006": `${CDN}/x.js\r\nLink: <https://evil.example/x.js>`,
    "f000000000000007": "http://cdn.example.com/packs/js/x.js",
  };
  for (const [id, url] of Object.entries(forgeries)) {
    // One URL deep inside the entrypoint list is enough to refuse the whole manifest.
    const forged = JSON.parse(A.json);
    forged.entrypoints.application.assets.js[1].src = url;
    await w.publish({ id, manifest: JSON.stringify(forged) });
    const event = await rejected.next(id, `release ${id} (${url}) rejected`);
    assert.match(event.reason, /not an absolute|not on an allowed origin|contains/, event.reason);
    assert.equal(reader.releaseId, A.id, "keeps the last good release");
    assert.equal(reader.lookup("application.js"), good);
    const served = JSON.stringify(reader.snapshot().manifest);
    assert.ok(!served.includes("evil") && !served.includes("<script>"), "nothing foreign is served");
  }
  assert.equal(switches.length, 0, JSON.stringify(switches));
  // Logged once per refused release, even when it is announced again.
  const last = "f000000000000007";
  await w.publish({ id: last, manifest: JSON.stringify({ "application.js": "https://evil.example/x.js" }) });
  await w.deploy("B");
  await switches.next(B.id, "the next good release is served");
  assert.equal(rejected.filter((e) => e.release === last).length, 1);
  assert.equal(log.lines.error.filter((l) => l.includes(`release ${last} rejected`)).length, 1);
  assert.equal(rejected.length, Object.keys(forgeries).length);

  // At start: a forged live release is never served; fallback, else UnavailableError.
  const id = "f000000000000008";
  await w.publish({ id, manifest: JSON.stringify({ "application.js": "//evil.example/x.js" }) });
  const fallback = { "application.js": `${CDN}/packs/js/fallback.js` };
  const booting = await w.reader({ fallbackManifest: fallback });
  const atBoot = listen(booting, "rejected");
  assert.equal(booting.releaseId, null);
  await atBoot.next(id, "rejected at start, announced once the reader is returned");
  await assert.rejects(w.reader({ connectTimeout: 500 }), (err) => err instanceof UnavailableError && err.message.includes("rejected"));
});

test("contract: unsigned-rejected", async (t) => {
  const w = await world(t);
  const { A, B } = await liveManifests(w);
  await w.publish({ id: A.id, manifest: A.json, signature: signRelease("k1", A.id, A.json) });
  const reader = await w.reader({ verifyKeys: [testKeys.k1.publicPem] });
  assert.equal(reader.releaseId, A.id);
  const rejected = listen(reader, "rejected");
  const switches = listen(reader, "switch");

  // Published without a signature: refused, A stays.
  await w.publish({ id: B.id, manifest: B.json, signature: null });
  assert.match((await rejected.next(B.id, "unsigned B rejected")).reason, /unsigned/);
  assert.equal(reader.releaseId, A.id);
  // The same through the CLI's own activation (the release has no signature of its own).
  await w.activate(A.id);
  await w.activate(B.id);
  await waitFor(() => rejected.filter((e) => e.release === B.id).length === 2, { timeout: 2000, what: "B rejected again" });
  assert.equal(reader.releaseId, A.id);
  assert.ok(switches.every((e) => e.release === A.id));

  // A reader without verifyKeys ignores signatures: it serves B.
  const ignoring = await w.reader();
  assert.equal(ignoring.releaseId, B.id);
  // At start with verifyKeys: never the unsigned release.
  await assert.rejects(w.reader({ verifyKeys: [testKeys.k1.publicPem], connectTimeout: 500 }), UnavailableError);
  const booting = await w.reader({ verifyKeys: [testKeys.k1.publicPem], fallbackManifest: { "application.js": `${CDN}/f.js` } });
  assert.equal(booting.releaseId, null);
});

test("contract: wrongly-signed-rejected", async (t) => {
  const w = await world(t);
  const { A, B } = await liveManifests(w);
  await w.publish({ id: A.id, manifest: A.json, signature: signRelease("k1", A.id, A.json) });
  const reader = await w.reader({ verifyKeys: [testKeys.k1.publicPem] });
  assert.equal(reader.releaseId, A.id);
  const rejected = listen(reader, "rejected");
  const switches = listen(reader, "switch");

  const swapped = B.json.replace(/application-[0-9a-f]+\.js/, "application-0000.js");
  assert.notEqual(swapped, B.json);
  const wrong = [
    ["signed by a key it does not trust", B.json, signRelease("other", B.id, B.json), /not in verifyKeys/],
    ["manifest changed after signing", swapped, signRelease("k1", B.id, B.json), /other manifest bytes/],
    ["A's signature replayed on B", B.json, signRelease("k1", A.id, A.json), /for release/],
    ["signature bytes altered", B.json, signRelease("k1", B.id, B.json).replace(/"sig":"./, '"sig":"A'), /does not verify/],
  ];
  for (const [what, manifest, signature, reason] of wrong) {
    await w.publish({ id: B.id, manifest, signature });
    await waitFor(() => rejected.length === 1, { timeout: 2000, what });
    assert.match(rejected[0].reason, reason, what);
    assert.equal(reader.releaseId, A.id, what);
    // Seen again after A, so the same release id is refused (and announced) again.
    rejected.length = 0;
    await w.publish({ id: A.id, manifest: A.json, signature: signRelease("k1", A.id, A.json) });
    await w.publish({ id: "aaaaaaaaaaaaaaaa", manifest: A.json, signature: null });
    await rejected.next("aaaaaaaaaaaaaaaa", "a marker release rejected");
    rejected.length = 0;
  }
  assert.equal(switches.length, 0, JSON.stringify(switches));

  // Signed with the right key: served.
  await w.publish({ id: B.id, manifest: B.json, signature: signRelease("k1", B.id, B.json) });
  await switches.next(B.id, "the correctly signed B is served");
  assert.equal(reader.lookup("admin.js"), B.manifest["admin.js"]);
});

test("contract: key-rotation", async (t) => {
  const w = await world(t);
  const { A, B } = await liveManifests(w);
  const signedA = { id: A.id, manifest: A.json, signature: signRelease("k1", A.id, A.json) }; // the old key
  const signedB = { id: B.id, manifest: B.json, signature: signRelease("k2", B.id, B.json) }; // the new key
  await w.publish(signedA);
  const both = await w.reader({ verifyKeys: [testKeys.k1.publicPem, testKeys.k2.publicPem] });
  const newOnly = await w.reader({ verifyKeys: [testKeys.k2.publicPem], fallbackManifest: { "application.js": `${CDN}/f.js` } });
  assert.equal(both.releaseId, A.id);
  assert.equal(newOnly.releaseId, null, "A is signed by a key this reader no longer trusts");
  const switches = listen(both, "switch");
  const newOnlySwitches = listen(newOnly, "switch");
  const newOnlyRejected = listen(newOnly, "rejected");

  await w.publish(signedB);
  await switches.next(B.id, "B, signed by the new key, is served");
  await newOnlySwitches.next(B.id, "the new-key-only reader serves B");

  // Rolling back to a release signed by the old key: it keeps its own signature.
  await w.publish(signedA);
  await waitFor(() => switches.filter((e) => e.release === A.id).length === 1, { timeout: 2000, what: "rollback to A" });
  assert.equal(both.releaseId, A.id);
  await newOnlyRejected.next(A.id, "the retired key is refused");
  assert.equal(newOnly.releaseId, B.id);
});
