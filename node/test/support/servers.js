// Real servers for the tests, on free loopback ports: redis-server and moto
// (the S3-compatible server from ../.venv-s3). Never the Redis on 6379.
//
// with-servers.mjs starts one of each per run and passes them on in
// CUTOVER_TEST_REDIS_URL / CUTOVER_TEST_S3_ENDPOINT; a test file run alone
// starts its own. Every server dies with the process that started it.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

const children = new Set();
process.on("exit", () => {
  for (const child of children) child.kill("SIGKILL");
});

// setpriv --pdeathsig: the server is killed even if this process is (SIGKILL included).
const hasSetpriv = spawnSync("setpriv", ["--help"], { stdio: "ignore" }).status === 0;

function spawnServer(command, args) {
  const [cmd, argv] = hasSetpriv ? ["setpriv", ["--pdeathsig", "KILL", "--", command, ...args]] : [command, args];
  const child = spawn(cmd, argv, { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  child.stderrText = () => stderr;
  // Not what keeps a test process alive: its "exit" handler kills them (a file run alone).
  child.unref();
  child.stderr.unref();
  children.add(child);
  child.once("exit", () => children.delete(child));
  return child;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function accepts(port) {
  return new Promise((resolve) => {
    const sock = net.connect(port, "127.0.0.1");
    sock.once("connect", () => (sock.destroy(), resolve(true)));
    sock.once("error", () => resolve(false));
  });
}

/** Wait until something accepts connections on the port, or the child died. */
async function waitForPort(port, child, what) {
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (await accepts(port)) return;
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${what} exited before listening on ${port}: ${child.stderrText()}`);
    }
    if (Date.now() > deadline) throw new Error(`${what} did not listen on port ${port} within 60 s`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * A private redis-server. `kill()` stops it hard (SIGKILL, as a crash), `start()`
 * starts it again on the same port. `args` are extra config directives; with
 * `tls: {cert, key}` (PEM files) it speaks TLS only.
 */
export async function startRedis({ port, args = [], tls } = {}) {
  port ??= await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), "cutover-node-redis-"));
  const listen = tls
    ? ["--port", "0", "--tls-port", String(port), "--tls-cert-file", tls.cert, "--tls-key-file", tls.key, "--tls-auth-clients", "no"]
    : ["--port", String(port)];
  const argv = [...listen, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, ...args];
  const server = {
    port,
    url: `${tls ? "rediss" : "redis"}://127.0.0.1:${port}`,
    child: null,
    async start() {
      this.child = spawnServer("redis-server", argv);
      await waitForPort(port, this.child, "redis-server");
    },
    async kill() {
      const child = this.child;
      if (!child || child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.ref(); // this wait holds the process open until the server is gone
      child.kill("SIGKILL");
      await exited;
    },
  };
  await server.start();
  return server;
}

/**
 * A Sentinel (`redis-server sentinel.conf --sentinel`) watching the master on masterPort under
 * `name`, quorum 1, failing over after 1 s down. Returns {port, url-less host:port, child}.
 */
export async function startSentinel({ masterPort, name = "mymaster" }) {
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), "cutover-node-sentinel-"));
  const conf = path.join(dir, "sentinel.conf");
  writeFileSync(
    conf,
    [
      `port ${port}`,
      "bind 127.0.0.1",
      `dir ${dir}`,
      `sentinel monitor ${name} 127.0.0.1 ${masterPort} 1`,
      `sentinel down-after-milliseconds ${name} 1000`,
      `sentinel failover-timeout ${name} 10000`,
      "",
    ].join("\n"),
  );
  const child = spawnServer("redis-server", [conf, "--sentinel"]);
  await waitForPort(port, child, "redis-sentinel");
  return { port, child, address: `127.0.0.1:${port}` };
}

export async function startMoto() {
  const moto = path.join(repoRoot, ".venv-s3/bin/moto_server");
  if (!existsSync(moto)) {
    throw new Error(`moto_server not found at ${moto}: run scripts/setup.sh (scripts/test-node.sh does)`);
  }
  const port = await freePort();
  const child = spawnServer(moto, ["-H", "127.0.0.1", "-p", String(port)]);
  await waitForPort(port, child, "moto_server");
  return { endpoint: `http://127.0.0.1:${port}`, child };
}

let shared;
/** The run's Redis and S3 server: from with-servers.mjs, or started for this process. */
export function servers() {
  shared ??= (async () => {
    const { CUTOVER_TEST_REDIS_URL: redisUrl, CUTOVER_TEST_S3_ENDPOINT: s3 } = process.env;
    if (redisUrl && s3) return { redisUrl, s3 };
    const [redis, moto] = await Promise.all([startRedis(), startMoto()]);
    return { redisUrl: redis.url, s3: moto.endpoint };
  })();
  return shared;
}
