// The input schemas of the mail methods: every limit and either-or rule, without a mail server.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { methodInputs } from '../../../testing/index.ts';
import type { MailDeps } from './deps.ts';
import { mailMethods } from './index.ts';

const { parse, refusedField } = methodInputs(mailMethods({} as MailDeps));

const server = (over: object = {}) => ({
  host: 'imap.example.org',
  port: 143,
  tls: 'none',
  password: 'pw',
  ...over,
});
const account = { account: 'm0123', folder: 'INBOX' };

describe('mail method inputs', () => {
  test('mail.account.add with servers: SMTP login and password default to IMAP’s', () => {
    const input = parse('mail.account.add', {
      address: 'a@example.org',
      imap: server({ user: 'alice', allowInvalidCert: true }),
      smtp: server({ port: 587, tls: 'starttls', password: undefined }),
    });
    assert.deepEqual(input, {
      address: 'a@example.org',
      imap: {
        host: 'imap.example.org',
        port: 143,
        tls: 'none',
        user: 'alice',
        password: 'pw',
        allowInvalidCert: true,
      },
      smtp: { host: 'imap.example.org', port: 587, tls: 'starttls', user: 'alice', password: 'pw' },
    });
    const noUser = parse('mail.account.add', {
      address: 'a@example.org',
      name: 'A',
      imap: server(),
      smtp: server(),
    });
    assert.equal(noUser.name, 'A');
    assert.equal(noUser.imap.user, 'a@example.org', 'the login defaults to the address');
  });

  test('mail.account.add with a preset: servers refused, password required, user defaults to the address', () => {
    assert.deepEqual(
      parse('mail.account.add', { address: 'a@example.org', preset: 'Corp', password: 'pw' }),
      {
        address: 'a@example.org',
        preset: 'Corp',
        user: 'a@example.org',
        password: 'pw',
      },
    );
    assert.equal(
      refusedField('mail.account.add', {
        address: 'a@x.org',
        preset: 'Corp',
        password: 'pw',
        imap: server(),
      }),
      'imap',
    );
    assert.equal(
      refusedField('mail.account.add', { address: 'a@x.org', preset: 'Corp', smtp: null, password: 'p' }),
      'smtp',
    );
    assert.equal(refusedField('mail.account.add', { address: 'a@x.org', preset: 'Corp' }), 'password');
    assert.equal(
      refusedField('mail.account.add', { address: 'a@x.org', preset: 'x'.repeat(101), password: 'p' }),
      'preset',
    );
  });

  test('mail.account.add refuses what it cannot use, naming the field', () => {
    const ok = { address: 'a@example.org', imap: server(), smtp: server() };
    const cases: [unknown, string][] = [
      [null, 'body'],
      [new Uint8Array(3), 'body'],
      [{ ...ok, address: 'nope' }, 'address'],
      [{ ...ok, address: `${'a'.repeat(320)}@x` }, 'address'],
      [{ ...ok, name: 'n'.repeat(201) }, 'name'],
      [{ ...ok, imap: server({ tls: 'ssl' }) }, 'imap.tls'],
      [{ ...ok, smtp: server({ port: 70000 }) }, 'smtp.port'],
      [{ ...ok, imap: server({ port: 0 }) }, 'imap.port'],
      [{ ...ok, imap: server({ host: '' }) }, 'imap.host'],
      [{ ...ok, imap: server({ host: 'h'.repeat(256) }) }, 'imap.host'],
      [{ ...ok, imap: server({ password: undefined }) }, 'imap.password'],
      [{ ...ok, imap: server({ password: 'p'.repeat(1001) }) }, 'imap.password'],
      [{ ...ok, smtp: server({ password: null }) }, 'smtp.password'],
      [{ ...ok, imap: server({ user: 'u'.repeat(321) }) }, 'imap.user'],
      [{ ...ok, imap: server({ allowInvalidCert: 'yes' }) }, 'imap.allowInvalidCert'],
      [{ ...ok, imap: 'x' }, 'imap'],
      [{ address: 'a@example.org', imap: server() }, 'smtp'],
    ];
    for (const [body, field] of cases)
      assert.equal(refusedField('mail.account.add', body), field, JSON.stringify(body));
  });

  test('account, folder and UIDs: limits shared by the folder methods', () => {
    assert.deepEqual(parse('mail.delete', { ...account, uids: 7 }), { ...account, uids: [7] });
    assert.deepEqual(parse('mail.move', { ...account, uids: [1, 2], to: 'Archive' }), {
      ...account,
      uids: [1, 2],
      to: 'Archive',
    });
    assert.equal(refusedField('mail.delete', { ...account, uids: [] }), 'uids');
    assert.equal(refusedField('mail.delete', { ...account }), 'uids');
    assert.equal(refusedField('mail.delete', { ...account, uids: [1, 0] }), 'uids');
    assert.equal(refusedField('mail.delete', { ...account, uids: [2 ** 32] }), 'uids');
    assert.equal(
      refusedField('mail.delete', { ...account, uids: Array.from({ length: 1001 }, (_, i) => i + 1) }),
      'uids',
    );
    assert.ok(parse('mail.delete', { ...account, uids: Array.from({ length: 1000 }, (_, i) => i + 1) }));
    assert.equal(refusedField('mail.move', { ...account, uids: [1], to: 'A\u0000B' }), 'to');
    assert.equal(refusedField('mail.move', { ...account, uids: [1], to: 'x'.repeat(501) }), 'to');
    assert.equal(refusedField('mail.folders', { account: 'a'.repeat(101) }), 'account');
    assert.equal(refusedField('mail.account.remove', {}), 'account');
  });

  test('mail.sync: limit 1–500 (default 50), optional cursor, before and compact', () => {
    assert.deepEqual(parse('mail.sync', { ...account, cursor: '', compact: false }), {
      ...account,
      limit: 50,
    });
    assert.deepEqual(
      parse('mail.sync', { ...account, limit: 500, cursor: 's1.x', before: 9, compact: true }),
      {
        ...account,
        limit: 500,
        cursor: 's1.x',
        before: 9,
        compact: true,
      },
    );
    assert.equal(refusedField('mail.sync', { ...account, limit: 501 }), 'limit');
    assert.equal(refusedField('mail.sync', { ...account, limit: 0 }), 'limit');
    assert.equal(refusedField('mail.sync', { ...account, before: 0 }), 'before');
    assert.equal(refusedField('mail.sync', { ...account, cursor: 'c'.repeat(201) }), 'cursor');
    assert.equal(refusedField('mail.sync', { ...account, compact: 'yes' }), 'compact');
    assert.equal(refusedField('mail.sync', { account: 'm1', folder: 'IN\nBOX' }), 'folder');
  });

  test('mail.body and mail.attachment: budgets, offsets and chunk sizes', () => {
    assert.deepEqual(parse('mail.body', { ...account, uid: 3 }), { ...account, uid: 3, offset: 0 });
    assert.equal(parse('mail.body', { ...account, uid: 3, maxBytes: 256 }).maxBytes, 256);
    assert.equal(refusedField('mail.body', { ...account, uid: 3, maxBytes: 255 }), 'maxBytes');
    assert.equal(refusedField('mail.body', { ...account, uid: 3, maxBytes: 1024 * 1024 + 1 }), 'maxBytes');
    assert.equal(refusedField('mail.body', { ...account, uid: 0 }), 'uid');
    assert.equal(refusedField('mail.body', { ...account, uid: 3, offset: 2 ** 30 + 1 }), 'offset');
    assert.deepEqual(parse('mail.attachment', { ...account, uid: 3, part: '1.2' }), {
      ...account,
      uid: 3,
      part: '1.2',
      variant: 'original',
      offset: 0,
      length: 64 * 1024,
    });
    assert.equal(refusedField('mail.attachment', { ...account, uid: 3, part: '0' }), 'part');
    assert.equal(
      refusedField('mail.attachment', { ...account, uid: 3, part: '2', variant: 'huge' }),
      'variant',
    );
    assert.equal(
      refusedField('mail.attachment', { ...account, uid: 3, part: '2', length: 512 * 1024 + 1 }),
      'length',
    );
    assert.equal(
      refusedField('mail.attachment', { ...account, uid: 3, part: '2', offset: 2 ** 40 + 1 }),
      'offset',
    );
  });

  test('mail.send: recipients, attachments (bytes or base64), defaults', () => {
    const ok = { account: 'm1', to: 'b@example.org', clientId: 'c-1' };
    const input = parse('mail.send', {
      ...ok,
      inReplyTo: '',
      attachments: [{ name: 'a.txt', content: Buffer.from('hi').toString('base64') }],
    });
    assert.deepEqual(input.to, ['b@example.org']);
    assert.deepEqual([input.cc, input.bcc, input.subject, input.text], [[], [], '', '']);
    assert.equal('inReplyTo' in input, false);
    assert.equal(input.attachments[0].type, 'application/octet-stream');
    assert.equal(Buffer.from(input.attachments[0].content).toString(), 'hi');
    const bytes = new Uint8Array([1, 2, 3]);
    assert.deepEqual(
      parse('mail.send', { ...ok, attachments: [{ name: 'b', content: bytes }] }).attachments[0].content,
      bytes,
    );
    const many = (n: number) => Array.from({ length: n }, (_, i) => `r${i}@example.org`);
    assert.ok(parse('mail.send', { ...ok, to: many(100) }));
    assert.equal(refusedField('mail.send', { ...ok, to: many(101) }), 'to');
    assert.equal(refusedField('mail.send', { ...ok, to: undefined }), 'to');
    assert.equal(refusedField('mail.send', { ...ok, cc: [''] }), 'cc');
    assert.equal(refusedField('mail.send', { ...ok, bcc: 3 }), 'bcc');
    const file = { name: 'f', content: 'AA==' };
    assert.equal(refusedField('mail.send', { ...ok, attachments: Array(21).fill(file) }), 'attachments');
    assert.equal(
      refusedField('mail.send', { ...ok, attachments: [file, { name: 'g', content: 5 }] }),
      'attachments[1].content',
    );
    assert.equal(
      refusedField('mail.send', { ...ok, attachments: [{ content: 'AA==' }] }),
      'attachments[0].name',
    );
    assert.equal(refusedField('mail.send', { ...ok, attachments: ['x'] }), 'attachments[0]');
    assert.equal(refusedField('mail.send', { ...ok, subject: 's'.repeat(2001) }), 'subject');
    assert.equal(refusedField('mail.send', { ...ok, clientId: '' }), 'clientId');
    assert.equal(refusedField('mail.send', { ...ok, clientId: 'c'.repeat(201) }), 'clientId');
  });

  test('mail.flag: at least one IMAP flag, at most 20 a side', () => {
    const ok = { ...account, uids: [1] };
    assert.deepEqual(parse('mail.flag', { ...ok, add: '\\Seen' }), { ...ok, add: ['\\Seen'], remove: [] });
    assert.equal(refusedField('mail.flag', ok), 'add');
    assert.equal(refusedField('mail.flag', { ...ok, remove: ['bad flag'] }), 'add');
    assert.equal(refusedField('mail.flag', { ...ok, add: Array(21).fill('$x') }), 'add');
    assert.equal(refusedField('mail.flag', { ...ok, add: ['$x'], remove: Array(21).fill('$y') }), 'remove');
  });

  test('methods without input take any body', () => {
    assert.equal(parse('mail.accounts', 'whatever'), undefined);
    assert.equal(parse('mail.presets', null), undefined);
  });
});
