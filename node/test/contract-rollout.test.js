// The rollout scenarios of tests/contract/scenarios.md, one test each, driven by
// the real cutover binary (`cutover rollout`, `rollout --percent`, `rollout
// complete`, `rollout abort`) against the run's S3 server and Redis. The
// reader's side in detail, with keys written by hand: rollout.test.js,
// skew.test.js, request.test.js.
import assert from "node:assert/strict";
import { fork } from "node:child_process";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { bucket } from "cutover-reader";
import { cookie, get, serve } from "./support/http.js";
import { population, waitFor, world } from "./support/world.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const ME = `${os.hostname()}:${process.pid}`;

/** A and B deployed, A live; the rollout of B started by the CLI at `percent`: {A, B, salt, at}. */
async function rollingOut(w, percent) {
  const A = await w.deploy("A");
  const B = await w.deploy("B");
  await w.activate(A.id);
  const out = await w.cutover("rollout", B.id, "--percent", String(percent));
  assert.deepEqual({ outcome: out.outcome, live: out.live, release: out.canary.release, percent: out.canary.percent }, { outcome: "started", live: A.id, release: B.id, percent });
  const event = await w.lastActivation();
  assert.deepEqual({ action: event.action, release: event.release }, { action: "rollout", release: B.id });
  return { A, B, salt: out.canary.salt, at: event.at };
}

/** This process's fleet report once it passes `cond`. */
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

/** The node:cluster app (fixtures/cluster-app.mjs) with two workers: what each serves, and stop(). */
async function workers(w) {
  const primary = fork(path.join(here, "fixtures/cluster-app.mjs"), [], {
    env: { ...process.env, CUTOVER_APP: w.app, REDIS_URL: await w.readerUrl(), WORKERS: "2" },
    stdio: ["ignore", "ignore", "inherit", "ipc"],
  });
  w.onCleanup(() => primary.kill("SIGKILL"));
  const serving = new Map(); // worker id -> {release, canary, at}
  primary.on("message", (m) => m.type !== "exit" && serving.set(m.worker, m));
  let exited = null;
  primary.once("exit", (code, signal) => (exited = { code, signal }));
  return {
    serve: (release, canary) => serving.size === 2 && [...serving.values()].every((s) => s.release === release && s.canary === canary),
    async stop() {
      primary.send("stop");
      await waitFor(() => exited, { timeout: 10_000, what: "workers and primary exit" });
      assert.deepEqual(exited, { code: 0, signal: null });
    },
  };
}

test("contract: canary-assignment", async (t) => {
  const w = await world(t);
  const A = await w.deploy("A");
  const B = await w.deploy("B");
  await w.activate(A.id);
  const reader = await w.reader({ reportInterval: 200 });
  const other = await w.reader();

  const out = await w.cutover("rollout", B.id, "--percent", "5");
  const { salt } = out.canary;
  assert.match(salt, /^[0-9a-f]{32}$/);
  const started = await w.lastActivation();
  await waitFor(() => reader.canary?.percent === 5 && other.canary?.percent === 5, { until: started.at + 2000, what: "the readers serve the canary" });
  const onCanary = (r) => population.filter((key) => r.snapshot({ key }).releaseId === B.id);
  const at5 = onCanary(reader);
  assert.deepEqual(at5, population.filter((key) => bucket(salt, key) < 500), "the keys whose bucket is below 500");
  assert.deepEqual(onCanary(other), at5, "the same keys in another reader");
  assert.ok(at5.length > 350 && at5.length < 650, `${at5.length} of 10,000 keys at 5 %`);
  const canary = reader.snapshot({ key: at5[0] });
  assert.deepEqual({ role: canary.role, admin: canary.lookup("admin.js") }, { role: "canary", admin: B.manifest["admin.js"] });
  const live = reader.snapshot({ key: population.find((key) => !at5.includes(key)) });
  assert.deepEqual({ role: live.role, releaseId: live.releaseId }, { role: "live", releaseId: A.id });
  assert.equal(reader.releaseId, A.id);
  const r = await report(w, "the canary reported", (r) => r.canary === B.id);
  assert.equal(r.release, A.id);

  await w.cutover("rollout", "--percent", "25");
  const raised = await w.lastActivation();
  assert.equal(JSON.parse(await (await w.admin()).get(w.key("canary"))).salt, salt, "the salt is kept");
  await waitFor(() => reader.canary?.percent === 25 && other.canary?.percent === 25, { until: raised.at + 2000, what: "the readers serve 25 %" });
  const at25 = onCanary(reader);
  assert.deepEqual(at25, population.filter((key) => bucket(salt, key) < 2500));
  assert.deepEqual(onCanary(other), at25);
  assert.deepEqual(at5.filter((key) => !at25.includes(key)), [], "every key on the canary at 5 % is on it at 25 %");
});

