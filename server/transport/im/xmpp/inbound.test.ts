import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type XmlElement, xml } from '@xmpp/client';
import { InboundMessages } from './inbound.ts';
import { type MessageReader, readChatMessage } from './message.ts';
import { type ChatMessage, type ChatState, NS } from './types.ts';

const ME = 'alice@example.test';
const reader: MessageReader = { account: ME, maxBodyChars: 100, now: () => 0 };

function setup(onMessage?: (m: ChatMessage) => void) {
  const got = {
    messages: [] as ChatMessage[],
    typing: [] as Array<[string, ChatState]>,
    results: [] as string[],
    receipts: [] as string[],
    remembered: [] as string[],
    warned: [] as string[],
    debug: [] as string[],
  };
  const inbound = new InboundMessages({
    account: ME,
    read: (el, direction, stamp) => readChatMessage(reader, el, direction, stamp),
    archive: { handleResult: (r) => void got.results.push(r.attrs.id ?? '') },
    receipts: {
      handle: (el, from) => {
        const id = el.getChild('received', NS.receipts)?.attrs.id;
        if (id) got.receipts.push(`${from} ${id}`);
      },
      remember: (m) => void got.remembered.push(m.body),
    },
    onMessage: onMessage ?? ((m) => void got.messages.push(m)),
    onTyping: (from, state) => void got.typing.push([from, state]),
    logger: {
      debug: (_o: unknown, m?: string) => void got.debug.push(String(m)),
      info() {},
      warn: (_o: unknown, m?: string) => void got.warned.push(String(m)),
    } as never,
  });
  return { inbound, got };
}

const mamResult = (from: string | undefined, id: string): XmlElement =>
  xml('message', from === undefined ? {} : { from }, xml('result', { xmlns: NS.mam, queryid: 'q', id }));
const carbonFrom = (from: string): XmlElement =>
  xml(
    'message',
    { from },
    xml(
      'received',
      { xmlns: NS.carbons },
      xml(
        'forwarded',
        { xmlns: NS.forward },
        xml('message', { from: 'bob@example.test' }, xml('body', {}, 'c')),
      ),
    ),
  );

test('archive results count only from the account (or the server on its behalf)', () => {
  const { inbound, got } = setup();
  inbound.handle(mamResult(undefined, 'r1'));
  inbound.handle(mamResult(`${ME}`, 'r2'));
  inbound.handle(mamResult('mallory@example.test', 'r3'));
  assert.deepEqual(got.results, ['r1', 'r2']);
  assert.deepEqual(got.messages, []);
});

test('a carbon from our own JID is handed on flagged; a forged one from anyone else is dropped', () => {
  const { inbound, got } = setup();
  inbound.handle(carbonFrom(ME));
  inbound.handle(carbonFrom('mallory@example.test'));
  assert.equal(got.messages.length, 1);
  assert.equal(got.messages[0]?.carbon, true);
  assert.deepEqual(got.receipts, [], 'a carbon is not a live message');
});

test('a live message reaches the listener, its receipt request remembered, its receipt reported', () => {
  const { inbound, got } = setup();
  inbound.handle(
    xml(
      'message',
      { from: 'bob@example.test/p', type: 'chat', id: 'm1' },
      xml('body', {}, 'hi'),
      xml('received', { xmlns: NS.receipts, id: 'c-9' }),
    ),
  );
  assert.equal(got.messages[0]?.body, 'hi');
  assert.deepEqual(got.remembered, ['hi']);
  assert.deepEqual(got.receipts, ['bob@example.test c-9']);
});

test('a lone chat state is typing; a message with a body is not', () => {
  const { inbound, got } = setup();
  inbound.handle(
    xml('message', { from: 'bob@example.test/p', type: 'chat' }, xml('composing', { xmlns: NS.chatstates })),
  );
  inbound.handle(
    xml(
      'message',
      { from: 'bob@example.test/p', type: 'chat' },
      xml('body', {}, 'x'),
      xml('active', { xmlns: NS.chatstates }),
    ),
  );
  inbound.handle(xml('message', { type: 'chat' }, xml('paused', { xmlns: NS.chatstates })));
  assert.deepEqual(got.typing, [['bob@example.test', 'composing']]);
});

test('errors, groupchat and headline messages are not chat', () => {
  const { inbound, got } = setup();
  inbound.handle(
    xml('message', { from: 'bob@example.test', type: 'error', id: 'c-1' }, xml('body', {}, 'x')),
  );
  for (const type of ['groupchat', 'headline'])
    inbound.handle(xml('message', { from: 'bob@example.test', type }, xml('body', {}, 'x')));
  assert.equal(got.messages.length, 0);
  assert.deepEqual(got.debug, ['xmpp message bounced']);
  inbound.handle(xml('message', { from: 'bob@example.test' }, xml('body', {}, 'normal')));
  assert.equal(got.messages[0]?.body, 'normal');
});

test('a listener that throws is logged, not passed on', () => {
  const { inbound, got } = setup(() => {
    throw new Error('listener bug');
  });
  inbound.handle(xml('message', { from: 'bob@example.test', type: 'chat' }, xml('body', {}, 'x')));
  assert.deepEqual(got.warned, ['im message listener failed']);
});
