import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { decodeFrame, encodeFrame } from '../../device-protocol/codec.ts';
import { Kind } from '../../device-protocol/messages.ts';
import { mutateBytes } from './raw-fuzz.ts';
import { Rng } from './rng.ts';

describe('raw frame mutations', () => {
  const hello = encodeFrame({
    kind: Kind.Hello,
    version: 1,
    imei: '356938035643809',
    secret: 'correct horse',
  });

  test('change the bytes, the same way for the same seed, and mostly break the frame', () => {
    let broken = 0;
    for (let seed = 0; seed < 300; seed++) {
      const a = mutateBytes(hello, new Rng(seed));
      assert.deepEqual(a, mutateBytes(hello, new Rng(seed)));
      if (!decodeFrame(a).ok) broken++;
    }
    assert.ok(broken > 150, `${broken} of 300 no longer decode`);
  });

  test('never change the input', () => {
    const copy = Uint8Array.from(hello);
    for (let seed = 0; seed < 50; seed++) mutateBytes(hello, new Rng(seed));
    assert.deepEqual(hello, copy);
  });
});
