import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { freePort } from '../harness/dovecot.ts';
import { ALICE, BOB, type MailFixture, startMailFixture } from './mail-fixture.ts';

describe('mail.account.add against real Dovecot and the SMTP peer', () => {
  let fx: MailFixture;
  before(async () => {
    fx = await startMailFixture();
  });
  after(async () => {
    await fx?.stop();
  });

  test('logs in to both servers, stores the account, and lists it', async () => {
    const res = await fx.call('dev-a', 'mail.account.add', fx.accountBody(ALICE));
    assert.match(res.account, /^m[0-9a-f]{16}$/);
    assert.equal(res.address, ALICE.user);
    const list = await fx.call('dev-a', 'mail.accounts', {});
    assert.deepEqual(
      list.accounts.map((a: any) => a.account),
      [res.account],
    );
    // Another device does not see (or use) it.
    assert.deepEqual((await fx.call('dev-b', 'mail.accounts', {})).accounts, []);
    const err = await fx.callError('dev-b', 'mail.folders', { account: res.account });
    assert.equal(err.code, 'mail.not_found');
  });

  test('the account survives a restart of the service, and the password is not stored in clear', async () => {
    const id = await fx.addAccount('dev-r', BOB);
    await fx.service.close();
    const { readdirSync, readFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const dir = join(fx.dataDir, 'transport');
    for (const f of readdirSync(dir)) {
      assert.ok(
        !readFileSync(join(dir, f)).includes(Buffer.from(BOB.password)),
        `${f} holds the password in clear`,
      );
    }
    await fx.restartService();
    const folders = await fx.call('dev-r', 'mail.folders', { account: id });
    assert.ok(folders.folders.some((f: any) => f.path === 'INBOX'));
  });

  test('a wrong IMAP password is mail.auth_failed and nothing is stored', async () => {
    const body = fx.accountBody(ALICE);
    (body.imap as any).password = 'wrong';
    const err = await fx.callError('dev-c', 'mail.account.add', body);
    assert.equal(err.code, 'mail.auth_failed');
    assert.equal(err.field, 'imap.password');
    assert.ok(!err.message.includes('wrong'));
    assert.deepEqual((await fx.call('dev-c', 'mail.accounts', {})).accounts, []);
  });

  test('a wrong SMTP password is mail.auth_failed on smtp', async () => {
    const body = fx.accountBody(ALICE);
    (body.smtp as any).password = 'wrong';
    const err = await fx.callError('dev-c', 'mail.account.add', body);
    assert.equal(err.code, 'mail.auth_failed');
    assert.equal(err.field, 'smtp.password');
    assert.deepEqual((await fx.call('dev-c', 'mail.accounts', {})).accounts, []);
  });

  test('a closed port is mail.unreachable (retryable) for IMAP and SMTP', async () => {
    const closed = await freePort();
    const imapBody = fx.accountBody(ALICE);
    (imapBody.imap as any).port = closed;
    const e1 = await fx.callError('dev-c', 'mail.account.add', imapBody);
    assert.equal(e1.code, 'mail.unreachable');
    assert.equal(e1.retryable, true);
    const smtpBody = fx.accountBody(ALICE);
    (smtpBody.smtp as any).port = closed;
    const e2 = await fx.callError('dev-c', 'mail.account.add', smtpBody);
    assert.equal(e2.code, 'mail.unreachable');
    assert.equal(e2.field, 'smtp.host');
    assert.deepEqual((await fx.call('dev-c', 'mail.accounts', {})).accounts, []);
  });

  test('an untrusted certificate is mail.tls_failed; STARTTLS to a server without TLS too', async () => {
    const body = fx.accountBody(ALICE);
    delete (body.smtp as any).allowInvalidCert;
    const e1 = await fx.callError('dev-c', 'mail.account.add', body);
    assert.equal(e1.code, 'mail.tls_failed');
    // Dovecot here has ssl = no: insisting on STARTTLS must fail as TLS, not hang or pass.
    const body2 = fx.accountBody(ALICE);
    (body2.imap as any).tls = 'starttls';
    const e2 = await fx.callError('dev-c', 'mail.account.add', body2);
    assert.equal(e2.code, 'mail.tls_failed');
    // Implicit TLS to a plaintext port: a handshake failure, not a hang.
    const body3 = fx.accountBody(ALICE);
    (body3.imap as any).tls = 'implicit';
    const e3 = await fx.callError('dev-c', 'mail.account.add', body3);
    assert.equal(e3.code, 'mail.tls_failed');
    assert.deepEqual((await fx.call('dev-c', 'mail.accounts', {})).accounts, []);
  });

  test('bad input names the field', async () => {
    const cases: [unknown, string][] = [
      [null, 'body'],
      [{ ...fx.accountBody(ALICE), address: 'nope' }, 'address'],
      [
        { ...fx.accountBody(ALICE), imap: { ...(fx.accountBody(ALICE).imap as object), tls: 'ssl' } },
        'imap.tls',
      ],
      [
        { ...fx.accountBody(ALICE), smtp: { ...(fx.accountBody(ALICE).smtp as object), port: 70000 } },
        'smtp.port',
      ],
      [{ ...fx.accountBody(ALICE), imap: 'x' }, 'imap'],
    ];
    for (const [body, field] of cases) {
      const err = await fx.callError('dev-c', 'mail.account.add', body);
      assert.equal(err.code, 'request.bad_input');
      assert.equal(err.field, field);
    }
  });

  test('mail.account.remove forgets the account', async () => {
    const id = await fx.addAccount('dev-d', ALICE);
    await fx.call('dev-d', 'mail.account.remove', { account: id });
    assert.deepEqual((await fx.call('dev-d', 'mail.accounts', {})).accounts, []);
    assert.equal((await fx.callError('dev-d', 'mail.folders', { account: id })).code, 'mail.not_found');
  });
});
