/**
 * Drain hand-over between edges over a real nats-server (issue 12): devices
 * with events flowing hold sessions on edge 1; edge 1 drains; every device
 * follows its Bye, resumes on edge 2 with `resumed: true`, and sees every
 * event exactly once (those pushed during the hand-over included). Also a
 * single edge with a session file: its sessions come back after a restart.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { type Bye, type Event, Kind, type Welcome } from '../../device-protocol/messages.ts';
import { type Bus, type DeviceEventReply, Subjects } from '../../server/bus/bus.ts';
import { connectNatsBus } from '../../server/bus/nats.ts';
import { eventually } from '../../testing/index.ts';
import { type NatsServerHandle, startNatsServer } from '../harness/nats.ts';
import {
  type CarrierKind,
  MemoryDirectory,
  type RawClient,
  rawClient,
  startEchoTransport,
  startTestEdge,
  WAIT,
  WAIT_MS,
} from './edge-client.ts';

const EVENTS = 120;
/** Between two events of one device: the stream lasts ~2.5 s, across the drain. */
const EVENT_GAP_MS = 20;

function imei(i: number): string {
  return `49015420${String(i).padStart(7, '0')}`;
}

async function natsBus(
  t: import('node:test').TestContext,
  nats: NatsServerHandle,
  name: string,
): Promise<Bus> {
  const bus = await connectNatsBus({ servers: nats.url, name });
  t.after(() => bus.close());
  return bus;
}

/**
 * Pushes e1…eN to a device as a transport would, one after the other; stops
 * at the first push that fails (a lost event then shows as a missing one).
 */
async function pushEvents(bus: Bus, device: string, count: number, failures: string[]): Promise<void> {
  for (let n = 1; n <= count; n++) {
    try {
      await bus.request<DeviceEventReply>(
        Subjects.device(device),
        { type: 'event', name: `e${n}` },
        { timeoutMs: WAIT_MS },
      );
    } catch (err) {
      failures.push(`${device} e${n}: ${(err as { code?: string }).code}`);
      return;
    }
    await new Promise((r) => setTimeout(r, EVENT_GAP_MS));
  }
}

/** What a device does with a drain Bye: waits reconnectAfterMs, reconnects to `port`, resumes from what it has. */
async function followBye(old: RawClient, kind: CarrierKind, port: number, w: Welcome) {
  const bye = (await old.nextOf(Kind.Bye)) as Bye;
  assert.equal(bye.code, 'session.draining');
  assert.equal(bye.resumable, true);
  await new Promise((r) => setTimeout(r, bye.reconnectAfterMs ?? 0));
  const c = await rawClient(kind, port);
  const w2 = await c.resume(w, old.lastSeq());
  return { c, w2 };
}

/** Each event once, in push order, across the old and the new carrier: nothing lost, nothing doubled. */
function assertExactlyOnce(device: string, before: Event[], after: Event[], count: number): void {
  const bySeq = new Map<number, string>();
  for (const e of [...before, ...after]) {
    const seen = bySeq.get(e.seq);
    assert.ok(seen === undefined || seen === e.name, `${device}: seq ${e.seq} carried ${seen} and ${e.name}`);
    bySeq.set(e.seq, e.name);
  }
  const names = [...bySeq.entries()].sort((a, b) => a[0] - b[0]).map(([, name]) => name);
  assert.deepEqual(
    names,
    Array.from({ length: count }, (_, i) => `e${i + 1}`),
    device,
  );
}

