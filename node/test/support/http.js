// A node:http (or https) server that renders each request with one snapshot
// from reader.requestSnapshot, and a client for it on node:http, so that every
// header sent is the test's own (fetch would add Sec-Fetch-Mode).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import os from "node:os";
import path from "node:path";

/**
 * A server rendering one request with one snapshot: `?key=K` passes the app's key, `?app-cookie`
 * sets a cookie of the app's own first. Answers JSON: the snapshot's release, role, application.js
 * URL and meta tag. Returns {url, ca} (ca for https).
 */
export async function serve(w, reader, { tls = false } = {}) {
  const handler = async (req, res) => {
    try {
      const q = new URL(req.url, "http://x").searchParams;
      if (q.has("app-cookie")) res.setHeader("set-cookie", "app=1; Path=/");
      const snap = await reader.requestSnapshot(req, res, q.has("key") ? { key: q.get("key") } : undefined);
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ release: snap.releaseId, role: snap.role, application: snap.lookup("application.js"), meta: snap.metaTag() }));
    } catch (err) {
      res.statusCode = 500;
      res.end(JSON.stringify({ error: String(err?.stack ?? err) }));
    }
  };
  let server;
  let ca;
  if (tls) {
    const dir = mkdtempSync(path.join(os.tmpdir(), "cutover-node-https-"));
    const r = spawnSync(
      "openssl",
      ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem", "-out", "cert.pem", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
      { cwd: dir, encoding: "utf8" },
    );
    assert.equal(r.status, 0, r.stderr);
    ca = readFileSync(path.join(dir, "cert.pem"));
    server = https.createServer({ key: readFileSync(path.join(dir, "key.pem")), cert: ca }, handler);
  } else {
    server = http.createServer(handler);
  }
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  w.onCleanup(() => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(resolve));
  });
  return { url: `${tls ? "https" : "http"}://127.0.0.1:${server.address().port}`, ca };
}

/** GET with exactly these headers: {status, release (the header), cookies (Set-Cookie lines), body}. */
export function get({ url, ca }, pathname = "/", headers = {}) {
  return new Promise((resolve, reject) => {
    const client = url.startsWith("https") ? https : http;
    const req = client.get(new URL(pathname, url), { headers, ca, agent: false }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (text += d));
      res.on("end", () => {
        const body = JSON.parse(text);
        if (res.statusCode !== 200) reject(new Error(`${res.statusCode}: ${body.error}`));
        else resolve({ release: res.headers["x-cutover-release"], cookies: res.headers["set-cookie"] ?? [], body });
      });
    });
    req.on("error", reject);
  });
}

/** The value of cookie `name` among Set-Cookie lines, or undefined. */
export const cookie = (lines, name) => lines.find((l) => l.startsWith(`${name}=`))?.split(";")[0].slice(name.length + 1);
