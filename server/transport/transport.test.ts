import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import pino from 'pino';
import { GatewayError } from '../../device-protocol/errors.ts';
import { type DeviceMessage, Subjects } from '../bus/bus.ts';
import { InProcessBus } from '../bus/inproc.ts';
import { z } from 'zod';
import { parseTransportRequest, startTransport } from './index.ts';
import { noInput } from './kit/method-input.ts';
import type { MethodDefinition, TransportRequest } from './types.ts';

const logger = pino({ level: 'silent' });
const isCode = (code: string, field?: string) => (err: unknown) =>
  err instanceof GatewayError && err.code === code && (field === undefined || err.field === field);

async function setup(methods: MethodDefinition<any>[] = []) {
  const bus = new InProcessBus();
  const dataDir = mkdtempSync(join(tmpdir(), 'mmgw-transport-'));
  const transport = await startTransport({ bus, nodeId: 'node-t1', logger, dataDir, methods });
  const ask = (method: string, body?: unknown, deviceId = 'dev-1') =>
    bus.request(Subjects.transportRequest('node-t1'), {
      deviceId,
      sessionId: 's-1',
      id: `r-${Math.random()}`,
      method,
      body: body as TransportRequest['body'],
    } satisfies TransportRequest);
  return {
    bus,
    transport,
    ask,
    async close() {
      await transport.close();
      await bus.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** A stand-in for the edge holding one device's session: assigns seqs, notes what arrived. */
function fakeEdge(bus: InProcessBus, deviceId: string, opts: { goneAfter?: number } = {}) {
  const events: { name: string; body: unknown }[] = [];
  let seq = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  let waiter: { n: number; resolve(): void } | undefined;
  const sub = bus.subscribe(Subjects.device(deviceId), async (msg) => {
    const m = msg.data as DeviceMessage;
    assert.equal(m.type, 'event');
    if (m.type !== 'event') return undefined;
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    await new Promise((r) => setTimeout(r, 1));
    inFlight--;
    events.push({ name: m.name, body: m.body });
    if (opts.goneAfter !== undefined && events.length >= opts.goneAfter) sub.unsubscribe();
    if (waiter && events.length >= waiter.n) waiter.resolve();
    return { seq: ++seq };
  });
  return {
    events,
    maxInFlight: () => maxInFlight,
    wait: (n: number) =>
      events.length >= n ? Promise.resolve() : new Promise<void>((resolve) => (waiter = { n, resolve })),
  };
}

describe('transport', () => {
  test('sys.echo answers with the body, bytes included', async () => {
    const t = await setup();
    try {
      const body = { text: 'hi', bytes: new Uint8Array([1, 2, 3]), list: [1, null] };
      assert.deepEqual(await t.ask('sys.echo', body), body);
      assert.equal(await t.ask('sys.echo'), undefined);
    } finally {
      await t.close();
    }
  });

  test('sys.info names the node', async () => {
    const t = await setup();
    try {
      assert.deepEqual(await t.ask('sys.info'), { nodeId: 'node-t1' });
    } finally {
      await t.close();
    }
  });

  test('an unknown method is request.unknown_method', async () => {
    const t = await setup();
    try {
      await assert.rejects(t.ask('sys.nope'), isCode('request.unknown_method'));
    } finally {
      await t.close();
    }
  });

  test('a malformed transport request is request.bad_input naming the field', async () => {
    const t = await setup();
    try {
      const subject = Subjects.transportRequest('node-t1');
      await assert.rejects(t.bus.request(subject, 'nope'), isCode('request.bad_input'));
      await assert.rejects(
        t.bus.request(subject, { deviceId: 'd', sessionId: 's', id: 'i' }),
        isCode('request.bad_input', 'method'),
      );
      await assert.rejects(
        t.bus.request(subject, { deviceId: '', sessionId: 's', id: 'i', method: 'sys.echo' }),
        isCode('request.bad_input', 'deviceId'),
      );
    } finally {
      await t.close();
    }
  });

  test('a transport request keeps its body and an object caps, and only those', () => {
    const base = { deviceId: 'd', sessionId: 's', id: 'i', method: 'sys.echo' };
    assert.deepEqual(parseTransportRequest({ ...base, extra: 1 }), base);
    assert.deepEqual(parseTransportRequest({ ...base, body: 0, caps: { maxImageWidth: 9 } }), {
      ...base,
      body: 0,
      caps: { maxImageWidth: 9 },
    });
    assert.deepEqual(parseTransportRequest({ ...base, caps: [1] }), base);
    assert.throws(
      () => parseTransportRequest({ ...base, id: 'x'.repeat(257) }),
      isCode('request.bad_input', 'id'),
    );
    assert.throws(() => parseTransportRequest([base]), isCode('request.bad_input', 'request'));
  });

  test('sys.stream refuses bad input, naming the field', async () => {
    const t = await setup();
    try {
      await assert.rejects(t.ask('sys.stream'), isCode('request.bad_input'));
      await assert.rejects(t.ask('sys.stream', { count: -1 }), isCode('request.bad_input', 'count'));
      await assert.rejects(t.ask('sys.stream', { count: 1.5 }), isCode('request.bad_input', 'count'));
      await assert.rejects(t.ask('sys.stream', { count: 2, from: 'x' }), isCode('request.bad_input', 'from'));
      await assert.rejects(
        t.ask('sys.stream', { count: 2, intervalMs: 10 ** 9 }),
        isCode('request.bad_input', 'intervalMs'),
      );
    } finally {
      await t.close();
    }
  });

  test('sys.stream answers at once, then pushes every tick in order, one at a time', async () => {
    const t = await setup();
    try {
      const edge = fakeEdge(t.bus, 'dev-1');
      assert.deepEqual(await t.ask('sys.stream', { count: 50, from: 7 }), {
        accepted: true,
        from: 7,
        count: 50,
      });
      await edge.wait(50);
      assert.deepEqual(
        edge.events,
        Array.from({ length: 50 }, (_, i) => ({ name: 'sys.tick', body: { n: 7 + i } })),
      );
      assert.equal(edge.maxInFlight(), 1, 'each push waits for the edge before the next');
    } finally {
      await t.close();
    }
  });

  test('sys.stream stops when the device session is gone', async () => {
    const t = await setup();
    try {
      const edge = fakeEdge(t.bus, 'dev-2', { goneAfter: 5 });
      await t.ask('sys.stream', { count: 100 }, 'dev-2');
      await edge.wait(5);
      // Let the stream notice (its next push has no responders), then check nothing more came.
      for (let i = 0; i < 20; i++) await t.bus.flush();
      assert.deepEqual(
        edge.events.map((e) => (e.body as { n: number }).n),
        [1, 2, 3, 4, 5],
      );
      assert.deepEqual(await t.ask('sys.echo', 'still fine'), 'still fine');
    } finally {
      await t.close();
    }
  });

  test('more methods register through the methods option; a duplicate name is refused', async () => {
    const shout: MethodDefinition<string> = {
      method: 'test.shout',
      input: z.string(),
      async handle(ctx, input) {
        return `${input.toUpperCase()} from ${ctx.deviceId} at ${ctx.now() > 0}`;
      },
    };
    const t = await setup([shout]);
    try {
      assert.equal(await t.ask('test.shout', 'hey'), 'HEY from dev-1 at true');
      await assert.rejects(t.ask('test.shout', 1), isCode('request.bad_input', 'body'));
      assert.ok(t.transport.registry.names().includes('sys.echo'));
    } finally {
      await t.close();
    }
    const bus = new InProcessBus();
    await assert.rejects(
      startTransport({ bus, nodeId: 'n', logger, dataDir: '/nonexistent', methods: [shout, shout] }),
      isCode('config.invalid'),
    );
    await bus.close();
  });

  test('a method that throws something else is internal', async () => {
    const broken: MethodDefinition<undefined> = {
      method: 'test.broken',
      input: noInput,
      handle: async () => {
        throw new Error('oops');
      },
    };
    const t = await setup([broken]);
    try {
      await assert.rejects(t.ask('test.broken'), isCode('internal'));
    } finally {
      await t.close();
    }
  });

  test('after close the node no longer answers', async () => {
    const t = await setup();
    await t.transport.close();
    await assert.rejects(t.ask('sys.echo', 1), isCode('bus.no_responders'));
    await t.close();
  });
});

/** test.slow: answers { done: true } once release() is called; `started` resolves when it runs. */
function slowMethod() {
  let open!: () => void;
  let begun!: () => void;
  const started = new Promise<void>((r) => (begun = r));
  const slow: MethodDefinition<undefined> = {
    method: 'test.slow',
    input: noInput,
    async handle() {
      begun();
      await new Promise<void>((r) => (open = r));
      return { done: true };
    },
  };
  return { slow, started, release: () => open() };
}

describe('close', () => {
  test('takes no new request and waits for those under way before it resolves', async () => {
    const { slow, started, release } = slowMethod();
    const t = await setup([slow]);
    try {
      const answer = t.ask('test.slow');
      await started;
      let closed = false;
      const closing = t.transport.close().then(() => (closed = true));
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(closed, false, 'close waits for the request under way');
      await assert.rejects(t.ask('test.slow'), isCode('bus.no_responders'));
      release();
      assert.deepEqual(await answer, { done: true });
      await closing;
      assert.equal(closed, true);
    } finally {
      await t.close();
    }
  });
});

test('settledFor waits for that device’s requests under way only, and at most its bound', async () => {
  const { slow, started, release } = slowMethod();
  const t = await setup([slow]);
  try {
    const answer = t.ask('test.slow', undefined, 'dev-1');
    await started;
    await t.transport.settledFor('dev-2', 60_000); // another device: nothing under way, at once
    let settled = false;
    const waiting = t.transport.settledFor('dev-1', 60_000).then(() => (settled = true));
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(settled, false, 'waits for dev-1’s request');
    await t.transport.settledFor('dev-1', 10); // bounded
    release();
    assert.deepEqual(await answer, { done: true });
    await waiting;
    assert.equal(settled, true);
  } finally {
    await t.close();
  }
});

test('a request with the edge’s budget gives the method its deadline; parse refuses a bad one', async () => {
  const seen: (number | undefined)[] = [];
  const probe: MethodDefinition<undefined> = {
    method: 'test.deadline',
    input: noInput,
    async handle(ctx) {
      seen.push(ctx.deadline === undefined ? undefined : ctx.deadline - ctx.now());
      return {};
    },
  };
  const t = await setup([probe]);
  try {
    await t.bus.request(Subjects.transportRequest('node-t1'), {
      deviceId: 'dev-1',
      sessionId: 's-1',
      id: 'r-1',
      method: 'test.deadline',
      budgetMs: 30_000,
    } satisfies TransportRequest);
    await t.ask('test.deadline');
    assert.equal(seen.length, 2);
    assert.ok(seen[0] !== undefined && seen[0] > 29_000 && seen[0] <= 30_000, `deadline in ${seen[0]} ms`);
    assert.equal(seen[1], undefined, 'no budget, no deadline');
    assert.throws(
      () => parseTransportRequest({ deviceId: 'd', sessionId: 's', id: 'i', method: 'm', budgetMs: -5 }),
      isCode('request.bad_input'),
    );
  } finally {
    await t.close();
  }
});
