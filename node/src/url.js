/**
 * The URL with its password replaced by `***` (as the cutover CLI prints it).
 * `redis://secret@host` carries the secret as the user name: that is masked too.
 * @param {string} raw
 */
export function maskUrl(raw) {
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
  try {
    const u = new URL(raw);
    return decodeURIComponent(u.password || u.username || "") || null;
  } catch {
    return null;
  }
}
