/**
 * The shared-state conformance suite (server/store/shared/table.ts), written
 * once and run against every implementation: lmdb beside the code
 * (server/store/shared/lmdb.test.ts) and JetStream KV on a real 3-server NATS
 * cluster (test/integration/shared-state-nats.test.ts). Each case gets two
 * SharedStates on the same store (two processes' or nodes' views; the same
 * object is allowed for lmdb) and a fresh table name; it throws on failure.
 */
import assert from 'node:assert/strict';
import { GatewayError } from '../../device-protocol/errors.ts';
import type { SharedChange, SharedState, SharedTable } from '../../server/store/shared/table.ts';
import { modify } from '../../server/store/shared/table.ts';
import { eventually } from '../eventually.ts';

export interface StatePair {
  a: SharedState;
  b: SharedState;
  /** Watchers on `b` hear `a`'s writes (KV: every node; lmdb: only one process's own SharedState). */
  crossWatch: boolean;
}

export interface SharedStateCase {
  name: string;
  run(pair: StatePair, table: string): Promise<void>;
}

export interface Rec {
  v: 1;
  n: number;
  note?: string;
}

/** A versioned reader: v0 (no `v`, `count` instead of `n`) is upgraded; anything else without `n` is refused. */
export function readRec(raw: unknown): Rec {
  const r = raw as Record<string, unknown> | null;
  if (r === null || typeof r !== 'object') throw new GatewayError('registry.bad_record', 'not an object');
  if (r.v === undefined && typeof r.count === 'number') return { v: 1, n: r.count };
  if (typeof r.n !== 'number') throw new GatewayError('registry.bad_record', 'no n');
  return r as unknown as Rec;
}

const rec = (n: number, note?: string): Rec => (note === undefined ? { v: 1, n } : { v: 1, n, note });

async function open(state: SharedState, name: string, bad?: string[]): Promise<SharedTable<Rec>> {
  return state.table<Rec>(name, { read: readRec, onBadRecord: (key) => bad?.push(key) });
}

function code(err: unknown): string | undefined {
  return err instanceof GatewayError ? err.code : undefined;
}

