/**
 * Membership on a members table (cluster mode), on a real lmdb table with the
 * clock and the probes driven by hand; the same on JetStream KV with real
 * clocks is test/integration/membership-conformance.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { type NodeHeartbeat, Subjects } from '../bus/bus.ts';
import { InProcessBus } from '../bus/inproc.ts';
import { eventually } from '../../testing/eventually.ts';
import { heartbeat, manualMembership } from '../../testing/fake-membership.ts';
import { LmdbSharedState } from '../store/shared/lmdb.ts';
import type { SharedTable } from '../store/shared/table.ts';
import { Membership, readMemberRecord, startMemberRecord } from './membership.ts';

const dir = mkdtempSync(join(tmpdir(), 'mmgw-members-'));
const state = new LmdbSharedState(join(dir, 'shared'));
after(async () => {
  await state.close();
  rmSync(dir, { recursive: true, force: true });
});

let tables = 0;
const bad: string[] = [];
async function freshTable(): Promise<SharedTable<NodeHeartbeat>> {
  tables += 1;
  return state.table<NodeHeartbeat>(`members${tables}`, {
    read: readMemberRecord,
    onBadRecord: (key) => bad.push(key),
  });
}

const row = (nodeId: string, extra: Partial<NodeHeartbeat> = {}): NodeHeartbeat =>
  heartbeat(nodeId, { roles: ['transport'], ttlMs: 3000, memberTable: true, ...extra });

/** A member table whose store can be made unreachable (probes fail) while its copy keeps answering. */
function flaky(rows: SharedTable<NodeHeartbeat>) {
  const f = Object.create(rows) as SharedTable<NodeHeartbeat> & { down: boolean };
  f.down = false;
  f.caughtUp = () => (f.down ? Promise.reject(new Error('unreachable')) : rows.caughtUp.call(rows));
  return f;
}

async function setup(rows: SharedTable<NodeHeartbeat>) {
  const { bus, clock, membership, changes } = manualMembership();
  membership.attachTable(rows, { probeMs: 1000, timer: false });
  await membership.probe();
  const ids = () => membership.nodes().map((n) => n.nodeId);
  const close = async () => {
    membership.stop();
    await bus.close();
  };
  return { bus, clock, membership, changes, ids, close };
}

test('rows already in the table are members at once; joins, changes and removals come by the watch', async () => {
  const rows = await freshTable();
  await rows.create('t1', row('t1'));
  await rows.create('e1', row('e1', { roles: ['edge'] }));
  const m = await setup(rows);
  assert.deepEqual(m.ids(), ['e1', 't1'], 'on the first read, no heartbeat round');
  assert.deepEqual(
    m.membership.nodes('transport').map((n) => n.nodeId),
    ['t1'],
  );
  const t2 = await rows.create('t2', row('t2'));
  assert.deepEqual(m.ids(), ['e1', 't1', 't2']);
  const before = m.changes.length;
  await rows.update('t2', row('t2', { sessions: 5 }), t2.revision);
  assert.equal(m.membership.nodes().find((n) => n.nodeId === 't2')?.sessions, 5, 'monitor data flows');
  assert.equal(m.changes.length, before, 'a rewrite with the same roles is no change');
  const drained = await rows.update('t2', row('t2', { draining: true }), t2.revision + 1);
  assert.equal(m.changes.length, before + 1, 'draining is a change');
  await rows.remove('t2', drained.revision);
  assert.deepEqual(m.ids(), ['e1', 't1'], 'a removed row is out at once');
  await m.close();
});

