import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { SourceFingerprint, TranscodeCache } from './cache.ts';

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'mmgw-tcache-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const bytes = (n: number, fill: number) => new Uint8Array(n).fill(fill);

describe('TranscodeCache', () => {
  test('keys are the content hash plus the variant; values round-trip', async (t) => {
    const dir = tempDir(t);
    const cache = TranscodeCache.open(dir, { maxBytes: 1_000_000 });
    t.after(() => cache.close());
    const a = TranscodeCache.key(cache.fingerprint.of(Buffer.from('photo')), 'img:jpeg:320x240');
    const b = TranscodeCache.key(cache.fingerprint.of(Buffer.from('photo')), 'img:webp:320x240');
    assert.notEqual(a, b);
    assert.equal(cache.get(a), undefined);
    await cache.put(a, bytes(100, 1), { width: 320 });
    const hit = cache.get<{ width: number }>(a);
    assert.ok(hit);
    assert.deepEqual(Buffer.from(hit.bytes), Buffer.from(bytes(100, 1)));
    assert.deepEqual(hit.meta, { width: 320 });
    assert.equal(cache.get(b), undefined);
    assert.equal(cache.stats.entries, 1);
  });

  test('bounded in bytes: the least recently used go first', async (t) => {
    const dir = tempDir(t);
    let clock = 1000;
    const cache = TranscodeCache.open(dir, { maxBytes: 10_000, now: () => clock, touchIntervalMs: 0 });
    t.after(() => cache.close());
    // Each entry accounts ~1000 + key + overhead ≈ 1.3 kB: seven fit in 10 kB, the eighth evicts.
    for (let i = 0; i < 7; i++) {
      clock++;
      await cache.put(`k${i}`, bytes(1000, i), null);
    }
    assert.equal(cache.stats.entries, 7);
    clock++;
    assert.ok(cache.get('k0'), 'k0 is used again: now the youngest');
    await new Promise((r) => setTimeout(r, 50)); // the touch is written asynchronously
    clock++;
    await cache.put('k7', bytes(1000, 7), null);
    assert.ok(cache.stats.bytes <= 10_000 * 0.9, `${cache.stats.bytes}`);
    assert.ok(cache.get('k0'), 'recently used survives');
    assert.equal(cache.get('k1'), undefined, 'oldest evicted');
    assert.ok(cache.get('k7'));
    assert.ok(cache.get('k6'));
  });

  test('an entry larger than a quarter of the bound is not stored', async (t) => {
    const dir = tempDir(t);
    const cache = TranscodeCache.open(dir, { maxBytes: 8_000 });
    t.after(() => cache.close());
    await cache.put('big', bytes(3000, 9), null);
    assert.equal(cache.get('big'), undefined);
    assert.equal(cache.stats.bytes, 0);
  });

  test('survives a reopen with its byte count', async (t) => {
    const dir = tempDir(t);
    const first = TranscodeCache.open(dir, { maxBytes: 1_000_000 });
    await first.put('a', bytes(500, 1), 'meta-a');
    await first.put('b', bytes(700, 2), 'meta-b');
    const stats = first.stats;
    await first.close();
    const second = TranscodeCache.open(dir, { maxBytes: 1_000_000 });
    t.after(() => second.close());
    assert.deepEqual(second.stats, stats);
    assert.equal(second.get('b')?.meta, 'meta-b');
  });
});

test('the fingerprint: same bytes same key, any change another, its own key per cache, kept across reopen', async (t) => {
  const dir = tempDir(t);
  const source = new Uint8Array(300 * 1024).map((_, i) => (i * 31) & 0xff);
  const first = TranscodeCache.open(dir, { maxBytes: 1_000_000 });
  const fp = first.fingerprint.of(source);
  assert.match(fp, /^[0-9a-f]{32}$/);
  assert.equal(first.fingerprint.of(new Uint8Array(source)), fp, 'a copy of the bytes');
  assert.equal(
    first.fingerprint.of(Buffer.from('<p>hi</p>')),
    first.fingerprint.of('<p>hi</p>'),
    'text as UTF-8',
  );
  const flipped = new Uint8Array(source);
  flipped[123_456]! ^= 1;
  const seen = new Set([
    fp,
    first.fingerprint.of(flipped),
    first.fingerprint.of(source.subarray(0, source.length - 1)),
    first.fingerprint.of(new Uint8Array([...source, 0])),
    first.fingerprint.of(new Uint8Array(0)),
    first.fingerprint.of(new Uint8Array(16)),
    first.fingerprint.of(new Uint8Array(32)),
  ]);
  assert.equal(
    seen.size,
    7,
    'one bit, one byte less or more, and zero-filled inputs of different lengths all differ',
  );
  await first.close();
  const again = TranscodeCache.open(dir, { maxBytes: 1_000_000 });
  t.after(() => again.close());
  assert.equal(again.fingerprint.of(source), fp, 'the key is kept with the entries it addresses');
  const other = TranscodeCache.open(tempDir(t), { maxBytes: 1_000_000 });
  t.after(() => other.close());
  assert.notEqual(other.fingerprint.of(source), fp, 'another cache, another key');
  assert.notEqual(SourceFingerprint.random().of(source), fp);
  assert.throws(() => new SourceFingerprint(new Uint8Array(8)));
});
