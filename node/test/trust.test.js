// What a reader trusts: the signature vectors every reader must agree on
// (tests/contract/signatures.json), each published in a real Redis and read by
// a real reader; and the asset-origin allowlist, URL by URL.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { createReader } from "cutover-reader";
import { repoRoot } from "./support/servers.js";
import { CDN, captureLog, signRelease, world } from "./support/world.js";
import { fingerprintOf, parseOrigins, parseVerifyKeys, urlProblem } from "../src/trust.js";
import { createPrivateKey, createPublicKey } from "node:crypto";

const vectors = JSON.parse(readFileSync(path.join(repoRoot, "tests/contract/signatures.json"), "utf8"));

test("signatures: the fingerprints of the vector keys", () => {
  for (const [name, pem] of Object.entries(vectors.private_keys)) {
    assert.equal(fingerprintOf(createPublicKey(createPrivateKey(pem))), vectors.fingerprints[name], name);
  }
});

test("signatures: the tests' signer makes the vectors' signature (Ed25519 is deterministic)", () => {
  const [first, rotated] = vectors.cases;
  assert.equal(signRelease("k1", first.current, first.manifest), first.signature);
  assert.equal(signRelease("k2", rotated.current, rotated.manifest), rotated.signature);
});

test("signatures: every case of tests/contract/signatures.json, through Redis and a reader", async (t) => {
  assert.ok(vectors.cases.length >= 10, `only ${vectors.cases.length} cases`);
  assert.ok(vectors.cases.some((c) => c.valid) && vectors.cases.some((c) => !c.valid));
  const w = await world(t);
  const admin = await w.admin();
  const fallback = { "application.js": `${CDN}/packs/js/fallback.js` };
  for (const c of vectors.cases) {
    await t.test(c.name, async () => {
      await admin.del(w.key("signature"));
      const pairs = [w.key("current"), c.current, w.key("manifest"), c.manifest];
      if (c.signature !== null) pairs.push(w.key("signature"), c.signature);
      await admin.mSet(pairs);
      const log = captureLog();
      const reader = await w.reader({ verifyKeys: c.verify_keys, fallbackManifest: fallback, logger: log.logger });
      const rejected = [];
      reader.on("rejected", (e) => rejected.push(e));
      await new Promise((resolve) => setImmediate(resolve));
      if (c.valid) {
        assert.equal(reader.releaseId, c.current);
        assert.deepEqual(reader.snapshot().manifest, JSON.parse(c.manifest));
        assert.deepEqual(rejected, []);
      } else {
        assert.equal(reader.releaseId, null, "serves the fallback manifest");
        assert.equal(reader.lookup("application.js"), fallback["application.js"]);
        assert.equal(rejected.length, 1);
        assert.equal(rejected[0].release, c.current);
        assert.match(rejected[0].reason, /\S/);
        assert.ok(log.lines.warn.some((l) => l.includes(`release ${c.current} rejected`)), log.lines.warn.join("\n"));
      }
      await reader.close();
    });
  }
});

test("signatures: without verifyKeys a signature is ignored, whatever it says", async (t) => {
  const w = await world(t);
  const admin = await w.admin();
  const forged = vectors.cases.find((c) => c.name.includes("altered"));
  assert.ok(forged && !forged.valid);
  await admin.mSet([w.key("current"), forged.current, w.key("manifest"), forged.manifest, w.key("signature"), "garbage"]);
  const reader = await w.reader();
  assert.equal(reader.releaseId, forged.current);
});

test("signatures: verifyKeys must be Ed25519 public keys", () => {
  assert.throws(() => parseVerifyKeys([]), TypeError);
  assert.throws(() => parseVerifyKeys(["not a key"]), /verifyKeys\[0\]/);
  assert.equal(parseVerifyKeys(undefined), null);
  const [k] = parseVerifyKeys([vectors.cases[0].verify_keys[0]]);
  assert.equal(k.fingerprint, vectors.fingerprints.k1);
});

test("signatures: a reader with a bad verify key does not start", async () => {
  await assert.rejects(createReader({ app: "x", logger: false, verifyKeys: ["-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"] }), TypeError);
});

