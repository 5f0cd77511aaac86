import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ALICE, BOB, type MailFixture, startMailFixture } from './mail-fixture.ts';

let counter = 0;
function plain(subject: string, text = `Body of ${subject}`): string {
  counter++;
  return [
    'From: Carol Sender <carol@example.test>',
    `To: ${ALICE.user}`,
    `Subject: ${subject}`,
    `Date: Mon, 2 Nov 2026 10:${String(counter % 60).padStart(2, '0')}:00 +0000`,
    `Message-ID: <m${counter}.${Date.now()}@example.test>`,
    'Content-Type: text/plain; charset=utf-8',
    '',
    text,
    '',
  ].join('\r\n');
}

const uidsOf = (items: { uid: number }[]) => items.map((i) => i.uid);

/** Dovecot's capabilities less CONDSTORE and QRESYNC: a server with no MODSEQ at all. */
const NO_CONDSTORE = (
  'IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT THREAD=REFERENCES MULTIAPPEND UNSELECT ' +
  'CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 ESEARCH SEARCHRES WITHIN LIST-STATUS BINARY MOVE ' +
  'SPECIAL-USE LITERAL+'
).split(' ');

const MODES = [
  { name: 'QRESYNC VANISHED', qresync: true, capabilities: undefined },
  { name: 'CONDSTORE + UID SEARCH for expunges', qresync: false, capabilities: undefined },
  { name: 'no CONDSTORE: flags of the range + UID SEARCH', qresync: false, capabilities: NO_CONDSTORE },
];

