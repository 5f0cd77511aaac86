import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { compactHeaders, expandHeaders, MAIL_HEADER_COLUMNS, mailHeadersPlugin } from './mail-headers.ts';

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

  test('the SDK plugin asks for the table on mail.sync without compact, and hands back items', () => {
    const plugin = mailHeadersPlugin;
    const rewrite = plugin.request?.('mail.sync', { account: 'a', limit: 5 });
    assert.deepEqual(rewrite?.body, { account: 'a', limit: 5, compact: true });
    const answer = { items: [header(1)], cursor: 'c' };
    assert.deepEqual(rewrite?.expandResponse?.(compactHeaders(answer)), answer);
    assert.equal(rewrite?.expandResponse?.(null), null);
    // The application chose a form, another method, or a body that is not a map: left alone.
    assert.equal(plugin.request?.('mail.sync', { account: 'a', compact: false }), undefined);
    assert.equal(plugin.request?.('mail.sync', { account: 'a', compact: true }), undefined);
    assert.equal(plugin.request?.('mail.body', { account: 'a' }), undefined);
    assert.equal(plugin.request?.('mail.sync', new Uint8Array(2)), undefined);
    assert.equal(plugin.caps, undefined);
  });
});
