import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createSmtpTransport, guardedMessage } from '../../server/transport/mail/smtp.ts';
import { ALICE, BOB, type MailFixture, startMailFixture } from './mail-fixture.ts';

describe('mail.send through the SMTP peer', () => {
  let fx: MailFixture;
  let alice: string;
  let bob: string;
  before(async () => {
    fx = await startMailFixture({ maxSize: 200_000 });
    alice = await fx.addAccount('dev-alice', ALICE);
    bob = await fx.addAccount('dev-bob', BOB);
  });
  after(async () => {
    await fx?.stop();
  });

  test('answers after the SMTP peer accepted; arrives in the recipient INBOX and in Sent', async () => {
    const bobBase = await fx.call('dev-bob', 'mail.sync', { account: bob, folder: 'INBOX', limit: 10 });
    const res = await fx.call('dev-alice', 'mail.send', {
      account: alice,
      to: [BOB.user],
      subject: 'Lunch?',
      text: 'At noon, café on the corner.',
      clientId: 'c-1',
      attachments: [
        { name: 'menu.txt', type: 'text/plain', content: Buffer.from('soup').toString('base64') },
      ],
    });
    assert.equal(res.clientId, 'c-1');
    assert.equal(res.sentCopy, true);
    assert.deepEqual(res.rejected, []);
    assert.match(res.messageId, /^<c-1\.[0-9a-f]{12}\.mmgw@example\.test>$/);
    assert.equal(fx.smtp.accepted.length, 1);

    const got = await fx.call('dev-bob', 'mail.sync', {
      account: bob,
      folder: 'INBOX',
      limit: 10,
      cursor: bobBase.cursor,
    });
    assert.equal(got.items.length, 1);
    assert.equal(got.items[0].subject, 'Lunch?');
    assert.deepEqual(got.items[0].from, { name: '', address: ALICE.user });
    assert.equal(got.items[0].attachments, 1);
    const body = await fx.call('dev-bob', 'mail.body', {
      account: bob,
      folder: 'INBOX',
      uid: got.items[0].uid,
    });
    assert.equal(body.text.trim(), 'At noon, café on the corner.');
    assert.equal(body.messageId, res.messageId);
    assert.deepEqual(
      body.attachments.map((a: any) => a.name),
      ['menu.txt'],
    );

    const sent = await fx.call('dev-alice', 'mail.sync', { account: alice, folder: 'Sent', limit: 10 });
    assert.equal(sent.items.length, 1);
    assert.deepEqual(sent.items[0].flags, ['\\Seen']);
    assert.equal(sent.items[0].subject, 'Lunch?');

    // Usage records: a login per account, the send with its bytes, syncs with IMAP bytes read.
    const mine = fx.usage.filter((u) => u.account === alice);
    assert.ok(mine.some((u) => u.op === 'login' && u.bytesIn > 0));
    assert.ok(mine.some((u) => u.op === 'send' && u.ok && u.bytesOut > 0));
    assert.ok(fx.usage.some((u) => u.op === 'sync' && u.deviceId === 'dev-bob' && u.bytesIn > 0));
  });

  test('a resend with the same clientId is recognised and not sent twice', async () => {
    const first = await fx.call('dev-alice', 'mail.send', {
      account: alice,
      to: [BOB.user],
      text: 'x',
      clientId: 'c-2',
    });
    const count = fx.smtp.accepted.length;
    const again = await fx.call('dev-alice', 'mail.send', {
      account: alice,
      to: [BOB.user],
      text: 'x',
      clientId: 'c-2',
    });
    assert.equal(again.duplicate, true);
    assert.equal(again.messageId, first.messageId);
    assert.equal(fx.smtp.accepted.length, count);
    // Another device's clientId c-2 is another message.
    const carol = await fx.addAccount('dev-other', ALICE);
    const other = await fx.call('dev-other', 'mail.send', {
      account: carol,
      to: [BOB.user],
      text: 'y',
      clientId: 'c-2',
    });
    assert.notEqual(other.messageId, first.messageId);
    assert.equal(fx.smtp.accepted.length, count + 1);
  });

  test('two sends of one clientId at the same time (resends a bus outage let go together) send once', async () => {
    const count = fx.smtp.accepted.length;
    const send = () =>
      fx.call('dev-alice', 'mail.send', {
        account: alice,
        to: [BOB.user],
        text: 'z',
        clientId: 'c-together',
      });
    const answers = await Promise.all([send(), send(), send()]);
    assert.equal(fx.smtp.accepted.length, count + 1);
    assert.equal(answers.filter((a) => a.duplicate === true).length, 2);
    assert.equal(new Set(answers.map((a) => a.messageId)).size, 1);
  });

  test('a send past its deadline (a node frozen mid-request) is not made; the resend sends once', async () => {
    const count = fx.smtp.accepted.length;
    const body = { account: alice, to: [BOB.user], text: 'late', clientId: 'c-late' };
    await assert.rejects(
      fx.call('dev-alice', 'mail.send', body, { deadline: Date.now() - 1 }),
      (err: unknown) => err instanceof Error && (err as { code?: string }).code === 'request.timeout',
    );
    assert.equal(fx.smtp.accepted.length, count, 'nothing went out');
    const sent = await fx.call('dev-alice', 'mail.send', body, { deadline: Date.now() + 30_000 });
    assert.notEqual(sent.duplicate, true);
    assert.equal(fx.smtp.accepted.length, count + 1);
  });

  test('a guarded message whose guard says no before the end is not taken (STARTTLS)', async () => {
    const settings = {
      host: fx.smtp.host,
      port: fx.smtp.port,
      tls: 'starttls' as const,
      allowInvalidCert: true,
      user: ALICE.user,
      password: ALICE.password,
    };
    const target = { host: fx.smtp.host, address: '127.0.0.1', family: 4 as const, port: fx.smtp.port };
    const raw = Buffer.from(`From: ${ALICE.user}\r\nTo: ${BOB.user}\r\nSubject: guarded\r\n\r\nbody\r\n`);
    const count = fx.smtp.accepted.length;
    const envelope = { from: ALICE.user, to: [BOB.user] };
    // The guard is asked as the data is read: yes for the body, no before its end (a pause came).
    let asked = 0;
    const smtp = createSmtpTransport(settings, target, 5000);
    try {
      await assert.rejects(
        smtp.transport.sendMail({ envelope, raw: guardedMessage(raw, () => ++asked < 2) }),
      );
      assert.equal(asked, 2);
      assert.equal(fx.smtp.accepted.length, count, 'the server took nothing');
    } finally {
      smtp.close();
    }
    const again = createSmtpTransport(settings, target, 5000);
    try {
      await again.transport.sendMail({ envelope, raw: guardedMessage(raw, () => true) });
      assert.equal(fx.smtp.accepted.length, count + 1, 'with the guard saying yes it goes');
    } finally {
      again.close();
    }
  });

  test('refused recipient, too large and bad input are distinct errors', async () => {
    const before = fx.smtp.accepted.length;
    const e1 = await fx.callError('dev-alice', 'mail.send', {
      account: alice,
      to: ['nobody@example.test'],
      text: 'hi',
      clientId: 'c-3',
    });
    assert.equal(e1.code, 'mail.recipient_refused');
    const e2 = await fx.callError('dev-alice', 'mail.send', {
      account: alice,
      to: [BOB.user],
      text: 'big',
      clientId: 'c-4',
      attachments: [{ name: 'big.bin', content: new Uint8Array(300_000) }],
    });
    assert.equal(e2.code, 'mail.too_large');
    const e3 = await fx.callError('dev-alice', 'mail.send', { account: alice, to: [BOB.user], text: 'x' });
    assert.equal(e3.code, 'request.bad_input');
    assert.equal(e3.field, 'clientId');
    assert.equal(fx.smtp.accepted.length, before);
    // None of them was copied to Sent.
    const sent = await fx.call('dev-alice', 'mail.sync', { account: alice, folder: 'Sent', limit: 50 });
    assert.ok(!sent.items.some((i: any) => ['big'].includes(i.preview)));
  });
});

