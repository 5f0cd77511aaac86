import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  correlate,
  DeviceKnowledge,
  foreignAccounts,
  knowledgeHints,
  type SharedKnowledge,
} from './knowledge.ts';

function device(n: number): DeviceKnowledge {
  const address = `fuzz${n}@example.test`;
  const server = { host: '127.0.0.1', port: 143, user: address, password: 'pw' };
  return new DeviceKnowledge(
    `imei${n}`,
    {
      address,
      password: 'pw',
      imap: { ...server, tls: 'none' },
      smtp: { ...server, tls: 'starttls', allowInvalidCert: true },
    },
    { jid: address, password: 'pw', host: '127.0.0.1', port: 5222 },
  );
}

describe('what a fuzzing device knows', () => {
  test('learns accounts, folders, UIDs (both sync forms), cursors and attachments from answers', () => {
    const k = device(0);
    k.learn('mail.account.add', {}, { account: 'm1' });
    k.learn('im.login', {}, { account: 'x1' });
    k.learn('mail.folders', {}, { folders: [{ path: 'Sent' }, { path: 'Trash' }] });
    k.learn('mail.sync', {}, { items: [{ uid: 3 }, { uid: 4 }], cursor: 'c1' });
    k.learn('mail.sync', {}, { columns: ['subject', 'uid'], rows: [['a', 7]], cursor: 'c2' });
    k.learn('mail.body', {}, { uid: 3, attachments: [{ part: '2' }, { part: '3' }] });
    assert.deepEqual([...k.mailAccounts], ['m1']);
    assert.deepEqual([...k.imAccounts], ['x1']);
    assert.deepEqual([...k.folders], ['INBOX', 'Sent', 'Trash']);
    assert.deepEqual(k.uids, [3, 4, 7]);
    assert.deepEqual(k.cursors, ['c1', 'c2']);
    assert.deepEqual(k.attachments, [
      { uid: 3, part: '2' },
      { uid: 3, part: '3' },
    ]);
    k.learn('mail.account.remove', { account: 'm1' }, { account: 'm1' });
    k.learn('im.logout', { account: 'x1' }, { removed: true });
    assert.equal(k.mailAccounts.size + k.imAccounts.size, 0);
    k.learn('mail.accounts', undefined, { accounts: [{ account: 'm9' }] });
    assert.deepEqual([...k.mailAccounts], ['m9']);
  });

  test('foreign accounts are the other devices’ ids, never one this device holds too', () => {
    const [a, b] = [device(0), device(1)];
    a.mailAccounts.add('m-a');
    b.mailAccounts.add('m-b');
    b.imAccounts.add('x-b');
    b.mailAccounts.add('m-a'); // (ids are per device; should two collide, it is not foreign)
    const shared: SharedKnowledge = { devices: [a, b] };
    assert.deepEqual(foreignAccounts(shared, a).sort(), ['m-b', 'x-b']);
  });

  test('hints fill ids from what the device knows, per service', () => {
    const a = device(0);
    a.mailAccounts.add('m-a');
    a.imAccounts.add('x-a');
    a.uids.push(11);
    const shared: SharedKnowledge = { devices: [a, device(1)] };
    const draw = (method: string, field: string) => {
      const arb = knowledgeHints(method, a, shared)([field]);
      assert.ok(arb, `${method} ${field}`);
      return fc.sample(arb, { seed: 1, numRuns: 20 });
    };
    assert.deepEqual(new Set(draw('mail.sync', 'account')), new Set(['m-a']));
    assert.deepEqual(new Set(draw('im.roster', 'account')), new Set(['x-a']));
    assert.deepEqual(new Set(draw('mail.body', 'uid')), new Set([11]));
    assert.ok(draw('im.send', 'to').every((j) => j === 'fuzz0@example.test' || j === 'fuzz1@example.test'));
    assert.ok(draw('sys.stream', 'count').every((n) => (n as number) <= 200));
    assert.equal(knowledgeHints('mail.sync', a, shared)(['nested', 'account']), undefined);
  });

  test('correlate gives mail.attachment a UID and a part of the same message', () => {
    const a = device(0);
    const body = { account: 'm', folder: 'Sent', uid: 1, part: '9' };
    const first = <T>(l: readonly T[]) => l[0] as T;
    correlate('mail.attachment', body, a, first);
    assert.equal(body.part, '9', 'nothing known: unchanged');
    a.attachments.push({ uid: 5, part: '1.2' });
    correlate('mail.attachment', body, a, first);
    assert.deepEqual(body, { account: 'm', folder: 'INBOX', uid: 5, part: '1.2' });
  });
});