export const sharedStateCases: SharedStateCase[] = [
  {
    name: 'create, get, update at revision, remove',
    async run({ a }, name) {
      const t = await open(a, name);
      const created = await t.create('k1', rec(1));
      assert.deepEqual(t.get('k1'), created);
      await assert.rejects(t.create('k1', rec(2)), (e) => code(e) === 'registry.conflict');
      const updated = await t.update('k1', rec(2), created.revision);
      assert.ok(updated.revision > created.revision);
      assert.equal(t.get('k1')?.value.n, 2);
      await assert.rejects(t.update('k1', rec(3), created.revision), (e) => code(e) === 'registry.conflict');
      await assert.rejects(t.remove('k1', created.revision), (e) => code(e) === 'registry.conflict');
      assert.equal(await t.remove('k1', updated.revision), true);
      assert.equal(t.get('k1'), undefined);
      assert.equal(await t.remove('k1'), false);
      await assert.rejects(t.update('k1', rec(4), updated.revision), (e) => code(e) === 'registry.conflict');
      // A removed key can be created again.
      await t.create('k1', rec(5));
      assert.equal(t.get('k1')?.value.n, 5);
    },
  },
  {
    name: 'list by prefix, after and limit, in key order; any characters in keys',
    async run({ a }, name) {
      const t = await open(a, name);
      const keys = ['dev/2', 'dev/10', 'dev/1', 'acct/1:x', 'dev:odd', 'zz', 'ünï cødé/é', 'a.b=c@d'];
      for (const [i, k] of keys.entries()) await t.create(k, rec(i));
      assert.deepEqual(
        t.list({ prefix: 'dev/' }).map((e) => e.key),
        ['dev/1', 'dev/10', 'dev/2'],
      );
      assert.deepEqual(
        t.list({ prefix: 'dev/', after: 'dev/1', limit: 1 }).map((e) => e.key),
        ['dev/10'],
      );
      assert.deepEqual(
        t.list().map((e) => e.key),
        [...keys].sort(),
      );
      assert.equal(t.size(), keys.length);
      assert.equal(t.get('ünï cødé/é')?.value.n, 6);
      assert.deepEqual([...t.entries({ prefix: 'q' })], []);
    },
  },
  {
    name: 'the other side sees writes, and its watchers hear them',
    async run({ a, b, crossWatch }, name) {
      const ta = await open(a, name);
      const tb = await open(b, name);
      const heard: SharedChange<Rec>[] = [];
      const stop = tb.watch((c) => heard.push(c));
      const first = await ta.create('x', rec(1));
      await ta.update('x', rec(2), first.revision);
      await ta.create('y', rec(3));
      await ta.remove('y');
      await ta.create('z', rec(4));
      await eventually(
        'b sees x=2, no y, and z',
        () => tb.get('x')?.value.n === 2 && tb.get('y') === undefined && tb.get('z'),
      );
      if (crossWatch) {
        // The watcher may coalesce, never reorder: a watch that reads the
        // bucket after y's removal never hears of y (history 1 keeps only
        // the delete marker); one that heard y's creation hears its removal
        // before z's creation.
        const ys = heard.filter((c) => c.key === 'y');
        if (ys.length > 0)
          assert.equal(ys.at(-1)?.value, undefined, 'the last change b heard of y is its removal');
        assert.equal(heard.at(-1)?.key, 'z');
        const xs = heard.filter((c) => c.key === 'x').map((c) => c.value?.n);
        assert.equal(xs.at(-1), 2);
      }
      stop();
    },
  },
  {
    name: 'caughtUp: the other side then holds every write acknowledged before the call',
    async run({ a, b }, name) {
      const ta = await open(a, name);
      const tb = await open(b, name);
      for (let round = 0; round < 5; round++) {
        const keys = Array.from({ length: 20 }, (_, i) => `r${round}/${i}`);
        await Promise.all(keys.map((k, i) => ta.create(k, rec(i))));
        await tb.caughtUp();
        // No waiting here: every key must be in b's copy now.
        assert.deepEqual(
          keys.filter((k) => tb.get(k) === undefined),
          [],
          `round ${round}: keys missing after caughtUp`,
        );
      }
      // Callers at once share the asks, and each still gets a copy that is caught up.
      await ta.create('last', rec(99));
      await Promise.all([tb.caughtUp(), tb.caughtUp(), tb.caughtUp()]);
      assert.equal(tb.get('last')?.value.n, 99);
    },
  },
  {
    name: 'two writers: compare-and-set lets exactly one win each round',
    async run({ a, b }, name) {
      const ta = await open(a, name);
      const tb = await open(b, name);
      await ta.create('counter', rec(0));
      await eventually('b has the counter', () => tb.get('counter'));
      // 20 increments from each side at once: modify() retries the losers.
      const bump = (t: SharedTable<Rec>) => modify(t, 'counter', (cur) => rec((cur?.value.n ?? 0) + 1));
      await Promise.all(
        Array.from({ length: 20 }, (_, i) => bump(i % 2 === 0 ? ta : tb)).concat(
          Array.from({ length: 20 }, (_, i) => bump(i % 2 === 0 ? tb : ta)),
        ),
      );
      await eventually(
        'both sides see 40',
        () => ta.get('counter')?.value.n === 40 && tb.get('counter')?.value.n === 40,
      );
      // create-if-absent from both sides at once: one wins.
      const outcomes = await Promise.allSettled([ta.create('once', rec(1)), tb.create('once', rec(2))]);
      assert.equal(outcomes.filter((o) => o.status === 'fulfilled').length, 1);
      const lost = outcomes.find((o) => o.status === 'rejected') as PromiseRejectedResult;
      assert.equal(code(lost.reason), 'registry.conflict');
    },
  },
  {
    name: 'modify removes with null and leaves alone with undefined',
    async run({ a }, name) {
      const t = await open(a, name);
      await modify(t, 'm', () => rec(7));
      assert.equal(t.get('m')?.value.n, 7);
      const same = await modify(t, 'm', () => undefined);
      assert.equal(same?.value.n, 7);
      assert.equal(await modify(t, 'm', () => null), undefined);
      assert.equal(t.get('m'), undefined);
    },
  },
  {
    name: 'versioned records: an older record is upgraded; an unreadable one is left out and reported',
    async run({ a, b }, name) {
      // Written through a table whose reader accepts anything: another release, or a hostile writer.
      const raw = await a.table<unknown>(name, { read: (x) => x });
      await raw.create('old', { count: 9 });
      await raw.create('junk', { what: 'ever' });
      await raw.create('fine', rec(1));
      const bad: string[] = [];
      const t = await open(b, `${name}`, bad);
      await eventually('b has fine', () => t.get('fine'));
      assert.deepEqual(t.get('old')?.value, { v: 1, n: 9 });
      assert.equal(t.get('junk'), undefined);
      assert.deepEqual(
        t.list().map((e) => e.key),
        ['fine', 'old'],
      );
      assert.ok(bad.includes('junk'), `reported: ${bad.join(',')}`);
    },
  },
  {
    name: 'bad keys and table names are refused with a typed error',
    async run({ a }, name) {
      const t = await open(a, name);
      await assert.rejects(t.create('', rec(1)), (e) => code(e) === 'registry.invalid_field');
      await assert.rejects(t.create('x'.repeat(513), rec(1)), (e) => code(e) === 'registry.invalid_field');
      await assert.rejects(
        a.table('no.dots', { read: readRec }),
        (e) => code(e) === 'registry.invalid_field',
      );
    },
  },
];

let tables = 0;

/** A table name no earlier case used (the store may be shared by every case of a run). */
export function freshTableName(): string {
  tables += 1;
  return `conf${process.pid}x${tables}`;
}
