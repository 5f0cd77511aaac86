import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ImeiSet } from './imei-set.ts';

test('remembers each IMEI with the line it first appeared on', () => {
  const set = new ImeiSet();
  assert.equal(set.add('490154203237518', 2), undefined);
  assert.equal(set.add('356938035643809', 3), undefined);
  assert.equal(set.add('490154203237518', 9), 2, 'the first line, not the latest');
  assert.equal(set.add('356938035643809', undefined), 3);
  assert.equal(set.add('000000000000000', undefined), undefined, 'zero is an IMEI like any other');
  assert.equal(set.add('000000000000000', 4), null, 'stored without a line');
  assert.equal(set.size, 3);
  assert.ok(set.has('356938035643809'));
  assert.ok(!set.has('356938035643808'));
  assert.ok(!set.has('not digits'));
  assert.throws(() => set.add('1234567890123456', 1), RangeError);
});

test('agrees with a Map through growth, for IMEIs that share their leading digits', () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: 99_999 }), { maxLength: 3000 }),
      fc.constantFrom('35693803', '86', '0'),
      (suffixes, tac) => {
        const set = new ImeiSet(16);
        const map = new Map<string, number>();
        suffixes.forEach((n, line) => {
          const imei = (tac + String(n).padStart(15 - tac.length, '0')).slice(0, 15);
          assert.equal(set.add(imei, line), map.get(imei));
          if (!map.has(imei)) map.set(imei, line);
        });
        assert.equal(set.size, map.size);
      },
    ),
    { numRuns: 50 },
  );
});

test('a million IMEIs take about 12 bytes each', () => {
  const set = new ImeiSet();
  for (let i = 0; i < 1_000_000; i++) set.add(String(350_000_000_000_000 + i * 7919), i + 2);
  assert.equal(set.size, 1_000_000);
  const bytes = (set as unknown as { lines: Uint32Array }).lines.length * 12;
  assert.ok(bytes <= 26 * 1024 * 1024, `${bytes} bytes`);
  assert.equal(set.add(String(350_000_000_000_000 + 999_999 * 7919), 5), 1_000_001);
});

test('reserve makes room in one step; clear forgets the IMEIs and keeps the room', () => {
  const set = new ImeiSet();
  set.reserve(1000);
  const room = () => (set as unknown as { lines: Uint32Array }).lines.length;
  assert.equal(room(), 2048, '1,000 fit under 3/4 of 2,048');
  const before = (set as unknown as { lines: Uint32Array }).lines;
  for (let i = 0; i < 1000; i++) set.add(String(350_000_000_000_000 + i), i);
  assert.equal((set as unknown as { lines: Uint32Array }).lines, before, 'no growth after a reserve');
  set.reserve(10);
  assert.equal(room(), 2048, 'reserve never shrinks');
  set.clear();
  assert.equal(set.size, 0);
  assert.equal(room(), 2048);
  assert.ok(!set.has('350000000000000'));
  assert.equal(set.add('350000000000000', 7), undefined);
});
