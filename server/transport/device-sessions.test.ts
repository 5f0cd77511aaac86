import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Subjects } from '../bus/bus.ts';
import { InProcessBus } from '../bus/inproc.ts';
import { watchDeviceSessions } from './device-sessions.ts';

test('session up/down reach the hooks of the node holding the device, a stale down is ignored', async () => {
  const bus = new InProcessBus();
  const calls: string[] = [];
  const watch = watchDeviceSessions({
    bus,
    holds: (deviceId) => deviceId !== 'elsewhere',
    hooks: [
      {
        up: (deviceId, push) => {
          assert.equal(typeof push, 'function');
          calls.push(`up ${deviceId}`);
        },
        down: (deviceId) => {
          calls.push(`down ${deviceId}`);
        },
      },
      {
        up: () => {
          throw new Error('a failing hook does not stop the others');
        },
        down: async () => {
          throw new Error('nor does a rejecting one');
        },
      },
    ],
  });
  const settle = async () => {
    await bus.flush();
    await new Promise((r) => setTimeout(r, 20));
  };
  try {
    bus.publish(Subjects.sessionUp, { deviceId: 'd1', sessionId: 's1' });
    bus.publish(Subjects.sessionUp, { deviceId: 'elsewhere', sessionId: 's9' });
    bus.publish(Subjects.sessionUp, { deviceId: 42 });
    await settle();
    // A newer session of d1 came up before the old one's down arrived (two edges): the down is stale.
    bus.publish(Subjects.sessionUp, { deviceId: 'd1', sessionId: 's2' });
    await settle();
    bus.publish(Subjects.sessionDown, { deviceId: 'd1', sessionId: 's1' });
    await settle();
    bus.publish(Subjects.sessionDown, { deviceId: 'd1', sessionId: 's2' });
    bus.publish(Subjects.sessionDown, { deviceId: 'elsewhere', sessionId: 's9' });
    await settle();
    assert.deepEqual(calls, ['up d1', 'up d1', 'down d1']);
  } finally {
    watch.close();
    await bus.close();
  }
});

test('quiet() waits for the up hooks under way, then a quiet spell; at most its bound', async () => {
  const bus = new InProcessBus();
  let finish!: () => void;
  const watch = watchDeviceSessions({
    bus,
    holds: () => true,
    hooks: [{ up: () => new Promise<void>((r) => (finish = r)), down: () => {} }],
  });
  try {
    bus.publish(Subjects.sessionUp, { deviceId: 'd1', sessionId: 's1' });
    await bus.flush();
    let quiet = false;
    const waiting = watch.quiet(30, 60_000).then(() => (quiet = true));
    await new Promise((r) => setTimeout(r, 80));
    assert.equal(quiet, false, 'an up hook is under way');
    await watch.quiet(30, 50); // bounded
    finish();
    await waiting;
    assert.equal(quiet, true);
  } finally {
    watch.close();
    await bus.close();
  }
});
