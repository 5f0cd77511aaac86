/**
 * Large FETCH rows parsed off the event loop (issue #11). imapflow tokenizes
 * each response line on the event loop in one go: the BODYSTRUCTURE of a
 * 50,000-part mail (Dovecot sends the first 10,000 parts, some MB) held it for
 * hundreds of milliseconds per mail.body and per mail.sync page, for every
 * device of the node.
 *
 * offloadLargeFetchRows() hooks a client's response handler: an untagged FETCH
 * row over OFFLOAD_ROW_BYTES goes to the MIME workers (mime-jobs.ts), which
 * parse it with imapflow's own parser and formatter and send back a bounded
 * message object; imapflow itself gets a stub row holding only the sequence
 * number and UID, so its command completes as usual. The fetch helpers below
 * (the only way mail code fetches) put the two back together. A row the
 * workers could not read (time, memory, a full queue) comes back marked
 * `unreadable`, with the UID found near the start of the line when there is
 * one (servers put it first), so the message is still listed.
 *
 * The line itself arrives in socket chunks that imapflow's stream scans byte
 * by byte for its end, ten chunks per turn of the event loop: milliseconds
 * per turn for a line of megabytes. A chunk holding no line end is taken
 * whole instead (Buffer.indexOf), as the stream's own code does after its scan.
 *
 * Both hooks depend on imapflow 2.x internals: the reader calling
 * `this.handleResponse(data)` with `{payload, literals}`, and the stream's
 * `processChunkSegment(chunk, pos)`, `state` (1: in a line), `lineBytes`,
 * `lineBuffer`, `checkLineLength` and `checkResponseSize`. The stream hook
 * stays off when they are not there; test/integration/mail-hostile-content
 * fails (the hostile mail's echo ratio) if a release changes them.
 */
import type { FetchMessageObject, FetchQueryObject, ImapFlow } from 'imapflow';
import type { Logger } from 'pino';
import { WorkerJobError } from '../kit/worker-pool.ts';
import type { BoundedRow } from './mime-jobs.ts';
import type { MimePool } from './mime-pool.ts';

/** FETCH rows (the line, literals apart) longer than this are parsed in a worker. */
export const OFFLOAD_ROW_BYTES = 32 * 1024;

/** A message as the fetch helpers give it: `unreadable` when the workers could not read its row. */
export type FetchedMessage = FetchMessageObject & { unreadable?: 'too_complex' | 'busy' };

interface Offloaded {
  message?: BoundedRow;
  unreadable?: 'too_complex' | 'busy';
}

interface ClientRows {
  /** Rows of the fetch under way, by sequence number. */
  rows: Map<number, Offloaded>;
  /** Offloaded rows whose UID could not be found (counted: fetchOneRow tells a lost row from none). */
  lost: number;
}

const offloaded = new WeakMap<ImapFlow, ClientRows>();

interface StreamItem {
  payload: Buffer;
  literals: Buffer[];
}

type HandleResponse = (this: ImapFlow, data: StreamItem) => Promise<boolean>;

