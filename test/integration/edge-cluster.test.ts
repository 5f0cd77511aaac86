/**
 * Several edges: two edges on two ports sharing one in-process bus stand for
 * two workers or nodes (claim on resume, takeover on Hello, drain), and real
 * worker processes sharing one port through SO_REUSEPORT.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, fork } from 'node:child_process';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { GatewayError } from '../../device-protocol/errors.ts';
import { type Bye, type ErrorFrame, type Event, Kind, type Welcome } from '../../device-protocol/messages.ts';
import { type Bus, Subjects } from '../../server/bus/bus.ts';
import { InProcessBus } from '../../server/bus/inproc.ts';
import { DEVICE_QUEUE } from '../../server/edge/edge-messages.ts';
import { buildReusePortPreload, reusePortEnv } from '../../server/edge/index.ts';
import { type EventuallyOptions, eventually } from '../../testing/index.ts';
import {
  CARRIERS,
  ENGINES,
  MemoryDirectory,
  rawClient,
  startEchoTransport,
  startTestEdge,
  WAIT_MS,
  WsRawClient,
} from './edge-client.ts';

const IMEI_A = '356938035643809';
const IMEI_B = '490154203237518';
const SECRET = 'secret-a';
/** A device retrying a Resume: every 100 ms. */
const RETRY: EventuallyOptions = { timeoutMs: WAIT_MS, intervalMs: 100 };

/**
 * Edge 1 holds IMEI_A's session (events 1 seen, 2 waiting in its replay buffer,
 * carrier gone) and is overloaded: with `slow.lagMs` set it handles every device
 * message that late. Edge 2 (bus timeout `claimerTimeoutMs`) is where the device resumes.
 */
async function overloadedHolder(
  t: import('node:test').TestContext,
  engine: 'uws' | 'portable',
  kind: 'ws' | 'poll',
  claimerTimeoutMs: number,
) {
  const bus = new InProcessBus();
  t.after(() => bus.close());
  startEchoTransport(bus);
  const directory = new MemoryDirectory();
  directory.add(IMEI_A, SECRET);
  // lagging: device messages edge 1 holds back now; lateHandled: how many held back it has handled.
  const slow = { lagMs: 0, lagging: 0, lateHandled: 0 };
  const laggingBus: Bus = {
    publish: (subject, data) => bus.publish(subject, data),
    request: (subject, data, options) => bus.request(subject, data, options),
    subscribe: (subject, handler, options) =>
      bus.subscribe(
        subject,
        async (msg) => {
          if (slow.lagMs === 0 || !subject.startsWith('mmgw.device.')) return handler(msg);
          slow.lagging++;
          try {
            await new Promise((r) => setTimeout(r, slow.lagMs));
            return await handler(msg);
          } finally {
            slow.lagging--;
            slow.lateHandled++;
          }
        },
        options,
      ),
    flush: () => bus.flush(),
    close: async () => {},
  };
  const e1 = await startTestEdge(t, {
    engine,
    bus: laggingBus,
    directory,
    nodeId: 'edge-1',
    busTimeoutMs: 300,
  });
  const e2 = await startTestEdge(t, {
    engine,
    bus,
    directory,
    nodeId: 'edge-2',
    busTimeoutMs: claimerTimeoutMs,
  });
  const c1 = await rawClient(kind, e1.port);
  t.after(() => c1.kill());
  const w = await c1.hello(IMEI_A, { secret: SECRET });
  await e1.push(IMEI_A, 'one');
  await c1.waitEvents(1);
  c1.kill();
  await e1.push(IMEI_A, 'two'); // waits in edge 1's replay buffer
  return { bus, directory, slow, e1, e2, w };
}

/** A Resume of `w` on `port` is refused as retryable session.busy (the holder is too slow). */
async function resumeRefusedAsBusy(
  t: import('node:test').TestContext,
  kind: 'ws' | 'poll',
  port: number,
  w: Welcome,
): Promise<void> {
  const c = await rawClient(kind, port);
  t.after(() => c.kill());
  assert.equal(((await c.resumeAnswer(w, 1)) as ErrorFrame).code, 'session.busy');
}

