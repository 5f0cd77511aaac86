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

test('a channel gets only the records it wants; a suppressed one is counted as such, not delivered', async () => {
  const got: string[] = [];
  const d = new ChannelDispatcher({
    channels: [
      {
        name: 'picky',
        wants: (r) => r.severity === 'critical',
        async send(r) {
          got.push(r.subject);
          return r.subject === 'over' ? 'suppressed' : undefined;
        },
      },
    ],
  });
  d.deliver(alarmRecord({ subject: 'info', severity: 'info' }));
  d.deliver(alarmRecord({ subject: 'over' }));
  d.deliver(alarmRecord({ subject: 'sent' }));
  await eventually('two sent through', () => got.length === 2);
  assert.deepEqual(got, ['over', 'sent']);
  assert.equal(d.outcomes.get('picky')?.get('suppressed'), 1);
  assert.equal(d.outcomes.get('picky')?.get('delivered'), 1);
  d.close();
});
