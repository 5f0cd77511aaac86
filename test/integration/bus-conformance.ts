/**
 * The bus conformance suite, written once and run against every Bus
 * implementation (in-process, NATS, IPC). Each case gets two buses, `a` and
 * `b`, connected to the same broker (they may be the same object for the
 * in-process bus); it throws on failure. Cases do not depend on node:test so
 * the IPC run can execute them inside a forked child process.
 */
import assert from 'node:assert/strict';
import { GatewayError } from '../../device-protocol/errors.ts';
import type { Bus, BusMessage } from '../../server/bus/bus.ts';
import { eventually } from '../../testing/index.ts';

export interface BusPair {
  a: Bus;
  b: Bus;
}

export interface BusEnvironment extends BusPair {
  close(): Promise<void>;
}

export type BusFactory = () => Promise<BusEnvironment>;

export interface ConformanceCase {
  name: string;
  run(pair: BusPair): Promise<void>;
}

/** Generous bound that only keeps a broken implementation from hanging the run. */
const WAIT_MS = 10_000;

/** Collects what a subscriber got and lets a test wait for a count. */
class Inbox<T = unknown> {
  readonly items: T[] = [];
  private waiters: { n: number; resolve(): void }[] = [];

  push = (msg: BusMessage): void => {
    this.items.push(msg.data as T);
    this.waiters = this.waiters.filter((w) => {
      if (this.items.length < w.n) return true;
      w.resolve();
      return false;
    });
  };

  async wait(n: number): Promise<T[]> {
    if (this.items.length < n) {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`waited for ${n} messages, got ${this.items.length}`)),
          WAIT_MS,
        );
        this.waiters.push({
          n,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        });
      });
    }
    return this.items;
  }
}

async function rejectsWithCode(promise: Promise<unknown>, code: string): Promise<GatewayError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof GatewayError, `expected GatewayError ${code}, got ${String(err)}`);
    assert.equal(err.code, code, `expected ${code}, got ${err.code}: ${err.message}`);
    return err;
  }
  assert.fail(`expected a rejection with ${code}`);
}

let unique = 0;
function subjectFor(name: string): string {
  unique++;
  return `conf.${process.pid}.${unique}.${name}`;
}

