// Start one redis-server and one moto for the whole run, then `node --test`
// on the test files (or the ones given), and stop the servers at the end.
import { spawn } from "node:child_process";
import { readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startMoto, startRedis } from "./servers.js";

const nodeDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const given = process.argv.slice(2);
const files = given.length
  ? given
  : readdirSync(path.join(nodeDir, "test"))
      .filter((f) => f.endsWith(".test.js"))
      .sort()
      .map((f) => path.join("test", f));

const [redis, moto] = await Promise.all([startRedis(), startMoto()]);
const child = spawn(process.execPath, ["--test", ...files], {
  cwd: nodeDir,
  stdio: "inherit",
  env: { ...process.env, CUTOVER_TEST_REDIS_URL: redis.url, CUTOVER_TEST_S3_ENDPOINT: moto.endpoint },
});
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => child.kill(signal));
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
