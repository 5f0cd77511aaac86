import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { GatewayError } from '../../../device-protocol/errors.ts';
import { decodeCursor, encodeCursor, toSequenceSet } from './cursor.ts';

const badCursor = (err: unknown) => err instanceof GatewayError && err.code === 'mail.bad_cursor';

test('cursor round-trips for any folder and values', () => {
  fc.assert(
    fc.property(
      fc.string(),
      fc.bigInt({ min: 1n, max: 0xffffffffn }),
      fc.integer({ min: 0, max: 0xffffffff }),
      fc.option(fc.bigInt({ min: 1n, max: 2n ** 63n - 1n }), { nil: undefined }),
      (folder, uidValidity, highestUid, modseq) => {
        const c = {
          uidValidity: String(uidValidity),
          highestUid,
          modseq: modseq === undefined ? '' : String(modseq),
          lowestUid: Math.min(highestUid, 1),
        };
        assert.deepEqual(decodeCursor(folder, encodeCursor(folder, c)), c);
      },
    ),
  );
});

test('a cursor of another folder, or garbage, is mail.bad_cursor', () => {
  const c = encodeCursor('INBOX', { uidValidity: '5', highestUid: 9, modseq: '12', lowestUid: 1 });
  assert.throws(() => decodeCursor('Sent', c), badCursor);
  for (const junk of [
    '',
    'x',
    's1.',
    's1.!!!',
    `s1.${Buffer.from('a:b:c:d:e').toString('base64url')}`,
    'x'.repeat(500),
  ]) {
    assert.throws(() => decodeCursor('INBOX', junk), badCursor);
  }
  fc.assert(
    fc.property(fc.string(), (s) => {
      try {
        decodeCursor('INBOX', 's1.' + s);
      } catch (err) {
        assert.ok(badCursor(err));
      }
    }),
  );
});

test('toSequenceSet compresses runs', () => {
  assert.equal(toSequenceSet([]), '');
  assert.equal(toSequenceSet([5]), '5');
  assert.equal(toSequenceSet([3, 1, 2, 7, 9, 10, 10]), '1:3,7,9:10');
});