test('a row silent for its TTL leaves once a probe asked after that was reached, and is removed', async () => {
  const rows = await freshTable();
  const m = await setup(rows);
  await rows.create('t1', row('t1'));
  const t2 = await rows.create('t2', row('t2'));
  for (let i = 0; i < 4; i++) {
    m.clock.t += 1000;
    const cur = rows.get('t1');
    await rows.update('t1', row('t1', { sessions: i }), cur!.revision);
    await m.membership.probe();
  }
  // t2 silent since 4 s (TTL 3 s): the probe asked at 4 s was reached.
  assert.deepEqual(m.ids(), ['t1']);
  await eventually('the stale row is removed from the table', () => rows.get('t2') === undefined);
  assert.ok(t2.revision > 0);
  await m.close();
});

test('probes that fail judge nobody; back after a gap, every member gets a whole TTL', async () => {
  const base = await freshTable();
  const rows = flaky(base);
  const m = await setup(rows);
  await base.create('t1', row('t1'));
  await base.create('t2', row('t2'));
  rows.down = true;
  for (let i = 0; i < 10; i++) {
    m.clock.t += 1000;
    await m.membership.probe();
    m.membership.sweep();
  }
  assert.deepEqual(m.ids(), ['t1', 't2'], 'unreachable store: nobody judged');
  rows.down = false;
  await m.membership.probe();
  assert.deepEqual(m.ids(), ['t1', 't2'], 'the first probe after the gap credits everyone');
  // t1 writes again; t2 stays silent and leaves a TTL after the gap ended.
  for (let i = 0; i < 4; i++) {
    m.clock.t += 1000;
    await base.update('t1', row('t1', { sessions: i }), base.get('t1')!.revision);
    await m.membership.probe();
  }
  assert.deepEqual(m.ids(), ['t1']);
  await m.close();
});

test('a copy behind the store judges nobody while the probe waits; answered, a TTL from then', async () => {
  const base = await freshTable();
  const rows = Object.create(base) as SharedTable<NodeHeartbeat>;
  let release: (() => void) | undefined;
  const m = await setup(rows);
  await base.create('t1', row('t1'));
  await m.membership.probe();
  // The watch stalls: the probe is not answered until the copy catches up.
  rows.caughtUp = () => new Promise<void>((resolve) => (release = resolve));
  const waiting = m.membership.probe();
  for (let i = 0; i < 6; i++) {
    m.clock.t += 1000;
    await m.membership.probe(); // one question at a time: these wait for the first
    m.membership.sweep();
  }
  assert.ok(m.ids().includes('t1'), 'not judged on a copy that is behind');
  release?.();
  await waiting;
  rows.caughtUp = () => base.caughtUp();
  await m.membership.probe();
  assert.ok(m.ids().includes('t1'), 'answered after a gap: a whole TTL from then');
  for (let i = 0; i < 4; i++) {
    m.clock.t += 1000;
    await m.membership.probe();
  }
  assert.ok(!m.ids().includes('t1'), 'silent for a TTL of answered probes: out');
  await m.close();
});

test('heartbeats on the bus of table writers count only as goodbyes; an older release counts by TTL', async () => {
  const rows = await freshTable();
  const m = await setup(rows);
  await rows.create('t1', row('t1'));
  m.bus.publish(Subjects.heartbeat, row('ghost'));
  m.bus.publish(Subjects.heartbeat, row('old1', { memberTable: undefined }));
  await m.bus.flush();
  assert.deepEqual(m.ids(), ['old1', 't1']);
  m.bus.publish(Subjects.heartbeat, row('t1', { ttlMs: 0, draining: true }));
  await m.bus.flush();
  assert.deepEqual(m.ids(), ['old1'], 'a goodbye on the bus is out at once');
  m.clock.t += 3500;
  m.membership.sweep();
  assert.deepEqual(m.ids(), [], 'the older release leaves by its TTL');
  await m.close();
});

