import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  decodeCharset,
  decodeQuotedPrintable,
  decodeTransfer,
  makePreview,
  truncateUtf8,
} from './mime-text.ts';

test('quoted-printable: escapes, soft breaks, and a truncated escape at the end', () => {
  assert.equal(decodeQuotedPrintable(Buffer.from('Caf=C3=A9 =\r\nau lait=\nx')).toString(), 'Café au laitx');
  assert.equal(decodeQuotedPrintable(Buffer.from('a=3')).toString(), 'a');
  assert.equal(decodeQuotedPrintable(Buffer.from('a=ZZb')).toString(), 'a=ZZb');
});

test('base64: whitespace, padding, and a partial fetch ending mid-quantum', () => {
  const b64 = Buffer.from('hello world!!').toString('base64');
  assert.equal(
    decodeTransfer(Buffer.from(b64.replace(/(.{4})/g, '$1\r\n')), 'base64').toString(),
    'hello world!!',
  );
  assert.equal(decodeTransfer(Buffer.from(b64.slice(0, 6)), 'BASE64').toString(), 'hel');
  assert.equal(decodeTransfer(Buffer.from('plain'), '7bit').toString(), 'plain');
});

test('charsets: legacy labels and unknown ones never throw', () => {
  assert.equal(decodeCharset(Buffer.from([0x63, 0x61, 0x66, 0xe9]), 'ISO-8859-1'), 'café');
  assert.equal(decodeCharset(Buffer.from('82b182f1', 'hex'), 'x-sjis'), 'こん');
  assert.equal(decodeCharset(Buffer.from('abc'), 'x-klingon'), 'abc');
  assert.equal(decodeCharset(Buffer.from('abc'), undefined), 'abc');
});

test('truncateUtf8 never splits a character and never exceeds the budget', () => {
  fc.assert(
    fc.property(
      fc.string({ unit: 'grapheme', maxLength: 200 }),
      fc.integer({ min: 0, max: 300 }),
      (s, max) => {
        const { text, truncated } = truncateUtf8(s, max);
        assert.ok(Buffer.byteLength(text) <= Math.max(max, 0));
        assert.ok(s.startsWith(text));
        assert.equal(truncated, text.length < s.length);
        assert.ok(!text.endsWith('\ufffd') || s.includes('\ufffd'));
      },
    ),
  );
});

test('makePreview drops quoted lines and collapses whitespace', () => {
  assert.equal(makePreview('Hi Bob,\n\n> old stuff\n  thanks   a lot'), 'Hi Bob, thanks a lot');
  assert.equal(makePreview('x'.repeat(300), 10), 'xxxxxxxxx…');
});
