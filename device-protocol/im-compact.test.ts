import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeFrame } from './codec.ts';
import { compactImEvent, compactRoster, expandImEvent, expandRoster, imCompactPlugin } from './im-compact.ts';
import { Kind, type Value } from './messages.ts';

const acc = 'x0123456789abcdef';
const size = (name: string, body: Value) => encodeFrame({ kind: Kind.Event, seq: 1000, name, body }).length;

test('every compact IM event expands to exactly the documented body, and is smaller', () => {
  const cases: Array<[string, Value]> = [
    [
      'im.message',
      {
        account: acc,
        from: 'carol@example.test',
        to: 'dave@example.test',
        body: 'See you at 6',
        stanzaId: '-BT6Z38Ph2r8z5so3zWGSQLp',
        originId: 'c-1',
        at: '2026-12-04T15:43:01.123Z',
        direction: 'in',
      },
    ],
    [
      'im.message',
      {
        account: acc,
        from: 'dave@example.test',
        to: 'carol@example.test',
        body: 'x'.repeat(10),
        at: '2026-12-04T15:43:01.000Z',
        direction: 'out',
        carbon: true,
        truncated: true,
      },
    ],
    [
      'im.message',
      {
        account: acc,
        from: 'carol@example.test',
        to: 'dave@example.test',
        body: 'after the one before',
        stanzaId: 'id-2',
        at: '2026-12-04T15:43:02.000Z',
        direction: 'in',
        prev: 'id-1',
      },
    ],
    [
      'im.message',
      {
        account: acc,
        from: 'carol@example.test',
        to: 'dave@example.test',
        body: 'the gateway lost track',
        stanzaId: 'id-9',
        at: '2026-12-04T15:43:03.000Z',
        direction: 'in',
        prev: null,
      },
    ],
    [
      'im.presence',
      {
        account: acc,
        items: [
          { jid: 'a@example.test', show: 'away', status: 'lunch' },
          { jid: 'b@example.test', show: 'unavailable' },
        ],
      },
    ],
    ['im.receipt', { account: acc, from: 'dave@example.test', id: 'c-1' }],
    ['im.typing', { account: acc, from: 'dave@example.test', state: 'composing' }],
  ];
  for (const [name, body] of cases) {
    const compact = compactImEvent(name, body);
    assert.ok(compact, `${name} has a compact form`);
    assert.notEqual(compact.name, name);
    assert.deepEqual(expandImEvent(compact.name, compact.body), { name, body });
    assert.ok(size(compact.name, compact.body) < size(name, body) * 0.8, `${name} is smaller`);
  }
});

test('a body the compact form cannot carry exactly stays documented', () => {
  const m = {
    account: acc,
    from: 'a@b',
    to: 'c@d',
    body: 'x',
    at: '2026-12-04T15:43:01.123Z',
    direction: 'in',
  };
  assert.equal(compactImEvent('im.message', { ...m, extra: 1 }), undefined, 'unknown field');
  assert.equal(
    compactImEvent('im.message', { ...m, at: '2026-12-04T15:43:01Z' }),
    undefined,
    'other time form',
  );
  assert.equal(compactImEvent('im.message', { ...m, direction: 'sideways' }), undefined);
  assert.equal(
    compactImEvent('im.presence', { account: acc, items: [{ jid: 'a@b', show: 'odd' }] }),
    undefined,
  );
  assert.equal(compactImEvent('im.typing', { account: acc, from: 'a@b', state: 'shouting' }), undefined);
  assert.equal(compactImEvent('im.state', { account: acc, state: 'online' }), undefined, 'no compact form');
  // Events that are not compact pass the expander unchanged.
  assert.deepEqual(expandImEvent('im.state', { account: acc }), { name: 'im.state', body: { account: acc } });
  assert.deepEqual(expandImEvent('mail.new', undefined), { name: 'mail.new' });
});

test('roster rows round-trip to the documented items', () => {
  const answer: { [key: string]: Value } = {
    account: acc,
    items: [
      {
        jid: 'a@example.test',
        name: 'A',
        groups: ['Friends'],
        subscription: 'both',
        presence: 'available',
        status: 'hi',
      },
      { jid: 'b@example.test', groups: [], subscription: 'none', ask: 'subscribe', presence: 'unavailable' },
    ],
  };
  const compact = compactRoster(answer);
  assert.ok(Array.isArray(compact.rows));
  assert.equal(compact.items, undefined);
  assert.deepEqual(expandRoster(compact), answer);
  assert.deepEqual(
    compactRoster({ account: acc, items: [{ jid: 'a@b', subscription: 'odd' }] }).rows,
    undefined,
  );
  assert.deepEqual(expandRoster(answer), answer);
});

test('the SDK plugin: asks for im.compact, rewrites im.roster, fills the im.send answer, expands events', () => {
  const plugin = imCompactPlugin;
  assert.deepEqual(plugin.caps, { encodings: ['im.compact'] });
  const items = [{ jid: 'b@x', groups: ['g'], subscription: 'both', presence: 'away', status: 'out' }];
  const roster = plugin.request?.('im.roster', { account: acc });
  assert.deepEqual(roster?.body, { account: acc, compact: true });
  assert.deepEqual(roster?.expandResponse?.(compactRoster({ items })), { items });
  // An explicit compact is sent as given; rows that come back are still expanded.
  const explicit = plugin.request?.('im.roster', { account: acc, compact: true });
  assert.deepEqual(explicit?.body, { account: acc, compact: true });
  assert.deepEqual(explicit?.expandResponse?.(compactRoster({ items })), { items });
  const send = plugin.request?.('im.send', { account: acc, clientId: 'c1', to: 'b@x', body: 'hi' });
  assert.equal(send?.body, undefined, 'sent as given');
  assert.deepEqual(send?.expandResponse?.(undefined), { account: acc, clientId: 'c1' });
  assert.deepEqual(send?.expandResponse?.({ account: acc, clientId: 'c1', stanzaId: 's' }), {
    account: acc,
    clientId: 'c1',
    stanzaId: 's',
  });
  assert.equal(plugin.request?.('im.login', { account: acc }), undefined);
  assert.equal(plugin.request?.('im.roster', null), undefined);
  assert.deepEqual(plugin.expandEvent?.('im.r', [acc, 'b@x', 'm1']), {
    name: 'im.receipt',
    body: { account: acc, from: 'b@x', id: 'm1' },
  });
  assert.equal(plugin.expandEvent?.('im.message', { account: acc }), undefined);
  assert.equal(plugin.expandEvent?.('mail.new', { account: acc }), undefined);
});

test('im.m: prev is a ninth item, read only when there; an eight-item list expands without it', () => {
  const body = {
    account: acc,
    from: 'carol@example.test',
    to: 'dave@example.test',
    body: 'hi',
    stanzaId: 'id-2',
    at: '2026-12-04T15:43:02.000Z',
    direction: 'in',
    prev: 'id-1',
  };
  const compact = compactImEvent('im.message', body);
  assert.ok(compact && Array.isArray(compact.body));
  assert.equal(compact.body.length, 9);
  assert.equal(compact.body[8], 'id-1');
  const older = expandImEvent('im.m', compact.body.slice(0, 8));
  assert.equal(Object.hasOwn(older.body as object, 'prev'), false, 'an older gateway sends no prev');
  assert.equal(compactImEvent('im.message', { ...body, prev: 7 }), undefined, 'an odd prev stays documented');
});
