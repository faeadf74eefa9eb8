// The request helper for node:http and Express (docs/redis.md, "Rollouts and
// skew protection"): which release renders a request, and what the response
// says about it. A request that names its page's release (the
// X-Cutover-Release header; the cutover_release cookie on a request that is
// not a top-level navigation) gets it while it can be served; any other gets
// what its key is assigned: the app's key, else the random cutover_key cookie,
// set here when the browser has none.
import { randomBytes } from "node:crypto";

const KEY_COOKIE = "cutover_key";
const RELEASE_COOKIE = "cutover_release";
const KEY_SHAPE = /^[0-9a-f]{32}$/;
const ONE_YEAR = 365 * 24 * 3600;
// What may go into a header or a cookie value as it is.
const TOKEN = /^[A-Za-z0-9._~-]{1,128}$/;

/**
 * @typedef {import("./snapshot.js").Snapshot} Snapshot
 * @typedef {import("node:http").IncomingMessage} IncomingMessage
 * @typedef {import("node:http").ServerResponse} ServerResponse
 * @typedef {{snapshot(options?: {key?: string | number | null}): Snapshot, releaseSnapshot(id: string): Promise<Snapshot | null>}} Releases
 */

/**
 * The value of one header (the first, when repeated), or undefined.
 * @param {IncomingMessage} req
 * @param {string} name lower case
 */
function header(req, name) {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * The request's cookies (the first of each name).
 * @param {IncomingMessage} req
 * @returns {Map<string, string>}
 */
function cookies(req) {
  const jar = new Map();
  for (const pair of String(header(req, "cookie") ?? "").split(";")) {
    const eq = pair.indexOf("=");
    if (eq === -1) continue;
    const name = pair.slice(0, eq).trim();
    if (!jar.has(name)) jar.set(name, pair.slice(eq + 1).trim());
  }
  return jar;
}

/**
 * Add a Set-Cookie to the response, after any there already.
 * @param {ServerResponse} res
 * @param {string} cookie
 */
function addCookie(res, cookie) {
  const had = res.getHeader("set-cookie");
  const list = had === undefined ? [] : Array.isArray(had) ? had : [String(had)];
  res.setHeader("set-cookie", [...list, cookie]);
}

/**
 * The snapshot a request renders with, after setting on `res` the header X-Cutover-Release and
 * the cookie cutover_release (and cutover_key, when it was used and missing).
 * @param {Releases} reader
 * @param {IncomingMessage} req
 * @param {ServerResponse | null | undefined} res
 * @param {{key?: string | number | null}} [options] the app's key (a user id); default: the cutover_key cookie
 * @returns {Promise<Snapshot>}
 */
export async function requestSnapshot(reader, req, res, options = {}) {
  const jar = cookies(req);
  // Over TLS to this process; a proxy's X-Forwarded-Proto is not trusted.
  const secure = /** @type {any} */ (req.socket)?.encrypted ? "; Secure" : "";
  const writable = res && !res.headersSent;

  /** @type {Snapshot | null} */
  let snapshot = null;
  const named = header(req, "x-cutover-release");
  if (named) snapshot = await reader.releaseSnapshot(named.trim());
  const mode = header(req, "sec-fetch-mode");
  const fromCookie = jar.get(RELEASE_COOKIE);
  if (!snapshot && fromCookie && mode && mode !== "navigate") snapshot = await reader.releaseSnapshot(fromCookie);

  if (!snapshot) {
    let key = options.key;
    if (key === undefined || key === null || key === "") {
      key = jar.get(KEY_COOKIE);
      if (!key || !KEY_SHAPE.test(key)) {
        key = randomBytes(16).toString("hex");
        if (writable) addCookie(res, `${KEY_COOKIE}=${key}; Path=/; Max-Age=${ONE_YEAR}; SameSite=Lax; HttpOnly${secure}`);
      }
    }
    snapshot = reader.snapshot({ key });
  }

  const id = snapshot.releaseId;
  if (writable && id !== null && TOKEN.test(id)) {
    res.setHeader("x-cutover-release", id);
    if (fromCookie !== id) addCookie(res, `${RELEASE_COOKIE}=${id}; Path=/; SameSite=Lax; HttpOnly${secure}`);
  }
  return snapshot;
}
