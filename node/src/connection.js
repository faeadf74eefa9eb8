// The reader's two Redis connections: one for GET/MGET, one subscribed to the
// events channel. Against a Redis Cluster both are one cluster client (it keeps
// its own pub/sub connection; the app's keys share one slot through `{APP}`).
import { createClient, createCluster } from "redis";

/** Back off 50, 100, 200, 400, 800 ms, then retry every second, forever. */
export const reconnectStrategy = (retries) => Math.min(50 * 2 ** retries, 1000);

/**
 * @param {{url: string, cluster: boolean, rootNodes?: string[], connectTimeout: number, commandTimeout: number}} o
 * @returns {{cluster: boolean, commands: any, subscriber: any}}
 */
export function openConnections({ url, cluster, rootNodes, connectTimeout, commandTimeout }) {
  // A new socket object per client: node-redis merges the URL's host and port into it.
  const socket = (extra = {}) => ({ connectTimeout, reconnectStrategy, ...extra });
  // No CLIENT SETINFO / maintenance handshake: the reader sends only what its ACL allows.
  const quiet = /** @type {const} */ ({ disableClientInfo: true, maintNotifications: "disabled" });

  if (cluster) {
    const nodes = rootNodes?.length ? rootNodes : [url];
    const first = new URL(nodes[0]);
    const client = createCluster({
      rootNodes: nodes.map((u) => ({ url: u })),
      // Nodes found through CLUSTER SLOTS get these, so credentials and TLS come from the URL.
      defaults: {
        ...quiet,
        disableOfflineQueue: true,
        username: first.username ? decodeURIComponent(first.username) : undefined,
        password: first.password ? decodeURIComponent(first.password) : undefined,
        socket: socket({ tls: first.protocol === "rediss:" }),
      },
      commandOptions: { timeout: commandTimeout },
    });
    return { cluster: true, commands: client, subscriber: client };
  }

  return {
    cluster: false,
    // Offline, a command fails at once instead of queueing: a poll never piles up.
    commands: createClient({
      url,
      ...quiet,
      disableOfflineQueue: true,
      socket: socket(),
      commandOptions: { timeout: commandTimeout },
    }),
    // node-redis re-subscribes on reconnect before it reports "ready".
    subscriber: createClient({ url, ...quiet, socket: socket() }),
  };
}
