import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { startSmsc } from '../../test/harness/smsc.ts';
import { eventually } from '../../testing/eventually.ts';
import { fakeMembership } from '../../testing/fake-membership.ts';
import { startWebhookReceiver } from '../../testing/webhook-receiver.ts';
import { InProcessBus } from '../bus/inproc.ts';
import { silentLogger } from '../ops/logger.ts';
import { MemoryAlarmHistory } from './history.ts';
import { reportTakeover, startAlarmService } from './service.ts';

const SECRET = 'service-test-secret-0123456789';

test('a takeover reported on the bus is kept and delivered as an event; a malformed one is ignored', async (t) => {
  const bus = new InProcessBus();
  const dir = mkdtempSync(join(tmpdir(), 'mmgw-alarm-service-'));
  const webhook = await startWebhookReceiver(SECRET);
  const metrics = new Registry();
  const service = await startAlarmService({
    nodeId: 't2',
    roles: ['transport'],
    bus,
    nats: false,
    membership: fakeMembership().membership,
    dataDir: dir,
    settings: { webhook: { url: webhook.url, secret: SECRET }, allowDestinations: ['127.0.0.1'] },
    logger: silentLogger(),
    metrics,
    history: new MemoryAlarmHistory(),
  });
  t.after(async () => {
    await service.close();
    await bus.close();
    await webhook.close();
    rmSync(dir, { recursive: true, force: true });
  });
  bus.publish('mmgw.alarms.event', {
    kind: 'takeover_done',
    fromNode: 'bad node id!',
    byNode: 't2',
    devices: 1,
  });
  bus.publish('mmgw.alarms.event', 'nonsense');
  reportTakeover(bus, { fromNode: 't1', byNode: 't2', devices: 10, accounts: 14, tookMs: 2300 });
  await eventually('raised and cleared at the webhook', () => webhook.alarms.length === 2);
  assert.deepEqual(
    webhook.alarms.map((a) => [a.kind, a.subject, a.state, a.severity]),
    [
      ['takeover_done', 't1', 'raised', 'info'],
      ['takeover_done', 't1', 'cleared', 'info'],
    ],
  );
  assert.match(
    webhook.alarms[0]?.message ?? '',
    /node t2 took over 10 devices \(14 accounts\) of node t1 in 2300 ms/,
  );
  assert.equal(service.book.list(true).length, 0, 'an event is never active');
  assert.equal((await service.book.history.list({ limit: 10 })).length, 2);
  await eventually('counted', async () =>
    /mmgw_alarm_deliveries_total\{channel="webhook",result="delivered"\} 2/.test(await metrics.metrics()),
  );
  // The active-alarm gauge Prometheus rules read: an event counts nowhere, a raise counts by its kind.
  assert.match(await metrics.metrics(), /mmgw_alarms_active\{kind="takeover_done"\} 0/);
  await service.book.raise({
    kind: 'backend_failing',
    subject: 'preset:mail:x',
    severity: 'warning',
    message: 'm',
  });
  assert.match(await metrics.metrics(), /mmgw_alarms_active\{kind="backend_failing"\} 1/);
  assert.match(await metrics.metrics(), /mmgw_alarms_active\{kind="nats_server_gone"\} 0/);
});

test('on an in-process bus the history is lmdb under the data directory, and survives a restart', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mmgw-alarm-service-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const start = async (bus: InProcessBus) =>
    startAlarmService({
      nodeId: 'n1',
      roles: ['admin'],
      bus,
      nats: false,
      membership: fakeMembership().membership,
      dataDir: dir,
      logger: silentLogger(),
    });
  const bus = new InProcessBus();
  const first = await start(bus);
  assert.equal(first.book.history.backend, 'lmdb');
  await first.book.raise({ kind: 'node_gone', subject: 'e1', severity: 'critical', message: 'gone' });
  await first.close();
  const second = await start(bus);
  assert.deepEqual(
    second.book.list(true).map((a) => a.id),
    ['node_gone:e1'],
  );
  await second.close();
  await bus.close();
});

test('alarms.sms: a takeover reaches the configured numbers over SMPP; with the SMSC down the webhook still gets the next alarm', async (t) => {
  const bus = new InProcessBus();
  const dir = mkdtempSync(join(tmpdir(), 'mmgw-alarm-service-'));
  const webhook = await startWebhookReceiver(SECRET);
  const smsc = await startSmsc();
  const service = await startAlarmService({
    nodeId: 'n1',
    roles: ['admin', 'transport'],
    bus,
    nats: false,
    membership: fakeMembership().membership,
    dataDir: dir,
    settings: {
      webhook: { url: webhook.url, secret: SECRET },
      sms: { to: ['+491701234567'] },
      delivery: { baseDelayMs: 20, maxDelayMs: 50, maxAttempts: 2 },
      allowDestinations: ['127.0.0.1'],
    },
    smsLink: { ...smsc, sourceAddress: 'Mmgw' },
    logger: silentLogger(),
    history: new MemoryAlarmHistory(),
  });
  t.after(async () => {
    await service.close();
    await bus.close();
    await webhook.close();
    await smsc.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  assert.deepEqual(service.dispatcher.channelNames, ['webhook', 'sms']);
  reportTakeover(bus, { fromNode: 't1', byNode: 't2', devices: 10 });
  await eventually('the SMS at the SMSC', () => smsc.received.length === 1);
  assert.equal(smsc.received[0]?.to, '491701234567');
  assert.match(
    smsc.received[0]?.text ?? '',
    /^mmgw INFO takeover_done t1 \d\d:\d\dZ: node t2 took over 10 devices of node t1$/,
  );
  await eventually('raised and cleared at the webhook', () => webhook.alarms.length === 2);
  assert.equal(smsc.received.length, 1, "the event's clear is no SMS");

  await smsc.stop();
  await service.book.raise({ kind: 'node_gone', subject: 'e1', severity: 'critical', message: 'gone' });
  await eventually('the webhook has it', () => webhook.alarms.some((a) => a.kind === 'node_gone'));
  await eventually(
    'the SMS given up after its attempts',
    () => service.dispatcher.outcomes.get('sms')?.get('given_up') === 1,
  );
  assert.equal(service.dispatcher.outcomes.get('sms')?.get('delivered'), 1);
});