for (const mode of MODES) {
  const { qresync } = mode;
  const condstore = mode.capabilities === undefined;
  describe(`mail.sync with cursors (${mode.name})`, () => {
    let fx: MailFixture;
    let account: string;
    const dev = 'dev-sync';
    before(async () => {
      fx = await startMailFixture({ serviceOptions: { qresync }, capabilities: mode.capabilities });
      account = await fx.addAccount(dev, ALICE);
    });
    after(async () => {
      await fx?.stop();
    });

    test('full sync, then exactly the adds, flag changes and expunges another client made', async () => {
      const uids: number[] = [];
      for (let i = 1; i <= 5; i++)
        uids.push(await fx.dovecot.appendMessage(ALICE.user, 'INBOX', plain(`first ${i}`)));

      const full = await fx.call(dev, 'mail.sync', { account, folder: 'INBOX', limit: 3 });
      assert.deepEqual(uidsOf(full.items), [uids[4], uids[3], uids[2]]);
      assert.equal(full.older, true);
      assert.equal(full.reset, false);
      const top = full.items[0];
      assert.equal(top.subject, 'first 5');
      assert.deepEqual(top.from, { name: 'Carol Sender', address: 'carol@example.test' });
      assert.equal(top.preview, 'Body of first 5');
      assert.equal(top.attachments, 0);
      assert.deepEqual(top.flags, []);
      assert.ok(top.size > 0 && top.date > 0);

      const quiet = await fx.call(dev, 'mail.sync', {
        account,
        folder: 'INBOX',
        limit: 3,
        cursor: full.cursor,
      });
      assert.deepEqual(quiet.items, []);
      // Without MODSEQ the device gets the flags of its whole range, unchanged ones included.
      if (condstore) assert.deepEqual(quiet.changed, []);
      else assert.deepEqual(uidsOf(quiet.changed), [uids[2], uids[3], uids[4]]);
      assert.deepEqual(quiet.vanished, []);

      // Another IMAP client: two new messages, a flag on one, an expunge of another.
      const other = await fx.dovecot.connect(ALICE.user);
      try {
        const lock = await other.getMailboxLock('INBOX');
        try {
          await other.messageFlagsAdd([uids[4]!], ['\\Flagged'], { uid: true });
          await other.messageDelete([uids[3]!], { uid: true });
        } finally {
          lock.release();
        }
      } finally {
        await other.logout();
      }
      const n1 = await fx.dovecot.appendMessage(ALICE.user, 'INBOX', plain('second 1'));
      const n2 = await fx.dovecot.appendMessage(ALICE.user, 'INBOX', plain('second 2'));

      const delta = await fx.call(dev, 'mail.sync', {
        account,
        folder: 'INBOX',
        limit: 10,
        cursor: quiet.cursor,
      });
      assert.deepEqual(uidsOf(delta.items), [n2, n1]);
      assert.equal(delta.more, false);
      const flagged = delta.changed.find((c: any) => c.uid === uids[4]);
      assert.deepEqual(flagged?.flags, ['\\Flagged']);
      if (qresync) {
        // CHANGEDSINCE reports only what changed.
        assert.deepEqual(uidsOf(delta.changed), [uids[4]]);
      }
      assert.ok(!delta.changed.some((c: any) => c.uid === uids[3]));
      assert.ok(delta.vanished.includes(uids[3]));
      if (qresync) assert.deepEqual(delta.vanished, [uids[3]]);

      // Nothing is reported twice.
      const again = await fx.call(dev, 'mail.sync', {
        account,
        folder: 'INBOX',
        limit: 10,
        cursor: delta.cursor,
      });
      assert.deepEqual(again.items, []);
      if (qresync) {
        assert.deepEqual(again.changed, []);
        assert.deepEqual(again.vanished, []);
      } else {
        // The fallback repeats the device's flags and the gaps in its range, idempotently.
        assert.ok(!again.changed.some((c: any) => c.uid > n2));
      }

      // Older page below the first one.
      const page = await fx.call(dev, 'mail.sync', { account, folder: 'INBOX', limit: 10, before: uids[2] });
      assert.deepEqual(uidsOf(page.items), [uids[1], uids[0]]);
      assert.equal(page.older, false);
    });

    test('many new messages come in pages with `more`, none missed or doubled', async () => {
      const start = await fx.call(dev, 'mail.sync', { account, folder: 'INBOX', limit: 1 });
      const added: number[] = [];
      for (let i = 0; i < 5; i++)
        added.push(await fx.dovecot.appendMessage(ALICE.user, 'INBOX', plain(`burst ${i}`)));
      const seen: number[] = [];
      let cursor = start.cursor;
      for (let round = 0; round < 10; round++) {
        const r = await fx.call(dev, 'mail.sync', { account, folder: 'INBOX', limit: 2, cursor });
        seen.push(...uidsOf(r.items));
        cursor = r.cursor;
        if (!r.more) break;
      }
      assert.deepEqual(
        seen.sort((a, b) => a - b),
        added,
      );
    });

    test('the cursor stays exact across a gateway restart', async () => {
      const s1 = await fx.call(dev, 'mail.sync', { account, folder: 'INBOX', limit: 5 });
      await fx.restartService();
      const uid = await fx.dovecot.appendMessage(ALICE.user, 'INBOX', plain('after restart'));
      const s2 = await fx.call(dev, 'mail.sync', { account, folder: 'INBOX', limit: 5, cursor: s1.cursor });
      assert.deepEqual(uidsOf(s2.items), [uid]);
    });

    test('a UIDVALIDITY change answers a full resync with reset', async () => {
      const c = await fx.dovecot.connect(ALICE.user);
      try {
        await c.mailboxCreate('Work');
      } finally {
        await c.logout();
      }
      await fx.dovecot.appendMessage(ALICE.user, 'Work', plain('work 1'));
      const s1 = await fx.call(dev, 'mail.sync', { account, folder: 'Work', limit: 5 });
      assert.equal(s1.items.length, 1);
      const c2 = await fx.dovecot.connect(ALICE.user);
      try {
        await c2.mailboxDelete('Work');
        await c2.mailboxCreate('Work');
      } finally {
        await c2.logout();
      }
      const uid = await fx.dovecot.appendMessage(ALICE.user, 'Work', plain('work 2'));
      const s2 = await fx.call(dev, 'mail.sync', { account, folder: 'Work', limit: 5, cursor: s1.cursor });
      assert.equal(s2.reset, true);
      assert.deepEqual(uidsOf(s2.items), [uid]);
      assert.equal(s2.items[0].subject, 'work 2');
    });

    test('a cursor of another folder or a missing folder is a typed error', async () => {
      const s1 = await fx.call(dev, 'mail.sync', { account, folder: 'INBOX', limit: 1 });
      const e1 = await fx.callError(dev, 'mail.sync', {
        account,
        folder: 'Sent',
        limit: 1,
        cursor: s1.cursor,
      });
      assert.equal(e1.code, 'mail.bad_cursor');
      const e2 = await fx.callError(dev, 'mail.sync', { account, folder: 'Nope', limit: 1 });
      assert.equal(e2.code, 'mail.not_found');
      // The session is still usable after an error.
      const s2 = await fx.call(dev, 'mail.sync', { account, folder: 'INBOX', limit: 1 });
      assert.equal(s2.items.length, 1);
    });
  });
}

