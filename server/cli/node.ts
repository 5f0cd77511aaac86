/**
 * `mmgw node drain ID`: asks a node of a cluster to drain over the cluster's
 * bus (as the admin API's POST /nodes/{id}/drain does) and follows its
 * heartbeats until it is gone: its devices get Bye session.draining and its
 * edge hands their sessions to a surviving edge. A single-node gateway on the
 * in-process bus has no bus to reach from here: it drains on SIGTERM.
 */
import { Command, Option } from 'commander';
import { GatewayError } from '../../device-protocol/errors.ts';
import { type NodeHeartbeat, Subjects } from '../bus/bus.ts';
import type { CliIo } from './io.ts';

type Action = (...args: any[]) => Promise<number>;

/** A node not heard from this long after the ask is taken as not live. */
const FIRST_HEARTBEAT_MS = 5000;

export interface DrainOptions {
  bus: string;
  reason?: string;
  wait: boolean;
  /** Give up waiting for the node to go after this long. */
  timeoutMs: number;
  json?: boolean;
}

/** What the command saw of the node: 'draining' once its heartbeat said so, 'gone' once it left. */
export type DrainProgress = 'asked' | 'draining' | 'gone';

export async function runNodeDrain(id: string, o: DrainOptions, io: CliIo): Promise<number> {
  if (o.bus === 'inproc' || o.bus.length === 0) {
    throw new GatewayError(
      'config.invalid',
      'mmgw node drain needs the cluster bus (--bus nats://… or MMGW_BUS); a single-node gateway drains on SIGTERM.',
      { field: 'bus' },
    );
  }
  // Loaded here: the other commands do not pay for the bus modules.
  const { createBus } = await import('../bus/index.ts');
  const bus = await createBus({ kind: 'nats', url: o.bus, name: 'mmgw-cli-drain' });
  const say = (state: DrainProgress, extra: Record<string, unknown> = {}) => {
    if (o.json) io.out(JSON.stringify({ nodeId: id, state, ...extra }) + '\n');
    else io.out(`${id}: ${state}${extra.sessions === undefined ? '' : ` (${extra.sessions} sessions)`}\n`);
  };
  try {
    let seen: NodeHeartbeat | undefined;
    let lastAt = Date.now();
    let settle!: (state: 'gone' | 'unknown' | 'timeout') => void;
    const finished = new Promise<'gone' | 'unknown' | 'timeout'>((r) => (settle = r));
    const sub = bus.subscribe(Subjects.heartbeat, (msg) => {
      const h = msg.data as NodeHeartbeat | null;
      if (h === null || typeof h !== 'object' || h.nodeId !== id) return;
      lastAt = Date.now();
      if (h.draining && (seen?.draining !== true || h.sessions !== seen.sessions)) {
        say('draining', { sessions: h.sessions });
      }
      seen = h;
      // A node's last heartbeat says it leaves (ttlMs 0).
      if (h.ttlMs <= 0) settle('gone');
    });
    await bus.flush();
    bus.publish(Subjects.drain(id), { reason: o.reason ?? 'asked with mmgw node drain' });
    await bus.flush();
    say('asked');
    if (!o.wait) {
      sub.unsubscribe();
      return 0;
    }
    const started = Date.now();
    const timer = setInterval(() => {
      const now = Date.now();
      if (seen === undefined && now - started > FIRST_HEARTBEAT_MS) settle('unknown');
      else if (seen !== undefined && now - lastAt > Math.max(seen.ttlMs, 1000)) settle('gone');
      else if (now - started > o.timeoutMs) settle('timeout');
    }, 200);
    const end = await finished;
    clearInterval(timer);
    sub.unsubscribe();
    if (end === 'unknown') {
      throw new GatewayError('api.not_found', `No live node ${id} was heard on the bus.`, { field: 'id' });
    }
    if (end === 'timeout') {
      throw new GatewayError('bus.timeout', `Node ${id} did not finish draining in ${o.timeoutMs} ms.`);
    }
    say('gone');
    return 0;
  } finally {
    await bus.close().catch(() => undefined);
  }
}

export function nodeCommand(wrap: (a: Action) => (...args: any[]) => Promise<void>, io: CliIo): Command {
  const node = new Command('node').description('nodes of a cluster');
  node
    .command('drain')
    .description(
      'drain a node: its devices move to other nodes (sessions handed over), then it exits; waits until it is gone',
    )
    .argument('<id>', 'node id (as in the node view or GET /api/v1/nodes)')
    .addOption(
      new Option('--bus <url>', 'the cluster bus, nats://… (env MMGW_BUS)').default(
        process.env.MMGW_BUS || 'inproc',
        'MMGW_BUS, else none',
      ),
    )
    .option('--reason <text>', 'why (logged by the node)')
    .option('--no-wait', 'only ask; do not follow the node until it is gone')
    .option('--timeout <ms>', 'give up waiting after this long', '120000')
    .option('--json', 'one JSON line per state instead of text')
    .action(
      wrap(
        (id: string, o: { bus: string; reason?: string; wait: boolean; timeout: string; json?: boolean }) =>
          runNodeDrain(
            id,
            {
              bus: o.bus,
              ...(o.reason === undefined ? {} : { reason: o.reason }),
              wait: o.wait,
              timeoutMs: Number(o.timeout) > 0 ? Number(o.timeout) : 120_000,
              ...(o.json ? { json: true } : {}),
            },
            io,
          ),
      ),
    );
  return node;
}
