// A server-side rendering service on plain node:http that references exactly
// the bundles of the live release (the ones Rails serves), with SRI.
//
//   CUTOVER_APP=shop REDIS_URL=redis://127.0.0.1:6379 CUTOVER_ASSET_ORIGINS=https://cdn.shop.example \
//     PORT=3000 node examples/ssr.mjs
//
// Each request takes one snapshot (reader.requestSnapshot), so the whole page
// comes from one release even when a deploy switches releases in the middle
// of rendering; during a rollout, the release its visitor is assigned.
import http from "node:http";
import { createReader } from "cutover-reader";

const reader = await createReader({
  app: process.env.CUTOVER_APP ?? "shop",
  url: process.env.REDIS_URL,
  fallbackManifest: process.env.CUTOVER_FALLBACK_MANIFEST, // optional: a saved copy of the live manifest
  // Only URLs on your CDN are rendered (comma-separated origins); a manifest naming any other is refused.
  assetOrigins: process.env.CUTOVER_ASSET_ORIGINS?.split(","),
});

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const integrity = (tag) => (tag.integrity ? ` integrity="${escape(tag.integrity)}"` : "");

/** The <link> and <script> tags of an entrypoint, in order. */
function assetTags(assets, entrypoint) {
  const { js, css } = assets.entrypoint(entrypoint);
  return [
    ...css.map((t) => `<link rel="stylesheet" href="${escape(t.src)}"${integrity(t)} crossorigin="anonymous">`),
    ...js.map((t) => `<script src="${escape(t.src)}"${integrity(t)} crossorigin="anonymous" defer></script>`),
  ].join("\n    ");
}

async function renderApp(assets) {
  // Your React renderToString(...) goes here; images come from the same snapshot.
  return `<h1>Hello from release ${escape(assets.releaseId)}</h1>`;
}

const server = http.createServer(async (req, res) => {
  try {
    // One release for the whole response: the one the request names (skew protection: a page's
    // own requests), else the canary or the live release by the visitor's key (pass yours:
    // { key: user.id }; without it, a random cutover_key cookie). Sets X-Cutover-Release and the
    // cookies on res.
    const assets = await reader.requestSnapshot(req, res);
    const body = await renderApp(assets);
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(`<!doctype html>
<html>
  <head>
    <meta charset="utf-8">
    ${assets.metaTag()}
    ${assetTags(assets, "application")}
  </head>
  <body>
    <div id="root">${body}</div>
  </body>
</html>
`);
  } catch (err) {
    res.writeHead(500, { "content-type": "text/plain" }).end("render failed\n");
    console.error(err);
  }
});

server.listen(Number(process.env.PORT ?? 3000), process.env.HOST ?? "127.0.0.1", () => {
  const { address, port } = server.address();
  console.log(`listening on http://${address}:${port}`);
});

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.once(signal, () => {
    server.close();
    reader.close();
  });
}
