/**
 * One bus conformance suite (bus-conformance.ts), three implementations:
 * in-process, NATS against a real nats-server, and IPC with the cases running
 * in a forked child whose bus goes through this process's broker.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, fork } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { createConnection } from 'node:net';
import { fileURLToPath } from 'node:url';
import { GatewayError } from '../../device-protocol/errors.ts';
import { InProcessBus } from '../../server/bus/inproc.ts';
import { serveIpcBus } from '../../server/bus/ipc.ts';
import { connectNatsBus } from '../../server/bus/nats.ts';
import { eventually } from '../../testing/index.ts';
import { type NatsServerHandle, startNatsServer } from '../harness/nats.ts';
import { type BusFactory, conformanceCases, runCase } from './bus-conformance.ts';

const childScript = fileURLToPath(new URL('./bus-conformance-child.ts', import.meta.url));

describe('bus conformance: in-process', () => {
  const factory: BusFactory = async () => {
    const bus = new InProcessBus();
    return { a: bus, b: bus, close: () => bus.close() };
  };
  for (const c of conformanceCases) test(c.name, () => runCase(factory, c));
});

describe('bus conformance: NATS (real nats-server, two connections)', () => {
  let nats: NatsServerHandle | undefined;
  before(async () => {
    nats = await startNatsServer();
  });
  after(async () => {
    await nats?.stop();
  });
  const factory: BusFactory = async () => {
    const a = await connectNatsBus({ servers: nats!.url, name: 'conformance-a' });
    const b = await connectNatsBus({ servers: nats!.url, name: 'conformance-b' });
    return {
      a,
      b,
      async close() {
        await a.close();
        await b.close();
      },
    };
  };
  for (const c of conformanceCases) test(c.name, () => runCase(factory, c));

  test('a transfer list is ignored: the bytes are sent and the requester keeps its binaries', async () => {
    const { a, b, close } = await factory();
    try {
      b.subscribe('conf.transfer.nats', (msg) => (msg.data as { source: Uint8Array }).source.byteLength);
      await b.flush();
      const source = new Uint8Array(200 * 1024).fill(7);
      assert.equal(await a.request('conf.transfer.nats', { source }, { transfer: [source] }), 200 * 1024);
      assert.equal(source.byteLength, 200 * 1024);
      assert.ok(source.every((x) => x === 7));
    } finally {
      await close();
    }
  });

  test('connecting to a server that is not there fails with a clear bus error', async () => {
    await assert.rejects(
      connectNatsBus({ servers: 'nats://127.0.0.1:1', connectTimeoutMs: 2000 }),
      (err: unknown) =>
        err instanceof GatewayError && err.code === 'bus.closed' && /127\.0\.0\.1:1/.test(err.message),
    );
  });
});

describe('NATS bus: every server down for a while (issue 12)', () => {
  test('a publish and a request made while it is down go out when it is back; one in flight fails at once', async (t) => {
    let nats = await startNatsServer();
    const port = nats.port;
    const a = await connectNatsBus({ servers: nats.url, name: 'outage-a' });
    const b = await connectNatsBus({ servers: nats.url, name: 'outage-b' });
    t.after(async () => {
      await a.close();
      await b.close();
      await nats.stop();
    });
    const published: unknown[] = [];
    b.subscribe('outage.pub', (msg) => {
      published.push(msg.data);
    });
    b.subscribe('outage.echo', (msg) => msg.data);
    b.subscribe('outage.never', () => new Promise(() => {}));
    await b.flush();
    const aDown = new Promise<void>((resolve) => a.onConnection?.((up) => up || resolve()));
    // Settled into a value at once: it fails while the server is being stopped.
    const inFlight = a.request('outage.never', 'x', { timeoutMs: 60_000 }).then(
      () => undefined,
      (err: unknown) => err,
    );
    await a.flush();
    await nats.stop();
    await aDown;
    const err = await inFlight;
    assert.ok(err instanceof GatewayError, String(err));
    assert.equal(err.code, 'bus.timeout');
    assert.match(err.message, /connection went/);
    assert.equal(err.retryable, true);
    a.publish('outage.pub', { n: 1 });
    a.publish('outage.pub', { n: 2 });
    const asked = a.request('outage.echo', { n: 3 }, { timeoutMs: 60_000 });
    nats = await startNatsServer({ port });
    assert.deepEqual(await asked, { n: 3 });
    await eventually('held publishes delivered', () => published.length === 2, { timeoutMs: 10_000 });
    assert.deepEqual(published, [{ n: 1 }, { n: 2 }]);
  });

  test('a request whose time runs out while it is down fails with a retryable bus.timeout', async (t) => {
    const nats = await startNatsServer();
    const a = await connectNatsBus({ servers: nats.url, name: 'outage-c' });
    t.after(() => a.close());
    const aDown = new Promise<void>((resolve) => a.onConnection?.((up) => up || resolve()));
    await nats.stop();
    await aDown;
    await assert.rejects(a.request('outage.echo', 1, { timeoutMs: 300 }), (err: unknown) => {
      assert.ok(err instanceof GatewayError);
      assert.equal(err.code, 'bus.timeout');
      assert.match(err.message, /connection is down/);
      return true;
    });
  });
});

interface ChildResult {
  name?: string;
  ok?: boolean;
  error?: string;
  done?: boolean;
  fromParent?: unknown;
}

/** Forks the conformance child and collects its results by case name. */
function forkChild(
  serialization: 'advanced' | 'json',
  args: string[] = [],
): {
  broker: InProcessBus;
  child: ChildProcess;
  result(name: string): Promise<ChildResult>;
  stop(): Promise<void>;
} {
  const broker = new InProcessBus();
  const child = fork(childScript, args, { execArgv: ['--import', 'tsx'], serialization, stdio: 'inherit' });
  const stopServing = serveIpcBus(broker, child);
  const waiting = new Map<string, (r: ChildResult) => void>();
  const results = new Map<string, ChildResult>();
  let exitError: Error | undefined;
  const settle = (name: string, r: ChildResult): void => {
    results.set(name, r);
    waiting.get(name)?.(r);
    waiting.delete(name);
  };
  child.on('message', (m: { conformance?: ChildResult }) => {
    const r = m?.conformance;
    if (r?.name !== undefined) settle(r.name, r);
  });
  child.on('exit', (code, signal) => {
    exitError = new Error(`conformance child exited (code ${code}, signal ${signal}) before reporting`);
    for (const [name] of waiting) settle(name, { name, ok: false, error: exitError.message });
  });
  return {
    broker,
    child,
    result(name) {
      const r = results.get(name);
      if (r) return Promise.resolve(r);
      if (exitError) return Promise.resolve({ name, ok: false, error: exitError.message });
      return new Promise((resolve) => waiting.set(name, resolve));
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        if (child.connected) child.send({ conformance: 'exit' }, () => undefined);
        await exited;
        clearTimeout(timer);
      }
      stopServing();
      await broker.close();
    },
  };
}

