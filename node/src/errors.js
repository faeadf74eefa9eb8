/** A manifest entry or entrypoint the serving release does not have. */
export class MissingEntryError extends Error {
  /**
   * @param {string} entry the name asked for
   * @param {string|null} release the release id (null: the fallback manifest)
   * @param {string} app
   * @param {string} [kind] "entry" or "entrypoint"
   */
  constructor(entry, release, app, kind = "entry") {
    const where = release === null ? "the fallback manifest" : `release ${release}`;
    super(`cutover-reader: no ${kind} ${JSON.stringify(entry)} in ${where} of app ${JSON.stringify(app)}`);
    /** @type {"MissingEntryError"} */
    this.name = "MissingEntryError";
    this.entry = entry;
    this.release = release;
    this.app = app;
  }
}

/** Redis could not give a live release at start, and there was no fallback manifest. */
export class UnavailableError extends Error {
  /**
   * @param {string} message
   * @param {{key: string, url: string, cause?: unknown}} details url is already masked
   */
  constructor(message, { key, url, cause }) {
    super(message, cause === undefined ? undefined : { cause });
    /** @type {"UnavailableError"} */
    this.name = "UnavailableError";
    this.key = key;
    this.url = url;
  }
}