describe('Dovecot restarted mid-session', () => {
  let fx: MailFixture;
  const states: string[] = [];
  before(async () => {
    fx = await startMailFixture({
      serviceOptions: { onAccountState: (_a, _d, s) => states.push(s) },
    });
  });
  after(async () => {
    await fx?.stop();
  });

  test('the next call reconnects; no message is missed or doubled', async () => {
    const account = await fx.addAccount('dev-x', ALICE);
    const u1 = await fx.dovecot.appendMessage(ALICE.user, 'INBOX', 'Subject: before\r\n\r\nbefore\r\n');
    const s1 = await fx.call('dev-x', 'mail.sync', { account, folder: 'INBOX', limit: 10 });
    assert.deepEqual(
      s1.items.map((i: any) => i.uid),
      [u1],
    );
    assert.equal(fx.service.deps.sessions.state(account), 'online');

    let downError: any;
    await fx.restartDovecot(async () => {
      downError = await fx.callError('dev-x', 'mail.folders', { account });
    });
    assert.equal(downError.code, 'mail.unreachable');
    assert.equal(downError.retryable, true);

    const u2 = await fx.dovecot.appendMessage(ALICE.user, 'INBOX', 'Subject: after\r\n\r\nafter\r\n');
    const s2 = await fx.call('dev-x', 'mail.sync', {
      account,
      folder: 'INBOX',
      limit: 10,
      cursor: s1.cursor,
    });
    assert.deepEqual(
      s2.items.map((i: any) => i.uid),
      [u2],
    );
    const s3 = await fx.call('dev-x', 'mail.sync', {
      account,
      folder: 'INBOX',
      limit: 10,
      cursor: s2.cursor,
    });
    assert.deepEqual(s3.items, []);
    assert.equal(fx.service.deps.sessions.state(account), 'online');
    assert.ok(states.includes('retrying'), states.join(','));
    assert.equal(states.at(-1), 'online');
  });
});
