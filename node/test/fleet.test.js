// The fleet (docs/redis.md, "The fleet: what each process serves"): what a
// reader reports to cutover:{APP}:fleet and cutover:{APP}:fleet:HOST:PID, when,
// and what happens when it may not write there. Readers log in with the
// README's ACL line (which grants the fleet writes), except where a test says.
import assert from "node:assert/strict";
import { fork, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { isDeepStrictEqual } from "node:util";
import { createClient } from "redis";
import { createReader } from "cutover-reader";
import { startRedis } from "./support/servers.js";
import { CDN, aclFor, captureLog, signRelease, testKeys, waitFor, world } from "./support/world.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const { version } = JSON.parse(readFileSync(path.join(here, "../package.json"), "utf8"));
/** This test process's member of the fleet (its readers report as it). */
const ME = `${os.hostname()}:${process.pid}`;
const HEARTBEAT = 200;
const TEN_MINUTES = 600_000;

/** The report of process `id` (parsed, with `raw`), or null. */
async function reportOf(w, id = ME, url = w.redisUrl) {
  const raw = await (await w.admin(url)).get(w.key(`fleet:${id}`));
  return raw === null ? null : { ...JSON.parse(raw), raw };
}

/** Wait for a report of this process that passes `cond`. */
function nextReport(w, what, cond, { id = ME, url, timeout = 5000 } = {}) {
  return waitFor(
    async () => {
      const r = await reportOf(w, id, url);
      return r && cond(r) ? r : null;
    },
    { timeout, what },
  );
}

/** A's and B's live manifests as the CLI wrote them (exact strings); A live at the end. */
async function liveManifests(w) {
  const A = await w.deploy("A");
  const a = await w.liveManifest();
  const B = await w.deploy("B");
  const b = await w.liveManifest();
  await w.activate(A.id);
  return { A: { ...A, json: a }, B: { ...B, json: b } };
}

test("fleet: the first read is reported, with every field of the contract", async (t) => {
  const w = await world(t);
  const A = await w.deploy("A");
  const before = Date.now();
  await w.reader({ reportInterval: HEARTBEAT });
  const after = Date.now();

  const r = await nextReport(w, "the first report", () => true);
  const { raw, ...report } = r;
  assert.equal(raw, JSON.stringify(JSON.parse(raw)), "compact JSON");
  assert.deepEqual(Object.keys(report), ["v", "id", "host", "pid", "kind", "reader", "release", "since", "source", "canary", "heartbeat", "at", "started"]);
  assert.deepEqual(
    { v: r.v, id: r.id, host: r.host, pid: r.pid, kind: r.kind, reader: r.reader, release: r.release, source: r.source, canary: r.canary, heartbeat: r.heartbeat },
    { v: 1, id: ME, host: os.hostname(), pid: process.pid, kind: "node", reader: `node/${version}`, release: A.id, source: "start", canary: null, heartbeat: HEARTBEAT / 1000 },
  );
  assert.ok(before <= r.since && r.since <= after, `since ${r.since} is the first read, between ${before} and ${after}`);
  assert.ok(r.since <= r.at);
  // The process's start, not the reader's.
  const processStart = Date.now() - process.uptime() * 1000;
  assert.ok(r.started < before && Math.abs(r.started - processStart) < 1000, `started ${r.started}, process started ${processStart}`);

  const admin = await w.admin();
  assert.deepEqual(await admin.zRangeWithScores(w.key("fleet"), 0, -1), [{ value: ME, score: r.at }], "one member, scored with at");
});

test("fleet: a switch is reported with its release, since and source; the heartbeat refreshes at", async (t) => {
  const w = await world(t);
  const A = await w.deploy("A");
  const B = await w.deploy("B");
  await w.activate(A.id);
  // No poll to speak of: the switch comes by pub/sub.
  await w.reader({ reportInterval: HEARTBEAT, pollInterval: 60_000 });
  const first = await nextReport(w, "the first report", (r) => r.release === A.id);

  await w.activate(B.id);
  const switched = await nextReport(w, "B reported", (r) => r.release === B.id);
  assert.equal(switched.source, "pubsub");
  assert.ok(first.at <= switched.since && switched.since <= switched.at, JSON.stringify({ first, switched }));

  // Heartbeats: a later `at`, the rest as it was.
  let seen = switched;
  for (let beat = 1; beat <= 2; beat++) {
    const last = seen;
    seen = await nextReport(w, `heartbeat ${beat}`, (r) => r.at > last.at);
    assert.deepEqual({ release: seen.release, since: seen.since, source: seen.source }, { release: B.id, since: switched.since, source: "pubsub" });
  }
});

test("fleet: a release found by the poll is reported with source poll", async (t) => {
  const w = await world(t);
  const { A, B } = await liveManifests(w);
  await w.reader({ reportInterval: HEARTBEAT, pollInterval: 50 });
  await nextReport(w, "the first report", (r) => r.release === A.id);
  // current and manifest changed with no event: only the poll sees it.
  const admin = await w.admin();
  await admin.multi().set(w.key("current"), B.id).set(w.key("manifest"), B.json).exec();
  const r = await nextReport(w, "B reported", (r) => r.release === B.id);
  assert.equal(r.source, "poll");
});

test("fleet: reportInterval 0 writes nothing", async (t) => {
  const w = await world(t);
  const A = await w.deploy("A");
  const B = await w.deploy("B");
  await w.activate(A.id);
  // Every command on this app's keys, in the order Redis ran them.
  const seen = [];
  const monitor = createClient({ url: w.redisUrl });
  monitor.on("error", () => {});
  await monitor.connect();
  w.onCleanup(() => monitor.destroy());
  await monitor.monitor((line) => line.includes(`{${w.app}}`) && seen.push(line));

  const reader = await w.reader({ reportInterval: 0, pollInterval: 20 });
  await w.activate(B.id);
  await waitFor(() => reader.releaseId === B.id, { timeout: 2000, what: "the reader serves B" });
  // A report of the first read or of the switch goes out on the reader's connection before its
  // next poll: three polls after the switch, it would be there.
  const from = seen.length;
  const polls = () => seen.slice(from).filter((l) => l.includes(`"MGET" "${w.key("current")}" "${w.key("canary")}"`)).length;
  await waitFor(() => polls() >= 3, { timeout: 2000, what: "three polls after the switch" });
  assert.deepEqual(seen.filter((l) => l.includes(w.key("fleet"))), []);
  assert.equal(await (await w.admin()).exists([w.key("fleet"), w.key(`fleet:${ME}`)]), 0);
});

test("fleet: a refused release shows in refused, and the release stays the one served", async (t) => {
  const w = await world(t);
  const { A, B } = await liveManifests(w);
  await w.publish({ id: A.id, manifest: A.json, signature: signRelease("k1", A.id, A.json) });
  const reader = await w.reader({ verifyKeys: [testKeys.k1.publicPem], reportInterval: HEARTBEAT });
  const first = await nextReport(w, "the first report", (r) => r.release === A.id);
  assert.equal(first.refused, undefined, "none refused yet");

  // B has no signature: the CLI's activation makes it live unsigned.
  await w.activate(B.id);
  const r = await nextReport(w, "the refusal reported", (r) => r.refused);
  assert.equal(r.refused.release, B.id);
  assert.match(r.refused.reason, /unsigned/);
  assert.deepEqual({ release: r.release, since: r.since, source: r.source }, { release: A.id, since: first.since, source: "start" });
  assert.equal(reader.releaseId, A.id);
  await reader.close();

  // Refused at the first read: the fallback manifest is served, and said.
  const fallback = { "application.js": `${CDN}/packs/js/fallback.js` };
  await w.reader({ verifyKeys: [testKeys.k1.publicPem], fallbackManifest: fallback, reportInterval: HEARTBEAT });
  const atStart = await nextReport(w, "the fallback reported", (r) => r.source === "fallback");
  assert.equal(atStart.release, null);
  assert.equal(atStart.refused.release, B.id);
  assert.match(atStart.refused.reason, /unsigned/);
});

test("fleet: a reader with the read-only ACL line of before the fleet serves as before and says so once", async (t) => {
  const w = await world(t);
  const A = await w.deploy("A");
  // The README's line without the fleet: no fleet key pattern, none of its three commands, and
  // `~` (read and write) where it now has `%R~`.
  const user = `old-${w.app}`;
  const fleetWords = [`~cutover:{${w.app}}:fleet*`, "+zadd", "+zremrangebyscore", "+set"];
  const acl = aclFor(w.app, user, "pw-old")
    .filter((word) => !fleetWords.includes(word))
    .map((word) => word.replace(/^%R~/, "~"));
  assert.ok(acl.includes(`~cutover:{${w.app}}:*`) && !acl.some((word) => word.endsWith(":fleet*") || word.startsWith("%")), acl.join(" "));
  assert.ok(acl.length === aclFor(w.app, user, "pw-old").length - fleetWords.length, acl.join(" "));
  const admin = await w.admin();
  await admin.sendCommand(acl);
  const url = new URL(w.redisUrl);
  url.username = user;
  url.password = "pw-old";

  const unhandled = [];
  const onUnhandled = (err) => unhandled.push(err);
  process.on("unhandledRejection", onUnhandled);
  t.after(() => process.off("unhandledRejection", onUnhandled));
  const log = captureLog();
  const reader = await w.reader({ url: url.toString(), reportInterval: HEARTBEAT, logger: log.logger });
  assert.equal(reader.releaseId, A.id);

  const failedAgain = () => log.lines.debug.filter((l) => l.includes("failed again")).length;
  await waitFor(() => failedAgain() >= 3, { timeout: 5000, what: "three more heartbeats refused" });
  const said = () => [...log.lines.warn, ...log.lines.error].filter((l) => l.includes(w.key("fleet")));
  assert.equal(said().length, 1, said().join("\n"));
  assert.match(said()[0], /NOPERM/);
  assert.ok(said()[0].includes("+zadd +zremrangebyscore +set") && said()[0].includes("reportInterval: 0"), said()[0]);
  assert.equal(await admin.exists([w.key("fleet"), w.key(`fleet:${ME}`)]), 0, "nothing written");

  // Reads go on.
  const B = await w.deploy("B");
  const { at } = await w.lastActivation();
  await waitFor(() => reader.releaseId === B.id, { until: at + 2000, what: "the reader serves B" });
  assert.equal(reader.lookup("admin.js"), B.manifest["admin.js"]);

  // Granted the fleet writes: reported, and said once.
  await admin.sendCommand(["ACL", "SETUSER", user, "+zadd", "+zremrangebyscore", "+set"]);
  const r = await nextReport(w, "reported once granted", (r) => r.release === B.id);
  assert.equal(r.source, "pubsub");
  await waitFor(() => log.lines.info.some((l) => l.includes(`reports to ${w.key("fleet")} again`)), { timeout: 2000, what: "said once" });
  const lastBeat = r.at;
  await nextReport(w, "the next heartbeat", (r) => r.at > lastBeat);
  assert.equal(log.lines.info.filter((l) => l.includes("again")).length, 1, log.lines.info.join("\n"));
  assert.equal(said().length, 1);
  assert.deepEqual(unhandled, []);
});

test("fleet: the report expires, and members older than 10 minutes leave the fleet", async (t) => {
  const w = await world(t);
  await w.deploy("A");
  const admin = await w.admin();
  const now = Date.now();
  await admin.zAdd(w.key("fleet"), [
    { score: now - TEN_MINUTES - 60_000, value: "gone-host:1" },
    { score: now - 60_000, value: "recent-host:2" },
  ]);
  await w.reader({ reportInterval: HEARTBEAT });
  const r = await nextReport(w, "the first report", () => true);

  const pttl = await admin.pTTL(w.key(`fleet:${ME}`));
  assert.ok(pttl > 0 && pttl <= TEN_MINUTES, `PTTL ${pttl}`);
  assert.equal(await admin.zScore(w.key("fleet"), "gone-host:1"), null, "the member older than 10 minutes is dropped");
  assert.equal(await admin.zScore(w.key("fleet"), "recent-host:2"), now - 60_000, "a recent one stays");
  assert.ok((await admin.zScore(w.key("fleet"), ME)) >= r.at);
});

test("fleet: a node:cluster app reports each worker, not the primary, and their switch", async (t) => {
  const w = await world(t);
  const A = await w.deploy("A");
  const B = await w.deploy("B");
  await w.activate(A.id);
  const primary = fork(path.join(here, "fixtures/cluster-app.mjs"), [], {
    env: { ...process.env, CUTOVER_APP: w.app, REDIS_URL: await w.readerUrl(), WORKERS: "2", REPORT_INTERVAL: String(HEARTBEAT) },
    stdio: ["ignore", "ignore", "inherit", "ipc"],
  });
  w.onCleanup(() => primary.kill("SIGKILL"));
  const workers = new Map(); // worker id -> pid
  primary.on("message", (m) => m.type === "ready" && workers.set(m.worker, m.pid));
  let exited = null;
  primary.once("exit", (code, signal) => (exited = { code, signal }));
  await waitFor(() => workers.size === 2, { timeout: 15_000, what: "both workers serve" });
  const ids = [...workers.values()].map((pid) => `${os.hostname()}:${pid}`).sort();
  assert.ok(!ids.includes(`${os.hostname()}:${primary.pid}`));

  // Live: reported within its last 3 heartbeats (as cutover counts).
  const fleet = async () => {
    const admin = await w.admin();
    const members = (await admin.zRange(w.key("fleet"), 0, -1)).sort();
    const reports = await Promise.all(members.map((id) => reportOf(w, id)));
    const live = reports.filter((r) => r && r.at > Date.now() - 3 * r.heartbeat * 1000);
    return { members, live };
  };
  const serving = async (id) => {
    const { members, live } = await fleet();
    return (
      isDeepStrictEqual(members, ids) &&
      live.length === 2 &&
      isDeepStrictEqual(live.map((r) => r.id).sort(), ids) &&
      live.every((r) => r.release === id && r.kind === "node" && ids.includes(`${r.host}:${r.pid}`))
    );
  };
  await waitFor(() => serving(A.id), { timeout: 5000, what: "two live workers on A, and only them" });

  await w.activate(B.id);
  await waitFor(() => serving(B.id), { timeout: 5000, what: "both workers report B" });

  primary.send("stop");
  await waitFor(() => exited, { timeout: 10_000, what: "workers and primary exit" });
  assert.deepEqual(exited, { code: 0, signal: null });
});

test("fleet: reportInterval is checked like the other intervals", async () => {
  for (const bad of [-1, Number.NaN, Infinity, "5000", null]) {
    await assert.rejects(createReader({ app: "x", logger: false, reportInterval: bad }), /reportInterval/, String(bad));
  }
});

test("fleet: on a Redis Cluster the report goes to the node of the app's slot, through a seed that does not serve it", async (t) => {
  const w = await world(t);
  const user = `reader-${w.app}`;
  // The README's line, and what it says a cluster adds.
  const acl = ["--user", ...aclFor(w.app, user, "pw-c").slice(2), "+cluster|slots"];
  const nodes = [];
  for (let i = 0; i < 3; i++) {
    const node = await startRedis({ args: ["--cluster-enabled", "yes", ...acl] });
    w.onCleanup(() => node.kill());
    nodes.push(node);
  }
  const created = spawnSync("redis-cli", ["--cluster", "create", ...nodes.map((n) => `127.0.0.1:${n.port}`), "--cluster-yes"], { encoding: "utf8" });
  assert.equal(created.status, 0, created.stdout + created.stderr);
  const admins = await Promise.all(nodes.map((n) => w.admin(n.url)));
  await waitFor(async () => (await Promise.all(admins.map((a) => a.clusterInfo()))).every((i) => i.includes("cluster_state:ok")), {
    timeout: 15_000,
    what: "the cluster is up",
  });
  const slot = await admins[0].clusterKeySlot(`{${w.app}}`);
  const { master } = (await admins[0].clusterSlots()).find(({ from, to }) => from <= slot && slot <= to);
  const owner = nodes.find((n) => n.port === master.port);
  const seed = nodes.find((n) => n !== owner);
  const admin = await w.admin(owner.url);
  const manifest = { "application.js": `${CDN}/packs/js/application-1.js` };
  await admin.mSet([w.key("current"), "c000000000000001", w.key("manifest"), JSON.stringify(manifest)]);

  await w.reader({ url: `redis://${user}:pw-c@127.0.0.1:${seed.port}`, cluster: true, reportInterval: HEARTBEAT });
  const first = await nextReport(w, "the first report, on the slot's node", (r) => r.release === "c000000000000001", { url: owner.url });
  assert.equal(first.source, "start");
  assert.equal(await admin.zScore(w.key("fleet"), ME), first.at);
  assert.ok((await admin.pTTL(w.key(`fleet:${ME}`))) > 0);

  // A switch by pub/sub, reported there too.
  await admin.mSet([w.key("current"), "c000000000000002", w.key("manifest"), JSON.stringify(manifest)]);
  await admin.publish(w.key("events"), JSON.stringify({ release: "c000000000000002" }));
  const switched = await nextReport(w, "the switch reported", (r) => r.release === "c000000000000002", { url: owner.url });
  assert.equal(switched.source, "pubsub");
});