describe('edge drain hand-over over NATS', () => {
  test('drain: every device resumes on the other edge with resumed: true, each event exactly once', async (t) => {
    const nats = await startNatsServer();
    t.after(() => nats.stop());
    const transportBus = await natsBus(t, nats, 'transport');
    startEchoTransport(transportBus);
    const directory = new MemoryDirectory();
    const e1 = await startTestEdge(t, {
      engine: 'uws',
      bus: await natsBus(t, nats, 'edge-1'),
      directory,
      nodeId: 'edge-1',
    });
    const e2 = await startTestEdge(t, {
      engine: 'portable',
      bus: await natsBus(t, nats, 'edge-2'),
      directory,
      nodeId: 'edge-2',
    });
    const devices = Array.from({ length: 12 }, (_, i) => ({
      imei: imei(i),
      kind: (i % 3 === 0 ? 'poll' : 'ws') as CarrierKind,
    }));
    const sessions: { imei: string; kind: CarrierKind; c: RawClient; w: Welcome }[] = [];
    for (const d of devices) {
      directory.add(d.imei, 'secret');
      const c = await rawClient(d.kind, e1.port);
      t.after(() => c.kill());
      sessions.push({ ...d, c, w: await c.hello(d.imei, { secret: 'secret' }) });
    }
    // Edge 1's subscriptions are on the server before the first push (else: no responders).
    await e1.bus.flush();
    const failures: string[] = [];
    const pushing = Promise.all(devices.map((d) => pushEvents(transportBus, d.imei, EVENTS, failures)));
    // Events flow to every device before the drain starts.
    for (const s of sessions) await s.c.waitEvents(5);
    const followed = sessions.map((s) => followBye(s.c, s.kind, e2.port, s.w));
    await e1.edge.drain('test');
    // The hand-over is done when the drain is: edge 1 holds nothing any more.
    assert.equal(e1.edge.sessionCount(), 0);
    const resumed = await Promise.all(followed);
    for (const { c } of resumed) t.after(() => c.kill());
    await pushing;
    assert.deepEqual(failures, []);
    for (const [i, { c, w2 }] of resumed.entries()) {
      const s = sessions[i]!;
      assert.equal(w2.resumed, true, s.imei);
      assert.equal(w2.sessionId, s.w.sessionId);
      await eventually(
        `${s.imei}: every event`,
        () => s.c.events().length + c.events().length >= EVENTS,
        WAIT,
      );
      assertExactlyOnce(s.imei, s.c.events(), c.events(), EVENTS);
    }
    assert.equal(e2.edge.sessionCount(), devices.length);
  });

  test('a last edge keeps its sessions in its session file across a restart', async (t) => {
    const nats = await startNatsServer();
    t.after(() => nats.stop());
    const dir = mkdtempSync(join(tmpdir(), 'mmgw-handover-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const sessionFile = join(dir, 'edge', 'sessions.json');
    const transportBus = await natsBus(t, nats, 'transport');
    startEchoTransport(transportBus);
    const directory = new MemoryDirectory();
    directory.add(imei(1), 'secret');
    const first = await startTestEdge(t, {
      engine: 'uws',
      bus: await natsBus(t, nats, 'edge-a'),
      directory,
      nodeId: 'edge-a',
      sessionFile,
    });
    const c = await rawClient('ws', first.port);
    t.after(() => c.kill());
    const w = await c.hello(imei(1), { secret: 'secret' });
    for (let n = 1; n <= 5; n++) await first.push(imei(1), `e${n}`);
    await c.waitEvents(5);
    await c.ack(2);
    await first.edge.close();
    const second = await startTestEdge(t, {
      engine: 'uws',
      bus: await natsBus(t, nats, 'edge-b'),
      directory,
      nodeId: 'edge-a',
      sessionFile,
    });
    assert.equal(second.edge.sessionCount(), 1);
    const c2 = await rawClient('ws', second.port);
    t.after(() => c2.kill());
    const w2 = await c2.resume(w, 3);
    assert.equal(w2.resumed, true);
    assert.equal(w2.lastSeq, 5);
    assert.equal(await second.push(imei(1), 'e6'), 6);
    assert.deepEqual(
      (await c2.waitEvents(3)).map((e) => [e.seq, e.name]),
      [
        [4, 'e4'],
        [5, 'e5'],
        [6, 'e6'],
      ],
    );
  });
});