test("origins: which URLs a manifest may name", () => {
  const origins = parseOrigins(["https://cdn.example.com", "http://plain.example.com:8080/"]);
  assert.deepEqual([...origins], ["https://cdn.example.com", "http://plain.example.com:8080"]);
  const ok = [
    "https://cdn.example.com/packs/js/application-7eeb.js",
    "https://CDN.example.com/packs/a.js",
    "https://cdn.example.com:443/packs/a.js",
    "https://cdn.example.com/packs/%E2%9C%93.js",
    "http://plain.example.com:8080/a.js",
  ];
  for (const u of ok) assert.equal(urlProblem(u, origins), null, u);
  const bad = [
    "https://evil.example/x.js",
    "//evil.example/x.js",
    "//cdn.example.com/x.js",
    "data:text/javascript,alert(1)",
    "javascript:alert(1)",
    "JavaScript:alert(1)",
    "/packs/a.js",
    "packs/a.js",
    "",
    "http://cdn.example.com/a.js", // only https on that origin
    "https://plain.example.com:8080/a.js",
    "http://plain.example.com/a.js",
    "https://cdn.example.com.evil.example/a.js",
    "https://cdn.example.com@evil.example/a.js",
    "https://user:pw@cdn.example.com/a.js",
    'https://cdn.example.com/a.js"><script>alert(1)</script>',
    "https://cdn.example.com/a.js'",
    "https://cdn.example.com/a.js>",
    "https://cdn.example.com/a.js\r\nSet-Cookie: x=1",
    "https://cdn.example.com/a.js\n",
    "https://cdn.example.com/a b.js",
    "https://cdn.example.com/a.js\u0000",
    "https://cdn.example.com/a.js\u2028",
    "https:\\\\evil.example\\x.js",
    "https:/\\evil.example/x.js",
    " https://cdn.example.com/a.js",
    "\thttps://cdn.example.com/a.js",
  ];
  for (const u of bad) assert.notEqual(urlProblem(u, origins), null, JSON.stringify(u));

  for (const entry of [[], ["cdn.example.com"], ["https://cdn.example.com/packs"], ["ftp://cdn.example.com"], ["https://u:p@cdn.example.com"], "https://cdn.example.com"]) {
    assert.throws(() => parseOrigins(entry), TypeError, JSON.stringify(entry));
  }
});

test("origins: a fallback manifest off the allowed origins is a configuration error", async () => {
  await assert.rejects(
    createReader({ app: "x", logger: false, assetOrigins: [CDN], fallbackManifest: { "application.js": "https://evil.example/x.js" } }),
    (err) => err instanceof TypeError && /fallbackManifest.*evil\.example/.test(err.message),
  );
});

test("origins: warned once at start when no allowlist is given, not when one is", async (t) => {
  const w = await world(t);
  await w.deploy("A");
  const without = captureLog();
  await w.reader({ assetOrigins: undefined, logger: without.logger });
  assert.equal(without.lines.warn.filter((l) => l.includes("no assetOrigins")).length, 1, without.lines.warn.join("\n"));
  const withList = captureLog();
  await w.reader({ logger: withList.logger });
  assert.deepEqual(withList.lines.warn, []);
});

test("signatures: a release the CLI signed is served with its public key, refused with another, and stays signed across a rollback made without the key", async (t) => {
  const w = await world(t);
  const publicOf = (name) => createPublicKey(createPrivateKey(vectors.private_keys[name])).export({ type: "spki", format: "pem" });
  const signed = { CUTOVER_SIGNING_KEY: vectors.private_keys.k1 };
  const deploy = async (build, env) => {
    const r = await w.run(["deploy", path.join(repoRoot, "tests/fixtures/builds", build), "--json"], { CUTOVER_PREFIX: "packs", ...env });
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout).release.id;
  };
  const a = await deploy("shakapacker", signed);
  const reader = await w.reader({ verifyKeys: [publicOf("k1")] });
  assert.equal(reader.releaseId, a, "the CLI's signature verifies");
  await reader.close();
  // A reader that trusts only another key does not serve it.
  await assert.rejects(w.reader({ verifyKeys: [publicOf("k2")] }), /not in verifyKeys|rejected|Unavailable/i);
  // B signed too, then a rollback to A by someone without the key: A's own
  // signature goes live with it.
  const b = await deploy("flat", signed);
  assert.notEqual(a, b);
  const back = await w.run(["rollback", "--json"]);
  assert.equal(back.code, 0, back.stderr);
  const after = await w.reader({ verifyKeys: [publicOf("k1")] });
  assert.equal(after.releaseId, a);
});
