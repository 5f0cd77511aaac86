import assert from 'node:assert/strict';
import { test } from 'node:test';
import { wakeFeed } from './wake-feed.ts';

test('chat wakes with or without a session; mail only when held for a detached session', () => {
  const woken: string[] = [];
  const feed = wakeFeed((deviceId, kind, n) => woken.push(`${deviceId} ${kind} ${n}`));
  feed('a', 'im.message', 'no_session');
  feed('b', 'im.m', 'detached');
  feed('c', 'mail.new', 'detached');
  // The INBOX watcher asks for these itself (once per message across its retries).
  feed('d', 'mail.new', 'no_session');
  // Neither presence nor account states wake a phone.
  feed('e', 'im.presence', 'detached');
  feed('f', 'mail.account', 'no_session');
  assert.deepEqual(woken, ['a chat 1', 'b chat 1', 'c mail 1']);
});

test('each wake-up carries the event’s preview: sender and subject of mail, the sender of chat', () => {
  const woken: unknown[] = [];
  const feed = wakeFeed((deviceId, kind, n, preview) => woken.push([deviceId, kind, n, preview]));
  feed('a', 'mail.new', 'detached', { header: { from: { name: 'Alice', address: 'a@x' }, subject: 'S' } });
  feed('b', 'im.message', 'no_session', { from: 'carol@x.test/r', direction: 'in' });
  feed('c', 'im.m', 'detached', ['c1', 'dave@x.test', 'me@x.test', 'hi', null, null, 0, 0]);
  assert.deepEqual(woken, [
    ['a', 'mail', 1, { from: 'Alice', subject: 'S' }],
    ['b', 'chat', 1, { from: 'carol@x.test' }],
    ['c', 'chat', 1, { from: 'dave@x.test' }],
  ]);
});
