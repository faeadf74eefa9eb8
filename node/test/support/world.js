// One test's world: its own app and bucket, the real cutover binary deploying
// the fixture builds to the run's S3 server, and readers that are closed when
// the test ends (pass or fail), so no test leaves the process hanging.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash, createPrivateKey, createPublicKey, sign } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { createClient } from "redis";
import { createReader } from "cutover-reader";
import { repoRoot, servers } from "./servers.js";

export const CDN = "https://cdn.example.com";
export const builds = {
  A: path.join(repoRoot, "tests/fixtures/builds/shakapacker"),
  B: path.join(repoRoot, "tests/fixtures/builds/flat"),
  VITE: path.join(repoRoot, "tests/fixtures/builds/vite"),
  PROPSHAFT: path.join(repoRoot, "tests/fixtures/builds/propshaft"),
  SPROCKETS: path.join(repoRoot, "tests/fixtures/builds/sprockets"),
};
/** The prefix each build is made to be served under (CUTOVER_PREFIX; default packs). */
export const prefixes = { VITE: "vite", PROPSHAFT: "assets", SPROCKETS: "assets" };

export function cutoverBin() {
  const bin = process.env.CUTOVER_BIN ?? path.join(repoRoot, "target/debug/cutover");
  if (!existsSync(bin)) throw new Error(`cutover binary not found at ${bin}: cargo build, or set CUTOVER_BIN`);
  return bin;
}

/** Wait for a condition, checking every few ms, until a deadline (a time in ms, or `timeout` from now). */
export async function waitFor(cond, { what, until, timeout = 2000 }) {
  const deadline = until ?? Date.now() + timeout;
  for (;;) {
    const value = await cond();
    if (value) return value;
    if (Date.now() > deadline) {
      const late = Date.now() - deadline;
      assert.fail(`${what}: not ${until === undefined ? `within ${timeout} ms` : "by the deadline"} (${late} ms over)`);
    }
    await delay(5);
  }
}

/** A logger that keeps every line, by level. */
export function captureLog() {
  const lines = { debug: [], info: [], warn: [], error: [] };
  const logger = Object.fromEntries(Object.keys(lines).map((level) => [level, (m) => lines[level].push(m)]));
  return { logger, lines };
}

let counter = 0;

/**
 * @param {import("node:test").TestContext} t
 * @param {{redisUrl?: string}} [options] another Redis than the run's
 */
export async function world(t, options = {}) {
  const s = await servers();
  // cutover takes app names of up to 64 characters; S3 bucket names up to 63.
  const slug = t.name.toLowerCase().replace(/[^a-z0-9]+/g, "-").slice(0, 36).replace(/^-|-$/g, "");
  const app = `${slug}-${process.pid}-${counter++}`;
  const bucket = `t-${app}`.slice(0, 63).replace(/-+$/, "");
  const res = await fetch(`${s.s3}/${bucket}`, { method: "PUT" });
  assert.equal(res.status, 200, `create bucket ${bucket}: ${await res.text()}`);
  const w = new World(t, { app, bucket, s3: s.s3, redisUrl: options.redisUrl ?? s.redisUrl });
  t.after(() => w.cleanup());
  return w;
}

export class World {
  constructor(t, { app, bucket, s3, redisUrl }) {
    Object.assign(this, { t, app, bucket, s3, redisUrl });
    /** more environment for every cutover run, and socket options for admin connections */
    this.env = {};
    this.adminSocket = {};
    this.work = mkdtempSync(path.join(os.tmpdir(), "cutover-node-test-"));
    this.closers = [];
    /** build name ("A", "B") -> {id, manifest} of its deploy */
    this.releases = {};
  }

  key(name) {
    return `cutover:{${this.app}}:${name}`;
  }

