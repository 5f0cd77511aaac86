import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type XmlElement, xml } from '@xmpp/client';
import { carbonOf, enableCarbons, readCarbon } from './carbons.ts';
import { type MessageReader, readChatMessage } from './message.ts';
import { NS } from './types.ts';

const reader: MessageReader = { account: 'alice@example.test', maxBodyChars: 100, now: () => 0 };
const read = (el: XmlElement, direction: 'in' | 'out', stamp?: string) =>
  readChatMessage(reader, el, direction, stamp);

function carbon(kind: 'sent' | 'received', inner?: XmlElement): XmlElement {
  return xml(
    'message',
    { from: 'alice@example.test' },
    xml(
      kind,
      { xmlns: NS.carbons },
      xml(
        'forwarded',
        { xmlns: NS.forward },
        xml('delay', { xmlns: NS.delay, stamp: '2022-02-02T00:00:00Z' }),
        inner,
      ),
    ),
  );
}

test('enableCarbons asks with an iq set and only logs a refusal', async () => {
  const asked: string[] = [];
  await enableCarbons(async (type, child) => {
    asked.push(`${type} ${child.toString()}`);
  });
  assert.deepEqual(asked, [`set <enable xmlns="${NS.carbons}"/>`]);
  const logged: string[] = [];
  const logger = { debug() {}, warn() {}, info: (_o: unknown, m?: string) => void logged.push(String(m)) };
  await enableCarbons(
    async () => {
      throw new Error('feature-not-implemented');
    },
    { logger: logger as never, account: 'alice@example.test' },
  );
  assert.deepEqual(logged, ['carbons not available']);
});

test('a sent carbon is our outgoing message, a received one incoming; both flagged, stamped from the wrapper', () => {
  const sent = carbonOf(
    carbon('sent', xml('message', { to: 'bob@example.test/x' }, xml('body', {}, 'mine'))),
  );
  assert.ok(sent);
  assert.deepEqual(readCarbon(sent, read), {
    from: 'alice@example.test',
    to: 'bob@example.test',
    body: 'mine',
    at: '2022-02-02T00:00:00.000Z',
    direction: 'out',
    carbon: true,
  });
  const received = carbonOf(
    carbon('received', xml('message', { from: 'bob@example.test/x' }, xml('body', {}, 'theirs'))),
  );
  assert.ok(received);
  const m = readCarbon(received, read);
  assert.equal(m?.direction, 'in');
  assert.equal(m?.from, 'bob@example.test');
  assert.equal(m?.carbon, true);
});

test('no wrapper is no carbon; a wrapper without a message or body yields nothing', () => {
  assert.equal(carbonOf(xml('message', {}, xml('body', {}, 'x'))), undefined);
  const empty = carbonOf(carbon('received'));
  assert.ok(empty);
  assert.equal(readCarbon(empty, read), undefined);
  const typing = carbonOf(carbon('received', xml('message', { from: 'bob@example.test' })));
  assert.ok(typing);
  assert.equal(readCarbon(typing, read), undefined);
});
