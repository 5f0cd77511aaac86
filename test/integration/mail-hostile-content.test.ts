/**
 * Hostile mail against real Dovecot (issue #11, items 6 and 7): a 1 MiB
 * Subject, a 3,000-level MIME nesting, 50,000 parts and 5,000 recipients in
 * one INBOX. The inbox still lists (every page encodes, fields at their
 * documented sizes); mail.body of the nested and the many-part mail is
 * mail.too_complex, never mail.not_found; and one device reading the
 * many-part mail over and over moves another device's echo p99 by at most
 * 2× (a ratio measured in the same test, through a real gateway).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { setPriority } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { encodeFrame } from '../../device-protocol/codec.ts';
import { GatewayError } from '../../device-protocol/errors.ts';
import { Kind } from '../../device-protocol/messages.ts';
import { FIELD_CAPS } from '../../server/transport/mail/field-caps.ts';
import { crowdMail, hugeSubjectMail, manyPartsMail, nestedMail } from './hostile-mail.ts';
import {
  ALICE,
  type MailFixture,
  type MailGatewayRig,
  mailAccountBody,
  startMailFixture,
  startMailGatewayRig,
} from './mail-fixture.ts';

const bytes = (s: string) => Buffer.byteLength(s, 'utf8');
const isCode = (code: string) => (err: unknown) => err instanceof GatewayError && err.code === code;

describe('hostile mail in the inbox (mail service, MIME workers from the sources)', () => {
  let fx: MailFixture;
  let account: string;
  const uid: Record<string, number> = {};

  before(async () => {
    fx = await startMailFixture();
    const mails: [string, string][] = [
      ['plain', 'Subject: fine\r\nFrom: a@example.test\r\n\r\nAll fine.\r\n'],
      ['subject', hugeSubjectMail()],
      ['nested', nestedMail()],
      ['many', manyPartsMail()],
      ['crowd', crowdMail()],
      // Within the limits, but a FETCH row far over the 32 KiB that go to the MIME workers.
      ['wide', manyPartsMail(600)],
      ['long', `Subject: long\r\nFrom: a@example.test\r\n\r\n${'A long line of text. '.repeat(30_000)}\r\n`],
    ];
    for (const [name, raw] of mails) uid[name] = await fx.dovecot.appendMessage(ALICE.user, 'INBOX', raw);
    account = await fx.addAccount('dev-a', ALICE);
  });
  after(() => fx?.stop());

  test('the inbox lists every message; the page encodes; fields at their documented sizes', async () => {
    for (const compact of [false, true]) {
      const page = await fx.call('dev-a', 'mail.sync', { account, folder: 'INBOX', limit: 50, compact });
      const frame = encodeFrame({ kind: Kind.Response, seq: 1, id: 'r', body: page });
      assert.ok(frame.length < 1024 * 1024, `${frame.length} bytes`);
      if (compact) continue;
      const byUid = new Map<number, any>(page.items.map((h: any) => [h.uid, h]));
      for (const u of Object.values(uid)) assert.ok(byUid.has(u), `uid ${u} listed`);
      assert.equal(bytes(byUid.get(uid.subject!).subject), FIELD_CAPS.subject);
      for (const name of ['nested', 'many']) {
        const h = byUid.get(uid[name]!);
        assert.equal(h.attachments, 0, `${name}: no attachment count past the limits`);
        assert.equal(h.preview, '');
      }
      assert.equal(byUid.get(uid.plain!).preview, 'All fine.');
    }
  });

  test('mail.body of the huge subject and the crowd: capped fields, a frame that encodes', async () => {
    const body = await fx.call('dev-a', 'mail.body', { account, folder: 'INBOX', uid: uid.subject });
    assert.equal(bytes(body.subject), FIELD_CAPS.subject);
    assert.equal(body.text.trim(), 'A mail with a very long subject.');
    const crowd = await fx.call('dev-a', 'mail.body', { account, folder: 'INBOX', uid: uid.crowd });
    assert.equal(crowd.to.length, FIELD_CAPS.addresses);
    assert.ok(crowd.to.every((a: any) => bytes(a.name) <= FIELD_CAPS.name));
    assert.equal(crowd.messageId, '', 'a 5,000-byte Message-ID is dropped, not cut');
    for (const b of [body, crowd]) encodeFrame({ kind: Kind.Response, seq: 1, id: 'r', body: b });
  });

  test('a 600 KB text asked for whole comes in pages that encode (the text decoded by a worker)', async () => {
    const first = await fx.call('dev-a', 'mail.body', {
      account,
      folder: 'INBOX',
      uid: uid.long,
      maxBytes: 1024 * 1024,
    });
    assert.ok(bytes(first.text) <= 192 * 1024, `${bytes(first.text)} bytes`);
    assert.equal(typeof first.more, 'number');
    encodeFrame({ kind: Kind.Response, seq: 1, id: 'r', body: first });
    const next = await fx.call('dev-a', 'mail.body', {
      account,
      folder: 'INBOX',
      uid: uid.long,
      maxBytes: 1024 * 1024,
      offset: first.more,
    });
    assert.ok(
      'A long line of text. '.repeat(30_000).startsWith(first.text + next.text),
      'the next page goes on from `more`',
    );
  });

  test('a wide mail within the limits is read by the MIME workers: every attachment listed', async () => {
    const body = await fx.call('dev-a', 'mail.body', { account, folder: 'INBOX', uid: uid.wide });
    assert.equal(body.attachments.length, 599);
    assert.equal(body.text.trim(), 'The first of many parts.');
    assert.equal(fx.service.deps.mime?.workers, 1, 'a worker (the .ts module, from the sources) did it');
  });

  test('the nested and the many-part mail: mail.too_complex, never mail.not_found', async () => {
    for (const name of ['nested', 'many']) {
      const started = Date.now();
      const err = await fx.callError('dev-a', 'mail.body', { account, folder: 'INBOX', uid: uid[name] });
      assert.equal(err.code, 'mail.too_complex', `${name}: ${err.code} ${err.message}`);
      assert.equal(err.field, 'uid');
      assert.ok(Date.now() - started < 10_000);
      const part = await fx.callError('dev-a', 'mail.attachment', {
        account,
        folder: 'INBOX',
        uid: uid[name],
        part: '2',
      });
      assert.equal(part.code, 'mail.too_complex');
    }
    // A UID that does not exist is still mail.not_found.
    const missing = await fx.callError('dev-a', 'mail.body', { account, folder: 'INBOX', uid: 999_999 });
    assert.equal(missing.code, 'mail.not_found');
  });
});

/** The p-th percentile (0–100) of `values`. */
function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0;
}

