// The request helper, reader.requestSnapshot(req, res, {key}), in a real
// node:http (and https) server (./support/http.js): skew protection by the
// X-Cutover-Release header and the cutover_release cookie, assignment by the
// app's key or the cutover_key cookie, and what the response says.
import assert from "node:assert/strict";
import { test } from "node:test";
import { bucket } from "cutover-reader";
import { cookie, get, serve } from "./support/http.js";
import { liveManifests, rolloutVectors, waitFor, world } from "./support/world.js";

const SALT = rolloutVectors.population.salt;
const DAY = 86_400_000;
const YEAR = 365 * 86_400;

test("request: the key cookie is set once and reused; the response says the release (header, cookie, meta tag)", async (t) => {
  const w = await world(t);
  const { A, B } = await liveManifests(w);
  await w.rollout({ canary: { release: B.id, percent: 50, salt: SALT }, manifest: B.json });
  const reader = await w.reader();
  const server = await serve(w, reader);

  const first = await get(server);
  const key = cookie(first.cookies, "cutover_key");
  assert.match(key ?? "", /^[0-9a-f]{32}$/);
  const expected = bucket(SALT, key) < 5000 ? B.id : A.id;
  assert.deepEqual(first.cookies, [
    `cutover_key=${key}; Path=/; Max-Age=${YEAR}; SameSite=Lax; HttpOnly`,
    `cutover_release=${expected}; Path=/; SameSite=Lax; HttpOnly`,
  ]);
  assert.equal(first.release, expected);
  assert.equal(first.body.release, expected);
  assert.equal(first.body.role, expected === B.id ? "canary" : "live");
  assert.equal(first.body.meta, `<meta name="cutover-release" content="${expected}">`);

  // Back with its cookies: the same key, the same release, nothing set again.
  for (let i = 0; i < 3; i++) {
    const next = await get(server, "/", { cookie: `cutover_key=${key}; cutover_release=${expected}` });
    assert.deepEqual({ release: next.release, body: next.body.release, cookies: next.cookies }, { release: expected, body: expected, cookies: [] });
  }

  // Many first visits: each key its own, each assigned by its bucket, both releases seen.
  const seen = new Set();
  for (let i = 0; i < 40; i++) {
    const r = await get(server);
    const k = cookie(r.cookies, "cutover_key");
    assert.equal(r.body.release, bucket(SALT, k) < 5000 ? B.id : A.id);
    seen.add(k);
  }
  assert.equal(seen.size, 40);
  // A cutover_key that is not one of ours is replaced.
  const odd = await get(server, "/", { cookie: "cutover_key=user-1" });
  assert.match(cookie(odd.cookies, "cutover_key") ?? "", /^[0-9a-f]{32}$/);
});

test("request: the app's key decides the assignment, and no key cookie is set", async (t) => {
  const w = await world(t);
  const { A, B } = await liveManifests(w);
  await w.rollout({ canary: { release: B.id, percent: 50, salt: SALT }, manifest: B.json });
  const reader = await w.reader();
  const server = await serve(w, reader);
  for (let i = 0; i < 20; i++) {
    const r = await get(server, `/?key=user-${i}`, { cookie: "cutover_key=0123456789abcdef0123456789abcdef" });
    assert.equal(r.body.release, bucket(SALT, `user-${i}`) < 5000 ? B.id : A.id, `user-${i}`);
    assert.equal(cookie(r.cookies, "cutover_key"), undefined);
    assert.equal(cookie(r.cookies, "cutover_release"), r.body.release);
  }
});

