// The SSR example (examples/ssr.mjs) started as a user would, on a free port:
// every tag of its page must be a file of the live release in S3, byte for
// byte, with that file's SRI hash.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { CDN, builds, waitFor, world } from "./support/world.js";

const example = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../examples/ssr.mjs");

const anyAwsAuth =
  "AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0";

/** Every <script>/<link> tag of the page: {url, integrity, crossorigin}. */
function pageTags(html) {
  return [...html.matchAll(/<(script|link)\b([^>]*)>/g)].map(([, , attrs]) => {
    const attr = (name) => attrs.match(new RegExp(`\\b${name}="([^"]*)"`))?.[1];
    return { url: attr("src") ?? attr("href"), integrity: attr("integrity"), crossorigin: attr("crossorigin") };
  });
}

/** Check each tag against the S3 object it names and the fixture file it came from. */
async function checkAgainstS3(w, tags, build, { withIntegrity }) {
  for (const tag of tags) {
    assert.ok(tag.url.startsWith(`${CDN}/`), tag.url);
    const key = decodeURIComponent(new URL(tag.url).pathname.slice(1));
    // Objects are private: moto refuses anonymous GETs, and does not check signatures.
    const res = await fetch(`${w.s3}/${w.bucket}/${key}`, { headers: { authorization: anyAwsAuth } });
    assert.equal(res.status, 200, `${key} is not in S3`);
    const bytes = Buffer.from(await res.arrayBuffer());
    const fixture = readFileSync(path.join(builds[build], key.replace(/^packs\//, "")));
    assert.ok(bytes.equals(fixture), `${key}: S3 has other bytes than the build`);
    assert.equal(tag.crossorigin, "anonymous");
    const sri = `sha384-${createHash("sha384").update(bytes).digest("base64")}`;
    assert.equal(tag.integrity, withIntegrity ? sri : undefined, key);
  }
}

test("ssr example: the page's tags are the live release's files in S3, with their SRI", async (t) => {
  const w = await world(t);
  const A = await w.deploy("A");
  const server = spawn(process.execPath, [example], {
    env: { ...process.env, CUTOVER_APP: w.app, REDIS_URL: await w.readerUrl(), CUTOVER_ASSET_ORIGINS: CDN, PORT: "0", HOST: "127.0.0.1" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  w.onCleanup(() => server.kill("SIGKILL"));
  let out = "";
  server.stdout.on("data", (d) => (out += d));
  const base = await waitFor(() => out.match(/listening on (http:\/\/\S+)/)?.[1], { timeout: 10_000, what: "the example listens" });

  const page = async () => {
    const res = await fetch(base);
    assert.equal(res.status, 200);
    return { release: res.headers.get("x-cutover-release"), html: await res.text() };
  };
  const first = await page();
  assert.equal(first.release, A.id);
  assert.ok(first.html.includes(`<meta name="cutover-release" content="${A.id}">`), first.html);
  const tagsA = pageTags(first.html);
  // runtime, shared chunk and entry scripts; shared chunk and entry stylesheets
  assert.equal(tagsA.length, 5);
  await checkAgainstS3(w, tagsA, "A", { withIntegrity: true });

  // After a deploy of B (flat manifest, no integrity), the page follows.
  const B = await w.deploy("B");
  const { at } = await w.lastActivation();
  const second = await waitFor(async () => {
    const p = await page();
    return p.release === B.id && p;
  }, { until: at + 2000, what: "the page serves B" });
  const tagsB = pageTags(second.html);
  assert.equal(tagsB.length, 2);
  await checkAgainstS3(w, tagsB, "B", { withIntegrity: false });

  // SIGTERM closes the server and the reader; the process exits by itself.
  let code = null;
  server.once("exit", (c) => (code = c));
  server.kill("SIGTERM");
  await waitFor(() => code !== null, { timeout: 10_000, what: "the example exits on SIGTERM" });
  assert.equal(code, 0);
});
