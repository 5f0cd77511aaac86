/**
 * HTTP long-poll carrier (SPEC.md §4.2), for networks and proxies that break
 * WebSocket. Bodies are batches (varint length + frame, repeated).
 *
 * - The opening `POST /v1/poll` carries Hello or Resume; its answer starts with Welcome.
 * - Frames to the gateway go in `POST /v1/poll` with the session headers,
 *   one POST at a time so that they arrive in order; frames queued meanwhile
 *   share the next POST.
 * - One `GET /v1/poll?wait=&ack=` is held at all times for frames from the
 *   gateway. Its `ack=` acks what the SDK already received, which is what
 *   keeps the gateway from returning the same frames again.
 * - 410 means the session or this carrier is gone (moved, expired): the frames
 *   in the body (Bye or Error) are delivered, then the carrier ends.
 */

import { decodeBatch, decodeFrame, encodeBatch, encodeFrame } from '../codec.ts';
import { GatewayError } from '../errors.ts';
import { type Frame, type Hello, Kind, type Resume } from '../messages.ts';
import { Carrier, carrierUrl } from './carrier.ts';

/** Margin over `wait` before a held GET counts as lost (proxies may add latency). */
const GET_MARGIN_MS = 10_000;
/** close() gives a last POST (the final Ack) at most this long. */
const CLOSE_FLUSH_MS = 2_000;
/**
 * Statuses whose body is a batch holding one fatal Error or Bye (SPEC.md §4.2):
 * 503 too (session.busy, session.draining, the limits before authentication),
 * or a busy or draining edge would look like one that cannot be reached.
 */
const ERROR_BATCH_STATUSES = new Set([400, 401, 410, 429, 503]);

interface Exchange {
  status: number;
  frames: Frame[];
}

export class PollCarrier extends Carrier {
  readonly kind = 'poll' as const;
  #endpoint = '';
  #sessionHeaders?: Record<string, string>;
  #outbox: Frame[] = [];
  #posting?: Promise<void>;
  #flushScheduled = false;
  readonly #aborts = new Set<AbortController>();
  #heldGet?: AbortController;
  /** An exchange ran out of time (not the owner's close): reported in the close info. */
  #timedOut = false;

  start(first: Hello | Resume): void {
    try {
      this.#endpoint = carrierUrl(this.options.url, 'poll');
    } catch (err) {
      queueMicrotask(() =>
        this.end({
          reason: String(err),
          failedToOpen: true,
          error: err instanceof GatewayError ? err : undefined,
        }),
      );
      return;
    }
    void this.#open(first);
  }

