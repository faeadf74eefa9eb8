// rediss:// end to end: the CLI activates over TLS, and a reader trusting the
// server's CA (NODE_EXTRA_CA_CERTS, read at process start) follows it.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { UnavailableError, createReader } from "cutover-reader";
import { startRedis } from "./support/servers.js";
import { waitFor, world } from "./support/world.js";

const here = path.dirname(fileURLToPath(import.meta.url));

/** A CA and a server certificate for 127.0.0.1 signed by it (rustls refuses a self-signed leaf). */
function certificates() {
  const dir = mkdtempSync(path.join(os.tmpdir(), "cutover-node-tls-"));
  const openssl = (command) => {
    const r = spawnSync("openssl", command.split(" "), { cwd: dir, encoding: "utf8" });
    assert.equal(r.status, 0, `openssl ${command}: ${r.stderr}`);
  };
  openssl(
    "req -x509 -newkey rsa:2048 -nodes -keyout ca-key.pem -out ca.pem -days 1 -subj /CN=cutover-test-CA " +
      "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign",
  );
  openssl("req -newkey rsa:2048 -nodes -keyout key.pem -out req.pem -subj /CN=127.0.0.1");
  writeFileSync(path.join(dir, "ext.cnf"), "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n");
  openssl("x509 -req -in req.pem -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out cert.pem -days 1 -extfile ext.cnf");
  return { ca: path.join(dir, "ca.pem"), cert: path.join(dir, "cert.pem"), key: path.join(dir, "key.pem") };
}

test("tls: a rediss:// reader follows activations the CLI makes over TLS", async (t) => {
  const w = await world(t);
  const certs = certificates();
  const redis = await startRedis({ tls: certs }); // TLS only: no plain port
  w.onCleanup(() => redis.kill());
  w.redisUrl = redis.url;
  w.env.SSL_CERT_FILE = certs.ca;
  w.adminSocket = { ca: readFileSync(certs.ca) };
  const A = await w.deploy("A");

  // Without the CA the certificate is refused, so TLS is really checked.
  await assert.rejects(createReader({ app: w.app, url: redis.url, connectTimeout: 500, logger: false }), (err) => {
    assert.ok(err instanceof UnavailableError);
    assert.match(err.message, /certificate/);
    return true;
  });

  const child = spawn(
    process.execPath,
    [
      "--input-type=module",
      "-e",
      `import { createReader } from "cutover-reader";
       const reader = await createReader({ app: ${JSON.stringify(w.app)}, url: ${JSON.stringify(redis.url)}, logger: false });
       const say = () => console.log(JSON.stringify({ release: reader.releaseId, url: reader.lookup("application.js") }));
       reader.on("switch", say);
       say();
       process.stdin.on("end", () => reader.close()).resume();`,
    ],
    { cwd: here, env: { ...process.env, NODE_EXTRA_CA_CERTS: certs.ca }, stdio: ["pipe", "pipe", "inherit"] },
  );
  w.onCleanup(() => child.kill("SIGKILL"));
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  const said = () => out.split("\n").filter(Boolean).map((l) => JSON.parse(l));
  let code = null;
  child.once("exit", (c) => (code = c));

  await waitFor(() => said().length === 1, { timeout: 10_000, what: "the TLS reader starts" });
  assert.deepEqual(said()[0], { release: A.id, url: A.manifest["application.js"].src });

  const B = await w.deploy("B");
  const { at } = await w.lastActivation();
  await waitFor(() => said().length === 2, { until: at + 2000, what: "the TLS reader serves B" });
  assert.deepEqual(said()[1], { release: B.id, url: B.manifest["application.js"] });

  child.stdin.end();
  await waitFor(() => code !== null, { timeout: 10_000, what: "the reader's process exits after close()" });
  assert.equal(code, 0);
});
