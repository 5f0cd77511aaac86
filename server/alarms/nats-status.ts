/**
 * NATS servers coming and going, from the bus connection's status events:
 * the server this node was connected to dropping it (`disconnect`), and the
 * cluster's own view (`update`: the INFO a server sends when a route to
 * another server drops or comes back). A server this node saw go is checked
 * every checkMs against the cluster's current list (connect_urls), so a
 * drop of this node's link alone is cleared when the server is seen again.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import type { NatsServerEvent } from './cluster-watch.ts';

export interface NatsStatusOptions {
  onServer(event: NatsServerEvent): void;
  /** This node's connection went down (false) or up again (true). */
  onConnection(up: boolean): void;
  checkMs?: number;
}

/** `nats://127.0.0.1:4222` and `127.0.0.1:4222` are the same server. */
export function serverName(s: string): string {
  return s
    .trim()
    .toLowerCase()
    .replace(/^(nats|tls):\/\//, '');
}

export function watchNatsServers(nc: NatsConnection, options: NatsStatusOptions): () => void {
  const gone = new Set<string>();
  let stopped = false;
  const goneNow = (server: string) => {
    const name = serverName(server);
    gone.add(name);
    options.onServer({ server: name, state: 'gone' });
  };
  const back = (server: string) => {
    const name = serverName(server);
    gone.delete(name);
    options.onServer({ server: name, state: 'back' });
  };
  const status = nc.status();
  void (async () => {
    for await (const s of status) {
      if (stopped) break;
      if (s.type === 'disconnect') {
        options.onConnection(false);
        goneNow(s.server);
      } else if (s.type === 'reconnect') {
        options.onConnection(true);
        back(s.server);
      } else if (s.type === 'update') {
        for (const d of s.deleted ?? []) goneNow(d);
        for (const a of s.added ?? []) back(a);
      }
    }
  })().catch(() => undefined);
  const timer = setInterval(() => {
    if (gone.size === 0 || nc.isClosed()) return;
    const current = new Set([...(nc.info?.connect_urls ?? []), nc.getServer()].map(serverName));
    for (const name of [...gone]) if (current.has(name)) back(name);
  }, options.checkMs ?? 5000);
  timer.unref();
  return () => {
    stopped = true;
    clearInterval(timer);
    // The client's iterator is a QueuedIterator: stop() unregisters it (the type says only AsyncIterable).
    (status as { stop?: () => void }).stop?.();
  };
}
