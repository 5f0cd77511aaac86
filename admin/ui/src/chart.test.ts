import assert from 'node:assert/strict';
import { test } from 'node:test';
import { axisTicks, byteTickLabel, niceStep } from './chart.ts';

test('steps are 1, 2 or 5 times a power of ten', () => {
  assert.equal(niceStep(10, 4), 5);
  assert.equal(niceStep(7, 4), 2);
  assert.equal(niceStep(0.9, 4), 0.5);
  assert.equal(niceStep(3000, 4), 1000);
  assert.equal(niceStep(0, 4), 1);
});

test('count axes: whole steps from 0 past the largest value', () => {
  assert.deepEqual(axisTicks(10), [0, 5, 10]);
  assert.deepEqual(axisTicks(11), [0, 5, 10, 15]);
  // No half logins on the axis.
  assert.deepEqual(axisTicks(2), [0, 1, 2]);
  assert.deepEqual(axisTicks(0), [0, 1]);
});

test('rate axes may step below 1, without float noise', () => {
  assert.deepEqual(axisTicks(0.7, { fractional: true }), [0, 0.2, 0.4, 0.6, 0.8]);
  assert.deepEqual(axisTicks(0.3, { fractional: true }), [0, 0.1, 0.2, 0.3]);
});

test('byte axes step on round KiB and MiB, not on 4.9 KiB', () => {
  const KiB = 1024;
  const MiB = 1024 * KiB;
  const GiB = 1024 * MiB;
  // 10,000 bytes: a decimal step would be 5000 B, shown as 4.9 KiB.
  assert.deepEqual(axisTicks(10_000, { bytes: true }), [0, 5 * KiB, 10 * KiB]);
  assert.deepEqual(axisTicks(3 * MiB, { bytes: true }), [0, MiB, 2 * MiB, 3 * MiB]);
  assert.deepEqual(axisTicks(700, { bytes: true }), [0, 200, 400, 600, 800]);
  // Less than one MiB a step: KiB steps.
  assert.deepEqual(axisTicks(1.4 * MiB, { bytes: true }), [0, 500 * KiB, 1000 * KiB, 1500 * KiB]);
  assert.deepEqual(axisTicks(1024 * GiB, { bytes: true }), [0, 500 * GiB, 1000 * GiB, 1500 * GiB]);
});

test('byte ticks are labelled in the unit of the step, every label round', () => {
  const labels = (max: number) => {
    const ticks = axisTicks(max, { bytes: true });
    return ticks.map((v) => byteTickLabel(v, ticks[1] ?? 1));
  };
  assert.deepEqual(labels(10_000), ['0 KiB', '5 KiB', '10 KiB']);
  assert.deepEqual(labels(1.4 * 1024 * 1024), ['0 KiB', '500 KiB', '1000 KiB', '1500 KiB']);
  assert.deepEqual(labels(700), ['0 B', '200 B', '400 B', '600 B', '800 B']);
  for (const max of [1, 999, 5000, 123_456, 7_654_321, 2 ** 40, 3.3e13]) {
    const all = labels(max);
    // The step is 1, 2 or 5 × 10^n of its unit; every tick a whole multiple of it.
    assert.match(all[1] ?? '', /^[125]0* [KMGT]?i?B$/, `${max}: step ${all[1]}`);
    for (const label of all) assert.match(label, /^\d+ [KMGT]?i?B$/, `${max}: ${label}`);
  }
});