  /** The binary with a clean environment pointing at this world. */
  run(args, env = {}) {
    const clean = Object.fromEntries(
      Object.entries(process.env).filter(
        ([k]) => !/^(CUTOVER_|AWS_|CIRCLE|GITHUB)/.test(k) && k !== "REDIS_URL",
      ),
    );
    const child = spawn(cutoverBin(), args, {
      cwd: this.work,
      stdio: ["ignore", "pipe", "pipe"],
      env: {
        ...clean,
        CI: "true",
        AWS_ACCESS_KEY_ID: "test",
        AWS_SECRET_ACCESS_KEY: "test",
        AWS_REGION: "us-east-1",
        AWS_EC2_METADATA_DISABLED: "true",
        CUTOVER_APP: this.app,
        CUTOVER_BUCKET: this.bucket,
        CUTOVER_CDN_URL: CDN,
        CUTOVER_S3_ENDPOINT: this.s3,
        REDIS_URL: this.redisUrl,
        ...this.env,
        ...env,
      },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    return new Promise((resolve, reject) => {
      child.once("error", reject);
      child.once("close", (code) => resolve({ code, stdout, stderr }));
    });
  }

  /** Run a command that must succeed, with --json; its JSON output. */
  async cutover(...args) {
    const r = await this.run([...args, "--json"]);
    assert.equal(r.code, 0, `cutover ${args.join(" ")} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
    return JSON.parse(r.stdout);
  }

  /** Deploy fixture build "A" (shakapacker), "B" (flat), "VITE", "PROPSHAFT" or "SPROCKETS"; returns {id, manifest}. */
  async deploy(build) {
    const args = ["deploy", builds[build], "--json"];
    const r = await this.run(args, { CUTOVER_PREFIX: prefixes[build] ?? "packs" });
    assert.equal(r.code, 0, `cutover ${args.join(" ")} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
    const { release } = JSON.parse(r.stdout);
    this.releases[build] = { id: release.id, manifest: release.manifest };
    return this.releases[build];
  }

  async rollback() {
    return (await this.cutover("rollback")).release;
  }

  async activate(id) {
    return (await this.cutover("activate", id)).release;
  }

  /** A connection with full rights, for reading and changing the server in tests. */
  async admin(url = this.redisUrl) {
    this.admins ??= new Map();
    if (!this.admins.has(url)) {
      const client = createClient({ url, socket: { ...this.adminSocket } });
      client.on("error", () => {});
      this.admins.set(url, client.connect());
      this.closers.push(() => client.destroy());
    }
    return this.admins.get(url);
  }

  /**
   * Make a release live by hand, as an attacker with write access to Redis (or a CLI that
   * signs) would: current, manifest (the exact string) and signature (deleted when null) in
   * one MULTI, then a message on the events channel. Resolves when Redis has it.
   */
  async publish({ id, manifest, signature = null }) {
    const admin = await this.admin();
    const tx = admin.multi().set(this.key("current"), id).set(this.key("manifest"), manifest);
    if (signature === null) tx.del(this.key("signature"));
    else tx.set(this.key("signature"), signature);
    const event = { release: id, previous: null, action: "activate", at: new Date().toISOString(), by: "test" };
    await tx.publish(this.key("events"), JSON.stringify(event)).exec();
  }

  /**
   * Start, raise or replace a rollout by hand, as `cutover rollout` does (docs/redis.md,
   * "Rollouts"): canary, canary_manifest and canary_signature (deleted when null) in one MULTI,
   * then its event. `canary` is the canary key's JSON: an object (compact JSON is made of it,
   * with v 1 and the times filled in) or a string written as it is. Resolves when Redis has it.
   */
  async rollout({ canary, manifest, signature = null, publish = true }) {
    const admin = await this.admin();
    const now = new Date().toISOString();
    const value = typeof canary === "string" ? canary : JSON.stringify({ v: 1, ...canary, since: now, at: now, by: "test", message: null });
    const tx = admin.multi().set(this.key("canary"), value);
    if (manifest === null) tx.del(this.key("canary_manifest"));
    else tx.set(this.key("canary_manifest"), manifest);
    if (signature === null) tx.del(this.key("canary_signature"));
    else tx.set(this.key("canary_signature"), signature);
    const release = typeof canary === "string" ? null : canary.release;
    if (publish) tx.publish(this.key("events"), JSON.stringify({ release, previous: null, action: "rollout", at: now, by: "test" }));
    await tx.exec();
    return value;
  }

  /**
   * End a rollout by hand: `complete` makes the canary live (current, manifest, signature) and
   * retires the release it replaces; otherwise it is taken off (and retired). One MULTI, then the
   * event. Resolves with the time (ms) Redis had it.
   */
  async endRollout({ complete, canary, manifest, signature = null, previous }) {
    const admin = await this.admin();
    const at = Date.now();
    const tx = admin.multi().del([this.key("canary"), this.key("canary_manifest"), this.key("canary_signature")]);
    if (complete) {
      tx.set(this.key("current"), canary).set(this.key("manifest"), manifest);
      if (signature === null) tx.del(this.key("signature"));
      else tx.set(this.key("signature"), signature);
    }
    tx.zAdd(this.key("retired"), { score: at, value: complete ? previous : canary });
    const action = complete ? "rollout_complete" : "rollout_abort";
    // As the CLI's: `release` the canary, `previous` the live release (the one replaced, on completion).
    tx.publish(this.key("events"), JSON.stringify({ release: canary, previous, action, at: new Date(at).toISOString(), by: "test" }));
    await tx.exec();
    return at;
  }

  /** Mark a release retired at `at` (ms), as a switch does (ZADD retired). */
  async retire(id, at = Date.now()) {
    await (await this.admin()).zAdd(this.key("retired"), { score: at, value: id });
  }

  /** The live manifest's exact bytes, as a string (what a signature covers). */
  async liveManifest() {
    return (await this.admin()).get(this.key("manifest"));
  }

  /** The newest activation event: {release, previous, action, at (ms)}. */
  async lastActivation() {
    const admin = await this.admin();
    const event = JSON.parse(await admin.lIndex(this.key("history"), 0));
    return { ...event, at: Date.parse(event.at) };
  }

  /**
   * A Redis user with exactly the ACL that node/README.md documents for this
   * app, and a URL that logs in as it: every reader in the tests uses it, so the
   * documented command list is proven sufficient.
   */
  async readerUrl({ password = "reader-secret" } = {}) {
    const user = `reader-${this.app}`;
    const admin = await this.admin();
    await admin.sendCommand(aclFor(this.app, user, password));
    const u = new URL(this.redisUrl);
    u.username = user;
    u.password = password;
    return u.toString();
  }

  /** A reader of this world's app, closed when the test ends. */
  async reader(options = {}) {
    const url = options.url ?? (await this.readerUrl());
    // The CDN the tests deploy to is the only allowed asset origin, unless a test says otherwise.
    const reader = await createReader({ app: this.app, url, logger: false, assetOrigins: [CDN], ...options });
    this.closers.push(() => reader.close());
    return reader;
  }

  /** Track something to stop when the test ends. */
  onCleanup(fn) {
    this.closers.push(fn);
  }

  async cleanup() {
    for (const close of this.closers.reverse()) {
      try {
        await close();
      } catch {
        // already closed
      }
    }
  }
}

/** The test-only key pairs of tests/contract/signatures.json: {k1, k2, other} -> {privateKey, publicPem}. */
export const testKeys = Object.fromEntries(
  Object.entries(JSON.parse(readFileSync(path.join(repoRoot, "tests/contract/signatures.json"), "utf8")).private_keys).map(
    ([name, pem]) => {
      const privateKey = createPrivateKey(pem);
      return [name, { privateKey, publicPem: createPublicKey(privateKey).export({ type: "spki", format: "pem" }).toString() }];
    },
  ),
);

/**
 * The signature value the contract defines (docs/redis.md, "Signed releases") for a release id
 * and the exact manifest string, signed with one of testKeys.
 */
export function signRelease(keyName, id, manifest) {
  const { privateKey } = testKeys[keyName];
  const digest = createHash("sha256").update(manifest, "utf8").digest("hex");
  const sig = sign(null, Buffer.from(`cutover-release-v1\n${id}\n${digest}\n`, "utf8"), privateKey).toString("base64");
  const der = createPublicKey(privateKey).export({ type: "spki", format: "der" });
  const key = createHash("sha256").update(der).digest("hex").slice(0, 16);
  return JSON.stringify({ v: 1, alg: "ed25519", key, release: id, manifest_sha256: digest, sig });
}

/** The README's `ACL SETUSER` line for one app, as arguments. */
export function aclFor(app, user, password) {
  const readme = readFileSync(path.join(repoRoot, "node/README.md"), "utf8");
  const line = readme.split("\n").find((l) => l.startsWith("ACL SETUSER cutover-reader "));
  assert.ok(line, "node/README.md has no `ACL SETUSER cutover-reader ...` line");
  return line
    .replaceAll("{shop}", `{${app}}`)
    .replace(">PASSWORD", `>${password}`)
    .trim()
    .split(/\s+/)
    .map((arg, i) => (i === 2 ? user : arg));
}

/** A's and B's live manifests as the CLI wrote them (exact strings, in `json`); A live at the end. */
export async function liveManifests(w) {
  const A = await w.deploy("A");
  const a = await w.liveManifest();
  const B = await w.deploy("B");
  const b = await w.liveManifest();
  await w.activate(A.id);
  return { A: { ...A, json: a }, B: { ...B, json: b } };
}

/** tests/contract/rollout.json: the assignment vectors shared with the Ruby reader and the CLI. */
export const rolloutVectors = JSON.parse(readFileSync(path.join(repoRoot, "tests/contract/rollout.json"), "utf8"));

/** The population of the vectors: user-0 .. user-9999. */
export const population = Array.from({ length: 10_000 }, (_, i) => `user-${i}`);
