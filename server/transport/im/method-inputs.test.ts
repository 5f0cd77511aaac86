// The input schemas of the IM methods: every limit and either-or rule, without an XMPP server.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { methodInputs } from '../../../testing/index.ts';
import type { ImDeps } from './deps.ts';
import { imMethods } from './index.ts';

const { parse, refusedField } = methodInputs(imMethods({} as ImDeps));

const account = 'x0123456789abcdef';

describe('IM method inputs', () => {
  test('im.login: JID normalised, server from host/port or a preset, never both', () => {
    assert.deepEqual(parse('im.login', { jid: 'Alice@Example.TEST', password: 'pw' }), {
      jid: 'alice@example.test',
      password: 'pw',
    });
    assert.equal(parse('im.login', { jid: 'a@b/phone', password: 'pw' }).jid, 'a@b', 'the bare JID');
    assert.deepEqual(parse('im.login', { jid: 'a@b', password: 'pw', host: '127.0.0.1', port: 5222 }), {
      jid: 'a@b',
      password: 'pw',
      host: '127.0.0.1',
      port: 5222,
    });
    assert.deepEqual(parse('im.login', { jid: 'a@b', password: 'pw', preset: 'Chat', host: undefined }), {
      jid: 'a@b',
      password: 'pw',
      preset: 'Chat',
    });
    const cases: [unknown, string][] = [
      [null, 'body'],
      [{ jid: 'no-at-sign', password: 'x' }, 'jid'],
      [{ jid: 'a b@c', password: 'x' }, 'jid'],
      [{ jid: `${'l'.repeat(1024)}@b`, password: 'x' }, 'jid'],
      [{ jid: 'a@b', password: '' }, 'password'],
      [{ jid: 'a@b', password: 'p'.repeat(1025) }, 'password'],
      [{ jid: 'a@b', password: 'x', host: 'h', port: 0 }, 'port'],
      [{ jid: 'a@b', password: 'x', port: 5222 }, 'port'],
      [{ jid: 'a@b', password: 'x', host: 'not a host' }, 'host'],
      [{ jid: 'a@b', password: 'x', host: 'h'.repeat(256) }, 'host'],
      [{ jid: 'a@b', password: 'x', preset: 'Chat', host: 'h' }, 'host'],
      [{ jid: 'a@b', password: 'x', preset: 'Chat', port: 1 }, 'port'],
      [{ jid: 'a@b', password: 'x', preset: 'p'.repeat(101) }, 'preset'],
    ];
    for (const [body, field] of cases)
      assert.equal(refusedField('im.login', body), field, JSON.stringify(body));
  });

  test('im.send: body in characters and bytes, no control characters, a printable clientId', () => {
    const ok = { account, to: 'b@example.test', body: 'hi', clientId: 'c-1' };
    assert.deepEqual(parse('im.send', ok), ok);
    assert.equal(refusedField('im.send', { ...ok, body: 'a\u0001b' }), 'body');
    assert.equal(refusedField('im.send', { ...ok, body: 'x'.repeat(70_000) }), 'body');
    // Under the limit in characters, over it in UTF-8 bytes.
    assert.equal(refusedField('im.send', { ...ok, body: 'é'.repeat(40_000) }), 'body');
    assert.equal(refusedField('im.send', { ...ok, body: '' }), 'body');
    assert.equal(refusedField('im.send', { ...ok, clientId: 'has space' }), 'clientId');
    assert.equal(refusedField('im.send', { ...ok, clientId: 'c'.repeat(129) }), 'clientId');
    assert.equal(refusedField('im.send', { ...ok, account: '../etc' }), 'account');
    assert.equal(refusedField('im.send', { ...ok, to: 'not a jid' }), 'to');
  });

  test('im.contact.add: name optional, at most 32 groups of 1–256 characters', () => {
    assert.deepEqual(parse('im.contact.add', { account, jid: 'b@x' }), { account, jid: 'b@x', groups: [] });
    assert.deepEqual(parse('im.contact.add', { account, jid: 'b@x', name: 'B', groups: ['F'] }), {
      account,
      jid: 'b@x',
      name: 'B',
      groups: ['F'],
    });
    assert.equal(
      refusedField('im.contact.add', { account, jid: 'b@x', groups: Array(33).fill('g') }),
      'groups',
    );
    assert.equal(refusedField('im.contact.add', { account, jid: 'b@x', groups: [''] }), 'groups');
    assert.equal(refusedField('im.contact.add', { account, jid: 'b@x', groups: 'g' }), 'groups');
    assert.equal(refusedField('im.contact.add', { account, jid: 'b@x', name: 'n'.repeat(257) }), 'name');
  });

  test('im.catchup, im.presence, im.roster, im.typing, im.subscription.answer', () => {
    assert.deepEqual(parse('im.catchup', { account, after: '' }), { account, max: 100 });
    assert.deepEqual(parse('im.catchup', { account, after: 'a1', max: 500 }), {
      account,
      max: 500,
      after: 'a1',
    });
    assert.equal(refusedField('im.catchup', { account, max: 501 }), 'max');
    assert.equal(refusedField('im.catchup', { account, after: 'a'.repeat(257) }), 'after');
    assert.deepEqual(parse('im.presence', { account }), { account, show: 'available' });
    assert.deepEqual(parse('im.presence', { account, show: 'dnd', status: 'busy' }), {
      account,
      show: 'dnd',
      status: 'busy',
    });
    assert.equal(refusedField('im.presence', { account, show: 'busy' }), 'show');
    assert.equal(refusedField('im.presence', { account, status: 's'.repeat(1025) }), 'status');
    assert.deepEqual(parse('im.roster', { account, compact: false }), { account });
    assert.deepEqual(parse('im.roster', { account, compact: true }), { account, compact: true });
    assert.equal(refusedField('im.roster', { account, compact: 1 }), 'compact');
    assert.equal(refusedField('im.typing', { account, to: 'a@b', state: 'shouting' }), 'state');
    assert.deepEqual(parse('im.typing', { account, to: 'a@b', state: 'composing' }), {
      state: 'composing',
      account,
      to: 'a@b',
    });
    assert.equal(refusedField('im.subscription.answer', { account, jid: 'a@b' }), 'accept');
    assert.equal(refusedField('im.logout', { account: 'm0123' }), 'account');
    assert.equal(refusedField('im.contact.remove', { account, jid: '@b' }), 'jid');
  });
});
