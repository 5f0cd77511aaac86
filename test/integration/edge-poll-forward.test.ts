/**
 * Long-poll across edges that share a port (worker processes): each HTTP
 * request of a session may land on any edge. Two edges on one in-process bus
 * stand for two workers; the device's requests alternate between them while
 * a transport pushes events one after another (as sys.stream does, stopping at
 * the first failed push). The edge without the session passes each request to
 * the one holding it (poll-forward.ts): nothing may be lost or doubled, every
 * push must succeed, and the session stays where it was opened.
 */
import assert from 'node:assert/strict';
import { describe, type TestContext, test } from 'node:test';
import { decodeBatch, decodeFrame, encodeBatch, encodeFrame } from '../../device-protocol/codec.ts';
import {
  type Event,
  type Frame,
  Kind,
  PROTOCOL_VERSION,
  type Welcome,
} from '../../device-protocol/messages.ts';
import { InProcessBus } from '../../server/bus/inproc.ts';
import { eventually } from '../../testing/index.ts';
import {
  ENGINES,
  MemoryDirectory,
  startEchoTransport,
  startTestEdge,
  type TestEdge,
  WAIT_MS,
} from './edge-client.ts';

const IMEI = '356938035643809';
const SECRET = 'secret-a';

interface Answer {
  status: number;
  frames: Frame[];
}

async function exchange(
  port: number,
  method: 'GET' | 'POST',
  query: string,
  headers: Record<string, string>,
  frames?: Frame[],
): Promise<Answer> {
  const res = await fetch(`http://127.0.0.1:${port}/v1/poll${query}`, {
    method,
    headers: { ...(frames ? { 'Content-Type': 'application/octet-stream' } : {}), ...headers },
    ...(frames ? { body: encodeBatch(frames.map((f) => encodeFrame(f))) as BodyInit } : {}),
    signal: AbortSignal.timeout(WAIT_MS),
  });
  const batch = decodeBatch(new Uint8Array(await res.arrayBuffer()));
  assert.ok(batch.ok, `undecodable answer (HTTP ${res.status})`);
  const out: Frame[] = [];
  for (const bytes of batch.frames) {
    const one = decodeFrame(bytes);
    assert.ok(one.ok);
    out.push(one.frame);
  }
  return { status: res.status, frames: out };
}

/** Long-poll requests an edge passed to the edge holding their session. */
async function forwards(e: TestEdge): Promise<number> {
  const metric = await e.registry.getSingleMetric('mmgw_edge_poll_forwards_total')?.get();
  return metric?.values[0]?.value ?? 0;
}

/**
 * Two edges on one bus (two workers sharing a port, as far as a device can tell) and a
 * long-poll session opened on the first: its session headers.
 */
async function twoEdgesAndASession(t: TestContext, engine: (typeof ENGINES)[number]) {
  const bus = new InProcessBus();
  t.after(() => bus.close());
  startEchoTransport(bus);
  const directory = new MemoryDirectory();
  directory.add(IMEI, SECRET);
  const e1 = await startTestEdge(t, { engine, bus, directory, nodeId: 'edge-1', heartbeatMs: 20_000 });
  const e2 = await startTestEdge(t, { engine, bus, directory, nodeId: 'edge-2', heartbeatMs: 20_000 });
  const opened = await exchange(e1.port, 'POST', '', {}, [
    { kind: Kind.Hello, version: PROTOCOL_VERSION, imei: IMEI, secret: SECRET },
  ]);
  assert.equal(opened.status, 200);
  const welcome = opened.frames[0] as Welcome;
  assert.equal(welcome.kind, Kind.Welcome);
  const headers = { 'X-MMGW-Session': welcome.sessionId, 'X-MMGW-Token': welcome.resumeToken };
  return { e1, e2, welcome, headers };
}

