import assert from 'node:assert/strict';
import { test } from 'node:test';
import { xml } from '@xmpp/client';
import { chatMessageStanza, type MessageReader, readChatMessage } from './message.ts';
import { NS } from './types.ts';

const reader: MessageReader = {
  account: 'alice@example.test',
  maxBodyChars: 10,
  now: () => Date.UTC(2024, 0, 2),
};

test('a device message goes out with its clientId as id and origin-id, asking for a receipt', () => {
  const el = chatMessageStanza('bob@example.test', 'hi', 'c-1');
  assert.equal(
    el.toString(),
    '<message type="chat" to="bob@example.test" id="c-1"><body>hi</body>' +
      `<origin-id xmlns="${NS.sid}" id="c-1"/><request xmlns="${NS.receipts}"/>` +
      `<active xmlns="${NS.chatstates}"/></message>`,
  );
});

test('an incoming message is read from the account side: bare addresses, ids, clock when unstamped', () => {
  const el = xml(
    'message',
    { from: 'Bob@Example.test/phone', to: 'alice@example.test/gw', type: 'chat', id: 'x' },
    xml('body', {}, 'hello'),
    xml('origin-id', { xmlns: NS.sid, id: 'o-1' }),
  );
  assert.deepEqual(readChatMessage(reader, el, 'in'), {
    from: 'bob@example.test',
    to: 'alice@example.test',
    body: 'hello',
    at: '2024-01-02T00:00:00.000Z',
    direction: 'in',
    originId: 'o-1',
  });
  const out = readChatMessage(
    reader,
    xml('message', { to: 'carol@example.test/x' }, xml('body', {}, 'yo')),
    'out',
  );
  assert.equal(out?.from, 'alice@example.test');
  assert.equal(out?.to, 'carol@example.test');
});

test('the delay stamp wins over the wrapper stamp, which wins over the clock; a bad stamp is ignored', () => {
  const body = xml('body', {}, 'b');
  const from = { from: 'bob@example.test' };
  const stamped = xml(
    'message',
    from,
    body,
    xml('delay', { xmlns: NS.delay, stamp: '2020-05-05T10:00:00Z' }),
  );
  assert.equal(
    readChatMessage(reader, stamped, 'in', '2021-01-01T00:00:00Z')?.at,
    '2020-05-05T10:00:00.000Z',
  );
  assert.equal(
    readChatMessage(reader, xml('message', from, xml('body', {}, 'b')), 'in', '2021-01-01T00:00:00Z')?.at,
    '2021-01-01T00:00:00.000Z',
  );
  assert.equal(
    readChatMessage(reader, xml('message', from, xml('body', {}, 'b')), 'in', 'yesterday')?.at,
    '2024-01-02T00:00:00.000Z',
  );
});

test('only the last stanza-id stamped by the account itself is taken (a sender can forge one before it)', () => {
  const el = xml(
    'message',
    { from: 'bob@example.test' },
    xml('body', {}, 'b'),
    xml('stanza-id', { xmlns: NS.sid, by: 'alice@example.test', id: 'forged' }),
    xml('stanza-id', { xmlns: NS.sid, by: 'bob@example.test', id: 'theirs' }),
    xml('stanza-id', { xmlns: NS.sid, by: 'alice@example.test', id: 'real' }),
  );
  assert.equal(readChatMessage(reader, el, 'in')?.stanzaId, 'real');
});

test('bodies are cleaned and cut to the limit, long ids cut; no body or no sender is no message', () => {
  const el = xml(
    'message',
    { from: 'bob@example.test' },
    xml('body', {}, 'a\u0001bcdefghijklmn'),
    xml('origin-id', { xmlns: NS.sid, id: 'o'.repeat(300) }),
  );
  const m = readChatMessage(reader, el, 'in');
  assert.equal(m?.body, 'abcdefghij');
  assert.equal(m?.truncated, true);
  assert.equal(m?.originId?.length, 256);
  assert.equal(readChatMessage(reader, xml('message', { from: 'bob@example.test' }), 'in'), undefined);
  assert.equal(
    readChatMessage(reader, xml('message', { from: '@@' }, xml('body', {}, 'b')), 'in'),
    undefined,
  );
  assert.equal(readChatMessage(reader, xml('message', {}, xml('body', {}, 'b')), 'out'), undefined);
});
