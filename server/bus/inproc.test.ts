import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { GatewayError } from '../../device-protocol/errors.ts';
import type { BusMessage } from './bus.ts';
import { decodePayload } from './codec.ts';
import { InProcessBus } from './inproc.ts';

const isCode = (code: string) => (err: unknown) => err instanceof GatewayError && err.code === code;

function collector<T = unknown>(): { items: T[]; handler: (m: BusMessage) => void } {
  const items: T[] = [];
  return { items, handler: (m) => void items.push(m.data as T) };
}

describe('InProcessBus', () => {
  test('delivery is asynchronous, like a network', async () => {
    const bus = new InProcessBus();
    const got = collector();
    bus.subscribe('a.b', got.handler);
    bus.publish('a.b', 1);
    assert.deepEqual(got.items, []);
    await bus.flush();
    assert.deepEqual(got.items, [1]);
    await bus.close();
  });

  test('wildcards: * is one token, > is one or more, exact subjects match only themselves', async () => {
    const bus = new InProcessBus();
    const exact = collector<string>();
    const star = collector<string>();
    const tail = collector<string>();
    const mid = collector<string>();
    bus.subscribe('dev.x', exact.handler);
    bus.subscribe('dev.*', star.handler);
    bus.subscribe('dev.>', tail.handler);
    bus.subscribe('*.x.*', mid.handler);
    for (const s of ['dev.x', 'dev.y', 'dev.x.y', 'dev', 'other.x.z', 'dev.x.y.z']) bus.publish(s, s);
    await bus.flush();
    assert.deepEqual(exact.items, ['dev.x']);
    assert.deepEqual(star.items, ['dev.x', 'dev.y']);
    assert.deepEqual(tail.items, ['dev.x', 'dev.y', 'dev.x.y', 'dev.x.y.z']);
    assert.deepEqual(mid.items, ['dev.x.y', 'other.x.z']);
    await bus.close();
  });

  test('bad subjects are refused', () => {
    const bus = new InProcessBus();
    for (const s of ['', 'a..b', 'a.>.b', 'a.b*', 'a b']) {
      assert.throws(() => bus.subscribe(s, () => {}), isCode('bus.bad_message'), s);
    }
    assert.throws(() => bus.publish('a.*', 1), isCode('bus.bad_message'));
    assert.throws(() => bus.publish('', 1), isCode('bus.bad_message'));
  });

  test('a queue group spreads messages round robin and each goes to one member only', async () => {
    const bus = new InProcessBus();
    const members = [collector<number>(), collector<number>(), collector<number>()];
    for (const m of members) bus.subscribe('work', m.handler, { queue: 'g' });
    const other = collector<number>();
    bus.subscribe('work', other.handler, { queue: 'h' });
    for (let i = 0; i < 30; i++) bus.publish('work', i);
    await bus.flush();
    assert.deepEqual(
      members.map((m) => m.items.length),
      [10, 10, 10],
    );
    assert.deepEqual(
      members.flatMap((m) => m.items).sort((a, b) => a - b),
      Array.from({ length: 30 }, (_, i) => i),
    );
    assert.equal(other.items.length, 30);
    await bus.close();
  });

  test('no subscriber: no_responders at once, even with a long timeout', async () => {
    const bus = new InProcessBus();
    bus.subscribe('elsewhere', () => 1);
    await assert.rejects(bus.request('nobody.here', 1, { timeoutMs: 600_000 }), isCode('bus.no_responders'));
    await bus.close();
  });

  test('a silent handler: bus.timeout', async () => {
    const bus = new InProcessBus();
    bus.subscribe('slow', () => new Promise(() => {}));
    await assert.rejects(bus.request('slow', 1, { timeoutMs: 20 }), isCode('bus.timeout'));
    await bus.close();
  });

  test("a handler's GatewayError comes back with its code and message", async () => {
    const bus = new InProcessBus();
    bus.subscribe('e', () => {
      throw new GatewayError('auth.disabled', 'disabled by operator');
    });
    await assert.rejects(
      bus.request('e', 1),
      (err: unknown) =>
        err instanceof GatewayError && err.code === 'auth.disabled' && err.message === 'disabled by operator',
    );
    await bus.close();
  });

  test('the first answer wins when several plain subscribers answer a request', async () => {
    const bus = new InProcessBus();
    bus.subscribe('multi', () => 'first');
    bus.subscribe('multi', () => 'second');
    assert.equal(await bus.request('multi', null), 'first');
    await bus.close();
  });

  test('encoding isolation: subscribers and the sender share no objects', async () => {
    const bus = new InProcessBus();
    const seen: { list: number[]; bytes: Uint8Array }[] = [];
    bus.subscribe('iso', (m) => {
      const d = m.data as { list: number[]; bytes: Uint8Array };
      d.list.push(4);
      d.bytes[0] = 0;
      seen.push(d);
    });
    bus.subscribe('iso', (m) => void seen.push(m.data as { list: number[]; bytes: Uint8Array }));
    const sent = { list: [1, 2, 3], bytes: new Uint8Array([5, 6]) };
    bus.publish('iso', sent);
    sent.list.push(99);
    await bus.flush();
    assert.deepEqual(seen[1], { list: [1, 2, 3], bytes: new Uint8Array([5, 6]) });
    assert.deepEqual(sent.bytes, new Uint8Array([5, 6]));
    await bus.close();
  });

  test('encoding isolation holds for large binaries too: fanned-out bytes are copies, a lone receiver owns its own', async () => {
    const bus = new InProcessBus();
    const size = 256 * 1024;
    const seen: Uint8Array[] = [];
    bus.subscribe('big', (m) => {
      const bytes = (m.data as { bytes: Uint8Array }).bytes;
      bytes.fill(0);
      seen.push(bytes);
    });
    bus.subscribe('big', (m) => void seen.push((m.data as { bytes: Uint8Array }).bytes));
    const sent = new Uint8Array(size).fill(5);
    bus.publish('big', { bytes: sent });
    await bus.flush();
    assert.equal(seen.length, 2);
    assert.equal(seen[0]![0], 0);
    assert.ok(
      seen[1]!.every((b) => b === 5),
      'the second subscriber saw the first one write',
    );
    assert.notEqual(seen[0]!.buffer, seen[1]!.buffer);
    assert.ok(sent.every((b) => b === 5));
    // Request/reply with one responder: the handler's change stays in its own bytes.
    bus.subscribe('echo', (m) => {
      const bytes = (m.data as { bytes: Uint8Array }).bytes;
      const copy = new Uint8Array(bytes);
      bytes.fill(1);
      return { bytes: copy };
    });
    const reply = await bus.request<{ bytes: Uint8Array }>('echo', { bytes: sent });
    assert.ok(reply.bytes.every((b) => b === 5));
    assert.ok(sent.every((b) => b === 5));
    await bus.close();
  });

  test("a request's transfer list: a whole binary is moved to the one receiver, the sender's view detached", async () => {
    const bus = new InProcessBus();
    const received: Uint8Array[] = [];
    bus.subscribe('move', (m) => {
      const d = m.data as { source: Uint8Array; part: Uint8Array; n: number };
      received.push(d.source);
      return { sum: d.source.reduce((s, b) => s + b, 0), part: [...d.part], n: d.n };
    });
    const source = new Uint8Array(300_000).map((_, i) => i % 7);
    const expectedSum = source.reduce((s, b) => s + b, 0);
    const backing = new Uint8Array([9, 8, 7, 6, 5]);
    const part = backing.subarray(1, 3);
    const answer = bus.request('move', { source, part, n: 1 }, { transfer: [source, part] });
    assert.equal(source.byteLength, 0, "the sender's view is detached when request() returns");
    assert.deepEqual([...part], [8, 7], 'a view of part of a buffer is copied: the sender keeps it');
    assert.deepEqual(await answer, { sum: expectedSum, part: [8, 7], n: 1 });
    assert.equal(received[0]!.byteLength, 300_000);
    await bus.close();
  });

  test('a transfer list with several subscribers: each gets its own copy, a raw one self-contained bytes', async () => {
    const bus = new InProcessBus();
    const seen: Uint8Array[] = [];
    bus.subscribe('fan', (m) => {
      const bytes = (m.data as { source: Uint8Array }).source;
      seen.push(bytes);
      bytes.fill(0);
      return 'first';
    });
    bus.subscribe('fan', (m) => void seen.push((m.data as { source: Uint8Array }).source));
    const raw: Uint8Array[] = [];
    bus.subscribeRaw('fan', (_subject, bytes) => void raw.push(bytes));
    const source = new Uint8Array(200_000).fill(4);
    assert.equal(await bus.request('fan', { source }, { transfer: [source] }), 'first');
    await bus.flush();
    assert.equal(source.byteLength, 0);
    assert.equal(seen.length, 2);
    assert.notEqual(seen[0]!.buffer, seen[1]!.buffer);
    assert.ok(
      seen[1]!.every((b) => b === 4),
      'the second subscriber saw the first one write',
    );
    assert.equal(raw.length, 1);
    const decoded = decodePayload(raw[0]!) as { source: Uint8Array };
    assert.equal(decoded.source.byteLength, 200_000);
    assert.ok(decoded.source.every((b) => b === 4));
    await bus.close();
  });

  test('a moved binary routed to a queue member that left goes with the message to another member', async () => {
    const bus = new InProcessBus();
    const leaving = bus.subscribe('q.move', () => 'left', { queue: 'g' });
    bus.subscribe('q.move', (m) => (m.data as { source: Uint8Array }).source.byteLength, { queue: 'g' });
    const source = new Uint8Array(100_000);
    const answer = bus.request('q.move', { source }, { transfer: [source] });
    leaving.unsubscribe();
    assert.equal(await answer, 100_000);
    await bus.close();
  });

  test('a message whose subscriber unsubscribed before delivery is not delivered', async () => {
    const bus = new InProcessBus();
    const got = collector();
    const sub = bus.subscribe('late', got.handler);
    bus.publish('late', 1);
    sub.unsubscribe();
    await bus.flush();
    assert.deepEqual(got.items, []);
    assert.equal(bus.subscriptionCount(), 0);
    await bus.close();
  });

  test('close rejects pending requests with bus.closed and refuses new work', async () => {
    const bus = new InProcessBus();
    bus.subscribe('hang', () => new Promise(() => {}));
    const pending = bus.request('hang', 1, { timeoutMs: 60_000 });
    await bus.flush();
    await bus.close();
    await assert.rejects(pending, isCode('bus.closed'));
    assert.throws(() => bus.subscribe('x', () => {}), isCode('bus.closed'));
    assert.throws(() => bus.publish('x', 1), isCode('bus.closed'));
    await assert.rejects(bus.request('x', 1), isCode('bus.closed'));
  });

  test('many devices: exact subjects stay a map lookup (100k subscriptions, requests still answered)', async () => {
    const bus = new InProcessBus();
    let seq = 0;
    const subs = [];
    for (let i = 0; i < 100_000; i++) subs.push(bus.subscribe(`mmgw.device.${i}`, () => ({ seq: ++seq })));
    const answers = await Promise.all(
      Array.from({ length: 1000 }, (_, i) => bus.request<{ seq: number }>(`mmgw.device.${i * 97}`, { i })),
    );
    assert.equal(new Set(answers.map((a) => a.seq)).size, 1000);
    for (const s of subs) s.unsubscribe();
    assert.equal(bus.subscriptionCount(), 0);
    await bus.close();
  });
});
