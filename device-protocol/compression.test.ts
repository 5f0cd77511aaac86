import assert from 'node:assert/strict';
import { deflateRawSync } from 'node:zlib';
import { test } from 'node:test';
import { decodeFrame, encodeFrame } from './codec.ts';
import {
  COMPRESSED_FRAME,
  FrameCompressor,
  FrameDecompressor,
  MAX_COMPRESS_BYTES,
  worthCompressing,
} from './compression.ts';
import { GatewayError } from './errors.ts';
import { Kind } from './messages.ts';

const chat = (seq: number, body: string) =>
  encodeFrame({
    kind: Kind.Event,
    seq,
    name: 'im.m',
    body: ['x0123456789abcdef', 'carol@example.test', 'dave@example.test', body, `s-${seq}`, null, 1, 0],
  });

const codeOf = (fn: () => unknown): string => {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof GatewayError, String(err));
    return err.code;
  }
  assert.fail('no error');
};

test('frames come back byte for byte, in order, and repeats shrink with the kept context', () => {
  const tx = new FrameCompressor();
  const rx = new FrameDecompressor();
  const sizes: number[] = [];
  for (let i = 1; i <= 50; i++) {
    const frame = chat(i, `message number ${i}: see you at the station`);
    const wire = tx.compress(frame);
    assert.equal(wire[0], COMPRESSED_FRAME);
    const back = rx.decompress(wire, 1 << 20);
    assert.deepEqual(back, frame);
    const decoded = decodeFrame(back);
    assert.ok(decoded.ok && decoded.frame.kind === Kind.Event && decoded.frame.seq === i);
    sizes.push(wire.length);
  }
  // The first frame carries its names and ids; later ones refer back to them.
  assert.equal(sizes.length, 50);
  const [first = 0] = sizes;
  const last = sizes.at(-1) ?? 0;
  assert.ok(last < first / 2, `sizes ${first} → ${last}`);
  assert.ok(last < chat(50, 'message number 50: see you at the station').length / 2);
});

test('a large frame in the middle (sent plain or compressed) keeps both sides in step', () => {
  const tx = new FrameCompressor();
  const rx = new FrameDecompressor();
  const big = encodeFrame({ kind: Kind.Event, seq: 2, name: 'blob', body: 'y'.repeat(9000) });
  for (const frame of [chat(1, 'a'), big, chat(3, 'b'), chat(4, 'a')]) {
    assert.deepEqual(rx.decompress(tx.compress(frame), 1 << 20), frame);
  }
  assert.equal(worthCompressing(new Uint8Array(MAX_COMPRESS_BYTES + 1)), false);
  assert.equal(worthCompressing(new Uint8Array(4)), false);
  assert.equal(worthCompressing(chat(1, 'hello')), true);
});

test('a frame that expands past the limit stops early: protocol.frame_too_large', () => {
  // 1 MiB of zeros deflates to about 1 KiB: a small frame, a large allocation if unchecked.
  const bomb = deflateRawSync(new Uint8Array(1 << 20));
  const wire = new Uint8Array(bomb.length + 1);
  wire[0] = COMPRESSED_FRAME;
  wire.set(bomb, 1);
  const rx = new FrameDecompressor();
  assert.equal(
    codeOf(() => rx.decompress(wire, 64 * 1024)),
    'protocol.frame_too_large',
  );
  // The context is gone after a failure: the carrier has to close.
  assert.equal(
    codeOf(() => rx.decompress(new FrameCompressor().compress(chat(1, 'x')), 64 * 1024)),
    'protocol.bad_frame',
  );
});

test('garbage, a final block, a missing marker and an empty frame are protocol.bad_frame', () => {
  const final = deflateRawSync(chat(1, 'hello')); // BFINAL set: ends the stream
  const cases: Uint8Array[] = [
    new Uint8Array([COMPRESSED_FRAME, 0xff, 0xff, 0xff, 0xff, 0x13]),
    new Uint8Array([COMPRESSED_FRAME, ...final]),
    new Uint8Array([0x01, 0x02, 0x03]),
    new Uint8Array([COMPRESSED_FRAME]),
  ];
  for (const wire of cases) {
    assert.equal(
      codeOf(() => new FrameDecompressor().decompress(wire, 1 << 20)),
      'protocol.bad_frame',
      `case ${Array.from(wire.subarray(0, 6))}`,
    );
  }
});

test('either side may park at any frame and pick up again: the bytes stay a valid continuation', () => {
  let seed = 42;
  const rnd = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
  };
  const words = [
    'carol@example.test',
    'x0123456789abcdef',
    'see you',
    'at six',
    'im.m',
    'station',
    'tickets',
  ];
  const frameOf = (i: number): Uint8Array => {
    const n = rnd() < 0.1 ? 2000 + Math.floor(rnd() * 3000) : 10 + Math.floor(rnd() * 200);
    let text = '';
    while (text.length < n) text += `${words[Math.floor(rnd() * words.length)]} ${Math.floor(rnd() * 1000)} `;
    return encodeFrame({ kind: Kind.Event, seq: i, name: 'im.m', body: text.slice(0, n) });
  };
  const tx = new FrameCompressor();
  const rx = new FrameDecompressor();
  const steady = new FrameCompressor(); // never parks: what a peer that never parked would send
  const steadyRx = new FrameDecompressor();
  let parks = 0;
  for (let i = 1; i <= 400; i++) {
    const frame = frameOf(i);
    if (rnd() < 0.2) {
      tx.park();
      parks++;
      assert.equal(tx.active, false);
    }
    if (rnd() < 0.2) {
      rx.park();
      steadyRx.park();
      assert.equal(rx.active, false);
    }
    const wire = tx.compress(frame);
    assert.equal(tx.active, true);
    assert.deepEqual(rx.decompress(wire, 1 << 20), frame, `frame ${i}: parked sender, parking receiver`);
    assert.deepEqual(
      steadyRx.decompress(steady.compress(frame), 1 << 20),
      frame,
      `frame ${i}: steady sender`,
    );
  }
  assert.ok(parks > 50);
  // A sender that primed itself from its history still finds matches: a repeat costs little.
  const a = encodeFrame({
    kind: Kind.Event,
    seq: 1,
    name: 'im.m',
    body: 'the same words as before, once more',
  });
  tx.compress(a);
  tx.park();
  assert.ok(tx.compress(a).length < a.length / 2);
});
