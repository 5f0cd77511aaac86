/**
 * Mail end to end through a real gateway process (every role, in-process bus)
 * and the Handset SDK, against a private Dovecot and the SMTP peer: handset A
 * sends, handset B is pushed mail.new and reads the body; a handset that was
 * offline gets what it missed exactly once; a wrong password stores nothing;
 * accounts survive a gateway restart on the same data directory.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { GatewayError } from '../../device-protocol/errors.ts';
import type { Handset } from '../../device-protocol/handset.ts';
import { eventually } from '../../testing/index.ts';
import { type DovecotServer, startDovecot } from '../harness/dovecot.ts';
import { type Gateway, provisionDevice, startGateway } from '../harness/gateway.ts';
import { type SmtpPeer, startSmtpPeer } from '../harness/smtp-peer.ts';
import { handsetFor, WAIT } from './e2e-suite.ts';
import { ALICE, BOB, mailAccountBody } from './mail-fixture.ts';

interface Pushed {
  name: string;
  body: any;
}

function recordEvents(handset: Handset): Pushed[] {
  const out: Pushed[] = [];
  handset.on('event', (e) => out.push({ name: e.name, body: e.body }));
  return out;
}

const newUids = (events: Pushed[]) =>
  events.filter((e) => e.name === 'mail.new').map((e) => e.body.header.uid as number);

describe('mail through the gateway', () => {
  let dovecot: DovecotServer;
  let smtp: SmtpPeer;
  let dataDir: string;
  let gw: Gateway;
  let devA: { imei: string; secret: string };
  let devB: { imei: string; secret: string };
  const open: Handset[] = [];

  const accountBody = (u: { user: string; password: string }, password = u.password) =>
    mailAccountBody(dovecot, smtp, { ...u, password });
  const connect = async (dev: { imei: string; secret: string }) => {
    const h = handsetFor(gw, dev);
    open.push(h);
    await h.connect();
    return h;
  };

  before(async () => {
    dovecot = await startDovecot({ users: [ALICE, BOB] });
    smtp = await startSmtpPeer({ dovecot });
    dataDir = mkdtempSync(join(tmpdir(), 'mmgw-mail-gw-'));
    gw = await startGateway({ dataDir });
    devA = await provisionDevice(dataDir);
    devB = await provisionDevice(dataDir);
  });
  after(async () => {
    for (const h of open) await h.close().catch(() => {});
    await gw?.stop();
    await smtp?.stop();
    await dovecot?.stop({ removeDir: true });
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  let aliceAcc: string;
  let bobAcc: string;
  let bobCursor: string;

  test('a wrong password gives mail.auth_failed and stores nothing', async () => {
    const a = await connect(devA);
    await assert.rejects(
      a.request('mail.account.add', accountBody(ALICE, 'wrong')),
      (err: unknown) => err instanceof GatewayError && err.code === 'mail.auth_failed',
    );
    const list = await a.request<any>('mail.accounts');
    assert.deepEqual(list.accounts, []);
  });

  test('A sends, B is pushed mail.new and reads the body', async () => {
    const a = open[0];
    assert.ok(a, 'the handset of the first test is still open');
    const b = await connect(devB);
    const bEvents = recordEvents(b);
    aliceAcc = ((await a.request<any>('mail.account.add', accountBody(ALICE))) as any).account;
    bobAcc = ((await b.request<any>('mail.account.add', accountBody(BOB))) as any).account;
    assert.match(aliceAcc, /^m[0-9a-f]+$/);

    const first = await b.request<any>('mail.sync', { account: bobAcc, folder: 'INBOX', limit: 50 });
    assert.deepEqual(first.items, []);

    const sent = await a.request<any>('mail.send', {
      account: aliceAcc,
      to: [BOB.user],
      subject: 'hello B',
      text: 'Body from A, through the gateway.',
      clientId: 'gw-1',
    });
    assert.equal(sent.clientId, 'gw-1');

    await eventually('mail.new at B', () => newUids(bEvents).length >= 1, WAIT);
    const pushed = bEvents.find((e) => e.name === 'mail.new')!.body;
    assert.equal(pushed.account, bobAcc);
    assert.equal(pushed.folder, 'INBOX');
    assert.equal(pushed.header.subject, 'hello B');
    assert.equal(pushed.header.from.address, ALICE.user);
    assert.equal(typeof pushed.cursor, 'string');

    const body = await b.request<any>('mail.body', {
      account: bobAcc,
      folder: 'INBOX',
      uid: pushed.header.uid,
    });
    assert.equal(body.text.trim(), 'Body from A, through the gateway.');
    assert.equal(body.more, null);

    // The cursor of mail.new already covers the pushed message: a sync from it brings nothing new.
    const again = await b.request<any>('mail.sync', {
      account: bobAcc,
      folder: 'INBOX',
      limit: 50,
      cursor: pushed.cursor,
    });
    assert.deepEqual(again.items, []);
    bobCursor = again.cursor;
    assert.ok(
      bEvents.some((e) => e.name === 'mail.account.state' && e.body.account === bobAcc),
      'the account state reached the device',
    );
  });

  test('a handset offline while mail arrives gets it exactly once on reconnect', async () => {
    const a = open[0];
    const oldB = open[1];
    assert.ok(a && oldB, 'both handsets of the tests before are open');
    await oldB.close();
    const missed = ['missed 1', 'missed 2'];
    for (const [i, subject] of missed.entries()) {
      await a.request('mail.send', {
        account: aliceAcc,
        to: [BOB.user],
        subject,
        text: `while offline ${i}`,
        clientId: `gw-off-${i}`,
      });
    }
    const b = await connect(devB);
    const events = recordEvents(b);
    const sync = await b.request<any>('mail.sync', {
      account: bobAcc,
      folder: 'INBOX',
      limit: 50,
      cursor: bobCursor,
    });
    assert.deepEqual(sync.items.map((i: any) => i.subject).sort(), missed);
    const afterUids = new Set<number>(sync.items.map((i: any) => i.uid));

    // Something new while connected is pushed; nothing missed is pushed a second time.
    await a.request('mail.send', {
      account: aliceAcc,
      to: [BOB.user],
      subject: 'online again',
      text: 'x',
      clientId: 'gw-on-1',
    });
    await eventually(
      'mail.new for the message sent after the reconnect',
      () => events.some((e) => e.name === 'mail.new' && e.body.header.subject === 'online again'),
      WAIT,
    );
    for (const uid of newUids(events)) assert.ok(!afterUids.has(uid), `uid ${uid} came twice`);
    const next = await b.request<any>('mail.sync', {
      account: bobAcc,
      folder: 'INBOX',
      limit: 50,
      cursor: events.find((e) => e.name === 'mail.new')!.body.cursor,
    });
    assert.deepEqual(next.items, []);
    bobCursor = next.cursor;
  });

  test('after a gateway restart on the same data dir, the stored accounts keep working', async () => {
    for (const h of open.splice(0)) await h.close();
    await gw.stop();
    gw = await startGateway({ dataDir });
    const a = await connect(devA);
    const b = await connect(devB);
    const events = recordEvents(b);
    const list = await b.request<any>('mail.accounts');
    assert.deepEqual(
      list.accounts.map((x: any) => x.account),
      [bobAcc],
    );
    const sync = await b.request<any>('mail.sync', {
      account: bobAcc,
      folder: 'INBOX',
      limit: 50,
      cursor: bobCursor,
    });
    assert.deepEqual(sync.items, []);
    await a.request('mail.send', {
      account: aliceAcc,
      to: [BOB.user],
      subject: 'after restart',
      text: 'still here',
      clientId: 'gw-restart-1',
    });
    await eventually(
      'mail.new after the restart',
      () => events.some((e) => e.name === 'mail.new' && e.body.header.subject === 'after restart'),
      WAIT,
    );
  });
});
