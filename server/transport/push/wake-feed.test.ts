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
