/**
 * NATS servers coming and going, as this node can tell:
 *   - the cluster's own view: JetStream's record of the alarm stream's
 *     replicas (leader, followers current or offline), polled every checkMs;
 *     the subject is the server's server_name;
 *   - servers the cluster announced and then withdrew (the client's `update`
 *     status from INFO; only for servers discovered, not those configured);
 *   - this node's own connection: while it is down the membership is stale
 *     (onConnection), and down for longer than lostAfterMs raises the server
 *     it lost (host:port), cleared when the connection is back.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import type { NatsServerEvent } from './cluster-watch.ts';

export interface NatsStatusOptions {
  onServer(event: NatsServerEvent): void;
  /** This node's connection went down (false) or up again (true). */
  onConnection(up: boolean): void;
  /** The cluster's view (JetStream); absent without JetStream. */
  peers?: () => Promise<{ name: string; up: boolean }[]>;
  /** Default 3000. */
  checkMs?: number;
  /** Default 5000. */
  lostAfterMs?: number;
}

/** `nats://127.0.0.1:4222` and `127.0.0.1:4222` are the same server. */
export function serverName(s: string): string {
  return s
    .trim()
    .toLowerCase()
    .replace(/^(nats|tls):\/\//, '');
}

interface LostServer {
  server: string;
  raised: boolean;
  timer?: NodeJS.Timeout;
}

export function watchNatsServers(nc: NatsConnection, options: NatsStatusOptions): () => void {
  let stopped = false;
  let lost: LostServer | undefined;
  const status = nc.status();
  void (async () => {
    for await (const s of status) {
      if (stopped) break;
      if (s.type === 'disconnect') {
        options.onConnection(false);
        if (lost) continue;
        const entry: LostServer = { server: serverName(s.server), raised: false };
        entry.timer = setTimeout(() => {
          entry.raised = true;
          options.onServer({ server: entry.server, state: 'gone' });
        }, options.lostAfterMs ?? 5000);
        entry.timer.unref();
        lost = entry;
      } else if (s.type === 'reconnect') {
        options.onConnection(true);
        if (lost) {
          clearTimeout(lost.timer);
          if (lost.raised) options.onServer({ server: lost.server, state: 'back' });
          lost = undefined;
        }
      } else if (s.type === 'update') {
        for (const d of s.deleted ?? []) options.onServer({ server: serverName(d), state: 'gone' });
        for (const a of s.added ?? []) options.onServer({ server: serverName(a), state: 'back' });
      }
    }
  })().catch(() => undefined);
  const known = new Map<string, boolean>();
  let checking = false;
  const timer = setInterval(() => {
    if (!options.peers || checking || nc.isClosed() || lost) return;
    checking = true;
    options
      .peers()
      .then((peers) => {
        for (const p of peers) {
          if (known.get(p.name) === p.up) continue;
          // A server first seen up is no news; seen gone (or back after gone) is.
          if (known.has(p.name) || !p.up) options.onServer({ server: p.name, state: p.up ? 'back' : 'gone' });
          known.set(p.name, p.up);
        }
      })
      .catch(() => undefined)
      .finally(() => {
        checking = false;
      });
  }, options.checkMs ?? 3000);
  timer.unref();
  return () => {
    stopped = true;
    clearInterval(timer);
    if (lost) clearTimeout(lost.timer);
    // The client's iterator is a QueuedIterator: stop() unregisters it (the type says only AsyncIterable).
    (status as { stop?: () => void }).stop?.();
  };
}
