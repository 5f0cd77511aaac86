import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hasControlChars, sanitizeText } from './text.ts';

test('sanitizeText drops XML-illegal characters and cuts without splitting a surrogate pair', () => {
  assert.deepEqual(sanitizeText('a\u0000b\u0007c\td\n', 100), { text: 'abc\td\n', truncated: false });
  assert.deepEqual(sanitizeText('abcdef', 3), { text: 'abc', truncated: true });
  const cut = sanitizeText('ab\u{1F600}', 3);
  assert.equal(cut.text, 'ab');
  assert.equal(cut.truncated, true);
  assert.equal(hasControlChars('ok\ttext'), false);
  assert.equal(hasControlChars('bad\u0001'), true);
});