export const conformanceCases: ConformanceCase[] = [
  {
    name: 'publish reaches a subscriber; payloads (bytes included) round trip',
    async run({ a, b }) {
      const subject = subjectFor('pub');
      const inbox = new Inbox();
      b.subscribe(subject, inbox.push);
      await b.flush();
      const payload = { text: 'héllo', n: 3, bytes: new Uint8Array([0, 1, 255]), list: [null, true, 1.5] };
      a.publish(subject, payload);
      const [got] = await inbox.wait(1);
      assert.deepEqual(got, payload);
      assert.ok((got as { bytes: unknown }).bytes instanceof Uint8Array);
    },
  },
  {
    name: 'the subject a message arrived on is in the message',
    async run({ a, b }) {
      const base = subjectFor('subj');
      const seen: string[] = [];
      let done: () => void = () => {};
      const arrived = new Promise<void>((r) => {
        done = r;
      });
      b.subscribe(`${base}.*`, (msg) => {
        seen.push(msg.subject);
        done();
      });
      await b.flush();
      a.publish(`${base}.x`, 1);
      await arrived;
      assert.deepEqual(seen, [`${base}.x`]);
    },
  },
  {
    name: "'*' matches exactly one token and '>' one or more",
    async run({ a, b }) {
      const base = subjectFor('wild');
      const star = new Inbox<string>();
      const tail = new Inbox<string>();
      const all = new Inbox<string>();
      b.subscribe(`${base}.*.end`, star.push);
      b.subscribe(`${base}.>`, tail.push);
      b.subscribe(`${base}.marker`, all.push);
      await b.flush();
      for (const s of ['one.end', 'one.two.end', 'end', 'x.end.more']) a.publish(`${base}.${s}`, s);
      a.publish(base, 'bare');
      a.publish(`${base}.marker`, 'marker');
      // Delivery is ordered per publisher: once the marker is in, everything before it is too.
      await all.wait(1);
      await tail.wait(5);
      assert.deepEqual(star.items, ['one.end']);
      assert.deepEqual(tail.items, ['one.end', 'one.two.end', 'end', 'x.end.more', 'marker']);
    },
  },
  {
    name: 'a queue group hands each message to one member; plain subscribers get all',
    async run({ a, b }) {
      const subject = subjectFor('queue');
      const m1 = new Inbox<number>();
      const m2 = new Inbox<number>();
      const plain = new Inbox<number>();
      b.subscribe(subject, m1.push, { queue: 'workers' });
      b.subscribe(subject, m2.push, { queue: 'workers' });
      b.subscribe(subject, plain.push);
      await b.flush();
      const n = 60;
      for (let i = 0; i < n; i++) a.publish(subject, i);
      await plain.wait(n);
      await eventually('every message at one queue member', () => m1.items.length + m2.items.length >= n, {
        timeoutMs: WAIT_MS,
      });
      const together = [...m1.items, ...m2.items].sort((x, y) => x - y);
      assert.deepEqual(
        together,
        Array.from({ length: n }, (_, i) => i),
      );
      assert.ok(m1.items.length > 0 && m2.items.length > 0, `spread ${m1.items.length}/${m2.items.length}`);
    },
  },
  {
    name: 'request gets the answer of a sync or async handler',
    async run({ a, b }) {
      const sync = subjectFor('req-sync');
      const async_ = subjectFor('req-async');
      b.subscribe(sync, (msg) => ({ echo: msg.data, hadReply: typeof msg.reply === 'string' }));
      b.subscribe(async_, async (msg) => {
        await new Promise((r) => setTimeout(r, 5));
        return { doubled: (msg.data as number) * 2 };
      });
      await b.flush();
      assert.deepEqual(await a.request(sync, 'hi'), { echo: 'hi', hadReply: true });
      assert.deepEqual(await a.request(async_, 21), { doubled: 42 });
    },
  },
  {
    name: 'a handler answering nothing gives undefined',
    async run({ a, b }) {
      const subject = subjectFor('req-undef');
      b.subscribe(subject, () => undefined);
      await b.flush();
      assert.equal(await a.request(subject, 1), undefined);
    },
  },
  {
    name: "a handler's GatewayError reaches the requester with the same code and message",
    async run({ a, b }) {
      const subject = subjectFor('req-err');
      b.subscribe(subject, async () => {
        throw new GatewayError('request.bad_input', 'count must be positive', { field: 'count' });
      });
      await b.flush();
      const err = await rejectsWithCode(a.request(subject, {}), 'request.bad_input');
      assert.equal(err.message, 'count must be positive');
      assert.equal(err.field, 'count');
    },
  },
  {
    name: 'any other handler error becomes internal',
    async run({ a, b }) {
      const subject = subjectFor('req-internal');
      b.subscribe(subject, () => {
        throw new TypeError('boom at /some/path');
      });
      await b.flush();
      const err = await rejectsWithCode(a.request(subject, {}), 'internal');
      assert.doesNotMatch(err.message, /some\/path/);
    },
  },
  {
    name: 'a request nobody listens to fails with bus.no_responders, not a timeout',
    async run({ a }) {
      // A 60 s timeout: an implementation that waits instead would fail the
      // case on its code (and the run on its time), not pass by accident.
      await rejectsWithCode(a.request(subjectFor('nobody'), 1, { timeoutMs: 60_000 }), 'bus.no_responders');
    },
  },
  {
    name: 'a request nobody answers fails with bus.timeout',
    async run({ a, b }) {
      const subject = subjectFor('silent');
      b.subscribe(subject, () => new Promise(() => {}));
      await b.flush();
      await rejectsWithCode(a.request(subject, 1, { timeoutMs: 300 }), 'bus.timeout');
    },
  },
  {
    name: 'after unsubscribe nothing is delivered and requests have no responders',
    async run({ a, b }) {
      const subject = subjectFor('unsub');
      const inbox = new Inbox();
      const sub = b.subscribe(subject, (msg) => {
        inbox.push(msg);
        return 'here';
      });
      assert.equal(sub.subject, subject);
      await b.flush();
      assert.equal(await a.request(subject, 1), 'here');
      sub.unsubscribe();
      sub.unsubscribe();
      await b.flush();
      await rejectsWithCode(a.request(subject, 2, { timeoutMs: 60_000 }), 'bus.no_responders');
      assert.equal(inbox.items.length, 1);
    },
  },
  {
    name: 'every subscriber gets its own copy; mutating one affects no other, nor the sender',
    async run({ a, b }) {
      const subject = subjectFor('isolation');
      const payload = { list: [1, 2], bytes: new Uint8Array([1, 2, 3]), inner: { v: 'x' } };
      type P = typeof payload;
      const first = new Inbox<P>();
      const second = new Inbox<P>();
      b.subscribe(subject, (msg) => {
        const d = msg.data as P;
        d.list.push(99);
        d.bytes[0] = 42;
        d.inner.v = 'mutated';
        first.push(msg);
      });
      b.subscribe(subject, (msg) => second.push(msg));
      await b.flush();
      a.publish(subject, payload);
      payload.inner.v = 'sender changed it after publish';
      await first.wait(1);
      const [other] = await second.wait(1);
      assert.deepEqual(other, { list: [1, 2], bytes: new Uint8Array([1, 2, 3]), inner: { v: 'x' } });
      assert.notEqual(first.items[0], other);
    },
  },
  {
    name: 'messages from one publisher arrive in order',
    async run({ a, b }) {
      const subject = subjectFor('order');
      const inbox = new Inbox<number>();
      b.subscribe(subject, inbox.push);
      await b.flush();
      const n = 2000;
      for (let i = 0; i < n; i++) a.publish(subject, i);
      const got = await inbox.wait(n);
      assert.deepEqual(
        got,
        Array.from({ length: n }, (_, i) => i),
      );
    },
  },
  {
    name: 'many requests in parallel each get their own answer',
    async run({ a, b }) {
      const subject = subjectFor('parallel');
      b.subscribe(subject, async (msg) => {
        const n = msg.data as number;
        if (n % 3 === 0) await new Promise((r) => setTimeout(r, 1));
        return n * n;
      });
      await b.flush();
      const answers = await Promise.all(Array.from({ length: 300 }, (_, i) => a.request<number>(subject, i)));
      assert.deepEqual(
        answers,
        Array.from({ length: 300 }, (_, i) => i * i),
      );
    },
  },
  {
    name: 'requests spread over a queue group, each answered once',
    async run({ a, b }) {
      const subject = subjectFor('queue-req');
      const counts: [number, number] = [0, 0];
      b.subscribe(subject, () => ++counts[0] && 'first', { queue: 'q' });
      b.subscribe(subject, () => ++counts[1] && 'second', { queue: 'q' });
      await b.flush();
      const answers = await Promise.all(Array.from({ length: 40 }, () => a.request<string>(subject, null)));
      assert.equal(counts[0] + counts[1], 40);
      assert.equal(answers.filter((x) => x === 'first').length, counts[0]);
    },
  },
  {
    name: 'a payload of 512 KiB goes through',
    async run({ a, b }) {
      const subject = subjectFor('big');
      b.subscribe(subject, (msg) => (msg.data as Uint8Array).byteLength);
      await b.flush();
      const big = new Uint8Array(512 * 1024).map((_, i) => i & 0xff);
      assert.equal(await a.request(subject, big), big.byteLength);
    },
  },
  {
    name: 'a request with a transfer list delivers the same payload as without it',
    async run({ a, b }) {
      const subject = subjectFor('transfer');
      b.subscribe(subject, (msg) => {
        const d = msg.data as { source: Uint8Array; part: Uint8Array; spec: { w: number } };
        return {
          ctor: d.source.constructor.name,
          length: d.source.byteLength,
          sum: d.source.reduce((s, x) => s + x, 0),
          part: [...d.part],
          spec: d.spec,
        };
      });
      await b.flush();
      // What the requester may not use afterwards: it keeps what it needs from them first.
      const source = new Uint8Array(300 * 1024).map((_, i) => i % 251);
      const sum = source.reduce((s, x) => s + x, 0);
      const part = new Uint8Array([1, 2, 3, 4]).subarray(1, 3);
      const reply = await a.request(
        subject,
        { source, part, spec: { w: 320 } },
        { transfer: [source, part] },
      );
      assert.deepEqual(reply, {
        ctor: 'Uint8Array',
        length: 300 * 1024,
        sum,
        part: [2, 3],
        spec: { w: 320 },
      });
    },
  },
  {
    name: 'a subscriber that throws on a publish does not stop later deliveries',
    async run({ a, b }) {
      const subject = subjectFor('throwing');
      const inbox = new Inbox<number>();
      b.subscribe(subject, (msg) => {
        inbox.push(msg);
        if (msg.data === 0) throw new Error('first one fails');
      });
      await b.flush();
      a.publish(subject, 0);
      a.publish(subject, 1);
      assert.deepEqual(await inbox.wait(2), [0, 1]);
    },
  },
  {
    name: 'a request answered while the other side subscribes from within a handler',
    async run({ a, b }) {
      // Roles chain requests: a handler asks someone else before answering.
      const front = subjectFor('chain-front');
      const back = subjectFor('chain-back');
      b.subscribe(back, (msg) => `back:${String(msg.data)}`);
      a.subscribe(front, async (msg) => `front>${await a.request(back, msg.data)}`);
      await a.flush();
      await b.flush();
      assert.equal(await b.request(front, 'x'), 'front>back:x');
    },
  },
  {
    name: 'bad subjects are refused with bus.bad_message, and the bus keeps working',
    async run({ a, b }) {
      const isBad = (err: unknown) => err instanceof GatewayError && err.code === 'bus.bad_message';
      for (const s of ['', 'a..b', 'a.>.b', 'a.b*', 'a b', '.a'])
        assert.throws(() => b.subscribe(s, () => 1), isBad, s);
      for (const s of ['', 'a.*', 'a.>', 'a b', 'a..b']) {
        assert.throws(() => a.publish(s, 1), isBad, s);
        await rejectsWithCode(a.request(s, 1), 'bus.bad_message');
      }
      const subject = subjectFor('after-bad');
      b.subscribe(subject, () => 'fine');
      await b.flush();
      assert.equal(await a.request(subject, null), 'fine');
    },
  },
  {
    name: 'after close, publish and request fail with bus.closed',
    async run({ a }) {
      await a.close();
      assert.throws(
        () => a.publish(subjectFor('closed'), 1),
        (err: unknown) => err instanceof GatewayError && err.code === 'bus.closed',
      );
      await rejectsWithCode(a.request(subjectFor('closed'), 1), 'bus.closed');
      await a.close();
    },
  },
];

/** Runs one case in a fresh environment and always closes it. */
export async function runCase(factory: BusFactory, c: ConformanceCase): Promise<void> {
  const env = await factory();
  try {
    await c.run({ a: env.a, b: env.b });
  } finally {
    await env.close();
  }
}
