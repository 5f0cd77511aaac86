import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { compactHeaders, expandHeaders, MAIL_HEADER_COLUMNS } from './mail-headers.ts';

const header = (uid: number) => ({
  uid,
  from: { name: `N${uid}`, address: `n${uid}@example.test` },
  subject: `S${uid}`,
  date: 1795420800000 + uid,
  size: 100 + uid,
  flags: uid % 2 ? ['\\Seen'] : [],
  attachments: uid % 3,
  preview: `preview ${uid}`,
});

describe('mail header forms', () => {
  test('items → columns + rows → the same items, other fields kept', () => {
    const answer = { items: [header(3), header(2)], cursor: 'c', reset: false, more: false };
    const compact = compactHeaders(answer);
    assert.equal(compact.items, undefined);
    assert.deepEqual(compact.columns, [...MAIL_HEADER_COLUMNS]);
    assert.equal((compact.rows as unknown[]).length, 2);
    assert.equal(compact.cursor, 'c');
    const back = expandHeaders(compact);
    assert.deepEqual(back, answer);
    // Same key order as the gateway's own items form (JSON-lines output is byte-identical).
    assert.equal(JSON.stringify(back), JSON.stringify(answer));
  });

  test('an answer without the table passes unchanged; an unknown column becomes a field', () => {
    const plain = { items: [], cursor: 'c' };
    assert.equal(expandHeaders(plain), plain);
    const changed = { changed: [{ uid: 1, flags: [] }] };
    assert.equal(compactHeaders(changed), changed);
    const newer = { columns: ['uid', 'fromName', 'thread'], rows: [[5, 'A', 't1'], [6]] };
    assert.deepEqual(expandHeaders(newer), {
      items: [
        { uid: 5, from: { name: 'A', address: '' }, thread: 't1' },
        { uid: 6, from: { name: null, address: '' }, thread: null },
      ],
    });
  });
});