describe('one device’s hostile mail does not slow another device (gateway, MIME workers from dist/)', () => {
  let rig: MailGatewayRig;
  before(async () => {
    rig = await startMailGatewayRig({
      // A mail server runs on its own machine; here it shares the cores, and each read of the
      // hostile mail makes it write megabytes. Its processes (the IMAP ones fork from the master
      // later, and inherit this) yield to the gateway, as if elsewhere.
      beforeGateway: (dovecot) =>
        setPriority(Number(readFileSync(join(dovecot.dir, 'run', 'master.pid'), 'utf8')), 10),
    });
  });
  after(() => rig?.stop());

  test('device A reads the 50,000-part mail in a loop; device B’s echo p99 moves by at most 2×', async () => {
    const many = await rig.dovecot.appendMessage(ALICE.user, 'INBOX', manyPartsMail());
    const [a, b] = await Promise.all([rig.device(), rig.device()]);
    const { account } = await a.request<{ account: string }>(
      'mail.account.add',
      mailAccountBody(rig.dovecot, rig.smtp, ALICE),
    );
    // The workers run from dist/: a wide mail within the limits is listed whole.
    const wide = await rig.dovecot.appendMessage(ALICE.user, 'INBOX', manyPartsMail(600));
    const read = await a.request<{ attachments: unknown[] }>('mail.body', {
      account,
      folder: 'INBOX',
      uid: wide,
    });
    assert.equal(read.attachments.length, 599);
    // Through the edge: the page with the hostile mail encodes for the device.
    const page = await a.request<{ items: { uid: number }[] }>('mail.sync', {
      account,
      folder: 'INBOX',
      limit: 50,
    });
    assert.ok(page.items.some((h) => h.uid === many));

    // B's echo: sys.echo goes device → edge → bus → transport → back, on the gateway's event loop.
    // 40 a second: under the edge's per-device frame rate (50/s).
    const echoes = async (n: number): Promise<number[]> => {
      const rtts: number[] = [];
      for (let i = 0; i < n; i++) {
        const started = performance.now();
        await b.request('sys.echo', { i });
        rtts.push(performance.now() - started);
        await new Promise((r) => setTimeout(r, 25));
      }
      return rtts;
    };
    await echoes(20); // warm-up
    // Quiet and loaded windows taken in turns, so that what else the machine does weighs on both
    // alike. On a shared machine one window can still catch another program's burst: a measurement
    // that fails is taken again, up to three times. An event loop that A's reads block fails all
    // three (before the MIME workers: p50 2 ms → 346 ms).
    const measure = async () => {
      const quiet: number[] = [];
      const loaded: number[] = [];
      const timings: number[] = [];
      for (let round = 0; round < 8; round++) {
        quiet.push(...(await echoes(30)));
        let reading = true;
        const loop = (async () => {
          while (reading) {
            const started = performance.now();
            await assert.rejects(
              a.request('mail.body', { account, folder: 'INBOX', uid: many }),
              isCode('mail.too_complex'),
            );
            timings.push(performance.now() - started);
          }
        })();
        loaded.push(...(await echoes(30)));
        reading = false;
        await loop;
      }
      const at = (values: number[], p: number) => percentile(values, p).toFixed(1);
      const ratio = percentile(loaded, 99) / percentile(quiet, 99);
      console.log(
        `# echo p99 quiet ${at(quiet, 99)} ms, with A's load ${at(loaded, 99)} ms (ratio ${ratio.toFixed(2)}); ` +
          `p50 ${at(quiet, 50)} → ${at(loaded, 50)} ms, p95 ${at(quiet, 95)} → ${at(loaded, 95)} ms; ` +
          `A: ${timings.length} mail.body, p50 ${at(timings, 50)} ms each`,
      );
      assert.ok(timings.length >= 8, `A read the mail ${timings.length} times during the measurement`);
      return ratio;
    };
    // Other test files run beside this one in npm test: a measurement they disturbed is made again
    // (up to five); a device A that really slows B fails every one.
    let ratio = await measure();
    for (let attempt = 2; attempt <= 5 && ratio > 2; attempt++) ratio = await measure();
    assert.ok(ratio <= 2, `echo p99 ratio ${ratio.toFixed(2)} in five measurements`);
  });
});
