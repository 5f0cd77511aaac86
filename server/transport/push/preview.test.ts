import assert from 'node:assert/strict';
import { test } from 'node:test';
import { wakeFields } from './channel.ts';
import { allowedPreview, eventPreview, mailPreview, PREVIEW_LIMITS, previewText } from './preview.ts';

test('previewText strips controls, bidi overrides, zero-width and line breaks, and collapses spaces', () => {
  assert.equal(previewText('Alice\r\nExample\t\u0007', 64), 'Alice Example');
  assert.equal(previewText('\u202egnp.exe\u202c  invoice', 64), 'gnp.exe invoice');
  assert.equal(previewText('a\u200bb\u2028c\u0085d\ufeff', 64), 'a b c d');
  assert.equal(previewText('\u0000\u001f\u007f  ', 64), '');
  // A lone surrogate (a broken encoding) becomes U+FFFD; a pair stays whole.
  assert.equal(previewText('x\ud800y \ud83d\ude00', 64), 'x\ufffdy \ud83d\ude00');
});

test('previewText cuts to the limit in code points, never inside a pair, and marks the cut', () => {
  assert.equal(previewText('abcdef', 6), 'abcdef');
  assert.equal(previewText('abcdefg', 6), 'abcde…');
  const emoji = '\ud83d\ude00'.repeat(10);
  const cut = previewText(emoji, 4);
  assert.equal(cut, `${'\ud83d\ude00'.repeat(3)}…`);
  assert.equal(Array.from(cut).length, 4);
  // The space before a cut is not kept.
  assert.equal(previewText('abc defghij', 5), 'abc…');
  const long = previewText('s'.repeat(10_000), PREVIEW_LIMITS.subject);
  assert.equal(Array.from(long).length, PREVIEW_LIMITS.subject);
});

test('mailPreview: the display name, else the address; the subject; nothing from a header without them', () => {
  assert.deepEqual(mailPreview({ from: { name: 'Alice A.', address: 'a@x.test' }, subject: 'Hi\nthere' }), {
    from: 'Alice A.',
    subject: 'Hi there',
  });
  assert.deepEqual(mailPreview({ from: { name: ' ', address: 'a@x.test' }, subject: '' }), {
    from: 'a@x.test',
  });
  assert.equal(mailPreview({ from: { name: '', address: '' }, subject: '\u0001' }), undefined);
  for (const bad of [null, 'x', 3, { from: 'a@x.test', subject: 7 }, { from: null }]) {
    assert.equal(mailPreview(bad), undefined, JSON.stringify(bad));
  }
});

test('eventPreview reads mail.new, im.message and im.m; outgoing chat and other events have none', () => {
  const header = { from: { name: 'Alice', address: 'a@x.test' }, subject: 'Lunch?' };
  assert.deepEqual(eventPreview('mail.new', { account: 'm1', header }), { from: 'Alice', subject: 'Lunch?' });
  assert.deepEqual(eventPreview('im.message', { from: 'alice@x.test/phone', direction: 'in' }), {
    from: 'alice@x.test',
  });
  assert.equal(eventPreview('im.message', { from: 'me@x.test/desk', direction: 'out' }), undefined);
  assert.deepEqual(eventPreview('im.m', ['c1', 'alice@x.test/r', 'bob@x.test', 'hi', null, null, 0, 0]), {
    from: 'alice@x.test',
  });
  assert.equal(eventPreview('im.m', ['c1', 'me@x.test', 'bob@x.test', 'hi', null, null, 0, 1]), undefined);
  assert.equal(eventPreview('im.m', { from: 'alice@x.test' }), undefined);
  assert.equal(eventPreview('im.presence', { from: 'alice@x.test' }), undefined);
  assert.equal(eventPreview('mail.new', undefined), undefined);
});

test('allowedPreview: nothing by default or with none; the sender alone; sender and subject', () => {
  const p = { from: 'Alice', subject: 'Lunch?' };
  assert.equal(allowedPreview(p, undefined), undefined);
  assert.equal(allowedPreview(p, 'none'), undefined);
  assert.deepEqual(allowedPreview(p, 'sender'), { from: 'Alice' });
  assert.equal(allowedPreview({ subject: 'only' }, 'sender'), undefined);
  assert.deepEqual(allowedPreview(p, 'sender_subject'), p);
  assert.equal(allowedPreview(undefined, 'sender_subject'), undefined);
});

test('wakeFields carries from and subject only when the message has them', () => {
  const tally = { mail: 2, chat: 0, kind: 'mail' as const, since: 0 };
  assert.deepEqual(wakeFields({ tally }), {
    kind: 'mail',
    count: 2,
    mail: 2,
    chat: 0,
    text: '2 new messages',
  });
  assert.deepEqual(wakeFields({ tally, preview: { from: 'Alice', subject: 'Lunch?' } }), {
    kind: 'mail',
    count: 2,
    mail: 2,
    chat: 0,
    text: '2 new messages',
    from: 'Alice',
    subject: 'Lunch?',
  });
});
