// reader.snapshot(): one render answers from one release, even when a switch
// lands while it runs.
import assert from "node:assert/strict";
import { test } from "node:test";
import { waitFor, world } from "./support/world.js";

test("snapshot: a render keeps its release across a switch", async (t) => {
  const w = await world(t);
  const A = await w.deploy("A");
  const reader = await w.reader();
  const snap = reader.snapshot(); // a render starts
  const before = { url: snap.lookup("application.js"), entrypoint: snap.entrypoint("application") };
  assert.equal(before.entrypoint.js.length, 3);

  const B = await w.deploy("B"); // ... and a deploy lands mid-render
  const { at } = await w.lastActivation();
  await waitFor(() => reader.releaseId === B.id, { until: at + 2000, what: "reader serves B" });
  assert.equal(reader.entrypoint("application").js.length, 1);

  // The render's snapshot still answers with A, all of it.
  assert.equal(snap.releaseId, A.id);
  assert.equal(snap.lookup("application.js"), before.url);
  assert.deepEqual(snap.entrypoint("application"), before.entrypoint);
  assert.deepEqual(snap.manifest, A.manifest);
  assert.notEqual(reader.snapshot(), snap);
  assert.equal(reader.snapshot().releaseId, B.id);

  // Frozen throughout: nothing can change it behind the render's back.
  assert.ok(Object.isFrozen(snap));
  assert.ok(Object.isFrozen(snap.manifest));
  assert.ok(Object.isFrozen(snap.manifest["application.js"]));
  assert.throws(() => {
    snap.releaseId = B.id;
  }, TypeError);
  assert.throws(() => {
    snap.manifest["application.js"].src = "https://evil.example/x.js";
  }, TypeError);
  assert.equal(snap.lookup("application.js"), before.url);
});
