/**
 * mail.body over a MIME corpus made here: each renders sensibly or gives a
 * typed error, and none breaks the account's session.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import MailComposer from 'nodemailer/lib/mail-composer/index.js';
import { ALICE, type MailFixture, startMailFixture } from './mail-fixture.ts';

const HELLO_ISO2022JP = Buffer.from('1b244224332473244b2441244f1b2842', 'hex'); // こんにちは
const HELLO_SJIS = Buffer.from('82b182f182c982bf82cd', 'hex'); // こんにちは

function raw(headers: string[], body: Buffer | string): Buffer {
  const head = [
    'From: Dora <dora@example.test>',
    `To: ${ALICE.user}`,
    'Date: Tue, 3 Nov 2026 09:00:00 +0000',
    'MIME-Version: 1.0',
    ...headers,
    '',
    '',
  ].join('\r\n');
  return Buffer.concat([
    Buffer.from(head, 'latin1'),
    typeof body === 'string' ? Buffer.from(body, 'latin1') : body,
  ]);
}

async function compose(opts: ConstructorParameters<typeof MailComposer>[0]): Promise<Buffer> {
  return new MailComposer({ from: 'Eve <eve@example.test>', to: ALICE.user, ...opts }).compile().build();
}

describe('mail.body over a MIME corpus', () => {
  let fx: MailFixture;
  let account: string;
  const dev = 'dev-body';
  const body = (uid: number, extra: Record<string, unknown> = {}) =>
    fx.call(dev, 'mail.body', { account, folder: 'INBOX', uid, ...extra });
  const put = (msg: Buffer | string) => fx.dovecot.appendMessage(ALICE.user, 'INBOX', msg);

  before(async () => {
    fx = await startMailFixture();
    account = await fx.addAccount(dev, ALICE);
  });
  after(async () => {
    await fx?.stop();
  });

  test('multipart/alternative: the text/plain part wins', async () => {
    const uid = await put(
      await compose({ subject: 'alt', text: 'Plain version here', html: '<p>HTML <b>version</b></p>' }),
    );
    const b = await body(uid);
    assert.equal(b.text.trim(), 'Plain version here');
    assert.equal(b.format, 'plain');
    assert.equal(b.more, null);
    assert.deepEqual(b.attachments, []);
    assert.equal(b.subject, 'alt');
    assert.deepEqual(b.from, { name: 'Eve', address: 'eve@example.test' });
  });

  test('HTML only: turned into readable text without tags', async () => {
    const html =
      '<html><head><style>p{color:red}</style></head><body><h1>Hello</h1><p>First <a href="https://x.test/">link</a></p>' +
      '<ul><li>one</li><li>two</li></ul><img src="cid:x"></body></html>';
    const uid = await put(await compose({ subject: 'html', html }));
    const b = await body(uid);
    assert.equal(b.format, 'html');
    assert.ok(!/[<>]/.test(b.text.replace(/\[https:\/\/x\.test\/\]/, '')), b.text);
    assert.match(b.text, /HELLO|Hello/);
    assert.match(b.text, /First link/);
    assert.match(b.text, /one[\s\S]*two/);
    assert.ok(!b.text.includes('color:red'));
    const sync = await fx.call(dev, 'mail.sync', { account, folder: 'INBOX', limit: 1 });
    assert.match(sync.items[0].preview, /Hello|HELLO/);
  });

  test('ISO-8859-1 quoted-printable and an encoded-word subject', async () => {
    const uid = await put(
      raw(
        [
          'Subject: =?ISO-8859-1?Q?Cr=E8me_br=FBl=E9e?=',
          'Content-Type: text/plain; charset=iso-8859-1',
          'Content-Transfer-Encoding: quoted-printable',
        ],
        'Caf=E9 cr=E8me br=FBl=E9e, =\r\nna=EFve fa=E7ade.\r\n',
      ),
    );
    const b = await body(uid);
    assert.equal(b.text.trim(), 'Café crème brûlée, naïve façade.');
    assert.equal(b.subject, 'Crème brûlée');
  });

  test('ISO-2022-JP 7bit and Shift_JIS base64 become UTF-8', async () => {
    const jis = await put(
      raw(
        [
          'Subject: =?ISO-2022-JP?B?GyRCJDMkcyRLJEEkTxsoQg==?=',
          'Content-Type: text/plain; charset=ISO-2022-JP',
        ],
        Buffer.concat([HELLO_ISO2022JP, Buffer.from('\r\n')]),
      ),
    );
    const b1 = await body(jis);
    assert.equal(b1.text.trim(), 'こんにちは');
    assert.equal(b1.subject, 'こんにちは');
    const sjis = await put(
      raw(
        ['Subject: sjis', 'Content-Type: text/plain; charset=Shift_JIS', 'Content-Transfer-Encoding: base64'],
        HELLO_SJIS.toString('base64') + '\r\n',
      ),
    );
    assert.equal((await body(sjis)).text.trim(), 'こんにちは');
    const sync = await fx.call(dev, 'mail.sync', { account, folder: 'INBOX', limit: 2 });
    assert.deepEqual(
      sync.items.map((i: any) => i.preview),
      ['こんにちは', 'こんにちは'],
    );
  });

  test('attachments and inline images are listed, not sent', async () => {
    const uid = await put(
      await compose({
        subject: 'with files',
        text: 'See attached.',
        html: '<p>See <img src="cid:logo@x"></p>',
        attachments: [
          { filename: 'report.pdf', contentType: 'application/pdf', content: Buffer.alloc(3000, 1) },
          { filename: 'logo.png', contentType: 'image/png', content: Buffer.alloc(500, 2), cid: 'logo@x' },
        ],
      }),
    );
    const b = await body(uid);
    assert.equal(b.text.trim(), 'See attached.');
    const pdf = b.attachments.find((a: any) => a.name === 'report.pdf');
    assert.equal(pdf.type, 'application/pdf');
    assert.equal(pdf.inline, false);
    assert.ok(Math.abs(pdf.size - 3000) < 30, String(pdf.size));
    const logo = b.attachments.find((a: any) => a.name === 'logo.png');
    assert.equal(logo.inline, true);
    const sync = await fx.call(dev, 'mail.sync', { account, folder: 'INBOX', limit: 1 });
    assert.equal(sync.items[0].attachments, 1);
  });

  test('a long text is cut to the budget with a `more` offset that continues exactly', async () => {
    const text = Array.from({ length: 400 }, (_, i) => `Line ${i} äöü €`).join('\n');
    const uid = await put(await compose({ subject: 'long', text }));
    let got = '';
    let offset = 0;
    let calls = 0;
    for (;;) {
      const b = await body(uid, { maxBytes: 1024, offset });
      assert.ok(Buffer.byteLength(b.text) <= 1024);
      got += b.text;
      calls++;
      if (b.more === null) break;
      offset = b.more;
    }
    assert.ok(calls > 3);
    assert.equal(got.trim(), text);
  });

  test('malformed MIME renders something and keeps the session usable', async () => {
    const broken = [
      raw(
        ['Subject: no end boundary', 'Content-Type: multipart/mixed; boundary="XX"'],
        '--XX\r\nContent-Type: text/plain\r\n\r\nhalf a message',
      ),
      raw(['Subject: no boundary param', 'Content-Type: multipart/alternative'], 'just text\r\n'),
      raw(
        ['Subject: bad base64', 'Content-Type: text/plain', 'Content-Transfer-Encoding: base64'],
        '@@@!!!notbase64***\r\n',
      ),
      raw(['Subject: unknown charset', 'Content-Type: text/plain; charset=x-klingon'], 'plain ascii\r\n'),
    ];
    for (const m of broken) {
      const uid = await put(m);
      const b = await body(uid).catch((err) => err);
      if (b instanceof Error) assert.match((b as any).code, /^mail\./);
      else assert.equal(typeof b.text, 'string');
    }
    assert.equal((await body(999_999).catch((e) => e)).code, 'mail.not_found');
    const sync = await fx.call(dev, 'mail.sync', { account, folder: 'INBOX', limit: 4 });
    assert.equal(sync.items.length, 4);
    assert.equal((await body(sync.items[0].uid)).text.trim(), 'plain ascii');
  });

  test('mail.attachment streams decoded chunks and resumes from any offset', async () => {
    const file = randomBytes(200_000);
    const uid = await put(
      await compose({
        subject: 'chunks',
        text: 'File inside.',
        attachments: [{ filename: 'photo.jpg', contentType: 'image/jpeg', content: file }],
      }),
    );
    const b = await body(uid);
    const part = b.attachments[0].part;
    const chunk = (offset: number, length?: number) =>
      fx.call(dev, 'mail.attachment', {
        account,
        folder: 'INBOX',
        uid,
        part,
        offset,
        ...(length ? { length } : {}),
      });
    const got: Uint8Array[] = [];
    let offset = 0;
    for (let i = 0; i < 20; i++) {
      const c = await chunk(offset, 64 * 1024);
      assert.equal(c.offset, offset);
      assert.equal(c.name, 'photo.jpg');
      assert.equal(c.type, 'image/jpeg');
      got.push(c.data);
      offset += c.data.length;
      if (c.done) break;
    }
    assert.ok(Buffer.concat(got).equals(file));
    // Resume in the middle, as after a drop-out.
    const mid = await chunk(150_001, 10);
    assert.ok(Buffer.from(mid.data).equals(file.subarray(150_001, 150_011)));
    assert.equal(mid.done, false);
    const past = await chunk(500_000);
    assert.equal(past.data.length, 0);
    assert.equal(past.done, true);
    const e1 = await fx.callError(dev, 'mail.attachment', { account, folder: 'INBOX', uid, part: '9' });
    assert.equal(e1.code, 'mail.not_found');
    const e2 = await fx.callError(dev, 'mail.attachment', { account, folder: 'INBOX', uid, part: '../1' });
    assert.equal(e2.code, 'request.bad_input');
  });

  test('a 25 MB message: the header syncs and the body returns its text without the attachment', async () => {
    const uid = await put(
      await compose({
        subject: 'huge',
        text: 'Small text, big attachment.',
        attachments: [{ filename: 'big.bin', content: Buffer.alloc(25 * 1024 * 1024, 3) }],
      }),
    );
    const b = await body(uid);
    assert.equal(b.text.trim(), 'Small text, big attachment.');
    assert.ok(b.attachments[0].size > 25_000_000);
    const sync = await fx.call(dev, 'mail.sync', { account, folder: 'INBOX', limit: 1 });
    assert.equal(sync.items[0].uid, uid);
    assert.ok(sync.items[0].size > 25_000_000);
  });
});

describe('mail.attachment on a server without BINARY', () => {
  let fx: MailFixture;
  before(async () => {
    fx = await startMailFixture({
      capabilities: (
        'IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT MULTIAPPEND UNSELECT CHILDREN NAMESPACE UIDPLUS ' +
        'LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH SEARCHRES WITHIN LIST-STATUS MOVE SPECIAL-USE LITERAL+'
      ).split(' '),
    });
  });
  after(async () => {
    await fx?.stop();
  });

  test('decodes the part itself and still returns exact ranges', async () => {
    const account = await fx.addAccount('dev-nb', ALICE);
    const file = randomBytes(100_000);
    const uid = await fx.dovecot.appendMessage(
      ALICE.user,
      'INBOX',
      await compose({ subject: 'nb', text: 'x', attachments: [{ filename: 'a.bin', content: file }] }),
    );
    const call = (offset: number, length: number) =>
      fx.call('dev-nb', 'mail.attachment', { account, folder: 'INBOX', uid, part: '2', offset, length });
    const a = await call(0, 40_000);
    const b = await call(40_000, 40_000);
    const c = await call(80_000, 40_000);
    assert.deepEqual([a.done, b.done, c.done], [false, false, true]);
    assert.ok(Buffer.concat([a.data, b.data, c.data]).equals(file));
    assert.ok(Buffer.from((await call(12_345, 7)).data).equals(file.subarray(12_345, 12_352)));
  });
});
