import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isDeepStrictEqual } from 'node:util';
import { MUTATIONS, type MutationContext, mutate, slotsOf } from './mutate.ts';
import { Rng } from './rng.ts';
import { showValue } from './values.ts';

const valid = () => ({
  account: 'm1',
  folder: 'INBOX',
  uids: [1, 2],
  limit: 50,
  imap: { host: 'h', port: 143 },
});

function context(seed: number, foreign: string[] = ['m-other']): MutationContext {
  const rng = new Rng(seed);
  return {
    rng,
    maxFrameBytes: 256 * 1024,
    foreignAccounts: foreign,
    randomValue: () => ({ r: rng.int(0, 9) }),
  };
}

describe('mutations', () => {
  test('each one changes the body, and says what and where', () => {
    const kinds = new Set<string>();
    for (let seed = 0; seed < 400; seed++) {
      const m = mutate(valid(), context(seed));
      assert.match(m.mutation, /^[a-z-]+(\(\d+\))?(@|\(|$)/, m.mutation);
      assert.ok(
        !isDeepStrictEqual(m.body, valid()) || m.mutation.startsWith('body-shape(object)'),
        `${m.mutation} left ${showValue(m.body)}`,
      );
      kinds.add(m.mutation.replace(/[(@].*$/, ''));
    }
    // Every kind comes up (foreign-account included, since the body has an account).
    for (const k of MUTATIONS) assert.ok(kinds.has(k), `${k} never chosen`);
  });

  test('the same seed mutates the same way', () => {
    for (let seed = 0; seed < 50; seed++) {
      const a = mutate(valid(), context(seed));
      const b = mutate(valid(), context(seed));
      assert.equal(a.mutation, b.mutation);
      assert.equal(showValue(a.body, 10_000), showValue(b.body, 10_000));
    }
  });

  test('foreign-account puts another device’s id in the account field and reports it', () => {
    let seen = 0;
    for (let seed = 0; seed < 300; seed++) {
      const m = mutate(valid(), context(seed));
      if (m.foreignAccount === undefined) continue;
      seen++;
      assert.equal(m.foreignAccount, 'm-other');
      assert.equal((m.body as { account: string }).account, 'm-other');
    }
    assert.ok(seen > 0);
    // Without foreign ids there is nothing to report.
    for (let seed = 0; seed < 100; seed++)
      assert.equal(mutate(valid(), context(seed, [])).foreignAccount, undefined);
  });

  test('huge strings reach the frame limit, huge lists the codec’s list limit', () => {
    let longest = 0;
    let biggestList = 0;
    for (let seed = 0; seed < 600; seed++) {
      const m = mutate(valid(), context(seed));
      for (const { value } of slotsOf(m.body)) {
        if (typeof value === 'string') longest = Math.max(longest, Buffer.byteLength(value));
        if (Array.isArray(value)) biggestList = Math.max(biggestList, value.length);
      }
    }
    assert.ok(longest > 250 * 1024, `longest ${longest}`);
    assert.equal(biggestList, 10_000);
  });

  test('a body that is not an object still gets mutated (into another shape)', () => {
    for (let seed = 0; seed < 50; seed++) {
      const m = mutate(undefined, context(seed));
      assert.ok(m.mutation.length > 0);
    }
  });
});
