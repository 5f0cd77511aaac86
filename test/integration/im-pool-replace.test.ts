/**
 * #11: a wrong-password im.login for an account that is online stopped the
 * working session. Other credentials for an online account are tried beside
 * it, muted; only a session that comes online replaces it.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { XmppSessionPool } from '../../server/transport/im/session-pool.ts';
import { eventually } from '../../testing/index.ts';
import { type ProsodyServer, startProsody } from '../harness/prosody.ts';

let prosody: ProsodyServer;
before(async () => {
  prosody = await startProsody({ domain: 'example.test', users: [{ user: 'alice', password: 'pw' }] });
});
after(() => prosody.stop());

test('a wrong-password login leaves the working session online; a working one replaces it', async (t) => {
  const pushes: Array<[string, unknown]> = [];
  const pool = new XmppSessionPool({ session: { connectTimeoutMs: 5000 } });
  t.after(() => pool.closeAll());
  pool.setPusher('d1', async (name, body) => {
    pushes.push([name, body]);
    return 1;
  });
  const base = {
    id: 'd1:alice',
    deviceId: 'd1',
    jid: prosody.jid('alice'),
    host: prosody.host,
    port: prosody.c2sPort,
    createdAt: 0,
    updatedAt: 0,
  };
  const first = await pool.open({ ...base, password: 'pw' });
  assert.equal(first.state, 'online');
  await assert.rejects(pool.open({ ...base, password: 'wrong' }), { code: 'im.auth_failed' });
  assert.equal(pool.get('d1:alice'), first);
  assert.equal(first.state, 'online');

  prosody.register('alice', 'pw2');
  const second = await pool.open({ ...base, password: 'pw2' });
  assert.notEqual(second, first);
  assert.equal(second.state, 'online');
  assert.equal(first.state, 'stopped');
  const states = () =>
    pushes.filter(([n]) => n === 'im.state').map(([, b]) => (b as { state: string }).state);
  // The muted candidate's connecting/auth_failed and the replaced session's stop never reach the device.
  await eventually('the replacement announced', () => states().length >= 3);
  assert.deepEqual(states(), ['connecting', 'online', 'online']);
});

test('whenOnline: waits for a connecting session, answers at once for an online one', async (t) => {
  const pool = new XmppSessionPool({ session: { connectTimeoutMs: 5000 } });
  t.after(() => pool.closeAll());
  pool.setPusher('d2', async () => 1);
  prosody.register('carol', 'pw-carol');
  const account = {
    id: 'd2:carol',
    deviceId: 'd2',
    jid: prosody.jid('carol'),
    password: 'pw-carol',
    host: prosody.host,
    port: prosody.c2sPort,
    createdAt: 0,
    updatedAt: 0,
  };
  assert.equal(await pool.whenOnline('nobody', 1000), false, 'no such account');
  const opening = pool.open(account);
  const session = pool.get('d2:carol');
  assert.ok(session);
  assert.notEqual(session.state, 'online', 'still connecting right after open');
  assert.equal(await pool.whenOnline('d2:carol', 10_000), true);
  assert.equal(session.state, 'online');
  await opening;
  assert.equal(await pool.whenOnline('d2:carol', 0), true);
});
