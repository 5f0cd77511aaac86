import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { GatewayError } from '../../device-protocol/errors.ts';
import type { Value } from '../../device-protocol/messages.ts';
import { decodeCursor } from '../../server/transport/mail/cursor.ts';
import { eventually } from '../../testing/index.ts';
import { ALICE, BOB, type MailFixture, startMailFixture } from './mail-fixture.ts';

describe('mail.new pushed from IMAP IDLE', () => {
  let fx: MailFixture;
  let alice: string;
  let bob: string;
  const A = 'dev-a';
  const B = 'dev-b';
  const newUids = (deviceId: string) =>
    fx.pushed
      .filter((p) => p.deviceId === deviceId && p.name === 'mail.new')
      .map((p) => (p.body as any).header.uid as number);
  const states = (deviceId: string) =>
    fx.pushed
      .filter((p) => p.deviceId === deviceId && p.name === 'mail.account.state')
      .map((p) => (p.body as any).state);

  before(async () => {
    fx = await startMailFixture({ serviceOptions: { watcherBackoffMs: 100 } });
    alice = await fx.addAccount(A, ALICE);
    bob = await fx.addAccount(B, BOB);
  });
  after(async () => {
    await fx?.stop();
  });

  test('a message arriving after the sync is pushed once, with its compact header', async () => {
    const early = await fx.dovecot.appendMessage(
      ALICE.user,
      'INBOX',
      'Subject: early\r\n\r\nalready synced\r\n',
    );
    const s = await fx.call(A, 'mail.sync', { account: alice, folder: 'INBOX', limit: 10 });
    assert.deepEqual(
      s.items.map((i: any) => i.uid),
      [early],
    );
    await fx.service.deps.watchers!.get(alice)!.ready;
    const u1 = await fx.dovecot.appendMessage(ALICE.user, 'INBOX', 'Subject: pushed 1\r\n\r\nhello push\r\n');
    const u2 = await fx.dovecot.appendMessage(ALICE.user, 'INBOX', 'Subject: pushed 2\r\n\r\nagain\r\n');
    await eventually('two mail.new', () => newUids(A).length >= 2);
    assert.deepEqual(newUids(A), [u1, u2]);
    const first = fx.pushed.find((p) => p.name === 'mail.new')!.body as any;
    assert.equal(first.account, alice);
    assert.equal(first.folder, 'INBOX');
    assert.equal(first.header.subject, 'pushed 1');
    assert.equal(first.header.preview, 'hello push');
  });

  test('mail sent from handset B arrives as mail.new on handset A', async () => {
    const before = newUids(A).length;
    await fx.call(B, 'mail.send', {
      account: bob,
      to: [ALICE.user],
      subject: 'from B',
      text: 'hi A',
      clientId: 'b-1',
    });
    await eventually('mail.new from B', () => newUids(A).length > before);
    const last = fx.pushed.filter((p) => p.name === 'mail.new' && p.deviceId === A).at(-1)!.body as any;
    assert.equal(last.header.subject, 'from B');
    assert.equal(last.header.from.address, BOB.user);
  });

  test('Dovecot restart: the watcher goes retrying then online, misses nothing, doubles nothing', async () => {
    await fx.restartDovecot();
    await eventually(
      'watcher back online',
      () => states(A).at(-1) === 'online' && states(A).includes('retrying'),
    );
    const u3 = await fx.dovecot.appendMessage(ALICE.user, 'INBOX', 'Subject: after restart\r\n\r\nx\r\n');
    await eventually('mail.new after restart', () => newUids(A).includes(u3));
    const uids = newUids(A);
    assert.equal(new Set(uids).size, uids.length, `duplicates in ${uids}`);
    // A sync with the last cursor-free view agrees with what was pushed.
    const s = await fx.call(A, 'mail.sync', { account: alice, folder: 'INBOX', limit: 50 });
    assert.deepEqual(
      s.items.map((i: any) => i.uid).filter((u: number) => uids.includes(u)),
      [...uids].sort((a, b) => b - a),
    );
  });

  test('each mail.new names the cursor it follows: first the sync cursor, then the previous push cursor', async () => {
    const s = await fx.call(A, 'mail.sync', { account: alice, folder: 'INBOX', limit: 1 });
    await fx.service.deps.watchers!.get(alice)!.ready;
    const before = fx.pushed.length;
    await fx.dovecot.appendMessage(ALICE.user, 'INBOX', 'Subject: chain 1\r\n\r\nx\r\n');
    await fx.dovecot.appendMessage(ALICE.user, 'INBOX', 'Subject: chain 2\r\n\r\nx\r\n');
    const chain = () =>
      fx.pushed
        .slice(before)
        .filter((p) => p.deviceId === A && p.name === 'mail.new')
        .map((p) => p.body as any);
    await eventually('two mail.new', () => chain().length >= 2);
    const [first, second] = chain();
    assert.equal(first.prev, s.cursor);
    assert.equal(second.prev, first.cursor);
    assert.notEqual(second.cursor, first.cursor);
  });

  test('a push the bus did not take is tried again, in order, with the same prev', async () => {
    await fx.call(A, 'mail.sync', { account: alice, folder: 'INBOX', limit: 1 });
    await fx.service.deps.watchers!.get(alice)!.ready;
    const before = fx.pushed.length;
    fx.busDown.add(A);
    const u1 = await fx.dovecot.appendMessage(ALICE.user, 'INBOX', 'Subject: bus down 1\r\n\r\nx\r\n');
    const watcher = fx.service.deps.watchers!.get(alice)!;
    await eventually('a retry while the bus is down', () => watcher.triggers.retry > 0);
    const u2 = await fx.dovecot.appendMessage(ALICE.user, 'INBOX', 'Subject: bus down 2\r\n\r\nx\r\n');
    fx.busDown.delete(A);
    const pushed = () =>
      fx.pushed
        .slice(before)
        .filter((p) => p.deviceId === A && p.name === 'mail.new')
        .map((p) => p.body as any);
    await eventually('both pushed once the bus is back', () => pushed().length >= 2);
    assert.deepEqual(
      pushed().map((b) => b.header.uid),
      [u1, u2],
    );
    assert.equal(pushed()[1].prev, pushed()[0].cursor, 'nothing moved past the failed push');
    assert.equal(fx.service.deps.watchers!.get(alice), watcher, 'the watcher kept running');
  });

  test('a moment without a session (its edge not resubscribed after a bus outage) does not stop the watcher', async () => {
    await fx.call(A, 'mail.sync', { account: alice, folder: 'INBOX', limit: 1 });
    const watcher = fx.service.deps.watchers!.get(alice)!;
    await watcher.ready;
    const retries = watcher.triggers.retry;
    fx.offline.add(A);
    const u = await fx.dovecot.appendMessage(ALICE.user, 'INBOX', 'Subject: edge back soon\r\n\r\nx\r\n');
    await eventually('a push found no session and is tried again', () => watcher.triggers.retry > retries);
    fx.offline.delete(A);
    await eventually('pushed once the session answers', () => newUids(A).includes(u));
    assert.equal(fx.service.deps.watchers!.get(alice), watcher, 'the watcher kept running');
  });

  test('a device without a session stops its watcher; its next sync starts one from its cursor', async () => {
    const s = await fx.call(A, 'mail.sync', { account: alice, folder: 'INBOX', limit: 1 });
    fx.offline.add(A);
    await fx.dovecot.appendMessage(ALICE.user, 'INBOX', 'Subject: while offline\r\n\r\nx\r\n');
    await eventually('watcher stopped', () => fx.service.deps.watchers!.get(alice) === undefined);
    fx.offline.delete(A);
    const missed = await fx.call(A, 'mail.sync', {
      account: alice,
      folder: 'INBOX',
      limit: 10,
      cursor: s.cursor,
    });
    assert.deepEqual(
      missed.items.map((i: any) => i.subject),
      ['while offline'],
    );
    await fx.service.deps.watchers!.get(alice)!.ready;
    const before = newUids(A).length;
    const u = await fx.dovecot.appendMessage(ALICE.user, 'INBOX', 'Subject: back\r\n\r\nx\r\n');
    await eventually('mail.new after reconnect', () => newUids(A).length > before);
    assert.deepEqual(newUids(A).slice(before), [u]);
  });

  /** What the node's session watch hands a restored watcher: the push of the device's session. */
  const sessionPush =
    (deviceId: string) =>
    async (name: string, body?: Value): Promise<number> => {
      if (fx.offline.has(deviceId)) throw new GatewayError('bus.no_responders');
      fx.pushed.push({ deviceId, name, body });
      return 0;
    };
  const arrive = (subject: string) =>
    fx.dovecot.appendMessage(ALICE.user, 'INBOX', `Subject: ${subject}\r\n\r\nx\r\n`);

  test('a restarted service: the session coming up restores the watcher from its mark, no sync', async () => {
    await fx.call(A, 'mail.sync', { account: alice, folder: 'INBOX', limit: 1 });
    const watcher = fx.service.deps.watchers!.get(alice)!;
    await watcher.ready;
    const before = newUids(A).length;
    const u1 = await arrive('before the restart');
    await eventually('pushed before the restart', () => newUids(A).includes(u1));
    // Its mark is written behind the push.
    await watcher.settled();
    await fx.restartService();
    const u2 = await arrive('while down 1');
    const u3 = await arrive('while down 2');
    assert.equal(fx.service.deps.watchers!.get(alice), undefined, 'nothing watched before the session is up');
    assert.equal(fx.service.restoreDevice(B, sessionPush(B)), 0, 'another device has nothing to restore');
    assert.equal(fx.service.restoreDevice(A, sessionPush(A)), 1);
    await eventually('what came meanwhile pushed', () => newUids(A).includes(u3));
    const u4 = await arrive('after the restore');
    await eventually('pushed after the restore', () => newUids(A).includes(u4));
    assert.deepEqual(newUids(A).slice(before), [u1, u2, u3, u4], 'each once, in order');
    // The pushes carry the device's cursor moved up, as before the restart.
    const last = fx.pushed.filter((p) => p.name === 'mail.new' && p.deviceId === A).at(-1)!.body as any;
    assert.equal(decodeCursor('INBOX', last.cursor).highestUid, u4);
    // A second session-up finds the watcher running: nothing more starts, nothing is pushed again.
    assert.equal(fx.service.restoreDevice(A, sessionPush(A)), 0);
  });

  test('a device that moves to another transport: its watcher stops after its last mark, the next goes on from it', async () => {
    await fx.call(A, 'mail.sync', { account: alice, folder: 'INBOX', limit: 1 });
    await fx.service.deps.watchers!.get(alice)!.ready;
    const before = newUids(A).length;
    const u1 = await arrive('before the move');
    await eventually('pushed before the move', () => newUids(A).includes(u1));
    assert.equal(await fx.service.releaseDevice(A), 1);
    assert.equal(fx.service.deps.watchers!.get(alice), undefined, 'stopped');
    const u2 = await arrive('while it moves');
    // The node it moves to reads the same marks (in a cluster: the shared table).
    await fx.restartService();
    assert.equal(fx.service.restoreDevice(A, sessionPush(A)), 1, 'the mark stayed');
    await eventually('what came meanwhile pushed', () => newUids(A).includes(u2));
    assert.deepEqual(newUids(A).slice(before), [u1, u2], 'each once');
  });

  test('no mark outlives a watcher stopped for want of a session, nor a removed account', async () => {
    fx.offline.add(A);
    await arrive('nobody there');
    await eventually('watcher stopped', () => fx.service.deps.watchers!.get(alice) === undefined);
    fx.offline.delete(A);
    await fx.restartService();
    assert.equal(fx.service.restoreDevice(A, sessionPush(A)), 0, 'the device syncs when it is back');

    await fx.call(B, 'mail.sync', { account: bob, folder: 'INBOX', limit: 1 });
    await fx.service.deps.watchers!.get(bob)!.settled();
    await fx.call(B, 'mail.account.remove', { account: bob });
    await fx.restartService();
    assert.equal(fx.service.restoreDevice(B, sessionPush(B)), 0);
  });
});
