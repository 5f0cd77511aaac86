/**
 * What crossed the wire for each request of a long-poll handset: a fetch
 * that hands every exchange to the SDK unchanged and notes, per request id,
 * when its Request went out and which frame answered it (and on which
 * exchange). When a request gets no answer, this tells whether the gateway
 * never answered or the answer arrived and the SDK lost it.
 *
 * Long-poll only: WebSocket frames may be compressed per connection, and a
 * tap there would have to mirror the compression state.
 */
import { decodeBatch, decodeFrame } from '../../device-protocol/codec.ts';
import { type Frame, Kind } from '../../device-protocol/messages.ts';

interface Trace {
  sent: string[];
  answers: string[];
  /** Seconds (trace clock) of the first send and of the last answer frame. */
  from: number;
  to: number;
}

/** Kept per handset: the traces of requests still open, and the latest exchanges. */
const MAX_OPEN = 2000;
const RECENT = 4000;
/** Exchanges shown around a request's life in its evidence. */
const SHOWN = 40;

function framesOf(bytes: Uint8Array): Frame[] {
  const batch = decodeBatch(bytes);
  if (!batch.ok) return [];
  const out: Frame[] = [];
  for (const b of batch.frames) {
    const d = decodeFrame(b);
    if (d.ok) out.push(d.frame);
  }
  return out;
}

function describe(f: Frame): string {
  switch (f.kind) {
    case Kind.Response:
      return `Response seq ${f.seq}`;
    case Kind.Error:
      return `Error ${f.code} seq ${f.seq ?? '-'}`;
    case Kind.Event:
      return `Event ${f.name} seq ${f.seq}`;
    case Kind.Welcome:
      return `Welcome resumed=${f.resumed} lastSeq ${f.lastSeq}`;
    case Kind.Bye:
      return `Bye ${f.code}`;
    default:
      return Kind[f.kind] ?? String(f.kind);
  }
}

export class WireTrace {
  readonly #open = new Map<string, Trace>();
  readonly #recent: { at: number; line: string }[] = [];
  readonly #t0 = Date.now();

  constructor(readonly inner: typeof fetch = globalThis.fetch) {}

  #seconds(): number {
    return (Date.now() - this.#t0) / 1000;
  }

  #now(): string {
    return `${this.#seconds().toFixed(2)}s`;
  }

  /** One exchange, filed under the time it ended (an answer is acted on then). */
  #note(line: string): void {
    this.#recent.push({ at: this.#seconds(), line });
    if (this.#recent.length > RECENT) this.#recent.shift();
  }

  readonly fetch: typeof fetch = async (input, init) => {
    const url = String(input instanceof Request ? input.url : input);
    const query = url.slice(url.indexOf('/v1/poll') + 8);
    const method = init?.method ?? 'GET';
    const label = `${method}${query}`;
    const body = init?.body instanceof Uint8Array ? init.body : undefined;
    const at = this.#now();
    if (body !== undefined) {
      for (const f of framesOf(body)) {
        if (f.kind !== Kind.Request) continue;
        const t = this.#open.get(f.id) ?? {
          sent: [],
          answers: [],
          from: this.#seconds(),
          to: this.#seconds(),
        };
        t.sent.push(`${at} ${label}`);
        this.#open.set(f.id, t);
        if (this.#open.size > MAX_OPEN) this.#open.delete(this.#open.keys().next().value as string);
      }
    }
    let res: Response;
    try {
      res = await this.inner(input, init);
    } catch (err) {
      this.#note(`${at} ${label} failed after ${this.#now()}: ${String(err).slice(0, 120)}`);
      throw err;
    }
    const bytes = new Uint8Array(await res.clone().arrayBuffer());
    const frames = framesOf(bytes);
    const seqs = frames
      .filter((f) => 'seq' in f && f.seq !== undefined)
      .map((f) => (f as { seq: number }).seq);
    this.#note(
      `${at} ${label} → ${res.status} at ${this.#now()}: ${frames.length} frames${seqs.length > 0 ? ` seq ${seqs[0]}…${seqs[seqs.length - 1]}` : ''}`,
    );
    for (const f of frames) {
      if ((f.kind === Kind.Response || f.kind === Kind.Error) && f.id !== undefined) {
        const t = this.#open.get(f.id);
        if (t === undefined) continue;
        t.answers.push(`${this.#now()} ${describe(f)} in ${label} → ${res.status}`);
        t.to = this.#seconds();
      }
    }
    return res;
  };

  /** What the wire saw of request `id` (and the last exchanges), for a finding; forgets it. */
  evidence(id: string): string {
    const t = this.#open.get(id);
    this.#open.delete(id);
    const lines = [
      `wire trace of request ${id}:`,
      ...(t?.sent.map((s) => `  sent ${s}`) ?? ['  never sent on the wire']),
      ...(t === undefined || t.answers.length === 0
        ? ['  no answer frame on the wire']
        : t.answers.map((a) => `  answer ${a}`)),
      'exchanges around the answer, in the order they ended:',
      ...this.#around(t?.to).map((r) => `  ${r.line}`),
    ];
    return lines.join('\n');
  }

  /** The exchanges that ended shortly before and after `at` (the last ones when undefined). */
  #around(at: number | undefined): { at: number; line: string }[] {
    if (at === undefined) return this.#recent.slice(-SHOWN);
    let i = this.#recent.findIndex((r) => r.at > at);
    if (i < 0) i = this.#recent.length;
    const after = Math.floor(SHOWN / 4);
    return this.#recent.slice(Math.max(0, i - (SHOWN - after)), i + after);
  }

  forget(id: string): void {
    this.#open.delete(id);
  }
}
