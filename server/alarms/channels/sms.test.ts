/**
 * The alarm SMS channel against the local SMSC (test/harness/smsc.ts): what
 * reaches each number, the hourly budget, a retry only to the numbers still
 * missing the record, the link unbound when idle.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import smpp from 'smpp';
import { type Smsc, startSmsc } from '../../../test/harness/smsc.ts';
import { alarmRecord } from '../../../testing/alarm-history-suite.ts';
import { eventually } from '../../../testing/eventually.ts';
import { DestinationPolicy } from '../../net/destination-policy.ts';
import type { AlarmChannel } from './dispatcher.ts';
import { ALARM_SMS_MAX, alarmSmsText, plainGsm, smsChannel } from './sms.ts';

const A = '+491701234567';
const B = '+447700900123';
const loopback = new DestinationPolicy({ allow: ['127.0.0.1'] });

describe('alarm SMS channel', () => {
  let smsc: Smsc;
  const channels: AlarmChannel[] = [];
  const channelWith = (o: { maxPerHour?: number; idleMs?: number; now?: () => number } = {}) => {
    const c = smsChannel(
      { to: [A, B], ...(o.maxPerHour ? { maxPerHour: o.maxPerHour } : {}), idleMs: o.idleMs ?? 60_000 },
      {
        host: smsc.host,
        port: smsc.port,
        systemId: smsc.systemId,
        password: smsc.password,
        sourceAddress: 'Mmgw',
      },
      loopback,
      o.now ? { now: o.now } : {},
    );
    channels.push(c);
    return c;
  };
  const since = (n: number) => smsc.received.slice(n);

  before(async () => {
    smsc = await startSmsc();
  });
  after(async () => {
    for (const c of channels) c.close?.();
    await smsc?.stop();
  });

  test('a record goes to every number as one short plain SMS over one bind', async () => {
    const channel = channelWith();
    const n = smsc.received.length;
    const binds = smsc.binds.length;
    const record = alarmRecord({
      kind: 'takeover_done',
      subject: 't1',
      severity: 'info',
      message: 'node t2 took over 10 devices of node t1 in 2300 ms',
      at: Date.UTC(2026, 11, 7, 16, 57),
    });
    assert.equal(await channel.send(record), undefined);
    const got = since(n);
    assert.deepEqual(
      got.map((r) => r.to),
      ['491701234567', '447700900123'],
    );
    assert.equal(
      got[0]?.text,
      'mmgw INFO takeover_done t1 16:57Z: node t2 took over 10 devices of node t1 in 2300 ms',
    );
    assert.equal(got[0]?.from, 'Mmgw');
    assert.ok(got.every((r) => r.status === smpp.errors.ESME_ROK));
    assert.equal(smsc.binds.length - binds, 1);
  });

  test('hostile text is made plain GSM and cut to 160 characters', () => {
    assert.equal(plainGsm('Zürich\r\n\tnode\u0000 “x” ~{}[]|\\^`€ 😀'), 'Zurich node ?x? ?????????? ?');
    const text = alarmSmsText(
      alarmRecord({ subject: 'preset:mail:\u001b[31mx', message: `peer said: ${'é'.repeat(400)}` }),
    );
    assert.equal(text.length, ALARM_SMS_MAX);
    assert.ok(text.endsWith('..'));
    assert.match(text, /^[A-Za-z0-9 @$!"#%&'()*+,\-./:;<=>?_]+$/);
    assert.match(text, /^mmgw CRITICAL node_gone preset:mail: \?31mx /);
    assert.match(alarmSmsText(alarmRecord({ state: 'cleared' }), 3), /^\(\+3 not sent\) mmgw CLEARED /);
  });

  test('past maxPerHour records are suppressed and counted; the next SMS of the next hour tells how many', async () => {
    let now = 1_000_000;
    const channel = channelWith({ maxPerHour: 2, now: () => now });
    const n = smsc.received.length;
    const results = [];
    for (let i = 0; i < 5; i++) results.push(await channel.send(alarmRecord({ subject: `s${i}` })));
    assert.deepEqual(results, [undefined, undefined, 'suppressed', 'suppressed', 'suppressed']);
    assert.equal(since(n).length, 4, 'two records, two numbers each');
    now += 3_600_000;
    await channel.send(alarmRecord({ subject: 'later' }));
    assert.match(since(n).at(-1)?.text ?? '', /^\(\+3 not sent\) mmgw CRITICAL node_gone later /);
  });

  test('a number the SMSC throttles fails the attempt; the retry goes to it alone', async () => {
    const channel = channelWith();
    smsc.answer(B.slice(1), [smpp.errors.ESME_RTHROTTLED]);
    const record = alarmRecord({ subject: 'retry' });
    const n = smsc.received.length;
    await assert.rejects(channel.send(record), /447700900123: SMSC: ESME_RTHROTTLED/);
    await channel.send(record);
    assert.deepEqual(
      since(n).map((r) => [r.to, r.status === smpp.errors.ESME_ROK]),
      [
        ['491701234567', true],
        ['447700900123', false],
        ['447700900123', true],
      ],
    );
  });

  test('only records of minSeverity and up; an event is not sent again when it clears', () => {
    const c = smsChannel({ to: [A], minSeverity: 'warning' }, {} as never, loopback);
    assert.equal(c.wants?.(alarmRecord({ severity: 'info' })), false);
    assert.equal(c.wants?.(alarmRecord({ severity: 'warning' })), true);
    assert.equal(c.wants?.(alarmRecord({ state: 'cleared' })), true);
    const all = smsChannel({ to: [A] }, {} as never, loopback);
    assert.equal(all.wants?.(alarmRecord({ kind: 'takeover_done', severity: 'info' })), true);
    assert.equal(all.wants?.(alarmRecord({ kind: 'takeover_done', state: 'cleared' })), false);
  });

  test('the link is unbound once idle, and bound again for the next alarm', async () => {
    for (const c of channels.splice(0)) c.close?.();
    await eventually("the other tests' links closed", () => smsc.connections === 0);
    const channel = channelWith({ idleMs: 50 });
    const binds = smsc.binds.length;
    await channel.send(alarmRecord());
    await eventually('unbound when idle', () => smsc.connections === 0);
    await channel.send(alarmRecord());
    assert.equal(smsc.binds.length - binds, 2);
  });
});
