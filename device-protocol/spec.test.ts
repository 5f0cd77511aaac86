/**
 * Keeps SPEC.md honest: its generated tables match the code, every error
 * code is documented, and the worked examples are what the codec produces.
 * `MMGW_UPDATE_SPEC=1 node --import tsx --test device-protocol/spec.test.ts`
 * rewrites the generated blocks instead of failing on them.
 */

import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { decodeFrame, encodeFrame } from './codec.ts';
import { ERROR_CODES } from './errors.ts';
import { FRAME_SPECS } from './frames/index.ts';
import { Kind } from './messages.ts';
import { GENERATED_BLOCKS } from './spec-tables.ts';
import { SPEC_EXAMPLES } from '../testing/index.ts';
import { ValueTag } from './value.ts';

const specPath = new URL('./SPEC.md', import.meta.url);
const UPDATE_HINT = 'run: MMGW_UPDATE_SPEC=1 node --import tsx --test device-protocol/spec.test.ts';

function blockRegex(name: string): RegExp {
  return new RegExp(`(<!-- BEGIN GENERATED ${name} -->\\n)([\\s\\S]*?)(<!-- END GENERATED ${name} -->)`);
}

const hexDump = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(' ');

test('generated blocks of SPEC.md match the code', () => {
  let spec = readFileSync(specPath, 'utf8');
  const update = process.env.MMGW_UPDATE_SPEC === '1';
  for (const [name, generate] of Object.entries(GENERATED_BLOCKS)) {
    const re = blockRegex(name);
    const match = re.exec(spec);
    assert.ok(match, `SPEC.md lacks the markers of the generated block "${name}"`);
    const expected = `${generate()}\n`;
    if (update)
      spec = spec.replace(re, (_all, begin: string, _old: string, end: string) => begin + expected + end);
    else assert.equal(match[2], expected, `SPEC.md block "${name}" is stale; ${UPDATE_HINT}`);
  }
  if (update) writeFileSync(specPath, spec);
});

test('every error code in the registry appears in SPEC.md', () => {
  const spec = readFileSync(specPath, 'utf8');
  const missing = Object.keys(ERROR_CODES).filter((code) => !spec.includes(`\`${code}\``));
  assert.deepEqual(missing, [], `codes missing from SPEC.md §6; ${UPDATE_HINT}`);
});

test('every frame kind has its section', () => {
  const spec = readFileSync(specPath, 'utf8');
  for (const frameSpec of FRAME_SPECS) {
    assert.ok(spec.includes(`${frameSpec.name} (kind ${frameSpec.kind})`), frameSpec.name);
    assert.equal(Kind[frameSpec.kind], frameSpec.name);
  }
});

test('every Value tag is in the table of §2.5', () => {
  const spec = readFileSync(specPath, 'utf8');
  for (const [name, tag] of Object.entries(ValueTag)) {
    const text = name === 'SmallUint' ? '| 0x80–0xff |' : `| 0x${tag.toString(16).padStart(2, '0')} |`;
    assert.ok(spec.includes(text), `${name} ${text}`);
  }
});

test('the worked examples are what the codec produces', () => {
  const spec = readFileSync(specPath, 'utf8');
  for (const [name, frame] of Object.entries(SPEC_EXAMPLES)) {
    const bytes = encodeFrame(frame);
    assert.ok(spec.includes(`\n${hexDump(bytes)}\n`), `${name} example hex in SPEC.md §2.7`);
    assert.ok(spec.includes(`, ${bytes.length} bytes:`), `${name} example length`);
    const back = decodeFrame(bytes);
    assert.ok(back.ok);
    assert.deepStrictEqual(back.frame, frame);
  }
  assert.ok(spec.includes(`\`${hexDump(encodeFrame({ kind: Kind.Ack, seq: 1 }))}\``));
  assert.ok(spec.includes(`\`${hexDump(encodeFrame({ kind: Kind.Ping, nonce: 7 }))}\``));
});