  send(frame: Frame): void {
    if (this.closed) return;
    this.#outbox.push(frame);
    if (this.#flushScheduled) return;
    // Frames sent in the same tick (a request burst, an Ack) share one POST.
    this.#flushScheduled = true;
    queueMicrotask(() => {
      this.#flushScheduled = false;
      this.#flush();
    });
  }

  async #open(first: Hello | Resume): Promise<void> {
    const result = await this.#exchange(
      'POST',
      this.#endpoint,
      undefined,
      [first],
      this.options.requestTimeoutMs,
    );
    if (result === undefined || this.closed) return;
    if (typeof result === 'string') {
      this.#endFailed(result, true);
      return;
    }
    const welcome = result.frames[0];
    if (result.status === 200 && welcome?.kind === Kind.Welcome) {
      this.#sessionHeaders = {
        'X-MMGW-Session': welcome.sessionId,
        'X-MMGW-Token': welcome.resumeToken,
      };
      this.deliver(result.frames);
      if (this.closed) return;
      this.#flush();
      void this.#pollLoop();
      return;
    }
    this.#endWithAnswer(result, 'opening POST');
  }

  /** Keeps one GET held for as long as the carrier lives. */
  async #pollLoop(): Promise<void> {
    while (!this.closed) {
      const seq = this.options.lastSeq();
      const query = `?wait=${this.options.pollWaitMs}${seq > 0 ? `&ack=${seq}` : ''}`;
      const result = await this.#exchange(
        'GET',
        this.#endpoint + query,
        this.#sessionHeaders,
        undefined,
        this.options.pollWaitMs + GET_MARGIN_MS,
      );
      if (result === undefined || this.closed) return;
      if (typeof result === 'string') {
        this.#endFailed(result, false);
        return;
      }
      if (result.status !== 200) {
        this.#endWithAnswer(result, 'GET');
        return;
      }
      if (seq > 0) this.handlers.onAck?.(seq);
      this.deliver(result.frames);
    }
  }

  #flush(): void {
    if (this.#posting !== undefined || this.#sessionHeaders === undefined || this.#outbox.length === 0)
      return;
    if (this.closed) return;
    const frames = this.#outbox;
    this.#outbox = [];
    this.#posting = this.#post(frames).finally(() => {
      this.#posting = undefined;
      if (!this.closed) this.#flush();
    });
  }

  async #post(frames: Frame[]): Promise<void> {
    const result = await this.#exchange(
      'POST',
      this.#endpoint,
      this.#sessionHeaders,
      frames,
      this.options.requestTimeoutMs,
    );
    if (result === undefined || this.closed) return;
    if (typeof result === 'string') {
      // The frames may or may not have arrived; the SDK resends requests after it resumes.
      this.#endFailed(result, false);
      return;
    }
    if (result.status !== 200) {
      this.#endWithAnswer(result, 'POST');
      return;
    }
    this.deliver(result.frames);
  }

  /** An exchange failed below the protocol (network, timeout, undecodable body). */
  #endFailed(reason: string, failedToOpen: boolean): void {
    this.end({ reason, failedToOpen, ...(this.#timedOut ? { timedOut: true } : {}) });
  }

  /** A non-200 answer: deliver the Error/Bye it carries, then end. */
  #endWithAnswer(result: Exchange, what: string): void {
    const carriesFrames = ERROR_BATCH_STATUSES.has(result.status) && result.frames.length > 0;
    if (carriesFrames) this.deliver(result.frames);
    this.end({
      reason: `${what} answered HTTP ${result.status}`,
      // A status without a protocol answer (404, 502 from a proxy) means this
      // carrier does not reach a gateway: the same as a WebSocket that never opens.
      failedToOpen: !carriesFrames && this.#sessionHeaders === undefined,
      error: carriesFrames
        ? undefined
        : new GatewayError('request.unavailable', `${what} answered HTTP ${result.status}`, {
            retryable: true,
          }),
    });
  }

  /**
   * One HTTP exchange. Returns the status and decoded frames, a string saying
   * why it failed below the protocol (network, timeout, undecodable body), or
   * undefined when the carrier was closed meanwhile.
   */
  async #exchange(
    method: 'GET' | 'POST',
    url: string,
    headers: Record<string, string> | undefined,
    frames: Frame[] | undefined,
    timeoutMs: number,
  ): Promise<Exchange | string | undefined> {
    const fetchImpl = this.options.fetch ?? globalThis.fetch;
    if (typeof fetchImpl !== 'function') return 'no fetch implementation (pass options.fetch)';
    const abort = new AbortController();
    this.#aborts.add(abort);
    if (method === 'GET') this.#heldGet = abort;
    const timer = setTimeout(() => abort.abort(), timeoutMs);
    try {
      const init: RequestInit = {
        method,
        headers: { ...(frames ? { 'Content-Type': 'application/octet-stream' } : {}), ...headers },
        signal: abort.signal,
      };
      if (frames) init.body = encodeBatch(frames.map((f) => encodeFrame(f))) as BodyInit;
      const response = await fetchImpl(url, init);
      const body = new Uint8Array(await response.arrayBuffer());
      if (this.closed) return undefined;
      const batch = decodeBatch(body);
      if (!batch.ok) {
        if (response.status !== 200 && !ERROR_BATCH_STATUSES.has(response.status)) {
          return { status: response.status, frames: [] };
        }
        return `${method} answered HTTP ${response.status} with an undecodable batch: ${batch.error.message}`;
      }
      const decoded: Frame[] = [];
      for (const bytes of batch.frames) {
        const one = decodeFrame(bytes);
        if (!one.ok) return `${method} answered an undecodable frame: ${one.error.message}`;
        decoded.push(one.frame);
      }
      return { status: response.status, frames: decoded };
    } catch (err) {
      if (this.closed) return undefined;
      if (!abort.signal.aborted) return `${method} failed: ${errorText(err)}`;
      this.#timedOut = true;
      return `${method} timed out after ${timeoutMs} ms`;
    } finally {
      clearTimeout(timer);
      this.#aborts.delete(abort);
    }
  }

  protected async shutdown(): Promise<void> {
    // Abort the held GET at once; give frames already queued (a last Ack) one bounded POST.
    this.#heldGet?.abort();
    const pending = this.#posting;
    if (pending !== undefined) {
      await Promise.race([pending, delay(CLOSE_FLUSH_MS)]);
    }
    if (this.#outbox.length > 0 && this.#sessionHeaders !== undefined) {
      const frames = this.#outbox;
      this.#outbox = [];
      await this.#lastPost(frames);
    }
    for (const abort of this.#aborts) abort.abort();
  }

  /** The final POST of close(): fire, wait a bounded time, ignore the answer. */
  async #lastPost(frames: Frame[]): Promise<void> {
    const fetchImpl = this.options.fetch ?? globalThis.fetch;
    if (typeof fetchImpl !== 'function') return;
    const abort = new AbortController();
    this.#aborts.add(abort);
    const timer = setTimeout(() => abort.abort(), CLOSE_FLUSH_MS);
    try {
      const response = await fetchImpl(this.#endpoint, {
        method: 'POST',
        headers: { 'Content-Type': 'application/octet-stream', ...this.#sessionHeaders },
        body: encodeBatch(frames.map((f) => encodeFrame(f))) as BodyInit,
        signal: abort.signal,
      });
      await response.arrayBuffer();
    } catch {
      // Best effort: the gateway replays what it did not see acked.
    } finally {
      clearTimeout(timer);
      this.#aborts.delete(abort);
    }
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function errorText(err: unknown): string {
  if (err instanceof Error) {
    const cause = (err as { cause?: unknown }).cause;
    return cause instanceof Error ? `${err.message} (${cause.message})` : err.message;
  }
  return String(err);
}