test("contract: rollout-complete", async (t) => {
  const w = await world(t);
  const { A, B, salt } = await rollingOut(w, 25);
  const reader = await w.reader();
  const cluster = await workers(w);
  const everyone = (release, canary) => reader.releaseId === release && (reader.canary?.release ?? null) === canary && cluster.serve(release, canary);
  await waitFor(() => everyone(A.id, B.id), { timeout: 15_000, what: "the reader and both workers serve A with canary B" });

  // A key on the canary gets B throughout; one off it gets A, then B, never back.
  const on = population.find((key) => bucket(salt, key) < 2500);
  const off = population.find((key) => bucket(salt, key) >= 2500);
  const wrong = [];
  let offSawB = false;
  let sampling = true;
  const sample = () => {
    if (reader.snapshot({ key: on }).releaseId !== B.id) wrong.push("the canary's key left B");
    const id = reader.snapshot({ key: off }).releaseId;
    if (id === B.id) offSawB = true;
    else if (offSawB || id !== A.id) wrong.push(`the other key got ${id}`);
    if (sampling) setImmediate(sample);
  };
  sample();
  const before = Date.now();
  const out = await w.cutover("rollout", "complete");
  assert.equal(out.outcome, "activated");
  const event = await w.lastActivation();
  assert.deepEqual({ action: event.action, release: event.release, previous: event.previous }, { action: "rollout_complete", release: B.id, previous: A.id });
  await waitFor(() => everyone(B.id, null), { until: event.at + 2000, what: "everyone serves B, without a canary" });
  sampling = false;
  assert.deepEqual(wrong, []);
  assert.ok(offSawB);
  const r = await report(w, "B reported without a canary", (r) => r.release === B.id && r.canary === null);
  assert.equal(r.source, "pubsub");

  // A is retired now: a page rendered with it still gets it (skew protection).
  const retiredAt = await (await w.admin()).zScore(w.key("retired"), A.id);
  assert.ok(retiredAt >= before - 1000 && retiredAt <= Date.now() + 1000, `A retired at ${retiredAt}`);
  const old = await reader.releaseSnapshot(A.id);
  assert.deepEqual({ releaseId: old?.releaseId, role: old?.role }, { releaseId: A.id, role: "retired" });
  assert.deepEqual(old.manifest, A.manifest);
  await cluster.stop();
});

test("contract: rollout-abort", async (t) => {
  const w = await world(t);
  const { A, B, salt } = await rollingOut(w, 25);
  const reader = await w.reader();
  const cluster = await workers(w);
  const everyone = (release, canary) => reader.releaseId === release && (reader.canary?.release ?? null) === canary && cluster.serve(release, canary);
  await waitFor(() => everyone(A.id, B.id), { timeout: 15_000, what: "the reader and both workers serve A with canary B" });
  const on = population.find((key) => bucket(salt, key) < 2500);
  assert.equal(reader.snapshot({ key: on }).releaseId, B.id);

  const out = await w.cutover("rollout", "abort");
  assert.equal(out.outcome, "aborted");
  const event = await w.lastActivation();
  assert.deepEqual({ action: event.action, release: event.release }, { action: "rollout_abort", release: B.id });
  await waitFor(() => everyone(A.id, null), { until: event.at + 2000, what: "everyone drops the canary" });
  assert.equal(reader.snapshot({ key: on }), reader.snapshot(), "the canary's keys get A");
  const r = await report(w, "no canary reported", (r) => r.canary === null);
  assert.equal(r.release, A.id);

  // B was taken off, so retired: a page rendered with it still gets it.
  assert.ok((await (await w.admin()).zScore(w.key("retired"), B.id)) > event.at - 1000);
  assert.equal((await reader.releaseSnapshot(B.id))?.lookup("admin.js"), B.manifest["admin.js"]);
  await cluster.stop();
});

test("contract: skew", async (t) => {
  const w = await world(t);
  const A = await w.deploy("A");
  const reader = await w.reader();
  const server = await serve(w, reader);
  // A page rendered with A.
  const page = await get(server);
  assert.deepEqual({ release: page.release, meta: page.body.meta }, { release: A.id, meta: `<meta name="cutover-release" content="${A.id}">` });
  assert.equal(cookie(page.cookies, "cutover_release"), A.id);
  const key = cookie(page.cookies, "cutover_key");
  const cookies = `cutover_key=${key}; cutover_release=${A.id}`;

  // B made live by a rollout to everyone: A is retired.
  const B = await w.deploy("B"); // recorded, and live: put A back and roll B out
  await w.activate(A.id);
  await w.cutover("rollout", B.id, "--percent", "50");
  await w.cutover("rollout", "complete");
  const { at } = await w.lastActivation();
  await waitFor(() => reader.releaseId === B.id, { until: at + 2000, what: "the reader serves B" });

  // The page's requests name A: the header, or the cookie off a navigation, get A's assets.
  const viaHeader = await get(server, "/", { cookie: cookies, "x-cutover-release": A.id, "sec-fetch-mode": "cors" });
  const viaCookie = await get(server, "/", { cookie: cookies, "sec-fetch-mode": "cors" });
  for (const r of [viaHeader, viaCookie]) {
    assert.deepEqual(r.body, { release: A.id, role: "retired", application: A.manifest["application.js"].src, meta: page.body.meta });
    assert.equal(r.release, A.id);
  }
  // A navigation (or a request without Sec-Fetch-Mode) gets the live release, and says so.
  for (const headers of [{ "sec-fetch-mode": "navigate" }, {}]) {
    const r = await get(server, "/", { cookie: cookies, ...headers });
    assert.deepEqual({ release: r.release, body: r.body.release }, { release: B.id, body: B.id });
    assert.deepEqual(r.cookies, [`cutover_release=${B.id}; Path=/; SameSite=Lax; HttpOnly`]);
  }
  // Unknown, or retired longer ago than skewMaxAge: the assignment.
  const unknown = await get(server, "/", { cookie: cookies, "x-cutover-release": "0123456789abcdef" });
  assert.equal(unknown.body.release, B.id);
  const short = await w.reader({ skewMaxAge: 1 });
  const shortServer = await serve(w, short);
  const retiredAt = await (await w.admin()).zScore(w.key("retired"), A.id);
  await waitFor(async () => (await get(shortServer, "/", { "x-cutover-release": A.id })).body.release === B.id, {
    timeout: 3000,
    what: "A too old for a reader with skewMaxAge 1",
  });
  assert.ok(Date.now() >= retiredAt + 1000);
});