describe('mail.folders and actions seen by other devices', () => {
  let fx: MailFixture;
  before(async () => {
    fx = await startMailFixture();
  });
  after(async () => {
    await fx?.stop();
  });

  test('folders list unread counts; flag, move and delete show in another device’s next sync', async () => {
    const a = await fx.addAccount('dev-1', BOB);
    const b = await fx.addAccount('dev-2', BOB);
    const u1 = await fx.dovecot.appendMessage(BOB.user, 'INBOX', plain('one'));
    const u2 = await fx.dovecot.appendMessage(BOB.user, 'INBOX', plain('two'));
    const u3 = await fx.dovecot.appendMessage(BOB.user, 'INBOX', plain('three'), ['\\Seen']);

    const folders = await fx.call('dev-1', 'mail.folders', { account: a });
    const inbox = folders.folders.find((f: any) => f.path === 'INBOX');
    assert.deepEqual({ total: inbox.total, unread: inbox.unread }, { total: 3, unread: 2 });
    const sent = folders.folders.find((f: any) => f.specialUse === '\\Sent');
    assert.equal(sent?.path, 'Sent');

    const base = await fx.call('dev-2', 'mail.sync', { account: b, folder: 'INBOX', limit: 10 });
    assert.deepEqual(uidsOf(base.items), [u3, u2, u1]);

    await fx.call('dev-1', 'mail.flag', {
      account: a,
      folder: 'INBOX',
      uids: [u1],
      add: ['\\Seen', '\\Flagged'],
    });
    await fx.call('dev-1', 'mail.flag', { account: a, folder: 'INBOX', uids: [u3], remove: ['\\Seen'] });
    const moved = await fx.call('dev-1', 'mail.move', {
      account: a,
      folder: 'INBOX',
      uids: [u2],
      to: 'Trash',
    });
    assert.equal(moved.moved.length, 1);
    assert.equal(moved.moved[0].uid, u2);

    const d = await fx.call('dev-2', 'mail.sync', {
      account: b,
      folder: 'INBOX',
      limit: 10,
      cursor: base.cursor,
    });
    assert.deepEqual(d.items, []);
    assert.deepEqual(
      d.changed.map((c: any) => [c.uid, [...c.flags].sort()]),
      [
        [u1, ['\\Flagged', '\\Seen']],
        [u3, []],
      ],
    );
    assert.deepEqual(d.vanished, [u2]);

    const trash = await fx.call('dev-2', 'mail.sync', { account: b, folder: 'Trash', limit: 10 });
    assert.deepEqual(
      trash.items.map((i: any) => i.subject),
      ['two'],
    );
    await fx.call('dev-1', 'mail.delete', { account: a, folder: 'INBOX', uids: [u1] });
    const d2 = await fx.call('dev-2', 'mail.sync', {
      account: b,
      folder: 'INBOX',
      limit: 10,
      cursor: d.cursor,
    });
    assert.deepEqual(d2.vanished, [u1]);
    const after = await fx.call('dev-1', 'mail.folders', { account: a });
    assert.equal(after.folders.find((f: any) => f.path === 'INBOX').total, 1);
  });

  test('bad flags and UIDs are request.bad_input', async () => {
    const a = await fx.addAccount('dev-3', BOB);
    for (const body of [
      { account: a, folder: 'INBOX', uids: [], add: ['\\Seen'] },
      { account: a, folder: 'INBOX', uids: [0], add: ['\\Seen'] },
      { account: a, folder: 'INBOX', uids: [1] },
      { account: a, folder: 'INBOX', uids: [1], add: ['bad flag)'] },
    ]) {
      assert.equal((await fx.callError('dev-3', 'mail.flag', body)).code, 'request.bad_input');
    }
  });
});
