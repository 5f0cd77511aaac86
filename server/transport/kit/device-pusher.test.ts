import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { GatewayError } from '../../../device-protocol/errors.ts';
import { type Bus, type DeviceMessage, type RequestOptions, Subjects } from '../../bus/bus.ts';
import { InProcessBus } from '../../bus/inproc.ts';
import { Registry } from 'prom-client';
import {
  DEVICE_PUSH_TIMEOUT_MS,
  DevicePusher,
  onUndelivered,
  PUSH_RETRY_MAX_MS,
  pushRetryDelayMs,
  registerPushMetrics,
} from './device-pusher.ts';

const isCode = (code: string) => (err: unknown) => err instanceof GatewayError && err.code === code;

/** A bus that notes every request and answers with `reply`. */
function recordingBus(reply: unknown) {
  const requests: { subject: string; data: unknown; options: RequestOptions | undefined }[] = [];
  const bus: Pick<Bus, 'request'> = {
    async request<T>(subject: string, data: unknown, options?: RequestOptions) {
      requests.push({ subject, data, options });
      return reply as T;
    },
  };
  return { bus, requests };
}

describe('DevicePusher', () => {
  test('asks the device subject with the one push timeout and resolves with the seq', async () => {
    const { bus, requests } = recordingBus({ seq: 41 });
    const pusher = new DevicePusher(bus);
    assert.equal(await pusher.push('dev-1', 'im.message', { body: 'hi' }), 41);
    assert.equal(await pusher.to('dev-2')('sys.tick'), 41);
    assert.deepEqual(requests, [
      {
        subject: Subjects.device('dev-1'),
        data: { type: 'event', name: 'im.message', body: { body: 'hi' } },
        options: { timeoutMs: DEVICE_PUSH_TIMEOUT_MS },
      },
      // No body: none is sent (not even an undefined key, which a codec might turn into null).
      {
        subject: Subjects.device('dev-2'),
        data: { type: 'event', name: 'sys.tick' },
        options: { timeoutMs: 5000 },
      },
    ]);
  });

  test('a reply without a seq is bus.bad_message', async () => {
    for (const reply of [null, 7, {}, { seq: '3' }]) {
      await assert.rejects(
        new DevicePusher(recordingBus(reply).bus).push('d', 'e'),
        isCode('bus.bad_message'),
      );
    }
  });

  test('undelivered listeners hear each push that found no session, on every pusher of their bus only', async () => {
    const bus = new InProcessBus();
    const other = new InProcessBus();
    const heard: string[] = [];
    const unlisten = onUndelivered(bus, (deviceId, name, why) => heard.push(`${deviceId} ${name} ${why}`));
    onUndelivered(bus, () => {
      throw new Error('a faulty listener changes nothing');
    });
    try {
      bus.subscribe(Subjects.device('here'), () => ({ seq: 1 }));
      await assert.rejects(new DevicePusher(bus).push('gone', 'im.message'), isCode('bus.no_responders'));
      await assert.rejects(new DevicePusher(bus).push('gone', 'mail.new'), isCode('bus.no_responders'));
      await new DevicePusher(bus).push('here', 'im.message');
      await assert.rejects(
        new DevicePusher(other).push('elsewhere', 'im.message'),
        isCode('bus.no_responders'),
      );
      assert.deepEqual(heard, ['gone im.message no_session', 'gone mail.new no_session']);
      unlisten();
      await assert.rejects(new DevicePusher(bus).push('gone', 'im.message'), isCode('bus.no_responders'));
      assert.equal(heard.length, 2);
    } finally {
      await bus.close();
      await other.close();
    }
  });

  test('an event held for a detached session resolves with its seq and is heard as detached', async () => {
    const bus = new InProcessBus();
    const heard: string[] = [];
    onUndelivered(bus, (deviceId, name, why) => heard.push(`${deviceId} ${name} ${why}`));
    try {
      bus.subscribe(Subjects.device('asleep'), () => ({ seq: 7, detached: true }));
      bus.subscribe(Subjects.device('awake'), () => ({ seq: 8 }));
      // An edge of another release may say anything else there: only `true` means detached.
      bus.subscribe(Subjects.device('odd'), () => ({ seq: 9, detached: 'yes' }));
      assert.equal(await new DevicePusher(bus).push('asleep', 'mail.new'), 7);
      assert.equal(await new DevicePusher(bus).push('awake', 'mail.new'), 8);
      assert.equal(await new DevicePusher(bus).push('odd', 'im.message'), 9);
      assert.deepEqual(heard, ['asleep mail.new detached']);
    } finally {
      await bus.close();
    }
  });

  test('a device without a session: bus.no_responders; with one, the edge’s seq', async () => {
    const bus = new InProcessBus();
    const pusher = new DevicePusher(bus);
    try {
      // no_responders, not bus.timeout: the push does not wait for an edge that is not there.
      await assert.rejects(pusher.push('nobody', 'mail.new', { uid: 1 }), isCode('bus.no_responders'));
      const seen: DeviceMessage[] = [];
      bus.subscribe(Subjects.device('dev-x'), (msg) => {
        seen.push(msg.data as DeviceMessage);
        return { seq: seen.length + 100 };
      });
      assert.equal(await pusher.push('dev-x', 'mail.new', { uid: 1 }), 101);
      assert.equal(await pusher.to('dev-x')('mail.new', { uid: 2 }), 102);
      assert.deepEqual(seen, [
        { type: 'event', name: 'mail.new', body: { uid: 1 } },
        { type: 'event', name: 'mail.new', body: { uid: 2 } },
      ]);
    } finally {
      await bus.close();
    }
  });

  test('after close every push is bus.closed and nothing reaches the bus', async () => {
    const { bus, requests } = recordingBus({ seq: 1 });
    const pusher = new DevicePusher(bus);
    const push = pusher.to('dev-1');
    pusher.close();
    await assert.rejects(pusher.push('dev-1', 'x'), isCode('bus.closed'));
    await assert.rejects(push('x'), isCode('bus.closed'));
    assert.equal(requests.length, 0);
  });

  test('mmgw_device_pushes_total counts every pusher over one bus by result', async () => {
    const bus = new InProcessBus();
    const registry = new Registry();
    registerPushMetrics(registry, bus);
    registerPushMetrics(registry, bus); // a second role on the node: one metric
    try {
      bus.subscribe(Subjects.device('live'), () => ({ seq: 1 }));
      bus.subscribe(Subjects.device('broken'), () => ({ nope: true }));
      const a = new DevicePusher(bus);
      const b = new DevicePusher(bus);
      await a.push('live', 'e');
      await b.push('live', 'e');
      await assert.rejects(a.push('nobody', 'e'), isCode('bus.no_responders'));
      await assert.rejects(b.push('broken', 'e'), isCode('bus.bad_message'));
      const values = (await registry.getSingleMetric('mmgw_device_pushes_total')?.get())?.values ?? [];
      const by = Object.fromEntries(values.map((v) => [v.labels.result, v.value]));
      assert.deepEqual(by, { delivered: 2, no_session: 1, failed: 1 });
    } finally {
      await bus.close();
    }
  });
});

test('a push the bus did not deliver is tried again soon: 250 ms doubling to 1 s, ±50 % jitter', () => {
  const mid = () => 0.5;
  assert.deepEqual(
    [1, 2, 3, 4, 10, 1000].map((n) => pushRetryDelayMs(n, mid)),
    [250, 500, 1000, PUSH_RETRY_MAX_MS, PUSH_RETRY_MAX_MS, PUSH_RETRY_MAX_MS],
  );
  assert.equal(
    pushRetryDelayMs(3, () => 0),
    500,
  );
  assert.equal(
    pushRetryDelayMs(3, () => 0.999_999),
    1500,
  );
  assert.equal(pushRetryDelayMs(0, mid), 250, 'no failure yet: the shortest');
});