/** The device comes back as told (only session.busy meanwhile) and gets its session with event 2. */
async function resumeGetsEverything(
  t: import('node:test').TestContext,
  kind: 'ws' | 'poll',
  port: number,
  w: Welcome,
): Promise<void> {
  const got = await eventually(
    'the retried resume gets the session',
    async () => {
      const c = await rawClient(kind, port);
      t.after(() => c.kill());
      const a = await c.resumeAnswer(w, 1);
      if (a.kind === Kind.Welcome) return { a, c };
      assert.equal((a as ErrorFrame).code, 'session.busy');
      return undefined;
    },
    RETRY,
  );
  assert.equal(got.a.sessionId, w.sessionId);
  assert.deepEqual(
    (await got.c.waitEvents(1)).map((e: Event) => [e.seq, e.name]),
    [[2, 'two']],
  );
}

async function twoEdges(t: import('node:test').TestContext, engine: 'uws' | 'portable') {
  const bus = new InProcessBus();
  t.after(() => bus.close());
  const transport = startEchoTransport(bus);
  const directory = new MemoryDirectory();
  directory.add(IMEI_A, SECRET);
  directory.add(IMEI_B, 'secret-b');
  const e1 = await startTestEdge(t, { engine, bus, directory, nodeId: 'edge-1', heartbeatMs: 20_000 });
  const e2 = await startTestEdge(t, { engine, bus, directory, nodeId: 'edge-2', heartbeatMs: 20_000 });
  return { bus, transport, directory, e1, e2 };
}

