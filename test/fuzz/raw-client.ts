/**
 * Raw connections for frame-level fuzzing: bytes go out exactly as given
 * (no SDK, no codec check), and what comes back is kept as bytes and as
 * decoded frames, never thrown. A gateway answer that does not decode is
 * evidence, so it is recorded rather than raised (the edge suites' raw
 * clients, test/integration/edge-client.ts, throw instead: right for a test,
 * wrong for a fuzzer that must keep going).
 *
 * Each connection binds its own loopback source address, so the raw
 * fuzzer's failed Hellos count against addresses no SDK handset uses.
 */
import http from 'node:http';
import WebSocket from 'ws';
import { decodeBatch, decodeFrame } from '../../device-protocol/codec.ts';
import type { Frame } from '../../device-protocol/messages.ts';

/** What came back on one raw connection. */
export interface RawAnswers {
  frames: Frame[];
  /** Messages or batch entries that did not decode, with the decoder's complaint. */
  undecodable: string[];
  /** WebSocket close code, or the HTTP statuses of the long-poll answers. */
  closeCode?: number;
  statuses: number[];
  /** The connection could not be made (refused upgrade, network error). */
  failed?: string;
}

function emptyAnswers(): RawAnswers {
  return { frames: [], undecodable: [], statuses: [] };
}

function take(answers: RawAnswers, bytes: Uint8Array): void {
  const decoded = decodeFrame(bytes);
  if (decoded.ok) answers.frames.push(decoded.frame);
  else answers.undecodable.push(`${decoded.error.code}: ${decoded.error.message} (${bytes.length} bytes)`);
}

export class RawWebSocket {
  readonly answers = emptyAnswers();
  #ws: WebSocket | undefined;
  #closed: Promise<void>;
  #wake: (() => void) | undefined;

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    this.#closed = new Promise((resolve) => {
      ws.on('close', (code) => {
        this.answers.closeCode = code;
        this.#poke();
        resolve();
      });
    });
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) this.answers.undecodable.push(`a text message of ${data.length} bytes`);
      else take(this.answers, new Uint8Array(data));
      this.#poke();
    });
    ws.on('error', () => {});
  }

  /** Opens `url` (ws://…/v1/ws); a refused upgrade is an answer too (its status). */
  static open(url: string, localAddress: string): Promise<RawWebSocket | RawAnswers> {
    return new Promise((resolve) => {
      const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 64 << 20, localAddress });
      ws.binaryType = 'nodebuffer';
      ws.once('open', () => resolve(new RawWebSocket(ws)));
      ws.once('unexpected-response', (_req, res) => {
        const answers = emptyAnswers();
        answers.statuses.push(res.statusCode ?? 0);
        answers.failed = `upgrade refused: HTTP ${res.statusCode}`;
        res.resume();
        ws.terminate();
        resolve(answers);
      });
      ws.once('error', (err) => {
        const answers = emptyAnswers();
        answers.failed = err.message;
        resolve(answers);
      });
    });
  }

  #poke(): void {
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
  }

  get open(): boolean {
    return this.#ws?.readyState === WebSocket.OPEN;
  }

  send(bytes: Uint8Array | string): Promise<void> {
    return new Promise((resolve) => {
      const ws = this.#ws;
      if (ws === undefined || ws.readyState !== WebSocket.OPEN) return resolve();
      ws.send(bytes, { binary: typeof bytes !== 'string' }, () => resolve());
    });
  }

  /** Waits for the next frame (or the close) for at most `ms`; true when something came. */
  next(ms: number): Promise<boolean> {
    if (this.answers.closeCode !== undefined) return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#wake = undefined;
        resolve(false);
      }, ms);
      this.#wake = () => {
        clearTimeout(timer);
        resolve(true);
      };
    });
  }

  /** Waits until the gateway has said nothing for `quietMs` (or closed), at most `maxMs` in all. */
  async settle(quietMs: number, maxMs: number): Promise<void> {
    const end = Date.now() + maxMs;
    while (this.answers.closeCode === undefined && Date.now() < end) {
      if (!(await this.next(Math.min(quietMs, end - Date.now())))) return;
    }
  }

  async close(): Promise<void> {
    this.#ws?.terminate();
    await this.#closed;
  }
}

/** One long-poll HTTP exchange from `localAddress`; the body is read as a batch. */
export function pollExchange(
  url: string,
  method: 'GET' | 'POST',
  localAddress: string,
  o: { body?: Uint8Array; headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<RawAnswers> {
  const answers = emptyAnswers();
  return new Promise((resolve) => {
    const headers: Record<string, string | number> = {
      'Content-Type': 'application/octet-stream',
      ...o.headers,
    };
    if (o.body !== undefined) headers['Content-Length'] = o.body.length;
    const req = http.request(
      url,
      { method, headers, localAddress, timeout: o.timeoutMs ?? 10_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          answers.statuses.push(res.statusCode ?? 0);
          const body = new Uint8Array(Buffer.concat(chunks));
          const batch = decodeBatch(body);
          if (!batch.ok) {
            answers.undecodable.push(
              `HTTP ${res.statusCode}: body of ${body.length} bytes is not a batch (${batch.error.message})`,
            );
          } else {
            for (const bytes of batch.frames) take(answers, bytes);
          }
          resolve(answers);
        });
        res.on('error', (err) => {
          answers.failed = err.message;
          resolve(answers);
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (err) => {
      answers.failed = err.message;
      resolve(answers);
    });
    req.end(o.body === undefined ? undefined : Buffer.from(o.body));
  });
}