test("request: the X-Cutover-Release header gets a release retired inside skewMaxAge; outside it, unknown or without a record, the assignment", async (t) => {
  const w = await world(t);
  const V = await w.deploy("VITE");
  const { A, B } = await liveManifests(w);
  await w.retire(B.id, Date.now() - 60_000); // a minute ago
  await w.retire(V.id, Date.now() - DAY - 60_000); // a day and a minute ago
  await w.retire("e000000000000001"); // no record
  const reader = await w.reader();
  const server = await serve(w, reader);
  const named = (id) => get(server, "/", { "x-cutover-release": id, cookie: "cutover_key=0123456789abcdef0123456789abcdef" });

  const b = await named(B.id);
  assert.deepEqual(b.body, { release: B.id, role: "retired", application: B.manifest["application.js"], meta: `<meta name="cutover-release" content="${B.id}">` });
  assert.equal(b.release, B.id);
  assert.equal(cookie(b.cookies, "cutover_release"), B.id);

  for (const id of [V.id, "0123456789abcdef", "e000000000000001", "not-a-release"]) {
    const r = await named(id);
    assert.deepEqual({ release: r.release, body: r.body.release, role: r.body.role }, { release: A.id, body: A.id, role: "live" }, id);
    assert.equal(r.body.application, A.manifest["application.js"].src);
    assert.equal(cookie(r.cookies, "cutover_release"), A.id);
  }
  // The live release and the canary are named from memory, whatever the key.
  await w.rollout({ canary: { release: V.id, percent: 0.01, salt: SALT }, manifest: JSON.stringify(V.manifest) });
  await waitFor(() => reader.canary?.release === V.id, { timeout: 2000, what: "V is the canary" });
  const v = await named(V.id);
  assert.deepEqual({ release: v.release, role: v.body.role }, { release: V.id, role: "canary" });
  assert.equal((await named(A.id)).body.role, "live");
});

test("request: the cutover_release cookie counts only on requests that are not top-level navigations", async (t) => {
  const w = await world(t);
  const { A, B } = await liveManifests(w);
  await w.retire(B.id);
  const reader = await w.reader();
  const server = await serve(w, reader);
  const cookies = `cutover_key=0123456789abcdef0123456789abcdef; cutover_release=${B.id}`;
  for (const mode of ["cors", "no-cors", "same-origin"]) {
    const r = await get(server, "/", { cookie: cookies, "sec-fetch-mode": mode });
    assert.deepEqual({ release: r.release, body: r.body.release, cookies: r.cookies }, { release: B.id, body: B.id, cookies: [] }, mode);
  }
  for (const headers of [{ "sec-fetch-mode": "navigate" }, {}]) {
    const r = await get(server, "/", { cookie: cookies, ...headers });
    assert.equal(r.body.release, A.id, JSON.stringify(headers));
    assert.deepEqual(r.cookies, [`cutover_release=${A.id}; Path=/; SameSite=Lax; HttpOnly`]);
  }
  // The header counts on a navigation too.
  const r = await get(server, "/", { cookie: cookies, "sec-fetch-mode": "navigate", "x-cutover-release": B.id });
  assert.equal(r.body.release, B.id);
});

test("request: Set-Cookie lines are added after the app's; Secure only over TLS to this process, not for X-Forwarded-Proto", async (t) => {
  const w = await world(t);
  const { A } = await liveManifests(w);
  const reader = await w.reader();
  const plain = await serve(w, reader);
  const withApp = await get(plain, "/?app-cookie", { "x-forwarded-proto": "https" });
  assert.equal(withApp.cookies.length, 3);
  assert.equal(withApp.cookies[0], "app=1; Path=/");
  assert.ok(withApp.cookies.every((c) => !/secure/i.test(c)), withApp.cookies.join("\n"));

  const tls = await serve(w, reader, { tls: true });
  const secure = await get(tls, "/");
  const key = cookie(secure.cookies, "cutover_key");
  assert.deepEqual(secure.cookies, [
    `cutover_key=${key}; Path=/; Max-Age=${YEAR}; SameSite=Lax; HttpOnly; Secure`,
    `cutover_release=${A.id}; Path=/; SameSite=Lax; HttpOnly; Secure`,
  ]);
  assert.equal(secure.release, A.id);
});

test("request: a release id that cannot go into a header is rendered, escaped in the meta tag, and not sent back", async (t) => {
  const w = await world(t);
  const { A } = await liveManifests(w);
  const odd = `x"><script>alert('1')</script>&`;
  await w.publish({ id: odd, manifest: A.json });
  const reader = await w.reader();
  assert.equal(reader.releaseId, odd);
  assert.equal(reader.snapshot().metaTag(), `<meta name="cutover-release" content="x&#34;&#62;&#60;script&#62;alert(&#39;1&#39;)&#60;/script&#62;&#38;">`);
  const r = await get(await serve(w, reader), "/", { cookie: "cutover_key=0123456789abcdef0123456789abcdef" });
  assert.equal(r.body.release, odd);
  assert.equal(r.release, undefined);
  assert.deepEqual(r.cookies, []);
});
