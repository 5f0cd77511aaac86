import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { alarmRecord } from '../../../testing/alarm-history-suite.ts';
import { eventually } from '../../../testing/eventually.ts';
import { type AlarmChannel, ChannelDispatcher } from './dispatcher.ts';

test('a channel that hangs or fails does not hold up another; failures are counted and retried', async () => {
  const got: string[] = [];
  let failuresLeft = 2;
  const channels: AlarmChannel[] = [
    { name: 'hangs', send: () => new Promise(() => {}) },
    {
      name: 'throws',
      send: () => {
        throw new Error('sync throw');
      },
    },
    {
      name: 'flaky',
      async send(r) {
        if (failuresLeft-- > 0) throw new Error('HTTP 503');
        got.push(r.subject);
      },
    },
  ];
  const metrics = new Registry();
  const d = new ChannelDispatcher({ channels, metrics, baseDelayMs: 5, maxDelayMs: 20, maxAttempts: 4 });
  d.deliver(alarmRecord({ subject: 'one' }));
  d.deliver(alarmRecord({ subject: 'two' }));
  await eventually('both delivered by the flaky channel, in order', () => got.length === 2);
  assert.deepEqual(got, ['one', 'two']);
  await eventually(
    'the throwing channel gave both up',
    () => d.outcomes.get('throws')?.get('given_up') === 2,
  );
  assert.equal(d.outcomes.get('flaky')?.get('failed'), 2);
  assert.equal(d.outcomes.get('flaky')?.get('delivered'), 2);
  const text = await metrics.metrics();
  assert.match(text, /mmgw_alarm_deliveries_total\{channel="flaky",result="failed"\} 2/);
  assert.match(text, /mmgw_alarm_deliveries_total\{channel="throws",result="given_up"\} 2/);
  d.close();
});

test('a full queue drops the oldest and counts it', async () => {
  const d = new ChannelDispatcher({
    channels: [{ name: 'hangs', send: () => new Promise(() => {}) }],
    maxQueue: 2,
  });
  for (let i = 0; i < 5; i++) d.deliver(alarmRecord());
  assert.equal(d.outcomes.get('hangs')?.get('dropped'), 3);
  d.close();
});