for (const engine of ENGINES) {
  for (const kind of CARRIERS) {
    describe(`edge cluster ${engine} / ${kind}`, () => {
      test('resume on another edge claims the session over the bus, replay and request memory included', async (t) => {
        const { transport, e1, e2 } = await twoEdges(t, engine);
        const c1 = await rawClient(kind, e1.port);
        t.after(() => c1.kill());
        const w = await c1.hello(IMEI_A, { secret: SECRET });
        await e1.push(IMEI_A, 'one');
        await e1.push(IMEI_A, 'two');
        await c1.send({ kind: Kind.Request, id: 'r1', method: 'echo', body: 'once' });
        assert.equal((await c1.nextOf(Kind.Response)).seq, 3);
        await c1.waitEvents(2);
        c1.kill();
        // The device is detached on edge 1; this event waits in edge 1's replay buffer.
        assert.equal(await e1.push(IMEI_A, 'four'), 4);

        const c2 = await rawClient(kind, e2.port);
        t.after(() => c2.kill());
        const w2 = await c2.resume(w, 3);
        assert.equal(w2.sessionId, w.sessionId);
        assert.equal(w2.resumed, true);
        assert.equal(w2.lastSeq, 4);
        assert.deepEqual(
          (await c2.waitEvents(1)).map((e: Event) => [e.seq, e.name]),
          [[4, 'four']],
        );
        assert.equal(e1.edge.sessionCount(), 0);
        assert.equal(e2.edge.sessionCount(), 1);
        assert.equal(await e2.counter('mmgw_edge_resumes_total'), 1);
        // Pushes now reach edge 2 (the device subject moved with the session).
        assert.equal(await e2.push(IMEI_A, 'five'), 5);
        assert.deepEqual(
          (await c2.waitEvents(2)).map((e: Event) => e.seq),
          [4, 5],
        );
        // r1 was answered on edge 1: a repeat is not executed again on edge 2.
        const calls = transport.calls.length;
        await c2.send({ kind: Kind.Request, id: 'r1', method: 'echo', body: 'once' });
        await c2.send({ kind: Kind.Ping, nonce: 5 });
        await c2.nextOf(Kind.Pong);
        assert.equal(transport.calls.length, calls);
      });

      test('a claim with a wrong resume token fails and leaves the holder alone', async (t) => {
        const { e1, e2 } = await twoEdges(t, engine);
        const c1 = await rawClient(kind, e1.port);
        t.after(() => c1.kill());
        const w = await c1.hello(IMEI_A, { secret: SECRET });
        const c2 = await rawClient(kind, e2.port);
        t.after(() => c2.kill());
        const answer = await c2.resumeAnswer({ ...w, resumeToken: 'B'.repeat(22) }, 0);
        assert.equal((answer as ErrorFrame).code, 'auth.resume_failed');
        assert.equal(e1.edge.sessionCount(), 1);
        await e1.push(IMEI_A, 'still-mine');
        assert.equal((await c1.nextOf(Kind.Event)).name, 'still-mine');
        assert.equal(c1.closeInfo, undefined);
      });

      test('a claim the holder does not answer in time is refused as retryable session.busy, not resume_failed', async (t) => {
        const bus = new InProcessBus();
        t.after(() => bus.close());
        startEchoTransport(bus);
        const directory = new MemoryDirectory();
        directory.add(IMEI_A, SECRET);
        directory.add(IMEI_B, 'secret-b');
        const e2 = await startTestEdge(t, { engine, bus, directory, nodeId: 'edge-2', busTimeoutMs: 300 });
        // A holder that is alive but too busy to answer (a reconnect storm): it never replies.
        const stalled = bus.subscribe(Subjects.device(IMEI_A), () => new Promise<never>(() => {}), {
          queue: DEVICE_QUEUE,
        });
        const other = await rawClient(kind, e2.port);
        t.after(() => other.kill());
        await other.hello(IMEI_B, { secret: 'secret-b' });
        const c = await rawClient(kind, e2.port);
        t.after(() => c.kill());
        const session = { sessionId: `${IMEI_A}.s1`, resumeToken: 'A'.repeat(22) } as Welcome;
        const answer = (await c.resumeAnswer(session, 0)) as ErrorFrame;
        assert.equal(answer.code, 'session.busy');
        assert.ok((answer.retryAfterMs ?? 0) >= 500, `retryAfterMs ${answer.retryAfterMs}`);
        assert.equal(await e2.counter('mmgw_edge_resumes_total'), 0);
        assert.equal(await e2.counter('mmgw_edge_resume_failures_total', 'session.busy'), 1);
        // The other device on the same edge did not notice.
        await e2.push(IMEI_B, 'unaffected');
        assert.equal((await other.nextOf(Kind.Event)).name, 'unaffected');
        // Once nobody holds the session (and the first claim gave up), a resume learns the truth: start afresh.
        stalled.unsubscribe();
        const finalAnswer = await eventually(
          'resume_failed once the claim gave up',
          async () => {
            const c3 = await rawClient(kind, e2.port);
            t.after(() => c3.kill());
            const a = (await c3.resumeAnswer(session, 0)) as ErrorFrame;
            assert.ok(['session.busy', 'auth.resume_failed'].includes(a.code), a.code);
            return a.code === 'auth.resume_failed' ? a : undefined;
          },
          RETRY,
        );
        assert.equal(finalAnswer.code, 'auth.resume_failed');
      });

      test('a holder that answers a claim late still hands the session over: the retried resume gets it, nothing lost', async (t) => {
        const { slow, e1, e2, w } = await overloadedHolder(t, engine, kind, 300);
        slow.lagMs = 700; // more than edge 2 lets a Resume wait, less than its claim waits
        await resumeRefusedAsBusy(t, kind, e2.port, w);
        // The late answer arrives meanwhile; the device comes back as told and finds its session.
        await resumeGetsEverything(t, kind, e2.port, w);
        assert.equal(e1.edge.sessionCount(), 0);
      });

      test('a holder that sees a claim after its claimer gave up keeps the session (nothing handed into the void)', async (t) => {
        // Edge 2 waits 100 ms per Resume and 1 s for its claim (whose answer is wanted until 750 ms).
        const { slow, e1, e2, w } = await overloadedHolder(t, engine, kind, 100);
        slow.lagMs = 1500; // edge 1 sees the claim after edge 2 stopped waiting for it
        await resumeRefusedAsBusy(t, kind, e2.port, w);
        // Once edge 1 has worked off the late claim (seen after edge 2 gave up: the lag exceeds
        // its claim wait) and is itself again, the device's next Resume finds the session it kept.
        await eventually(
          'edge 1 worked off the late claim',
          () => slow.lateHandled > 0 && slow.lagging === 0,
          RETRY,
        );
        slow.lagMs = 0;
        await resumeGetsEverything(t, kind, e2.port, w);
        assert.equal(e1.edge.sessionCount(), 0);
      });

      test('a claim made before the device resumed elsewhere cannot take the session from that newer resume', async (t) => {
        const { bus, e1 } = await twoEdges(t, engine);
        const c1 = await rawClient(kind, e1.port);
        t.after(() => c1.kill());
        const w = await c1.hello(IMEI_A, { secret: SECRET });
        c1.kill();
        const madeAt = Date.now() - 1000; // a claim of an attempt the device already gave up on
        const c2 = await rawClient(kind, e1.port);
        t.after(() => c2.kill());
        await c2.resume(w, 0);
        const stale = {
          type: 'claim',
          sessionId: w.sessionId,
          resumeToken: w.resumeToken,
          byNode: 'edge-elsewhere',
          issuedAt: madeAt,
        };
        await assert.rejects(bus.request(Subjects.device(IMEI_A), stale, { timeoutMs: 3000 }), {
          code: 'auth.resume_failed',
        });
        assert.equal(e1.edge.sessionCount(), 1);
        await e1.push(IMEI_A, 'still-here');
        assert.equal((await c2.nextOf(Kind.Event)).name, 'still-here');
        assert.equal(c2.closeInfo, undefined);
      });

      test('a resume retried on a third edge while the first claim is still out gets the session (claims wait for claims)', async (t) => {
        const { bus, directory, slow, e1, e2, w } = await overloadedHolder(t, engine, kind, 300);
        const e3 = await startTestEdge(t, { engine, bus, directory, nodeId: 'edge-3', busTimeoutMs: 3000 });
        slow.lagMs = 700; // more than edge 2 lets a Resume wait, less than its claim waits
        await resumeRefusedAsBusy(t, kind, e2.port, w);
        // The late answer arrives meanwhile; the device comes back as told and finds its session.
        await resumeGetsEverything(t, kind, e3.port, w);
        assert.equal(e1.edge.sessionCount(), 0);
        assert.equal(e2.edge.sessionCount(), 0);
        assert.equal(e3.edge.sessionCount(), 1);
      });

      test('a Hello on another edge takes the device over: session.replaced there', async (t) => {
        const { e1, e2 } = await twoEdges(t, engine);
        const c1 = await rawClient(kind, e1.port);
        t.after(() => c1.kill());
        await c1.hello(IMEI_A, { secret: SECRET });
        const b = await rawClient(kind, e1.port);
        t.after(() => b.kill());
        await b.hello(IMEI_B, { secret: 'secret-b' });
        const c2 = await rawClient(kind, e2.port);
        t.after(() => c2.kill());
        await c2.hello(IMEI_A, { secret: SECRET });
        const bye = await c1.nextOf(Kind.Bye);
        assert.equal(bye.code, 'session.replaced');
        assert.equal(bye.resumable, false);
        assert.equal(e1.edge.sessionCount(), 1, 'only device B is left on edge 1');
        assert.equal(await e2.push(IMEI_A, 'new'), 1);
        assert.equal((await c2.nextOf(Kind.Event)).name, 'new');
        assert.equal(b.closeInfo, undefined);
      });
    });
  }

  describe(`edge cluster ${engine}: drain`, () => {
    test('drain: every carrier gets a resumable Bye, the sessions move, the devices resume on another edge', async (t) => {
      const { e1, e2 } = await twoEdges(t, engine);
      const a = await rawClient('ws', e1.port);
      const b = await rawClient('poll', e1.port);
      t.after(() => {
        a.kill();
        b.kill();
      });
      const wa = await a.hello(IMEI_A, { secret: SECRET });
      const wb = await b.hello(IMEI_B, { secret: 'secret-b' });
      await e1.push(IMEI_A, 'before');
      await a.waitEvents(1);
      await e1.edge.drain('test');
      for (const c of [a, b]) {
        const bye = (await c.nextOf(Kind.Bye)) as Bye;
        assert.equal(bye.code, 'session.draining');
        assert.equal(bye.resumable, true);
        // Two sessions: the smallest spread (drainJitterMs).
        assert.ok(bye.reconnectAfterMs! >= 100 && bye.reconnectAfterMs! < 350);
        await c.waitClosed();
      }
      // New connections are refused while draining.
      await assert.rejects(WsRawClient.connect(e1.port));
      // The drain handed the sessions to the other edge (drain-handover.ts).
      assert.equal(e1.edge.sessionCount(), 0);
      assert.equal(e2.edge.sessionCount(), 2);
      const a2 = await rawClient('ws', e2.port);
      const b2 = await rawClient('poll', e2.port);
      t.after(() => {
        a2.kill();
        b2.kill();
      });
      assert.equal((await a2.resume(wa, 1)).lastSeq, 1);
      assert.equal((await b2.resume(wb, 0)).resumed, true);
      assert.equal(e1.edge.sessionCount(), 0);
      assert.equal(e2.edge.sessionCount(), 2);
    });
  });
}

