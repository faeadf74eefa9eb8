// redis+sentinel:// URLs: a real master and replica behind a real Sentinel
// (redis-server --sentinel), the CLI deploying to whichever is master, and a
// reader that finds the master through the Sentinel and follows a failover.
import assert from "node:assert/strict";
import os from "node:os";
import { test } from "node:test";
import { createClient } from "redis";
import { UnavailableError, createReader } from "cutover-reader";
import { startRedis, startSentinel } from "./support/servers.js";
import { aclFor, captureLog, waitFor, world } from "./support/world.js";

/** Ask the Sentinel something; the answer as a flat array of strings. */
async function askSentinel(port, args) {
  const client = createClient({ url: `redis://127.0.0.1:${port}` });
  client.on("error", () => {});
  await client.connect();
  try {
    return await client.sendCommand(["SENTINEL", ...args]);
  } finally {
    client.destroy();
  }
}

test("sentinel: a redis+sentinel:// reader finds the master, follows activations and a failover", async (t) => {
  const w = await world(t);
  const user = `reader-${w.app}`;
  const acl = ["--user", ...aclFor(w.app, user, "pw-s").slice(2)];
  const master = await startRedis({ args: acl });
  w.onCleanup(() => master.kill());
  const replica = await startRedis({ args: [...acl, "--replicaof", "127.0.0.1", String(master.port)] });
  w.onCleanup(() => replica.kill());
  const admin = await w.admin(replica.url);
  await waitFor(async () => (await admin.info("replication")).includes("master_link_status:up"), { timeout: 10_000, what: "replica in sync" });
  const sentinel = await startSentinel({ masterPort: master.port });
  w.onCleanup(() => sentinel.child.kill("SIGKILL"));
  await waitFor(async () => (await askSentinel(sentinel.port, ["REPLICAS", "mymaster"])).length === 1, {
    timeout: 15_000,
    what: "the Sentinel knows the replica",
  });

  w.redisUrl = master.url;
  const A = await w.deploy("A");
  const url = `redis+sentinel://${user}:pw-s@${sentinel.address}/mymaster`;
  const log = captureLog();
  const reader = await w.reader({ url, logger: log.logger });
  assert.equal(reader.releaseId, A.id);
  // The fleet report goes to the master, through the same client.
  const reported = async (redisUrl, id) => {
    const raw = await (await w.admin(redisUrl)).get(w.key(`fleet:${os.hostname()}:${process.pid}`));
    return raw !== null && JSON.parse(raw).release === id;
  };
  await waitFor(() => reported(master.url, A.id), { timeout: 2000, what: "A reported to the master" });
  const switches = [];
  reader.on("switch", (e) => switches.push(e));

  const B = await w.deploy("B");
  const { at } = await w.lastActivation();
  await waitFor(() => reader.releaseId === B.id, { until: at + 2000, what: "reader serves B" });
  assert.deepEqual(switches, [{ release: B.id, previous: A.id, source: "pubsub" }]);
  for (const line of [...log.lines.info, ...log.lines.warn, ...log.lines.error]) assert.ok(!line.includes("pw-s"), line);

  // Failover: the replica becomes the master; the CLI deploys there; the reader follows.
  await askSentinel(sentinel.port, ["FAILOVER", "mymaster"]);
  await waitFor(async () => (await askSentinel(sentinel.port, ["GET-MASTER-ADDR-BY-NAME", "mymaster"]))[1] === String(replica.port), {
    timeout: 15_000,
    what: "the Sentinel names the replica as master",
  });
  await waitFor(async () => (await admin.info("replication")).includes("role:master"), { timeout: 10_000, what: "the replica is master" });
  w.redisUrl = replica.url;
  await w.rollback();
  const back = await w.lastActivation();
  assert.equal(back.release, A.id);
  // Within the Sentinel's own discovery (its +switch-master message, else its 5 s scan) plus a poll.
  await waitFor(() => reader.releaseId === A.id, { until: back.at + 7000, what: "reader serves A from the new master" });
  await waitFor(() => reported(replica.url, A.id), { timeout: 2000, what: "A reported to the new master" });
  t.diagnostic(`after the failover: A served ${Date.now() - back.at} ms after the rollback; log: ${JSON.stringify(log.lines)}`);
});

test("sentinel: URLs the reader refuses, and an unreachable Sentinel", async (t) => {
  for (const bad of ["redis+sentinel://h:1", "redis+sentinel://h/m", "redis+sentinel://h:x/m", "redis+sentinel://h:1/m/x", "redis+sentinel://h:1/m?db=1"]) {
    await assert.rejects(createReader({ app: "x", url: bad, logger: false }), TypeError, bad);
  }
  await assert.rejects(createReader({ app: "x", url: "redis+sentinel://h:1/m", cluster: true, logger: false }), TypeError);
  await assert.rejects(
    createReader({ app: "x", url: "redis+sentinel://u:s3cret@127.0.0.1:1/mymaster", connectTimeout: 300, logger: false }),
    (err) => {
      assert.ok(err instanceof UnavailableError, err.stack);
      assert.equal(err.url, "redis+sentinel://u:***@127.0.0.1:1/mymaster");
      assert.ok(!err.message.includes("s3cret"), err.message);
      return true;
    },
  );
  t.diagnostic("checked");
});
