/**
 * A socket flood before authentication (SPEC.md §5, Limits before
 * authentication), over real sockets, both engines: WebSocket upgrades that
 * never send Hello, from one address and then from several. Over the cap per
 * address (429) and in all (503) they are refused before the socket is kept,
 * and counted in /metrics; a device from another address still connects, a
 * device already connected keeps working, the ops endpoint keeps answering,
 * and at the Hello deadline the silent ones are closed, which makes room again.
 * Clients bind 127.0.0.x source addresses to be different peers.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, test } from 'node:test';
import pino from 'pino';
import WebSocket from 'ws';
import { type ErrorFrame, Kind } from '../../device-protocol/messages.ts';
import { startOpsServer } from '../../server/ops/http.ts';
import { eventually } from '../../testing/index.ts';
import { ENGINES, type PollRawClient, startTestEdge } from './edge-client.ts';

const IMEI_A = '356938035643809';
const IMEI_B = '490154203237518';
const PER_ADDRESS = 50;
const TOTAL = 200;
const HELLO_TIMEOUT_MS = 500;

type Idle = { ws: WebSocket; closed: boolean } | { status: number };

/** A WebSocket upgrade that never sends a frame; resolves once open, or with the HTTP status that refused it. */
function openIdle(port: number, localAddress: string): Promise<Idle> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/ws`, { perMessageDeflate: false, localAddress });
    ws.once('open', () => {
      const idle = { ws, closed: false };
      ws.once('close', () => {
        idle.closed = true;
      });
      resolve(idle);
    });
    ws.once('unexpected-response', (req, res) => {
      req.destroy();
      resolve({ status: res.statusCode ?? 0 });
    });
    ws.once('error', reject);
  });
}

function flood(port: number, localAddress: string, n: number): Promise<Idle[]> {
  return Promise.all(Array.from({ length: n }, () => openIdle(port, localAddress)));
}

const opened = (list: Idle[]) => list.filter((x): x is { ws: WebSocket; closed: boolean } => 'ws' in x);
const refusedWith = (list: Idle[], status: number) =>
  list.filter((x) => 'status' in x && x.status === status).length;

for (const engine of ENGINES) {
  describe(`unauthenticated connections flood (${engine})`, () => {
    test('over the caps: refused and counted; devices, sessions and /healthz unaffected; the Hello deadline makes room', async (t) => {
      let clock = 1_800_000_000_000;
      const e = await startTestEdge(t, {
        engine,
        now: () => clock,
        limits: {
          maxUnauthenticatedPerAddress: PER_ADDRESS,
          maxUnauthenticated: TOTAL,
          helloTimeoutMs: HELLO_TIMEOUT_MS,
        },
      });
      e.directory.add(IMEI_A, 'secret-a');
      e.directory.add(IMEI_B, 'secret-b');
      const ops = await startOpsServer({
        port: 0,
        host: '127.0.0.1',
        logger: pino({ level: 'silent' }),
        metrics: e.registry,
        readiness: () => ({ ready: true, reasons: [] }),
      });
      t.after(() => ops.close());
      const idle: Idle[] = [];
      t.after(() => {
        for (const x of opened(idle)) x.ws.terminate();
      });
      const healthz = async () => (await fetch(`http://127.0.0.1:${ops.port}/healthz`)).status;
      const metric = async (name: string, reason?: string): Promise<number> => {
        const text = await (await fetch(`http://127.0.0.1:${ops.port}/metrics`)).text();
        const label = reason === undefined ? '' : `{reason="${reason}"}`;
        const line = text.split('\n').find((l) => l.startsWith(`${name}${label} `));
        return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
      };

      // One address: 80 upgrades that never speak; 50 are kept, 30 refused before the socket is.
      const one = await flood(e.port, '127.0.0.2', 80);
      idle.push(...one);
      assert.equal(opened(one).length, PER_ADDRESS);
      assert.equal(refusedWith(one, 429), 80 - PER_ADDRESS);
      assert.equal(await metric('mmgw_edge_preauth_refusals_total', 'address_cap'), 80 - PER_ADDRESS);
      assert.equal(await metric('mmgw_edge_unauthenticated'), PER_ADDRESS);
      assert.equal(await healthz(), 200);
      // A device from another address connects; a Hello over long-poll from the flooding one is refused.
      const device = await e.client('ws', '127.0.0.3');
      await device.hello(IMEI_A, { secret: 'secret-a' });
      const poll = await e.client('poll', '127.0.0.2');
      const refused = await poll.helloAnswer(IMEI_B, { secret: 'secret-b' });
      assert.equal((refused as ErrorFrame).code, 'session.rate_limited');
      assert.equal((poll as PollRawClient).statuses.at(-1), 429);

      // Four more addresses fill the cap in all: the rest are refused with 503.
      const more = (
        await Promise.all(
          ['127.0.0.4', '127.0.0.5', '127.0.0.6', '127.0.0.7'].map((a) => flood(e.port, a, PER_ADDRESS)),
        )
      ).flat();
      idle.push(...more);
      assert.equal(opened(more).length, TOTAL - PER_ADDRESS);
      assert.equal(refusedWith(more, 503), 4 * PER_ADDRESS - (TOTAL - PER_ADDRESS));
      assert.equal(await metric('mmgw_edge_preauth_refusals_total', 'total_cap'), 50);
      assert.equal(await healthz(), 200);
      // The device connected before goes on.
      await device.send({ kind: Kind.Ping, nonce: 7 });
      assert.equal((await device.nextOf(Kind.Pong)).nonce, 7);

      // The Hello deadline passes: every silent connection is closed, and counted.
      clock += HELLO_TIMEOUT_MS + 1;
      await eventually('the silent connections to be closed', () => opened(idle).every((x) => x.closed));
      assert.equal(await metric('mmgw_edge_preauth_refusals_total', 'hello_deadline'), TOTAL);
      assert.equal(await metric('mmgw_edge_unauthenticated'), 0);
      const late = await e.client('ws', '127.0.0.2');
      assert.equal((await late.helloAnswer(IMEI_B, { secret: 'secret-b' })).kind, Kind.Welcome);
      assert.equal(device.closeInfo, undefined, 'the device connected through the flood is still connected');
    });
  });
}

test('portable engine: a TCP connection that never sends a request is closed at the Hello deadline', async (t) => {
  // (uWebSockets.js closes an HTTP connection idle for 10 s by itself.)
  const e = await startTestEdge(t, { engine: 'portable', limits: { helloTimeoutMs: HELLO_TIMEOUT_MS } });
  const socket = net.connect({ port: e.port, host: '127.0.0.1', localAddress: '127.0.0.2' });
  t.after(() => socket.destroy());
  let closed = false;
  socket.on('close', () => {
    closed = true;
  });
  socket.on('error', () => {});
  await eventually('the silent connection to be closed', () => closed);
});
