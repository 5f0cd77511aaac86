/**
 * The SMPP sender against the local SMSC (test/harness/smsc.ts, the smpp
 * package's server on loopback): bind, submit_sm and its answers, receipts,
 * keep-alive, a dropped link bound again, a refused bind.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import smpp from 'smpp';
import { type Smsc, startSmsc } from '../../../test/harness/smsc.ts';
import { chatWake, mailWake } from '../../../testing/wake-messages.ts';
import { eventually } from '../../../testing/index.ts';
import { DestinationPolicy } from '../../net/destination-policy.ts';
import { sendWithRetries } from './channel.ts';
import { relativeValidity, SmsSender, type SmsSenderOptions } from './sms-sender.ts';

const ERR = smpp.errors;
const NUMBER = '+491701234567';
const reg = (msisdn = NUMBER) => ({ kind: 'sms' as const, msisdn, at: 0 });
const noSleep = { sleep: async () => {} };

describe('SMS sender (SMPP)', () => {
  let smsc: Smsc;
  const senders: SmsSender[] = [];
  const senderWith = (o: Partial<SmsSenderOptions> = {}) => {
    const s = new SmsSender({
      host: smsc.host,
      port: smsc.port,
      systemId: smsc.systemId,
      password: smsc.password,
      sourceAddress: 'Mmgw',
      policy: new DestinationPolicy({ allow: ['127.0.0.1'] }),
      rebindMinMs: 50,
      responseTimeoutMs: 2000,
      ...o,
    });
    senders.push(s);
    return s;
  };

  before(async () => {
    smsc = await startSmsc();
  });
  after(async () => {
    for (const s of senders) await s.close();
    await smsc?.stop();
  });

  test('one bind serves many SMS; each carries the placeholder text only, the TTL as validity, and asks for a receipt', async () => {
    const receipts: [string, string][] = [];
    const sender = senderWith({ onReceipt: (id, state) => receipts.push([id, state]) });
    const binds = smsc.binds.length;
    const before = smsc.received.length;
    assert.deepEqual(await sender.attempt(reg(), mailWake(3)), { result: 'sent' });
    assert.deepEqual(await sender.attempt(reg('+447700900123'), chatWake(1)), { result: 'sent' });
    assert.equal(smsc.binds.length - binds, 1, 'one bind for both');
    assert.deepEqual(smsc.binds.at(-1), { systemId: 'mmgw', command: 'bind_transceiver', ok: true });
    const [first, second] = smsc.received.slice(before);
    assert.equal(first!.to, '491701234567');
    assert.equal(first!.destTon, 1);
    assert.equal(first!.from, 'Mmgw');
    assert.equal(first!.sourceTon, 5, 'an alphanumeric sender');
    assert.equal(first!.text, '3 new messages');
    assert.equal(first!.registeredDelivery, 1);
    assert.ok(Math.abs(first!.validitySeconds - 86400) <= 5, `a day for mail: ${first!.validitySeconds}`);
    assert.equal(second!.text, 'New message');
    assert.ok(Math.abs(second!.validitySeconds - 3600) <= 5, `an hour for chat: ${second!.validitySeconds}`);
    await eventually('both receipts', () => receipts.length === 2);
    assert.deepEqual(receipts.sort(), [
      [first!.messageId!, 'DELIVRD'],
      [second!.messageId!, 'DELIVRD'],
    ]);
    assert.ok(sender.bound);
  });

  test('a numeric source address goes as an international number', async () => {
    const sender = senderWith({ sourceAddress: '+4915112345' });
    assert.deepEqual(await sender.attempt(reg(), mailWake(1)), { result: 'sent' });
    const last = smsc.received.at(-1)!;
    assert.equal(last.from, '4915112345');
    assert.equal(last.sourceTon, 1);
    assert.equal(last.registeredDelivery, 0, 'no receipt asked when nobody listens for one');
  });

  test('throttled and queue full are retried; then sent', async () => {
    const sender = senderWith();
    smsc.answer('491701234567', [ERR.ESME_RTHROTTLED, ERR.ESME_RMSGQFUL]);
    const before = smsc.received.length;
    assert.deepEqual(await sendWithRetries(sender, reg(), mailWake(1), noSleep), { result: 'sent' });
    assert.deepEqual(
      smsc.received.slice(before).map((r) => r.status),
      [ERR.ESME_RTHROTTLED, ERR.ESME_RMSGQFUL, ERR.ESME_ROK],
    );
    smsc.answer('491701234567', [ERR.ESME_RTHROTTLED, ERR.ESME_RTHROTTLED, ERR.ESME_RTHROTTLED]);
    assert.deepEqual(await sendWithRetries(sender, reg(), mailWake(1), noSleep), {
      result: 'failed',
      why: 'SMSC: ESME_RTHROTTLED',
    });
  });

  test('an invalid destination is gone (the channel is pruned); another refusal is failed for good', async () => {
    const sender = senderWith();
    smsc.invalid('491709999999');
    assert.deepEqual(await sendWithRetries(sender, reg('+491709999999'), mailWake(1), noSleep), {
      result: 'gone',
      code: 'smpp_ESME_RINVDSTADR',
      why: 'SMSC: ESME_RINVDSTADR',
    });
    smsc.answer('491701234567', [ERR.ESME_RINVBNDSTS]);
    const before = smsc.received.length;
    assert.deepEqual(await sendWithRetries(sender, reg(), mailWake(1), noSleep), {
      result: 'failed',
      why: 'SMSC: ESME_RINVBNDSTS',
    });
    assert.equal(smsc.received.length - before, 1, 'not tried again');
  });

  test('a dropped link is bound again by itself after the backoff, and again while the SMSC is away', async () => {
    const own = await startSmsc();
    try {
      const sender = senderWith({ port: own.port, rebindMinMs: 100 });
      assert.deepEqual(await sender.attempt(reg(), mailWake(1)), { result: 'sent' });
      own.drop();
      await eventually('the drop seen', () => !sender.bound);
      await eventually('bound again without an SMS asking', () => sender.bound && own.binds.length === 2);
      assert.deepEqual(await sender.attempt(reg(), mailWake(1)), { result: 'sent' });
      assert.equal(own.received.filter((r) => r.status === ERR.ESME_ROK).length, 2);
    } finally {
      await own.stop();
    }
  });

  test('a link whose enquire_link goes unanswered is given up and bound anew', async () => {
    const own = await startSmsc();
    try {
      const sender = senderWith({
        port: own.port,
        enquireLinkMs: 50,
        responseTimeoutMs: 300,
        rebindMinMs: 50,
      });
      assert.deepEqual(await sender.attempt(reg(), mailWake(1)), { result: 'sent' });
      own.mute(true);
      await eventually('the dead link given up', () => !sender.bound);
      own.mute(false);
      await eventually('bound anew', () => sender.bound && own.binds.length >= 2);
      assert.deepEqual(await sender.attempt(reg(), mailWake(1)), { result: 'sent' });
    } finally {
      await own.stop();
    }
  });

  test('the link is kept alive with enquire_link', async () => {
    const sender = senderWith({ enquireLinkMs: 50 });
    const before = smsc.enquireLinks;
    assert.deepEqual(await sender.attempt(reg(), mailWake(1)), { result: 'sent' });
    await eventually('enquire_links', () => smsc.enquireLinks >= before + 2);
  });

  test('bad credentials: a failure naming the refusal, not retried, no crash; binds again only after the backoff', async () => {
    const sender = senderWith({ password: 'wrong', rebindMinMs: 60_000 });
    const binds = smsc.binds.length;
    const first = await sender.attempt(reg(), mailWake(1));
    assert.equal(first.result, 'failed');
    assert.match((first as { why: string }).why, /bind refused: ESME_RINVPASWD/);
    assert.equal((first as { retry: boolean }).retry, false);
    const second = await sender.attempt(reg(), mailWake(1));
    assert.equal(second.result, 'failed');
    assert.equal((second as { retryAfter?: string }).retryAfter, '60');
    assert.equal(smsc.binds.length - binds, 1, 'no second bind within the backoff');
    assert.equal(sender.bound, false);
  });

  test('an SMSC the destination policy refuses is never connected to', async () => {
    const binds = smsc.binds.length;
    const sender = senderWith({ policy: new DestinationPolicy() });
    assert.deepEqual(await sendWithRetries(sender, reg(), mailWake(1), noSleep), {
      result: 'failed',
      why: "SMSC 127.0.0.1 not allowed or not found: The gateway's outbound policy does not allow connecting to this server.",
    });
    assert.equal(smsc.binds.length, binds);
  });

  test('an SMSC that is not there: failed, retryable', async () => {
    const down = await startSmsc();
    const port = down.port;
    await down.stop();
    const sender = senderWith({ port });
    const r = await sender.attempt(reg(), mailWake(1));
    assert.equal(r.result, 'failed');
    assert.match((r as { why: string }).why, /unreachable/);
    assert.equal((r as { retry: boolean }).retry, true);
  });
});

test('relative validity: days, hours, minutes, seconds; at most 99 days', () => {
  assert.equal(relativeValidity(3600), '000000010000000R');
  assert.equal(relativeValidity(90061), '000001010101000R');
  assert.equal(relativeValidity(1e9), '000099000000000R');
});
