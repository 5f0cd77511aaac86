import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  inlineCode,
  jsonShape,
  lineMismatch,
  linePattern,
  outputMismatch,
  readmeBlocks,
  shapeMismatch,
} from './readme-examples.ts';

const README = [
  'text',
  '<!-- readme-test: one -->',
  '```sh',
  'npx mmgw device add --imei 1 \\',
  '  --json',
  '# {"device":{"imei":"1",…},"secret":"…"}',
  'npx mmgw nope',
  '# mmgw: no   (exit 2)',
  'npx mmgw quiet   # a comment',
  '```',
  '```sh',
  'not marked',
  '```',
  '<!-- readme-test: banner -->',
  '```text',
  'up on <host>',
  '```',
].join('\n');

test('marked blocks: commands with their shown output and exit code; other blocks as text', () => {
  const blocks = readmeBlocks(README);
  assert.deepEqual([...blocks.keys()], ['one', 'banner']);
  assert.deepEqual(blocks.get('one')?.steps, [
    {
      command: 'npx mmgw device add --imei 1 \\\n  --json',
      expected: ['{"device":{"imei":"1",…},"secret":"…"}'],
      exitCode: 0,
    },
    { command: 'npx mmgw nope', expected: ['mmgw: no'], exitCode: 2 },
    { command: 'npx mmgw quiet   # a comment', expected: [], exitCode: 0 },
  ]);
  assert.deepEqual(blocks.get('banner')?.text, ['up on <host>']);
  assert.equal(blocks.get('banner')?.line, 14);
  assert.throws(() => readmeBlocks('<!-- readme-test: x -->\ntext'), /not right before a fenced block/);
});

test('a shown line: … and <…> match anything, sizes and times any number, the rest exactly', () => {
  assert.ok(linePattern('{"a":"…","b":1}').test('{"a":"x y","b":1}'));
  assert.ok(!linePattern('{"a":"…","b":1}').test('{"a":"x","b":2}'));
  assert.ok(linePattern('node <host>-<suffix>, roles').test('node vm-1f2e, roles'));
  const out = 'out: small.jpg  jpeg 320×240 q80  18,204 bytes  (99.5 % smaller, budget 30,000, 210 ms)';
  assert.ok(linePattern(out).test(out.replace('18,204', '793').replace('99.5', '100.0').replace('210', '7')));
  assert.ok(!linePattern(out).test(out.replace('budget 30,000', 'budget 20,000')));
  assert.ok(!linePattern(out).test(out.replace('320×240', '320×213')));
  assert.ok(linePattern('a.b (c)').test('a.b (c)') && !linePattern('a.b').test('axb'));
});

test('output: as many lines, each shown one matched once, in any order', () => {
  const shown = ['{"id":"1","rtt":…}', '{"id":"2"}'];
  assert.equal(outputMismatch(shown, '{"id":"2"}\n{"id":"1","rtt":3}\n'), undefined);
  assert.match(outputMismatch(shown, '{"id":"2"}\n') ?? '', /1 lines where the README shows 2/);
  assert.match(outputMismatch(shown, '{"id":"2"}\n{"id":"2"}\n') ?? '', /no line like/);
  assert.equal(outputMismatch([], ''), undefined);
});

test('a shown JSON line is a shape: … any value, any other members, any elements, any text', () => {
  const fits = (shown: string, actual: unknown) => shapeMismatch(jsonShape(shown), actual);
  // Members in any order; exactly those shown unless … is one of them.
  assert.equal(fits('{"a":1,"b":"x"}', { b: 'x', a: 1 }), undefined);
  assert.match(fits('{"a":1}', { a: 1, c: 2 }) ?? '', /\$ has "c" the README does not show/);
  assert.equal(fits('{"a":1,…}', { a: 1, c: 2 }), undefined);
  assert.equal(fits('{"a":…,"b":2,…}', { a: { deep: [1] }, b: 2, z: null }), undefined);
  assert.match(fits('{"a":…}', {}) ?? '', /\$ has no "a"/);
  assert.match(fits('{"a":{"b":1}}', { a: { b: 2 } }) ?? '', /\$\.a\.b is 2, not 1/);
  // Values compared exactly, types included.
  assert.match(fits('{"a":1}', { a: '1' }) ?? '', /not 1/);
  assert.match(fits('{"a":null}', { a: false }) ?? '', /not null/);
  // … in a string: any text there, the rest literal (regex characters too).
  assert.equal(fits('{"m":"<c-1.…mmgw@x.test>"}', { m: '<c-1.5a4.mmgw@x.test>' }), undefined);
  assert.ok(fits('{"m":"<c-1.…mmgw@x.test>"}', { m: '<c-2.5a4.mmgw@x.test>' }));
  assert.ok(fits('{"m":"a.…"}', { m: 'ab' }));
  assert.ok(fits('{"m":"…"}', { m: 1 }));
  // Arrays: elements in order; … any number of them there.
  assert.equal(fits('[1,2]', [1, 2]), undefined);
  assert.match(fits('[1,2]', [1, 2, 3]) ?? '', /3 elements, the README 2/);
  assert.ok(fits('[1,2]', [2, 1]));
  assert.equal(fits('[…]', []), undefined);
  assert.equal(fits('[{"a":1,…},…]', [{ a: 1, b: 2 }, 7]), undefined);
  assert.equal(fits('[…,3]', [1, 2, 3]), undefined);
  assert.ok(fits('[…,3]', [3, 4]));
  assert.ok(fits('[]', {}));
  // Not a shape: said, with the line.
  assert.throws(() => jsonShape('{"a":<x>}'), /not a JSON shape at 5 \(a value\): \{"a":<x>\}/);
  assert.throws(() => jsonShape('{"a":1} x'), /the end/);
  assert.throws(() => jsonShape('{"a" 1}'), /":"/);
});

test('a line: a JSON object is compared as a shape, anything else by its pattern', () => {
  assert.equal(lineMismatch('{"b":2,"a":…}', '{"a":[1],"b":2}'), undefined);
  assert.match(lineMismatch('{"a":…}', 'a: 1') ?? '', /not JSON/);
  // A regex's … would let the last member swallow more of them; a shape does not.
  assert.ok(linePattern('{"a":…}').test('{"a":1,"b":2}'));
  assert.ok(lineMismatch('{"a":…}', '{"a":1,"b":2}'));
  assert.equal(lineMismatch('up on <host>', 'up on vm-1'), undefined);
  assert.ok(lineMismatch('up on <host>', 'down on vm-1'));
});

test('inline code: the spans that begin so; a fence is none', () => {
  const text = 'pushed `{"event":"a",…}` and `{"event":"b"}`, or `mail sync <account>`\n```sh\nmail x\n```';
  assert.deepEqual(inlineCode(text, '{"event":'), ['{"event":"a",…}', '{"event":"b"}']);
  assert.deepEqual(inlineCode(text, 'mail '), ['mail sync <account>']);
  assert.deepEqual(inlineCode(text, '`'), []);
});
