/**
 * Forked by im-hostile.test.ts: logs XmppAccountSessions in to every hostile
 * XMPP peer at once (test/harness/hostile) while two accounts stay online on
 * the real Prosody the parent started, waits out the window in which the
 * library's own timers used to fire (#11 item 1 killed the process ~12 s in),
 * then checks the Prosody accounts still exchange a message. Each result goes
 * to the parent over IPC as it comes; a crash is this process's exit code.
 */
import type { GatewayError } from '../../device-protocol/errors.ts';
import {
  type XmppAccountSession as Session,
  XmppAccountSession,
} from '../../server/transport/im/xmpp-session.ts';
import { eventually } from '../../testing/index.ts';
import {
  type HostileBehaviour,
  type HostileXmppOptions,
  startHostileXmpp,
} from '../harness/hostile/index.ts';

export interface HostileCase {
  name: string;
  behaviour: HostileBehaviour;
  opts?: HostileXmppOptions;
  /** Session timing for this case; connect 3 s and close 0.5 s otherwise. */
  connectTimeoutMs?: number;
  closeTimeoutMs?: number;
}

export interface HostileResult {
  name: string;
  code?: string;
  message?: string;
  /** start() → its rejection. */
  errorMs: number;
  /** start() → the peer saw every connection of the client go, FIN or reset (undefined: it never did). */
  closedMs?: number;
  /** Everything a device would be shown: the rejection and each im.state error. */
  deviceText: string;
  markerSeen: boolean;
  sentInClear: boolean;
  peerBytesSent: number;
  connections: number;
  online: boolean;
}

const PASSWORD = 'hostile-test-password';

export interface ChildConfig {
  prosody: {
    host: string;
    port: number;
    alice: { jid: string; password: string };
    bob: { jid: string; password: string };
  };
  cases: HostileCase[];
  connectTimeoutMs: number;
  closeTimeoutMs: number;
  /** How long to stay up after the last case: the library's own timeout and a margin. */
  lateWindowMs: number;
}

const send = (msg: unknown): Promise<void> =>
  new Promise((resolve) => process.send?.(msg, undefined, undefined, () => resolve()) ?? resolve());

async function runCase(config: ChildConfig, c: HostileCase): Promise<HostileResult> {
  const peer = await startHostileXmpp(c.behaviour, c.opts ?? {});
  const shown: unknown[] = [];
  const session = new XmppAccountSession({
    settings: { jid: 'alice@example.test', password: PASSWORD, host: peer.host, port: peer.port },
    connectTimeoutMs: c.connectTimeoutMs ?? config.connectTimeoutMs,
    closeTimeoutMs: c.closeTimeoutMs ?? config.closeTimeoutMs,
    backoff: { initialMs: 50, maxMs: 200 },
    listener: {
      state: (state, error) => shown.push({ state, error: error?.toJSON() }),
    },
  });
  const started = Date.now();
  let error: GatewayError | undefined;
  let online = false;
  try {
    await session.start();
    online = true;
  } catch (err) {
    error = err as GatewayError;
  }
  const errorMs = Date.now() - started;
  let closedMs: number | undefined;
  // A FIN (the peer keeps its side open: it is half-open-capable) or a reset.
  const gone = () => peer.sessions().every((s) => s.clientEndedAt !== undefined || s.closedAt !== undefined);
  try {
    await eventually('the peer to see the client go', gone, { timeoutMs: 15_000 });
    closedMs = Date.now() - started;
  } catch {
    // reported as undefined
  }
  await session.stop();
  shown.unshift(error && typeof error.toJSON === 'function' ? error.toJSON() : String(error));
  const deviceText = JSON.stringify(shown);
  const result: HostileResult = {
    name: c.name,
    ...(error?.code === undefined ? {} : { code: error.code }),
    ...(error?.message === undefined ? {} : { message: error.message }),
    errorMs,
    ...(closedMs === undefined ? {} : { closedMs }),
    deviceText,
    markerSeen: deviceText.includes(peer.marker),
    sentInClear: peer.sentInClear(PASSWORD),
    peerBytesSent: peer.bytesSent(),
    connections: peer.connections(),
    online,
  };
  await peer.stop();
  return result;
}

/** An account on Prosody; every state change after it came online goes to `changes`. */
async function online(
  config: ChildConfig,
  who: 'alice' | 'bob',
  messages: string[],
  changes: string[],
): Promise<Session> {
  const p = config.prosody;
  let up = false;
  const session = new XmppAccountSession({
    settings: { jid: p[who].jid, password: p[who].password, host: p.host, port: p.port },
    connectTimeoutMs: 10_000,
    listener: {
      message: (m) => messages.push(m.body),
      state: (state) => up && changes.push(`${who} ${state}`),
    },
  });
  await session.start();
  up = true;
  return session;
}

async function main(): Promise<void> {
  const config = JSON.parse(process.argv[2] ?? '{}') as ChildConfig;
  const bobJid = config.prosody.bob.jid;
  const received: string[] = [];
  const changes: string[] = [];
  const alice = await online(config, 'alice', [], changes);
  const bob = await online(config, 'bob', received, changes);
  await alice.send(bobJid, 'before', 'c-before');
  await eventually('bob to get the first message', () => received.includes('before'));
  await Promise.all(
    config.cases.map(async (c) => {
      try {
        await send({ result: await runCase(config, c) });
      } catch (err) {
        await send({ result: { name: c.name, failed: String(err) } });
      }
    }),
  );
  // Anything of the library that could still call into a session it was torn from does so in here.
  await new Promise((resolve) => setTimeout(resolve, config.lateWindowMs));
  await alice.send(bobJid, 'after', 'c-after');
  await eventually('bob to get the second message', () => received.includes('after'));
  await send({ prosody: { changes, received } });
  await Promise.all([alice.stop(), bob.stop()]);
  await send({ done: true });
  process.exit(0);
}

await main();
