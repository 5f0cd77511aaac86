import assert from 'node:assert/strict';
import { test } from 'node:test';
import { linePattern, outputMismatch, readmeBlocks } from './readme-examples.ts';

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
