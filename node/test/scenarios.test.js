// Every scenario of tests/contract/scenarios.md has a test here named
// "contract: <id>", so this reader cannot fall behind the Ruby one.
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { repoRoot } from "./support/servers.js";

test("every contract scenario has a test", () => {
  const scenarios = readFileSync(path.join(repoRoot, "tests/contract/scenarios.md"), "utf8");
  const ids = [...scenarios.matchAll(/^- `([a-z0-9-]+)`:/gm)].map((m) => m[1]);
  assert.ok(ids.length >= 9, `found only ${ids.length} scenario ids`);
  const dir = path.dirname(fileURLToPath(import.meta.url));
  const sources = readdirSync(dir)
    .filter((f) => f.endsWith(".test.js"))
    .map((f) => readFileSync(path.join(dir, f), "utf8"))
    .join("\n");
  const missing = ids.filter((id) => !sources.includes(`test("contract: ${id}"`));
  assert.deepEqual(missing, [], "scenarios without a test");
});
