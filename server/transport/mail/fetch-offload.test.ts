import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ImapFlow } from 'imapflow';
import { WorkerJobError } from '../kit/worker-pool.ts';
import { fetchRow, fetchRows, OFFLOAD_ROW_BYTES, offloadLargeFetchRows } from './fetch-offload.ts';
import { type MimeJob, type MimeResult, runMimeJob } from './mime-jobs.ts';
import type { MimePool } from './mime-pool.ts';

/** A BODYSTRUCTURE line of `parts` attachments, as a server sends it for a wide multipart. */
function fetchLine(seq: number, uid: number, parts: number, subject = 'Hello'): Buffer {
  const leaf = (i: number) =>
    `("application" "octet-stream" ("name" "file-${i}.bin") NIL NIL "base64" 4 NIL ("attachment" ("filename" "file-${i}.bin")) NIL NIL)`;
  const structure = `(("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 5 1 NIL NIL NIL NIL)${Array.from({ length: parts }, (_, i) => leaf(i)).join('')} "mixed" ("boundary" "b") NIL NIL NIL)`;
  const envelope = `("Mon, 1 Jan 2024 00:00:00 +0000" "${subject}" (("Alice" NIL "alice" "example.test")) NIL NIL (("Bob" NIL "bob" "example.test")) NIL NIL NIL "<id@x>")`;
  return Buffer.from(
    `* ${seq} FETCH (UID ${uid} FLAGS (\\Seen) RFC822.SIZE 1234 ENVELOPE ${envelope} BODYSTRUCTURE ${structure})`,
  );
}

/**
 * Just what the hook and the helpers use of an ImapFlow. A fetch "receives"
 * the lines in `wire` (through handleResponse, hooked or not) and answers
 * `rows`; the unhooked handler records what imapflow was given.
 */
function fakeClient(rows: { seq: number; uid?: number }[], wire: Buffer[]) {
  const handled: string[] = [];
  const client = {
    mailbox: { path: 'INBOX' },
    async handleResponse(data: { payload: Buffer }) {
      handled.push(data.payload.toString('latin1', 0, 200));
      return true;
    },
    async receive() {
      for (const payload of wire.splice(0)) await client.handleResponse({ payload, literals: [] } as never);
    },
    async fetchAll() {
      await client.receive();
      return rows.map((r) => ({ ...r }));
    },
    async fetchOne(uid: string) {
      await client.receive();
      return rows.find((r) => r.uid === Number(uid)) ?? false;
    },
  };
  return { client: client as unknown as ImapFlow & typeof client, handled };
}

const inThread: MimePool = { run: (job: MimeJob) => runMimeJob(job) } as unknown as MimePool;

test('a small row stays with imapflow; a large one is parsed by the pool and imapflow gets a stub', async () => {
  const small = fetchLine(1, 41, 2);
  const large = fetchLine(7, 42, 400, 'S'.repeat(50_000));
  assert.ok(small.length < OFFLOAD_ROW_BYTES);
  assert.ok(large.length > OFFLOAD_ROW_BYTES);
  const { client, handled } = fakeClient([{ seq: 7, uid: 42 }], [small, large]);
  offloadLargeFetchRows(client, inThread);
  const [msg] = await fetchRows(client, [42], { uid: true, envelope: true, bodyStructure: true });
  assert.equal(handled[0], small.toString('latin1', 0, 200));
  assert.equal(handled[1], '* 7 FETCH (UID 42)');
  assert.equal(msg?.uid, 42);
  assert.equal(msg?.envelope?.from?.[0]?.address, 'alice@example.test');
  assert.ok(Buffer.byteLength(msg?.envelope?.subject ?? '') <= 512, 'the envelope came back capped');
  assert.equal(msg?.bodyStructure?.childNodes?.length, 401);
  assert.equal(msg?.unreadable, undefined);
  assert.deepEqual([...(msg?.flags ?? [])], ['\\Seen']);
});

test('a structure past the limits comes back without it, marked too complex', async () => {
  const { client } = fakeClient([{ seq: 3, uid: 9 }], [fetchLine(3, 9, 1500)]);
  offloadLargeFetchRows(client, inThread);
  const msg = await fetchRow(client, 9, { uid: true, bodyStructure: true });
  assert.ok(msg);
  assert.equal(msg.unreadable, 'too_complex');
  assert.equal(msg.bodyStructure, undefined);
  assert.equal(msg.envelope?.subject, 'Hello', 'the rest of the row is still there');
});

test('a worker failure: the UID near the start keeps the message listed; without one, fetchRow says unreadable', async () => {
  const failing = (reason: 'timeout' | 'busy') =>
    ({
      run: async () => {
        throw new WorkerJobError(reason, 'no');
      },
    }) as unknown as MimePool;
  const a = fakeClient([{ seq: 3, uid: 9 }], [fetchLine(3, 9, 500)]);
  offloadLargeFetchRows(a.client, failing('busy'));
  const msg = await fetchRow(a.client, 9, { uid: true, bodyStructure: true });
  assert.equal(a.handled[0], '* 3 FETCH (UID 9)');
  assert.ok(msg);
  assert.equal(msg.unreadable, 'busy');

  // No UID near the start: imapflow gets a row without one, and fetchOne finds nothing.
  const noUid = Buffer.from(`* 4 FETCH (RFC822.SIZE 1 X-JUNK "${'j'.repeat(OFFLOAD_ROW_BYTES)}" UID 12)`);
  const b = fakeClient([], [noUid]);
  offloadLargeFetchRows(b.client, failing('timeout'));
  const fetched = await fetchRow(b.client, 12, { uid: true, bodyStructure: true });
  assert.equal(b.handled[0], '* 4 FETCH ()');
  assert.deepEqual(fetched, { seq: 0, uid: 12, unreadable: 'too_complex' });
});

test('runMimeJob refuses what is not an untagged FETCH row; renders text jobs', async () => {
  await assert.rejects(
    runMimeJob({ kind: 'fetch-row', payload: Buffer.from('A1 OK done'), literals: [], path: '' }),
  );
  const result: MimeResult = await runMimeJob({
    kind: 'text',
    raw: Buffer.from('<p>Hello <b>there</b></p>'),
    coding: { html: true },
  });
  assert.deepEqual(result, { kind: 'text', text: 'Hello there' });
});