for (const serialization of ['advanced', 'json'] as const) {
  describe(`bus conformance: IPC (child process, ${serialization} serialization)`, () => {
    let run: ReturnType<typeof forkChild> | undefined;
    before(() => {
      run = forkChild(serialization);
    });
    after(async () => {
      await run?.stop();
    });
    for (const c of conformanceCases) {
      test(c.name, async () => {
        const r = await run!.result(c.name);
        assert.ok(r.ok, r.error);
      });
    }
    test('once the child is gone, none of its subscriptions is left in the broker', async () => {
      await run!.result(conformanceCases[conformanceCases.length - 1]!.name);
      if (run!.child.exitCode === null) await new Promise((r) => run!.child.once('exit', r));
      assert.equal(run!.broker.subscriptionCount(), 0);
    });
  });
}

test('IPC: the primary and a child process request each other', async (t) => {
  const run = forkChild('advanced', ['cross']);
  t.after(() => run.stop());
  run.broker.subscribe('xproc.parent.echo', (msg) => ({ parent: process.pid, echo: msg.data }));
  const r = await run.result('cross');
  assert.ok(r.ok, r.error);
  assert.deepEqual(r.fromParent, { parent: process.pid, echo: { bytes: new Uint8Array([9, 8, 7]) } });
  const fromChild = await run.broker.request<{ child: number; echo: unknown }>('xproc.child.echo', 'hi');
  assert.equal(fromChild.child, run.child.pid);
  assert.equal(fromChild.echo, 'hi');
});

test('IPC: a child that exits leaves no subscription behind in the broker', async () => {
  const run = forkChild('advanced', ['cross']);
  try {
    run.broker.subscribe('xproc.parent.echo', () => 'ok');
    await run.result('cross');
    assert.equal(run.broker.subscriptionCount(), 2);
    const exited = new Promise((r) => run.child.once('exit', r));
    run.child.kill('SIGKILL');
    await exited;
    await rejectsNoResponders(run.broker.request('xproc.child.echo', 1));
  } finally {
    await run.stop();
  }
});

async function rejectsNoResponders(p: Promise<unknown>): Promise<void> {
  await assert.rejects(p, (err: unknown) => err instanceof GatewayError && err.code === 'bus.no_responders');
}

test('harness: nats-server with JetStream starts on a free port and stops by pid', async () => {
  const nats = await startNatsServer({ jetstream: true });
  try {
    const info = await new Promise<string>((resolve, reject) => {
      const socket = createConnection({ host: '127.0.0.1', port: nats.port });
      socket.once('error', reject);
      socket.once('data', (chunk) => {
        socket.destroy();
        resolve(chunk.toString('latin1'));
      });
    });
    assert.match(info, /^INFO /);
    assert.match(info, /"jetstream":true/);
    assert.equal(nats.url, `nats://127.0.0.1:${nats.port}`);
  } finally {
    await nats.stop();
  }
  assert.throws(() => process.kill(nats.pid, 0), /ESRCH/);
});
