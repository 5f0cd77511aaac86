/**
 * WebSocket carrier (SPEC.md §4.1): `GET /v1/ws`, one binary message per frame.
 *
 * Works with the browser WebSocket and with the `ws` package (Node 20 has no
 * global WebSocket): only the common surface is used (on* handlers,
 * binaryType, send, close, readyState).
 */

import { decodeFrame, encodeFrame } from '../codec.ts';
import { CarrierCompression, DEFLATE, plainFrame } from '../compression.ts';
import { GatewayError } from '../errors.ts';
import { DEFAULT_LIMITS, type Frame, type Hello, Kind, type Resume } from '../messages.ts';
import { Carrier, carrierUrl } from './carrier.ts';

const OPEN = 1;

/**
 * A request with a password in its body (`im.login`, `mail.account.add` …)
 * goes plain: a password never enters a compression context, where lengths
 * could give it away bit by bit (SPEC.md §4.4, Security).
 */
function carriesPassword(frame: Frame): boolean {
  if (frame.kind !== Kind.Request) return false;
  const body = frame.body;
  return body !== null && typeof body === 'object' && !Array.isArray(body) && !(body instanceof Uint8Array)
    ? 'password' in body
    : false;
}
const CLOSED = 3;
/** How long close() waits for the closing handshake before giving up on it. */
const CLOSE_WAIT_MS = 1000;

export class WebSocketCarrier extends Carrier {
  readonly kind = 'ws' as const;
  #socket: any;
  #opened = false;
  #onSocketClosed?: () => void;
  /** Frame compression (SPEC.md §4.4), on once a Welcome says so; fresh for every carrier. */
  #compression?: CarrierCompression;

  start(first: Hello | Resume): void {
    const Ctor = this.options.WebSocket ?? (globalThis as any).WebSocket;
    if (typeof Ctor !== 'function') {
      queueMicrotask(() =>
        this.end({
          reason: 'no WebSocket implementation (pass options.WebSocket)',
          failedToOpen: true,
          error: new GatewayError('config.invalid', 'no WebSocket implementation', { field: 'WebSocket' }),
        }),
      );
      return;
    }
    let socket: any;
    try {
      const url = carrierUrl(this.options.url, 'ws');
      // The `ws` package takes TLS options third; a browser's WebSocket has no such argument.
      socket =
        this.options.ca === undefined ? new Ctor(url) : new Ctor(url, undefined, { ca: this.options.ca });
    } catch (err) {
      const error = err instanceof GatewayError ? err : undefined;
      queueMicrotask(() =>
        this.end({ reason: `cannot open WebSocket: ${String(err)}`, failedToOpen: true, error }),
      );
      return;
    }
    this.#socket = socket;
    socket.binaryType = 'arraybuffer';
    socket.onopen = () => {
      this.#opened = true;
      this.send(first);
    };
    socket.onmessage = (event: { data: unknown }) => this.#onMessage(event.data);
    // The close event always follows an error event; act on that one only, with
    // the error's words where the implementation gives them (ws: "connect ECONNREFUSED …").
    let failure = '';
    socket.onerror = (event: { message?: unknown }) => {
      if (typeof event?.message === 'string') failure = event.message;
    };
    socket.onclose = (event: { code?: number; reason?: string }) => {
      this.#onSocketClosed?.();
      const detail =
        (event.reason ? `${event.code} ${event.reason}` : `${event.code ?? ''}`) +
        (failure === '' ? '' : `; ${failure}`);
      this.end({
        reason: this.#opened ? `WebSocket closed (${detail})` : `WebSocket failed to open (${detail})`,
        failedToOpen: !this.#opened,
      });
    };
  }

  send(frame: Frame): void {
    if (this.closed || this.#socket?.readyState !== OPEN) return;
    const bytes = encodeFrame(frame);
    this.#socket.send(this.#compression?.outgoing(bytes, !carriesPassword(frame)) ?? bytes);
  }

  #onMessage(data: unknown): void {
    if (this.closed) return;
    let bytes: Uint8Array;
    if (data instanceof ArrayBuffer) bytes = new Uint8Array(data);
    else if (ArrayBuffer.isView(data)) bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    else {
      this.end({
        reason: 'gateway sent a text message',
        failedToOpen: false,
        error: new GatewayError('protocol.bad_frame', 'text WebSocket message (frames are binary)'),
      });
      return;
    }
    try {
      bytes = plainFrame(bytes, this.#compression, DEFAULT_LIMITS.maxFrameBytes);
    } catch (err) {
      const error = err instanceof GatewayError ? err : new GatewayError('protocol.bad_frame', String(err));
      this.end({ reason: `undecompressable frame: ${error.message}`, failedToOpen: false, error });
      return;
    }
    const decoded = decodeFrame(bytes);
    if (!decoded.ok) {
      this.end({
        reason: `undecodable frame: ${decoded.error.message}`,
        failedToOpen: false,
        error: decoded.error,
      });
      return;
    }
    const frame = decoded.frame;
    // From the frame after this Welcome on, both directions may be compressed.
    if (frame.kind === Kind.Welcome && frame.compression === DEFLATE)
      this.#compression ??= new CarrierCompression();
    this.deliver([frame]);
  }

  protected shutdown(): Promise<void> {
    const socket = this.#socket;
    if (socket === undefined || socket.readyState === CLOSED) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, CLOSE_WAIT_MS);
      this.#onSocketClosed = () => {
        clearTimeout(timer);
        resolve();
      };
      try {
        socket.close(1000);
      } catch {
        clearTimeout(timer);
        resolve();
      }
    });
  }
}
