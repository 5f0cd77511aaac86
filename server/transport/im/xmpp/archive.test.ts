import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type XmlElement, xml } from '@xmpp/client';
import { GatewayError } from '../../../../device-protocol/errors.ts';
import { Archive } from './archive.ts';
import { type MessageReader, readChatMessage } from './message.ts';
import { NS } from './types.ts';

const ME = 'alice@example.test';
const reader: MessageReader = { account: ME, maxBodyChars: 100, now: () => 0 };

interface Stored {
  id: string;
  from: string;
  body: string;
  originId?: string;
}

/**
 * A fake server archive: answers each query with result messages (through
 * handleResult, as the stanza router would) and then the fin.
 */
function setup(stored: Stored[], fail?: unknown) {
  const queries: Array<{ max: number; after?: string; before: boolean }> = [];
  const archive: Archive = new Archive({
    account: ME,
    read: (el, direction, stamp) => readChatMessage(reader, el, direction, stamp),
    request: async (iq: XmlElement) => {
      if (fail) throw fail;
      const query = iq.getChild('query', NS.mam);
      const set = query?.getChild('set', NS.rsm);
      const max = Number(set?.getChildText('max'));
      const after = set?.getChildText('after') ?? undefined;
      queries.push({ max, after, before: set?.getChild('before') !== undefined });
      const start =
        after === undefined ? Math.max(0, stored.length - max) : stored.findIndex((m) => m.id === after) + 1;
      const page = stored.slice(start, start + max);
      for (const m of page) {
        const inner = xml(
          'message',
          { from: `${m.from}/r`, to: m.from === ME ? 'bob@example.test' : ME },
          xml('body', {}, m.body),
          m.originId === undefined ? undefined : xml('origin-id', { xmlns: NS.sid, id: m.originId }),
        );
        archive.handleResult(
          xml(
            'result',
            { xmlns: NS.mam, queryid: query?.attrs.queryid, id: m.id },
            xml(
              'forwarded',
              { xmlns: NS.forward },
              xml('delay', { xmlns: NS.delay, stamp: '2023-03-03T00:00:00Z' }),
              inner,
            ),
          ),
        );
      }
      const last = page.at(-1)?.id;
      const complete = start + max >= stored.length;
      return xml(
        'iq',
        { type: 'result' },
        xml(
          'fin',
          { xmlns: NS.mam, complete: String(complete) },
          xml('set', { xmlns: NS.rsm }, last === undefined ? undefined : xml('last', {}, last)),
        ),
      );
    },
  });
  return { archive, queries };
}

const many = (n: number): Stored[] =>
  Array.from({ length: n }, (_, i) => ({ id: `a${i}`, from: 'bob@example.test', body: `m${i}` }));

test('without a cursor: the latest max, in one query, always complete', async () => {
  const { archive, queries } = setup(many(10));
  const page = await archive.query({ max: 3 });
  assert.deepEqual(
    page.messages.map((m) => m.body),
    ['m7', 'm8', 'm9'],
  );
  assert.equal(page.last, 'a9');
  assert.equal(page.complete, true);
  assert.deepEqual(queries, [{ max: 3, after: undefined, before: true }]);
  assert.equal(page.messages[0]?.stanzaId, 'a7');
  assert.equal(page.messages[0]?.at, '2023-03-03T00:00:00.000Z');
});

test('after a cursor: pages of at most 100 until max or the end', async () => {
  const { archive, queries } = setup(many(260));
  const page = await archive.query({ after: 'a9', max: 500 });
  assert.equal(page.messages.length, 250);
  assert.equal(page.messages[0]?.body, 'm10');
  assert.equal(page.last, 'a259');
  assert.equal(page.complete, true);
  assert.deepEqual(
    queries.map((q) => `${q.max} ${q.after}`),
    ['100 a9', '100 a109', '100 a209'],
  );
  const part = await setup(many(260)).archive.query({ after: 'a9', max: 150 });
  assert.equal(part.messages.length, 150);
  assert.equal(part.last, 'a159');
  assert.equal(part.complete, false);
});

test('max is held to 1..500', async () => {
  const { archive, queries } = setup(many(3));
  await archive.query({ max: 0 });
  await archive.query({ after: 'a0', max: 10_000 });
  assert.deepEqual(
    queries.map((q) => q.max),
    [1, 100],
  );
});

test('copies of one origin-id (a resend after a lost ack) come once unless asked for all', async () => {
  const stored: Stored[] = [
    { id: 'a0', from: ME, body: 'x', originId: 'c-1' },
    { id: 'a1', from: ME, body: 'x', originId: 'c-1' },
    { id: 'a2', from: 'bob@example.test', body: 'y', originId: 'c-1' },
    { id: 'a3', from: 'bob@example.test', body: 'z' },
    { id: 'a4', from: 'bob@example.test', body: 'z' },
  ];
  const once = await setup(stored).archive.query({ after: 'none-before' });
  const all = await setup(stored).archive.query({ max: 5, keepDuplicates: true });
  assert.deepEqual(
    once.messages.map((m) => `${m.direction} ${m.stanzaId}`),
    ['out a0', 'in a2', 'in a3', 'in a4'],
  );
  assert.equal(all.messages.length, 5);
});

test('results for no running query, or without id or message, are ignored', async () => {
  const { archive } = setup([]);
  archive.handleResult(
    xml(
      'result',
      { xmlns: NS.mam, queryid: 'stale', id: 'x' },
      xml(
        'forwarded',
        { xmlns: NS.forward },
        xml('message', { from: 'bob@example.test' }, xml('body', {}, 'b')),
      ),
    ),
  );
  const page = await archive.query({});
  assert.deepEqual(page, { messages: [], complete: true });
});

test('an unknown cursor is im.bad_cursor; other failures map to im.* codes', async () => {
  const notFound = Object.assign(new Error('x'), { name: 'StanzaError', condition: 'item-not-found' });
  await assert.rejects(
    setup([], notFound).archive.query({ after: 'gone' }),
    (err: unknown) => err instanceof GatewayError && err.code === 'im.bad_cursor' && err.field === 'after',
  );
  const forbidden = Object.assign(new Error('x'), { name: 'StanzaError', condition: 'forbidden' });
  await assert.rejects(
    setup([], forbidden).archive.query({}),
    (err: unknown) => err instanceof GatewayError && err.code === 'im.server_error',
  );
});