const FETCH_ROW = /^\* (\d{1,10}) FETCH \(/;
const UID_NEAR_START = /[( ]UID (\d{1,10})[ )]/;

/** imapflow's ImapStream, as far as the line hook uses it. */
interface LineStream {
  destroyed: boolean;
  state: number;
  lineBytes: number;
  lineBuffer: Buffer[];
  checkLineLength(length: number): boolean;
  checkResponseSize(bytes: number, peek?: boolean): boolean;
  processChunkSegment(chunk: Buffer, startPos: number): Promise<number | null>;
}

/** ImapStream's state while it assembles a line (LITERAL is 2). */
const IN_LINE = 1;
const LF = 0x0a;

function takeLineChunksWhole(client: ImapFlow): void {
  const stream = (client as unknown as { streamer?: Partial<LineStream> }).streamer;
  if (
    !stream ||
    stream.state !== IN_LINE ||
    !Array.isArray(stream.lineBuffer) ||
    typeof stream.lineBytes !== 'number' ||
    typeof stream.processChunkSegment !== 'function' ||
    typeof stream.checkLineLength !== 'function' ||
    typeof stream.checkResponseSize !== 'function'
  ) {
    return;
  }
  const segment = stream.processChunkSegment;
  stream.processChunkSegment = async function (this: LineStream, chunk: Buffer, startPos: number) {
    if (
      this.destroyed ||
      this.state !== IN_LINE ||
      startPos >= chunk.length ||
      chunk.indexOf(LF, startPos) !== -1
    ) {
      return segment.call(this, chunk, startPos);
    }
    // What the stream does with the rest of a chunk after a scan that found no line end.
    const tail = startPos === 0 ? chunk : chunk.subarray(startPos);
    const length = this.lineBytes + tail.length;
    if (!this.checkLineLength(length) || !this.checkResponseSize(length, true)) return null;
    this.lineBytes = length;
    this.lineBuffer.push(tail);
    return null;
  };
}

export function offloadLargeFetchRows(client: ImapFlow, pool: MimePool, logger?: Logger): void {
  takeLineChunksWhole(client);
  const state: ClientRows = { rows: new Map(), lost: 0 };
  offloaded.set(client, state);
  const hooked = client as unknown as { handleResponse: HandleResponse };
  const original = hooked.handleResponse;
  hooked.handleResponse = async function (this: ImapFlow, data: StreamItem): Promise<boolean> {
    const payload = data.payload;
    if (payload.length <= OFFLOAD_ROW_BYTES) return original.call(this, data);
    const row = FETCH_ROW.exec(payload.toString('latin1', 0, 24));
    if (!row) return original.call(this, data);
    const seq = Number(row[1]);
    const bytes = payload.length;
    // Read before the bytes are moved to the worker; used only if it cannot read the row.
    const near = UID_NEAR_START.exec(payload.toString('latin1', 0, 4096));
    // The worker gets bytes of its own (moved, not cloned). A line assembled from chunks owns its
    // memory and is moved as it is; one cut from a chunk shares it and is copied.
    const owned = payload.byteOffset === 0 && payload.buffer.byteLength - payload.length <= 2;
    const copy = owned ? new Uint8Array(payload.buffer, 0, payload.length) : new Uint8Array(payload);
    const literals = data.literals.map((l) => new Uint8Array(l));
    let uid: number | undefined;
    try {
      const result = await pool.run(
        { kind: 'fetch-row', payload: copy, literals, path: this.mailbox ? this.mailbox.path : '' },
        [copy.buffer as ArrayBuffer, ...literals.map((l) => l.buffer as ArrayBuffer)],
      );
      if (result.kind !== 'fetch-row') throw new Error('a fetch-row job answered with another kind');
      uid = result.message.uid;
      state.rows.set(seq, {
        message: result.message,
        ...(result.tooComplex ? { unreadable: 'too_complex' } : {}),
      });
    } catch (err) {
      const reason = err instanceof WorkerJobError ? err.reason : 'failed';
      uid = near ? Number(near[1]) : undefined;
      if (uid === undefined) state.lost++;
      state.rows.set(seq, { unreadable: reason === 'busy' ? 'busy' : 'too_complex' });
      logger?.info({ seq, uid, bytes, reason }, 'a large FETCH row could not be read');
    }
    const stub = Buffer.from(`* ${seq} FETCH (${uid === undefined ? '' : `UID ${uid}`})`, 'latin1');
    return original.call(this, { ...data, payload: stub, literals: [] });
  };
}

/** Puts an offloaded row's fields back into the message imapflow made of its stub. */
function settle(state: ClientRows | undefined, msg: FetchMessageObject): FetchedMessage {
  const entry = state?.rows.get(msg.seq);
  if (!entry) return msg;
  state?.rows.delete(msg.seq);
  const out = msg as FetchedMessage;
  if (entry.message) {
    const { bodyParts, headers, ...rest } = entry.message;
    Object.assign(out, rest);
    // Structured clone turned the Buffers into Uint8Arrays.
    if (headers) out.headers = Buffer.from(headers);
    if (bodyParts) {
      out.bodyParts = new Map([...bodyParts].map(([k, v]) => [k, Buffer.from(v)]));
    }
  }
  if (entry.unreadable) {
    out.unreadable = entry.unreadable;
    delete out.bodyStructure;
  }
  return out;
}

/** client.fetchAll, with offloaded rows put back together. */
export async function fetchRows(
  client: ImapFlow,
  range: string | number[],
  query: FetchQueryObject,
  options: { uid?: boolean; changedSince?: bigint } = {},
): Promise<FetchedMessage[]> {
  const state = offloaded.get(client);
  // Left from rows nobody fetched (unsolicited, or imapflow's own): never this fetch's.
  state?.rows.clear();
  const messages = await client.fetchAll(range, query, options);
  return messages.map((m) => settle(state, m));
}

/**
 * client.fetchOne by UID, with an offloaded row put back together. A row the
 * workers could not read and whose UID was not found comes back as
 * `{uid, unreadable}` rather than false (not found).
 */
export async function fetchRow(
  client: ImapFlow,
  uid: number,
  query: FetchQueryObject,
  options: { binary?: boolean } = {},
): Promise<FetchedMessage | false> {
  const state = offloaded.get(client);
  state?.rows.clear();
  const lostBefore = state?.lost ?? 0;
  const message = await client.fetchOne(String(uid), query, { ...options, uid: true });
  if (message === false) {
    if ((state?.lost ?? 0) > lostBefore) return { seq: 0, uid, unreadable: 'too_complex' } as FetchedMessage;
    return false;
  }
  return settle(state, message);
}
