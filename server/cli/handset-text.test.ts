import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeValue } from './handset-text.ts';

test('plain values on the label line; bytes as their count; nothing as (none) or -', () => {
  assert.equal(describeValue('response', 'hello'), 'response: hello');
  assert.equal(describeValue('response', 42), 'response: 42');
  assert.equal(describeValue('response', undefined), 'response: -');
  assert.equal(describeValue('response', new Uint8Array(3)), 'response: <3 bytes>');
  assert.equal(describeValue('mail.accounts', []), 'mail.accounts: (none)');
  assert.equal(describeValue('tags', ['a', 'b']), 'tags: a, b');
});

test('objects and lists of objects as indented fields, never an object dump', () => {
  const text = describeValue('mail.headers', {
    items: [
      { uid: 1, from: { name: 'mmgw demo', address: 'demo@example.test' }, subject: 'Welcome', flags: [] },
      { uid: 2, from: { address: 'bob@example.test' }, subject: 'hi', size: new Uint8Array(2) },
    ],
    cursor: 's1.abc',
  });
  assert.equal(
    text,
    [
      'mail.headers:',
      '  items:',
      '    - uid: 1',
      '      from: mmgw demo <demo@example.test>',
      '      subject: Welcome',
      '      flags: (none)',
      '    - uid: 2',
      '      from: bob@example.test',
      '      subject: hi',
      '      size: <2 bytes>',
      '  cursor: s1.abc',
    ].join('\n'),
  );
  assert.doesNotMatch(text, /[{}[\]]|\[Object|'/);
});
