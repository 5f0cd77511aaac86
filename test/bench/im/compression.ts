/**
 * What frame compression (device-protocol/compression.ts, SPEC.md §4.4)
 * costs the edge per WebSocket carrier: memory of one compressor and one
 * decompressor (the edge holds both for a carrier that compresses), of both
 * once parked (an idle carrier), and CPU per chat frame each way.
 *
 *   node --expose-gc --import tsx test/bench/im/compression.ts [--carriers 5000] [--frames 20000]
 */
import { encodeFrame } from '../../../device-protocol/codec.ts';
import { FrameCompressor, FrameDecompressor } from '../../../device-protocol/compression.ts';
import { Kind } from '../../../device-protocol/messages.ts';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? dflt : Number(process.argv[i + 1]);
};
const carriers = arg('carriers', 5000);
const frames = arg('frames', 20000);
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with --expose-gc');

const chat = (i: number) =>
  encodeFrame({
    kind: Kind.Event,
    seq: 1000 + i,
    name: 'im.m',
    body: [
      'x0123456789abcdef',
      'carol@example.test',
      'dave@example.test',
      `Message ${i}: see you at the station at six, bring the tickets`,
      `-BT6Z38Ph2r8z5so3zW${(100000 + i).toString(36)}`,
      `h-${i}-mir3k2x1`,
      1_795_000_000_000 + i * 1234,
      0,
    ],
  });

/** Kept to the end, so that a later measurement does not reuse memory an earlier one freed. */
const held: unknown[][] = [];

function memoryPer(make: () => unknown): { rssKiB: number; heapKiB: number; buffersKiB: number } {
  gc?.();
  const before = process.memoryUsage();
  const keep: unknown[] = [];
  held.push(keep);
  for (let i = 0; i < carriers; i++) keep.push(make());
  gc?.();
  const after = process.memoryUsage();
  const per = (a: number, b: number) => Math.round(((a - b) / carriers / 1024) * 10) / 10;
  const out = {
    rssKiB: per(after.rss, before.rss),
    heapKiB: per(after.heapUsed, before.heapUsed),
    buffersKiB: per(after.arrayBuffers, before.arrayBuffers),
  };
  return out;
}

// Each side after one frame, as on a live carrier (the inflate window is allocated on first use).
const sample = chat(0);
const compressor = memoryPer(() => {
  const c = new FrameCompressor();
  c.compress(sample);
  return c;
});
const wire0 = new FrameCompressor().compress(sample);
const decompressor = memoryPer(() => {
  const d = new FrameDecompressor();
  d.decompress(wire0, 1 << 20);
  return d;
});

// An idle carrier parks both (the edge's sweep does after edge compressionIdleMs): the last window is kept.
const parked = memoryPer(() => {
  const c = new FrameCompressor();
  const d = new FrameDecompressor();
  d.decompress(c.compress(sample), 1 << 20);
  c.park();
  d.park();
  return [c, d];
});

const inputs = Array.from({ length: frames }, (_, i) => chat(i));
const tx = new FrameCompressor();
let t0 = performance.now();
const wires = inputs.map((f) => tx.compress(f));
const compressUs = ((performance.now() - t0) * 1000) / frames;
const rx = new FrameDecompressor();
t0 = performance.now();
for (const w of wires) rx.decompress(w, 1 << 20);
const decompressUs = ((performance.now() - t0) * 1000) / frames;
const plainBytes = inputs.reduce((s, f) => s + f.length, 0) / frames;
const wireBytes = wires.reduce((s, f) => s + f.length, 0) / frames;

console.log(
  JSON.stringify(
    {
      date: new Date().toISOString(),
      node: process.version,
      carriers,
      frames,
      compressor,
      decompressor,
      parkedPair: parked,
      chatFrame: {
        plainBytes: Math.round(plainBytes),
        wireBytes: Math.round(wireBytes),
        compressUs: Math.round(compressUs * 10) / 10,
        decompressUs: Math.round(decompressUs * 10) / 10,
      },
    },
    null,
    2,
  ),
);