test('a table member whose row lags but whose bus heartbeats come stays; silent on both, it leaves', async () => {
  const rows = await freshTable();
  const m = await setup(rows);
  const t1 = row('t1');
  await rows.create('t1', t1);
  await rows.create('t2', row('t2'));
  // Neither row changes (the store takes no writes), probes are answered; t1 still beats on the bus.
  for (let i = 0; i < 5; i++) {
    m.clock.t += 1000;
    m.bus.publish(Subjects.heartbeat, t1);
    // A heartbeat of another process under t2's id (restarted: another start) is no sign of t2's life.
    m.bus.publish(Subjects.heartbeat, row('t2', { startedAt: 42 }));
    await m.bus.flush();
    await m.membership.probe();
  }
  assert.deepEqual(m.ids(), ['t1'], 't1 alive by its heartbeats; t2 out by its TTL');
  for (let i = 0; i < 4; i++) {
    m.clock.t += 1000;
    await m.membership.probe();
  }
  assert.deepEqual(m.ids(), [], 'silent on the bus too: out');
  await m.close();
});

test('bus members that write the table and have no row leave when the table is attached', async () => {
  const rows = await freshTable();
  await rows.create('t1', row('t1'));
  const bus = new InProcessBus();
  const membership = new Membership({ bus, sweepMs: 60_000 });
  membership.start();
  bus.publish(Subjects.heartbeat, row('t1'));
  bus.publish(Subjects.heartbeat, row('gone1'));
  bus.publish(Subjects.heartbeat, row('old1', { memberTable: undefined }));
  await bus.flush();
  assert.equal(membership.nodes().length, 3);
  membership.attachTable(rows, { timer: false });
  assert.deepEqual(
    membership.nodes().map((n) => n.nodeId),
    ['old1', 't1'],
  );
  membership.stop();
  await bus.close();
});

test('unreadable rows and rows under another node id are ignored', async () => {
  const rows = await freshTable();
  const raw = await state.table<unknown>(rows.name, { read: (x) => x });
  await raw.create('junk', { nodeId: 'junk', roles: 'transport' });
  await raw.create('liar', row('someone-else'));
  await raw.create('t1', row('t1'));
  const m = await setup(rows);
  assert.deepEqual(m.ids(), ['t1']);
  assert.ok(bad.includes('junk'));
  await m.close();
});

test('startMemberRecord writes at once and on every write(); stop removes the row', async () => {
  const base = await freshTable();
  let writes = 0;
  const rows = Object.create(base) as SharedTable<NodeHeartbeat>;
  rows.create = (k, v) => {
    writes++;
    return base.create(k, v);
  };
  rows.update = (k, v, r) => {
    writes++;
    return base.update(k, v, r);
  };
  let sessions = 0;
  const record = startMemberRecord(rows, () => row('n1', { sessions: ++sessions }), { intervalMs: 60_000 });
  await eventually('written at once', () => base.get('n1')?.value.sessions === 1);
  // A write() while one is under way is skipped: ask until one went out.
  await eventually('written again', () => {
    record.write();
    return (base.get('n1')?.value.sessions ?? 0) >= 2;
  });
  await record.stop();
  assert.equal(base.get('n1'), undefined);
  const count = writes;
  record.write();
  assert.equal(writes, count, 'no write after stop');
});

test('startMemberRecord: a failed write is tried again; a stop the store never answers ends anyway', async () => {
  const base = await freshTable();
  const rows = Object.create(base) as SharedTable<NodeHeartbeat> & { fail: boolean };
  rows.fail = true;
  let failed = 0;
  rows.create = (k, v) => {
    if (!rows.fail) return base.create(k, v);
    failed++;
    return Promise.reject(new Error('no quorum'));
  };
  rows.remove = () => new Promise(() => {});
  const record = startMemberRecord(rows, () => row('n1'), { intervalMs: 60_000, removeTimeoutMs: 10 });
  assert.equal(failed, 1);
  await new Promise((r) => setImmediate(r));
  rows.fail = false;
  await eventually('written on the next try', () => {
    record.write();
    return base.get('n1')?.value.nodeId === 'n1';
  });
  await record.stop();
  assert.ok(base.get('n1'), 'the row stays when the removal never answered (it goes stale)');
});
