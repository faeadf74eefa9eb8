// The reader's two Redis connections: one for GET/MGET, one subscribed to the
// events channel. Against a Redis Cluster both are one cluster client (it keeps
// its own pub/sub connection; the app's keys share one slot through `{APP}`);
// behind Sentinel, one sentinel client (node-redis' createSentinel: it asks the
// Sentinels for the master, follows failovers, and keeps its own pub/sub
// connection to the master).
import { createClient, createCluster, createSentinel } from "redis";
import { parseSentinelUrl } from "./url.js";

/** Back off 50, 100, 200, 400, 800 ms, then retry every second, forever. */
export const reconnectStrategy = (retries) => Math.min(50 * 2 ** retries, 1000);

/**
 * @param {{url: string, cluster: boolean, sentinel?: boolean, sentinelPassword?: string, rootNodes?: string[], connectTimeout: number, commandTimeout: number}} o
 * @returns {{cluster: boolean, sentinel: boolean, commands: any, subscriber: any}}
 */
export function openConnections({ url, cluster, sentinel, sentinelPassword, rootNodes, connectTimeout, commandTimeout }) {
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
    return { cluster: true, sentinel: false, commands: client, subscriber: client };
  }

  if (sentinel) {
    const { sentinels, master, db, username, password } = parseSentinelUrl(url);
    const client = createSentinel({
      name: master,
      sentinelRootNodes: sentinels,
      // The master's (and its replicas') credentials and database come from the URL.
      nodeClientOptions: { ...quiet, disableOfflineQueue: true, username, password, database: db, socket: socket() },
      sentinelClientOptions: { ...quiet, password: sentinelPassword, socket: socket() },
      commandOptions: { timeout: commandTimeout },
      // A failover is announced by the Sentinels (+switch-master); a scan also catches one missed.
      scanInterval: 5000,
    });
    return { cluster: false, sentinel: true, commands: client, subscriber: client };
  }

  return {
    cluster: false,
    sentinel: false,
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
