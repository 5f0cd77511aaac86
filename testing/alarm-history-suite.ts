/**
 * The conformance suite of the alarm history (server/alarms/history.ts): the
 * same tests on every backend (memory and lmdb beside the code, JetStream in
 * test/integration), so that a single node and a cluster keep alarms alike.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AlarmRecord } from '../server/alarms/alarm.ts';
import type { AlarmHistory, HistoryRetention } from '../server/alarms/history.ts';
import { eventually } from './eventually.ts';

export interface HistoryBackend {
  /** A fresh, empty history. */
  open(retention?: HistoryRetention): Promise<AlarmHistory>;
  /** Another handle on the same history (a restarted node, or another node); absent: memory only. */
  reopen?(previous: AlarmHistory): Promise<AlarmHistory>;
}

let n = 0;
export function alarmRecord(over: Partial<AlarmRecord> = {}): AlarmRecord {
  const kind = over.kind ?? 'node_gone';
  const subject = over.subject ?? `node-${++n}`;
  return {
    v: 1,
    kind,
    subject,
    id: `${kind}:${subject}`,
    severity: 'critical',
    state: 'raised',
    message: `${subject} gone`,
    since: 1000,
    at: 1000,
    node: 'writer',
    ...over,
  };
}

export function alarmHistorySuite(name: string, backend: HistoryBackend): void {
  test(`${name}: append is conditional on the alarm's newest record`, async () => {
    const h = await backend.open();
    try {
      const raised = alarmRecord({ subject: 'e1.with dots*>' });
      assert.equal(await h.latest(raised.id), undefined);
      const first = await h.append(raised, 0);
      assert.ok(first, 'the first raise is written');
      assert.deepEqual((await h.latest(raised.id))?.record, raised);
      assert.equal(await h.append({ ...raised, node: 'other' }, 0), undefined, 'a second writer loses');
      const cleared = { ...raised, state: 'cleared' as const, at: 2000 };
      const second = await h.append(cleared, first.seq);
      assert.ok(second && second.seq > first.seq);
      assert.equal(await h.append(cleared, first.seq), undefined, 'a stale expectation loses');
      // Another alarm is independent.
      assert.ok(await h.append(alarmRecord({ kind: 'admin_gone', subject: 'cluster' }), 0));
      assert.deepEqual((await h.latest(raised.id))?.record.state, 'cleared');
    } finally {
      await h.close();
    }
  });

  test(`${name}: list is newest first, pages with beforeSeq`, async () => {
    const h = await backend.open();
    try {
      const written = [];
      for (let i = 0; i < 5; i++) written.push(await h.append(alarmRecord({ at: 1000 + i }), 0));
      const seqs = written.map((w) => w?.seq ?? 0);
      const all = await h.list({ limit: 10 });
      assert.deepEqual(
        all.map((s) => s.seq),
        [...seqs].reverse(),
      );
      const page = await h.list({ limit: 2 });
      assert.deepEqual(
        page.map((s) => s.record.at),
        [1004, 1003],
      );
      const older = await h.list({ limit: 2, beforeSeq: page[1]?.seq ?? 0 });
      assert.deepEqual(
        older.map((s) => s.record.at),
        [1002, 1001],
      );
      assert.deepEqual(await h.list({ limit: 5, beforeSeq: seqs[0] ?? 0 }), []);
    } finally {
      await h.close();
    }
  });

  test(`${name}: watch sees every append`, async () => {
    const h = await backend.open();
    try {
      const seen: string[] = [];
      const stop = h.watch((s) => seen.push(s.record.subject));
      await h.append(alarmRecord({ subject: 'w1' }), 0);
      await h.append(alarmRecord({ subject: 'w2' }), 0);
      await eventually('both appends seen', () => seen.length >= 2);
      assert.deepEqual(seen, ['w1', 'w2']);
      stop();
    } finally {
      await h.close();
    }
  });

  test(`${name}: the oldest records go past maxRecords`, async () => {
    const h = await backend.open({ maxRecords: 100 });
    try {
      const first = await h.append(alarmRecord({ subject: 'oldest' }), 0);
      for (let i = 0; i < 100; i++) await h.append(alarmRecord(), 0);
      const all = await h.list({ limit: 1000 });
      assert.equal(all.length, 100);
      assert.ok(!all.some((s) => s.seq === first?.seq), 'the oldest went');
    } finally {
      await h.close();
    }
  });

  const reopen = backend.reopen;
  if (reopen) {
    test(`${name}: another handle (a restart, another node) sees the same history and conditions`, async () => {
      const h = await backend.open();
      const r = alarmRecord({ subject: 'kept' });
      const stored = await h.append(r, 0);
      assert.ok(stored);
      const again = await reopen(h);
      try {
        assert.deepEqual((await again.latest(r.id))?.record, r);
        assert.deepEqual(
          (await again.list({ limit: 5 })).map((s) => s.record.subject),
          ['kept'],
        );
        assert.equal(await again.append({ ...r, node: 'late' }, 0), undefined, 'the raise is still there');
        assert.ok(await again.append({ ...r, state: 'cleared' }, stored.seq));
      } finally {
        await again.close();
        await h.close();
      }
    });
  }
}
