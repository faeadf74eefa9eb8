// Manifest formats, without servers: detection by shape, lookups, entrypoints.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { formatOf } from "../src/formats/index.js";
import { Snapshot } from "../src/snapshot.js";
import { CDN, builds, world } from "./support/world.js";

const fixture = (build) => JSON.parse(readFileSync(path.join(builds[build], "manifest.json"), "utf8"));

test("formats: the two fixture builds are told apart by shape", () => {
  assert.equal(formatOf(fixture("A")).name, "shakapacker");
  assert.equal(formatOf(fixture("B")).name, "webpack");
});

test("formats: shakapacker lookups and entrypoints (objects, strings, no integrity, Webpacker 5 nesting)", () => {
  const r = new Snapshot("shop", "r1", {
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
  const flat = new Snapshot("shop", "r2", { "application.js": "https://cdn/a.js", "admin.css": "https://cdn/admin.css" });
  assert.deepEqual(flat.entrypoint("application"), { js: [{ src: "https://cdn/a.js", integrity: null }], css: [], preload: [] });
  assert.deepEqual(flat.entrypoint("admin"), { js: [], css: [{ src: "https://cdn/admin.css", integrity: null }], preload: [] });
  assert.throws(() => flat.entrypoint("nope"), { name: "MissingEntryError", entry: "nope", release: "r2" });

  // webpack-assets-manifest without `entrypoints: true` keeps its integrity
  const noEntrypoints = new Snapshot("shop", "r3", { "application.js": { src: "https://cdn/a.js", integrity: "sha384-a" } });
  assert.equal(noEntrypoints.format, "shakapacker");
  assert.deepEqual(noEntrypoints.entrypoint("application").js, [{ src: "https://cdn/a.js", integrity: "sha384-a" }]);
});

test("formats: a shape no module knows is refused, naming the known ones", () => {
  assert.throws(() => formatOf({ "application.js": 1 }), /none of sprockets, vite, propshaft, shakapacker, webpack/);
  assert.throws(() => formatOf([]), /not a JSON object/);
});

const raw = (build, file) => JSON.parse(readFileSync(path.join(builds[build], file), "utf8"));
const srcs = (tags) => tags.map((t) => t.src);

test("formats: Vite entrypoint is the entry chunk, its static imports as preloads, its and their css (vite_ruby 3.10)", () => {
  const data = raw("VITE", ".vite/manifest.json");
  assert.equal(formatOf(data).name, "vite");
  const r = new Snapshot("shop", "v1", data);
  const app = data["entrypoints/application.js"];
  const shared = data[app.imports[0]];
  const ep = r.entrypoint("application");
  assert.deepEqual(ep, {
    js: [{ src: app.file, integrity: null }],
    css: [...app.css, ...shared.css].map((src) => ({ src, integrity: null })),
    preload: [{ src: shared.file, integrity: null }],
  });
  assert.deepEqual(r.entrypoint("entrypoints/application.js"), ep);
  assert.deepEqual(r.entrypoint("application.js"), ep);
  assert.ok(!srcs(ep.preload).includes(data["lazy/report.js"].file), "dynamic imports are not preloaded");
  assert.equal(r.lookup("admin.js"), data["entrypoints/admin.js"].file);
  assert.equal(r.lookup("lazy/report.js"), data["lazy/report.js"].file);
  assert.throws(() => r.entrypoint("nope"), { name: "MissingEntryError" });
});

test("formats: Vite imports recurse dependencies first, each file once; a CSS entry has no script", () => {
  const r = new Snapshot("shop", "v2", {
    "main.js": { file: "m.js", isEntry: true, imports: ["_b.js", "_d.js"], css: ["m.css"] },
    "_b.js": { file: "b.js", imports: ["_c.js"], css: ["b.css"] },
    "_c.js": { file: "c.js", css: ["c.css", "m.css"] },
    "_d.js": { file: "d.js", imports: ["_c.js"], css: ["d.css"] },
    "style.css": { file: "s.css", isEntry: true },
  });
  const ep = r.entrypoint("main.js");
  assert.deepEqual(srcs(ep.js), ["m.js"]);
  assert.deepEqual(srcs(ep.preload), ["c.js", "b.js", "d.js"]);
  assert.deepEqual(srcs(ep.css), ["m.css", "c.css", "b.css", "d.css"]);
  assert.deepEqual(r.entrypoint("style.css"), { js: [], css: [{ src: "s.css", integrity: null }], preload: [] });
});

test("formats: Propshaft and Sprockets entrypoints are NAME.js and NAME.css with their integrity", () => {
  const p = raw("PROPSHAFT", ".manifest.json");
  const r = new Snapshot("shop", "p1", p);
  assert.equal(r.format, "propshaft");
  assert.deepEqual(r.entrypoint("application"), {
    js: [{ src: p["application.js"].digested_path, integrity: p["application.js"].integrity }],
    css: [{ src: p["application.css"].digested_path, integrity: p["application.css"].integrity }],
    preload: [],
  });
  assert.equal(r.lookup("logo.svg"), p["logo.svg"].digested_path);

  const name = readdirSync(builds.SPROCKETS).find((f) => f.startsWith(".sprockets-manifest-"));
  const s = raw("SPROCKETS", name);
  const sr = new Snapshot("shop", "s1", s);
  assert.equal(sr.format, "sprockets");
  const js = s.assets["application.js"];
  assert.deepEqual(sr.entrypoint("application").js, [{ src: js, integrity: s.files[js].integrity }]);
  assert.equal(sr.lookup("logo.svg"), s.assets["logo.svg"]);
  assert.equal(sr.lookup("files"), undefined);
});

for (const [build, prefix, format] of [
  ["VITE", "vite", "vite"],
  ["PROPSHAFT", "assets", "propshaft"],
  ["SPROCKETS", "assets", "sprockets"],
]) {
  test(`formats: a deployed ${format} build is read from Redis with CDN URLs`, async (t) => {
    const w = await world(t);
    const { id, manifest } = await w.deploy(build);
    const reader = await w.reader();
    assert.equal(reader.releaseId, id);
    const live = reader.snapshot();
    assert.equal(live.format, format);
    const ep = reader.entrypoint("application");
    assert.deepEqual(ep, new Snapshot("shop", id, structuredClone(manifest)).entrypoint("application"));
    const urls = [...ep.js, ...ep.css, ...ep.preload].map((tag) => tag.src);
    assert.ok(ep.js.length === 1 && ep.css.length >= 1, JSON.stringify(ep));
    if (format === "vite") assert.equal(ep.preload.length, 1);
    for (const url of urls) assert.ok(url.startsWith(`${CDN}/${prefix}/`), url);
  });
}
