// Manifest formats, without servers: detection by shape, lookups, entrypoints.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { formatOf } from "../src/formats/index.js";
import { Release } from "../src/release.js";
import { builds } from "./support/world.js";

const fixture = (build) => JSON.parse(readFileSync(path.join(builds[build], "manifest.json"), "utf8"));

test("formats: the two fixture builds are told apart by shape", () => {
  assert.equal(formatOf(fixture("A")).name, "shakapacker");
  assert.equal(formatOf(fixture("B")).name, "webpack");
});

test("formats: shakapacker lookups and entrypoints (objects, strings, no integrity, Webpacker 5 nesting)", () => {
  const r = new Release("shop", "r1", {
    "application.js": { src: "https://cdn/a.js", integrity: "sha384-a" },
    "admin.js": "https://cdn/admin.js",
    entrypoints: {
      application: { assets: { js: [{ src: "https://cdn/rt.js", integrity: "sha384-rt" }, "https://cdn/a.js"], css: [] } },
      legacy: { js: ["https://cdn/l.js"], css: [{ src: "https://cdn/l.css" }] },
    },
  });
  assert.equal(r.lookup("application.js"), "https://cdn/a.js");
  assert.equal(r.lookup("admin.js"), "https://cdn/admin.js");
  assert.equal(r.lookup("entrypoints"), undefined);
  assert.equal(r.lookup("toString"), undefined);
  assert.deepEqual(r.entrypoint("application"), {
    js: [
      { src: "https://cdn/rt.js", integrity: "sha384-rt" },
      { src: "https://cdn/a.js", integrity: null },
    ],
    css: [],
    preload: [],
  });
  assert.deepEqual(r.entrypoint("legacy"), {
    js: [{ src: "https://cdn/l.js", integrity: null }],
    css: [{ src: "https://cdn/l.css", integrity: null }],
    preload: [],
  });
});

test("formats: without entrypoint data, an entrypoint is its NAME.js and NAME.css entries", () => {
  const flat = new Release("shop", "r2", { "application.js": "https://cdn/a.js", "admin.css": "https://cdn/admin.css" });
  assert.deepEqual(flat.entrypoint("application"), { js: [{ src: "https://cdn/a.js", integrity: null }], css: [], preload: [] });
  assert.deepEqual(flat.entrypoint("admin"), { js: [], css: [{ src: "https://cdn/admin.css", integrity: null }], preload: [] });
  assert.throws(() => flat.entrypoint("nope"), { name: "MissingEntryError", entry: "nope", release: "r2" });

  // webpack-assets-manifest without `entrypoints: true` keeps its integrity
  const noEntrypoints = new Release("shop", "r3", { "application.js": { src: "https://cdn/a.js", integrity: "sha384-a" } });
  assert.equal(noEntrypoints.format, "shakapacker");
  assert.deepEqual(noEntrypoints.entrypoint("application").js, [{ src: "https://cdn/a.js", integrity: "sha384-a" }]);
});

test("formats: a shape no module knows is refused, naming the known ones", () => {
  // Vite's manifest: entries with "file" (and "src" = the source path)
  const vite = { "app/javascript/application.js": { file: "assets/application-abc.js", src: "app/javascript/application.js", isEntry: true } };
  assert.throws(() => formatOf(vite), /none of shakapacker, webpack/);
  assert.throws(() => formatOf([]), /not a JSON object/);
});