// ---------------------------------------------------------------------------
// Worker processes sharing one port

const CHILD = fileURLToPath(new URL('./edge-worker-child.ts', import.meta.url));

interface Worker {
  child: ChildProcess;
  port: number;
  ask(msg: string): Promise<Record<string, unknown>>;
}

function startWorker(engine: string, port: number, env: Record<string, string>): Promise<Worker | string> {
  const child = fork(CHILD, [engine, String(port)], {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, ...env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('worker did not start')), WAIT_MS);
    child.once('message', (m: { port?: number; error?: string }) => {
      clearTimeout(timer);
      if (m.error !== undefined) {
        resolve(m.error);
        return;
      }
      resolve({
        child,
        port: m.port!,
        ask: (msg) =>
          new Promise((res) => {
            child.once('message', (answer) => res(answer as Record<string, unknown>));
            child.send(msg);
          }),
      });
    });
    child.once('exit', (code) => reject(new Error(`worker exited with ${code}`)));
  });
}

async function hasCompiler(): Promise<boolean> {
  try {
    await buildReusePortPreload();
    return true;
  } catch (err) {
    if (err instanceof GatewayError) return false;
    throw err;
  }
}

describe('edge worker processes sharing one port', { skip: process.platform !== 'linux' }, () => {
  for (const engine of ENGINES) {
    test(`${engine}: two worker processes listen on one port and both take sessions`, async (t) => {
      if (!(await hasCompiler())) {
        t.skip('no C compiler for the SO_REUSEPORT preload');
        return;
      }
      const workers: Worker[] = [];
      t.after(() => {
        for (const w of workers) w.child.kill();
      });
      const first = await startWorker(engine, 0, await reusePortEnv('*'));
      assert.notEqual(typeof first, 'string', String(first));
      workers.push(first as Worker);
      const port = (first as Worker).port;
      const second = await startWorker(engine, port, await reusePortEnv(port));
      assert.notEqual(typeof second, 'string', String(second));
      workers.push(second as Worker);
      assert.equal((second as Worker).port, port);

      // Connections spread over both (by the kernel's hash of the source port).
      const clients = [];
      for (let i = 0; i < 24; i++) {
        const c = await WsRawClient.connect(port);
        t.after(() => c.kill());
        await c.hello(`35693803564${String(1000 + i)}`, { secret: 's' });
        clients.push(c);
      }
      const counts = await Promise.all(workers.map(async (w) => (await w.ask('count')).sessions as number));
      assert.equal(
        counts.reduce((x, y) => x + y, 0),
        24,
      );
      assert.ok(
        counts.every((n) => n > 0),
        `both workers took sessions: ${counts}`,
      );
    });
  }

  test('without the preload a second worker is refused with a clear config error', async (t) => {
    const workers: Worker[] = [];
    t.after(() => {
      for (const w of workers) w.child.kill();
    });
    if (!(await hasCompiler())) {
      t.skip('no C compiler for the SO_REUSEPORT preload');
      return;
    }
    const first = (await startWorker('uws', 0, await reusePortEnv('*'))) as Worker;
    workers.push(first);
    const refused = await startWorker('uws', first.port, { LD_PRELOAD: '', MMGW_REUSEPORT_PORTS: '' });
    assert.equal(typeof refused, 'string');
    assert.match(refused as string, /SO_REUSEPORT/);
  });
});
