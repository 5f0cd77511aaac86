import assert from 'node:assert/strict';
import { test } from 'node:test';
import { xml } from '@xmpp/client';
import { chatStateStanza, readChatState } from './chat-state.ts';
import { NS } from './types.ts';

test('a chat state goes out alone, with a no-store hint', () => {
  assert.equal(
    chatStateStanza('bob@example.test', 'composing').toString(),
    `<message type="chat" to="bob@example.test"><composing xmlns="${NS.chatstates}"/>` +
      `<no-store xmlns="${NS.hints}"/></message>`,
  );
});

test('readChatState finds a known state in the chat states namespace only', () => {
  const msg = (...children: ReturnType<typeof xml>[]) => xml('message', { type: 'chat' }, ...children);
  assert.equal(readChatState(msg(xml('paused', { xmlns: NS.chatstates }))), 'paused');
  assert.equal(readChatState(msg(xml('body', {}, 'x'), xml('gone', { xmlns: NS.chatstates }))), 'gone');
  assert.equal(readChatState(msg(xml('dancing', { xmlns: NS.chatstates }))), undefined);
  assert.equal(readChatState(msg(xml('composing', { xmlns: 'urn:other' }))), undefined);
  assert.equal(readChatState(msg()), undefined);
});
