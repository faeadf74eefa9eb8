// The reader's log lines: prefixed with the app, scrubbed of the Redis secret,
// and never able to break the reader.

const noop = () => {};

/**
 * @param {import("../index.js").Logger | false | null | undefined} logger
 * @param {string} prefix
 * @param {(text: string) => string} scrub
 */
export function makeLogger(logger, prefix, scrub) {
  if (logger === false || logger === null) return { debug: noop, info: noop, warn: noop, error: noop };
  /** @type {import("../index.js").Logger} */
  const base = logger ?? { debug: noop, info: console.info, warn: console.warn, error: console.error };
  /** @param {"debug" | "info" | "warn" | "error"} name */
  const level = (name) => (/** @type {string} */ message) => {
    const fn = base[name];
    if (typeof fn !== "function") return;
    try {
      fn.call(base, `${prefix} ${scrub(message)}`);
    } catch {
      // a logger that throws must not break the reader
    }
  };
  return { debug: level("debug"), info: level("info"), warn: level("warn"), error: level("error") };
}
