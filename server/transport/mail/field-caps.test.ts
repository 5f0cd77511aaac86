import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  capAddressList,
  capEnvelope,
  capFlags,
  capMessageId,
  capSubject,
  cutUtf8,
  FIELD_CAPS,
} from './field-caps.ts';

const bytes = (s: string) => Buffer.byteLength(s, 'utf8');

test('cutUtf8 keeps whole characters within the byte budget and marks the cut', () => {
  assert.equal(cutUtf8('short', 10), 'short');
  assert.equal(cutUtf8('abcdefghij', 10), 'abcdefghij');
  assert.equal(cutUtf8('abcdefghijk', 10), 'abcdefg…');
  // 4-byte characters (emoji) and 3-byte ones (CJK) are never split.
  for (const text of ['😀'.repeat(300), '漢'.repeat(300), `a${'é'.repeat(300)}`]) {
    const cut = cutUtf8(text, 100);
    assert.ok(bytes(cut) <= 100, `${bytes(cut)} bytes`);
    assert.ok(cut.endsWith('…'));
    assert.doesNotMatch(cut, /\uFFFD/);
    assert.equal(Buffer.from(cut, 'utf8').toString('utf8'), cut, 'no lone surrogate');
  }
});

test('a 1 MiB subject, a huge name list and a huge Message-ID come back at their documented sizes', () => {
  assert.equal(bytes(capSubject('S'.repeat(1024 * 1024))), FIELD_CAPS.subject);
  const list = capAddressList(
    Array.from({ length: 5000 }, (_, i) => ({ name: 'N'.repeat(1000), address: `a${i}@${'d'.repeat(400)}` })),
  );
  assert.equal(list.length, FIELD_CAPS.addresses);
  assert.ok(list.every((a) => bytes(a.name) <= FIELD_CAPS.name && bytes(a.address) <= FIELD_CAPS.address));
  assert.equal(capMessageId(`<${'x'.repeat(5000)}@x>`), '', 'a cut Message-ID would match nothing: dropped');
  assert.equal(capMessageId('<a@b>'), '<a@b>');
  const env = capEnvelope({
    subject: 'x'.repeat(10_000),
    to: list.concat(list),
    inReplyTo: 'y'.repeat(2000),
  });
  assert.equal(bytes(env.subject ?? ''), FIELD_CAPS.subject);
  assert.equal(env.to?.length, FIELD_CAPS.addresses);
  assert.equal(env.inReplyTo, '');
});

test('flags: \\Recent and over-long keywords left out, sorted, at most FIELD_CAPS.flags (system flags kept)', () => {
  const many = new Set([
    '\\Seen',
    '\\Recent',
    'k'.repeat(200),
    ...Array.from({ length: 100 }, (_, i) => `kw${i}`),
  ]);
  const flags = capFlags(many);
  assert.equal(flags.length, FIELD_CAPS.flags);
  assert.equal(flags[0], '\\Seen');
  assert.ok(!flags.includes('\\Recent'));
  assert.ok(flags.every((f) => f.length <= FIELD_CAPS.flag));
  assert.deepEqual(capFlags(new Set(['b', '\\Flagged', 'a'])), ['\\Flagged', 'a', 'b']);
});
