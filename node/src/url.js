// Redis URLs: masking for messages, and `redis+sentinel://` URLs (the CLI's
// src/config/sentinel.rs and the Ruby reader read them the same way).

export const SENTINEL_SCHEME = "redis+sentinel://";
const SENTINEL_EXPECTED = "redis+sentinel://[user:password@]host:port[,host:port...]/MASTER_NAME[/db]";

/** @param {string} raw */
export const isSentinelUrl = (raw) => typeof raw === "string" && raw.slice(0, SENTINEL_SCHEME.length).toLowerCase() === SENTINEL_SCHEME;

/**
 * `redis+sentinel://[user:password@]host:port[,host:port...]/MASTER[/db]`: the Sentinels, the
 * name they monitor the master under, and the master's database and credentials. Throws a
 * TypeError saying what is expected.
 * @param {string} raw
 * @returns {{sentinels: {host: string, port: number}[], master: string, db: number, username?: string, password?: string}}
 */
export function parseSentinelUrl(raw) {
  const fail = (why = "") => {
    throw new TypeError(`cutover-reader: invalid Redis URL ${maskUrl(raw)}: expected ${SENTINEL_EXPECTED}${why}`);
  };
  if (!isSentinelUrl(raw)) fail();
  const rest = raw.slice(SENTINEL_SCHEME.length);
  if (/[?#]/.test(rest)) fail(" (no query or fragment)");
  const slash = rest.indexOf("/");
  const authority = slash === -1 ? rest : rest.slice(0, slash);
  const path = slash === -1 ? "" : rest.slice(slash + 1);
  const at = authority.lastIndexOf("@");
  const userinfo = at === -1 ? null : authority.slice(0, at);
  const hosts = at === -1 ? authority : authority.slice(at + 1);
  const decode = (s) => {
    try {
      return decodeURIComponent(s);
    } catch {
      return fail(" (credentials percent-encoded as UTF-8)");
    }
  };
  let username;
  let password;
  if (userinfo !== null) {
    const colon = userinfo.indexOf(":");
    // `redis://secret@host`, as the CLI reads it: a password.
    const [user, pass] = colon === -1 ? ["", userinfo] : [userinfo.slice(0, colon), userinfo.slice(colon + 1)];
    if (user) username = decode(user);
    if (pass) password = decode(pass);
  }
  const sentinels = hosts.split(",").map((node) => {
    const colon = node.lastIndexOf(":");
    const host = colon === -1 ? "" : node.slice(0, colon).replace(/^\[|\]$/g, "");
    const port = colon === -1 ? NaN : Number(node.slice(colon + 1));
    if (!host || !/^\d+$/.test(node.slice(colon + 1)) || !(port > 0 && port < 65536)) {
      fail(`: each Sentinel as host:port (Sentinels listen on 26379 by default), not ${JSON.stringify(node)}`);
    }
    return { host, port };
  });
  const segments = path.split("/").filter((s) => s !== "");
  if (segments.length === 0) fail(": the master's name is missing");
  if (segments.length > 2) fail();
  const master = decode(segments[0]);
  const db = segments[1] === undefined ? 0 : /^\d+$/.test(segments[1]) ? Number(segments[1]) : fail(`: the database is a number, not ${JSON.stringify(segments[1])}`);
  return { sentinels, master, db, username, password };
}

/**
 * The URL with its password replaced by `***` (as the cutover CLI prints it).
 * `redis://secret@host` carries the secret as the user name: that is masked too.
 * @param {string} raw
 */
export function maskUrl(raw) {
  if (isSentinelUrl(raw)) {
    // Several hosts: not a WHATWG URL. Mask what is between the scheme and the last "@".
    const rest = raw.slice(SENTINEL_SCHEME.length);
    const at = rest.slice(0, (rest.indexOf("/") + 1 || rest.length + 1) - 1).lastIndexOf("@");
    if (at === -1) return raw;
    const userinfo = rest.slice(0, at);
    const colon = userinfo.indexOf(":");
    const masked = colon === -1 ? "***" : `${userinfo.slice(0, colon)}:***`;
    return `${SENTINEL_SCHEME}${masked}${rest.slice(at)}`;
  }
  let u;
  try {
    u = new URL(raw);
  } catch {
    return "<unparseable URL>";
  }
  if (u.password) u.password = "***";
  else if (u.username) u.username = "***";
  return u.toString();
}

/** The secret of a URL (password, or a lone user name), to scrub it from messages. */
export function secretOf(raw) {
  if (isSentinelUrl(raw)) {
    try {
      return parseSentinelUrl(raw).password ?? null;
    } catch {
      return null;
    }
  }
  try {
    const u = new URL(raw);
    return decodeURIComponent(u.password || u.username || "") || null;
  } catch {
    return null;
  }
}
