import assert from 'node:assert/strict';
import { test } from 'node:test';
import { xml } from '@xmpp/client';
import { ContactPresences, ownPresenceStanza } from './presence.ts';
import type { ContactPresence, SubscriptionKind } from './types.ts';

const BOB = 'bob@example.test';

function setup() {
  const changes: ContactPresence[] = [];
  const subscriptions: Array<[string, SubscriptionKind]> = [];
  const presences = new ContactPresences({
    account: 'alice@example.test',
    onChange: (p) => void changes.push(p),
    onSubscription: (from, kind) => void subscriptions.push([from, kind]),
  });
  const from = (
    resource: string,
    attrs: Record<string, string> = {},
    ...children: ReturnType<typeof xml>[]
  ) => presences.handle(xml('presence', { from: `${BOB}/${resource}`, ...attrs }, ...children));
  return { presences, changes, subscriptions, from };
}

test('a contact on several clients is one presence: highest priority, then most available', () => {
  const { presences, changes, from } = setup();
  from('phone', {}, xml('show', {}, 'away'), xml('priority', {}, '5'));
  from('desk', {}, xml('show', {}, 'dnd'), xml('priority', {}, '1'));
  assert.deepEqual(presences.of(BOB), { jid: BOB, show: 'away' });
  from('laptop', {}, xml('show', {}, 'chat'), xml('priority', {}, '5'), xml('status', {}, 'free'));
  assert.deepEqual(presences.of(BOB), { jid: BOB, show: 'chat', status: 'free' });
  from('laptop', { type: 'unavailable' });
  from('phone', { type: 'unavailable' });
  assert.deepEqual(presences.of(BOB), { jid: BOB, show: 'dnd' });
  from('desk', { type: 'unavailable' });
  assert.deepEqual(changes, [
    { jid: BOB, show: 'away' },
    { jid: BOB, show: 'chat', status: 'free' },
    { jid: BOB, show: 'away' },
    { jid: BOB, show: 'dnd' },
    { jid: BOB, show: 'unavailable' },
  ]);
});

test('a change is reported only when the combined presence changes', () => {
  const { changes, from } = setup();
  from('phone', {}, xml('priority', {}, '5'));
  from('desk', {}, xml('show', {}, 'xa'));
  from('phone', {}, xml('priority', {}, '5'));
  from('desk', { type: 'unavailable' });
  assert.deepEqual(changes, [{ jid: BOB, show: 'available' }]);
});

test('odd input: unknown show is available, bad priority 0, status cleaned and cut', () => {
  const { presences, from } = setup();
  from(
    'a',
    {},
    xml('show', {}, 'dancing'),
    xml('priority', {}, 'high'),
    xml('status', {}, `x\u0001${'y'.repeat(2000)}`),
  );
  const p = presences.of(BOB);
  assert.equal(p.show, 'available');
  assert.equal(p.status, `x${'y'.repeat(1023)}`);
  from('b', {}, xml('show', {}, 'xa'), xml('priority', {}, '0'));
  assert.equal(
    presences.of(BOB).show,
    'available',
    "the bad priority counted as 0, tied, and 'available' ranks above xa",
  );
});

test('one contact keeps at most 32 resources', () => {
  const { presences, from } = setup();
  for (let i = 0; i < 32; i++) from(`r${i}`, {}, xml('show', {}, 'xa'));
  from('r99', {}, xml('show', {}, 'chat'));
  assert.equal(presences.of(BOB).show, 'xa');
  from('r0', {}, xml('show', {}, 'chat'));
  assert.equal(presences.of(BOB).show, 'chat', 'a known resource still updates');
});

test('subscription presences are reported; errors, probes, our own clients and garbage are not', () => {
  const { presences, changes, subscriptions, from } = setup();
  for (const type of ['subscribe', 'subscribed', 'unsubscribe', 'unsubscribed']) from('x', { type });
  from('x', { type: 'error' });
  from('x', { type: 'probe' });
  presences.handle(xml('presence', { from: 'alice@example.test/other' }));
  presences.handle(xml('presence', {}));
  presences.handle(xml('presence', { from: '@@' }));
  assert.deepEqual(subscriptions, [
    [BOB, 'subscribe'],
    [BOB, 'subscribed'],
    [BOB, 'unsubscribe'],
    [BOB, 'unsubscribed'],
  ]);
  assert.deepEqual(changes, []);
});

test('clear forgets every contact', () => {
  const { presences, from } = setup();
  from('phone');
  presences.clear();
  assert.deepEqual(presences.of(BOB), { jid: BOB, show: 'unavailable' });
});

test('own presence: show only when not plain available, unavailable as a type', () => {
  assert.equal(ownPresenceStanza({ show: 'available' }).toString(), '<presence/>');
  assert.equal(
    ownPresenceStanza({ show: 'dnd', status: 'busy' }).toString(),
    '<presence><show>dnd</show><status>busy</status></presence>',
  );
  assert.equal(
    ownPresenceStanza({ show: 'unavailable', status: 'bye' }).toString(),
    '<presence type="unavailable"><status>bye</status></presence>',
  );
});