for (const engine of ENGINES) {
  describe(`long-poll across edges sharing a port (${engine})`, () => {
    test('requests alternating between two edges are served by the holder: no 410, nothing lost or doubled', async (t) => {
      const { e1, e2, headers } = await twoEdgesAndASession(t, engine);
      const edges = [e1, e2];
      const ports = [e1.port, e2.port];

      // The transport: one push at a time, each after the previous one was taken.
      const EVENTS = 40;
      const pushed: number[] = [];
      const pushing = (async () => {
        for (let n = 1; n <= EVENTS; n++) {
          pushed.push(await e1.push(IMEI, 'tick', { n }));
          await new Promise((r) => setImmediate(r));
        }
      })();

      // The device: GETs and POSTs (a request each) alternate between the two edges.
      const received: Frame[] = [];
      const statuses: number[] = [];
      let lastSeq = 0;
      const take = (a: Answer) => {
        statuses.push(a.status);
        for (const f of a.frames) {
          received.push(f);
          if ('seq' in f && typeof f.seq === 'number' && f.seq > lastSeq) lastSeq = f.seq;
        }
      };
      let pushDone = false;
      void pushing.finally(() => {
        pushDone = true;
      });
      const REQUESTS = 10;
      const requestIds = new Set<string>();
      for (let i = 0; (!pushDone || requestIds.size < REQUESTS) && i < 2000; i++) {
        const port = ports[i % 2]!;
        const other = ports[(i + 1) % 2]!;
        const ack = lastSeq > 0 ? `&ack=${lastSeq}` : '';
        if (i % 3 === 1 && requestIds.size < REQUESTS) {
          // A GET held (through either edge) while a request lands on the other: both answered, never refused.
          const id = `r${i}`;
          requestIds.add(id);
          const before = await forwards(edges[i % 2]!);
          const held = exchange(port, 'GET', `?wait=10000${ack}`, headers);
          // On the edge without the session, the GET is on its way to the holder once counted.
          if (port !== e1.port)
            await eventually('the GET forwarded', async () => (await forwards(e2)) > before);
          const posted = exchange(other, 'POST', '', headers, [
            { kind: Kind.Request, id, method: 'echo', body: { i } },
          ]);
          take(await posted);
          take(await held);
        } else {
          take(await exchange(port, 'GET', `?wait=0${ack}`, headers));
        }
      }
      await pushing;
      // Collect what is still due (answers to the last requests), from both edges in turn.
      const answered = () =>
        new Set(received.filter((f) => f.kind === Kind.Response).map((f) => (f as { id: string }).id));
      let polls = 0;
      await eventually('the last answers', async () => {
        if (answered().size >= requestIds.size && lastSeq >= Math.max(...pushed)) return true;
        take(await exchange(ports[polls++ % 2]!, 'GET', `?wait=0&ack=${lastSeq}`, headers));
        return false;
      });

      assert.deepEqual(
        statuses.filter((s) => s !== 200),
        [],
        'every poll request was served, wherever it landed',
      );
      assert.equal(pushed.length, EVENTS, 'every push succeeded');
      // One seq per frame, whatever the number of copies received.
      const bySeq = new Map<number, Frame>();
      for (const f of received) {
        if (!('seq' in f) || typeof f.seq !== 'number') continue;
        const known = bySeq.get(f.seq);
        if (known !== undefined) assert.deepEqual(f, known, `seq ${f.seq} stands for one frame only`);
        bySeq.set(f.seq, f);
      }
      const seqs = [...bySeq.keys()].sort((a, b) => a - b);
      assert.deepEqual(
        seqs,
        Array.from({ length: seqs.length }, (_, k) => k + 1),
        'seqs without gaps',
      );
      const ticks = seqs
        .map((s) => bySeq.get(s)!)
        .filter((f) => f.kind === Kind.Event)
        .map((f) => ((f as Event).body as { n: number }).n);
      assert.deepEqual(
        ticks,
        Array.from({ length: EVENTS }, (_, k) => k + 1),
        'each event once, in order',
      );
      const responses = seqs.map((s) => bySeq.get(s)!).filter((f) => f.kind === Kind.Response);
      assert.deepEqual(
        responses.map((f) => (f as { id: string }).id).sort(),
        [...requestIds].sort(),
        'each request answered once',
      );
      assert.equal(e1.edge.sessionCount(), 1, 'the session stayed where it was opened');
      assert.equal(e2.edge.sessionCount(), 0);
      assert.ok((await forwards(e2)) >= REQUESTS, 'the other edge passed its requests on');
      assert.equal(await forwards(e1), 0, 'the holder passed nothing on');
    });

    test('through the other edge, a wrong token or an unknown session is refused as on the holder', async (t) => {
      const { e1, e2, welcome, headers } = await twoEdgesAndASession(t, engine);
      const refused = [
        { 'X-MMGW-Session': welcome.sessionId, 'X-MMGW-Token': 'wrong' },
        { 'X-MMGW-Session': `${IMEI}.unknown`, 'X-MMGW-Token': welcome.resumeToken },
      ];
      for (const headers of refused) {
        for (const port of [e1.port, e2.port]) {
          const a = await exchange(port, 'GET', '?wait=0', headers);
          assert.equal(a.status, 410);
          assert.equal((a.frames[0] as { code?: string }).code, 'auth.resume_failed');
        }
      }
      // The session itself is untouched and still answers through either edge.
      for (const port of [e2.port, e1.port])
        assert.equal((await exchange(port, 'GET', '?wait=0', headers)).status, 200);
      assert.equal(e1.edge.sessionCount(), 1);
      assert.ok((await forwards(e2)) >= 3);
    });
  });
}
