import assert from 'node:assert/strict';
import { test } from 'node:test';
import { rendezvousPick } from '../router/index.ts';
import { type TakeoverReport, watchDeviceMoves } from './takeover.ts';

/** A membership that the test moves by hand, devices with two accounts each, and what the node was told. */
function rig(self: string, nodes: string[], devices: string[]) {
  let current = [...nodes];
  const listeners = new Set<() => void>();
  const taken: string[] = [];
  const released: string[] = [];
  const reports: TakeoverReport[] = [];
  let clock = 1000;
  const moves = watchDeviceMoves({
    nodeId: self,
    nodeIds: () => current,
    onChange: (l) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    devices: () => devices,
    takeOver: async (id) => {
      taken.push(id);
      clock += 10;
      return 2;
    },
    release: async (id) => void released.push(id),
    report: (r) => void reports.push(r),
    now: () => clock,
  });
  const set = async (next: string[]) => {
    current = next;
    for (const l of listeners) l();
    await moves.settled();
  };
  return { moves, set, taken, released, reports };
}

const devices = Array.from({ length: 60 }, (_, i) => `35000000000${String(i).padStart(4, '0')}`);
const of = (node: string, nodes: string[]) => devices.filter((d) => rendezvousPick(d, nodes) === node);

test('a node that leaves: each survivor takes the devices that now hash to it, and reports once', async () => {
  const b = rig('b', ['a', 'b', 'c'], devices);
  const c = rig('c', ['a', 'b', 'c'], devices);
  await b.set(['b', 'c']);
  await c.set(['b', 'c']);
  const aDevices = of('a', ['a', 'b', 'c']);
  assert.ok(aDevices.length > 0);
  const byB = aDevices.filter((d) => rendezvousPick(d, ['b', 'c']) === 'b');
  assert.deepEqual(b.taken.sort(), byB.sort());
  assert.deepEqual([...b.taken, ...c.taken].sort(), [...aDevices].sort(), 'all of a’s, none of another’s');
  assert.deepEqual(b.reports, [
    { fromNode: 'a', byNode: 'b', devices: byB.length, accounts: 2 * byB.length, tookMs: 10 * byB.length },
  ]);
  assert.deepEqual(b.released, []);
  // A change that moves nothing (a heartbeat field) reports nothing more.
  await b.set(['b', 'c']);
  assert.equal(b.reports.length, 1);
  b.moves.close();
  c.moves.close();
});

test('a node that returns gets its devices back from the one that served them; no takeover is reported', async () => {
  const b = rig('b', ['b'], devices);
  await b.set(['a', 'b']);
  assert.deepEqual(b.released.sort(), of('a', ['a', 'b']).sort());
  assert.deepEqual(b.taken, []);
  assert.deepEqual(b.reports, []);
  b.moves.close();
});

test('a node with nothing to take reports nothing', async () => {
  const b = rig('b', ['a', 'b'], []);
  await b.set(['b']);
  assert.deepEqual(b.reports, []);
  b.moves.close();
});

test('a node that dropped out of its own view gets back what it let go once it is in again', async () => {
  // The node froze past the TTL and, waking, saw nobody (itself included): it let its devices go.
  const a = rig('a', ['a', 'b'], devices);
  const mine = of('a', ['a', 'b']);
  await a.set([]);
  assert.deepEqual(a.released.sort(), [...mine].sort());
  // Heard again: the router gives them back while b never left; nobody else would bring them up here.
  await a.set(['a', 'b']);
  assert.deepEqual(a.taken.sort(), [...mine].sort());
  assert.deepEqual(a.reports, [], 'a move back, not a takeover');
  // c comes and goes: a gets back exactly what moved to c, and nothing more.
  await a.set(['a', 'b', 'c']);
  await a.set(['a', 'b']);
  assert.equal(
    a.taken.length,
    mine.length + of('a', ['a', 'b']).filter((d) => rendezvousPick(d, ['a', 'b', 'c']) !== 'a').length,
  );
  a.moves.close();
});
