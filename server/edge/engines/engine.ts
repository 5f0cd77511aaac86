/**
 * What an engine (uWebSockets.js or node:http + ws) provides to the
 * engine-independent edge core, and what it calls on it. Engines only move
 * bytes and HTTP exchanges; sessions, limits and frames live in the core.
 * (engine.io's `transports/` split, applied to servers.)
 */
import type { Logger } from 'pino';
import type { ServingTls } from '../../net/serving-tls.ts';
import type { PollExchange, WsCarrier, WsDriver } from '../carriers.ts';

// The carriers' view of an engine lives with the carriers (no import cycle); engines import it from here.
export type { PollExchange, WsDriver } from '../carriers.ts';

/** A connection refused before authentication: the HTTP status and Retry-After seconds to answer with. */
export interface PreAuthRefusalAnswer {
  status: 429 | 503;
  retryAfterSec: number;
}

/** What the engines call; implemented by EdgeCore. */
export interface EngineHost {
  readonly logger: Logger;
  readonly draining: boolean;
  /**
   * Asked before a connection that is not authenticated yet is kept (a
   * WebSocket upgrade, an opening long-poll POST) from this peer address:
   * undefined to go ahead, else the refusal to answer with (counted already).
   */
  admit(address: string): PreAuthRefusalAnswer | undefined;
  /** Creates the carrier for a WebSocket about to open from this peer address (uWS keeps it as the socket's user data). */
  newWsCarrier(address: string): WsCarrier;
  wsOpen(carrier: WsCarrier, socket: unknown): void;
  wsMessage(carrier: WsCarrier, bytes: Uint8Array, isBinary: boolean): void;
  wsDrain(carrier: WsCarrier): void;
  wsClosed(carrier: WsCarrier): void;
  poll(ex: PollExchange): void;
}

export interface EngineOptions {
  host: string;
  port: number;
  core: EngineHost;
  /** Largest WebSocket message accepted before the engine itself cuts the connection. */
  maxPayloadBytes: number;
  /** Largest long-poll POST body read. */
  maxPollBodyBytes: number;
  /** Engine-level backstop for queued bytes per socket (the core enforces the real limit). */
  maxBackpressureBytes: number;
  /** Engine-level idle backstop in seconds (the core's sweep closes silent carriers first). */
  idleTimeoutSec: number;
  /** An HTTP connection must have sent a request's headers within this long (where the engine lets us set it). */
  headersTimeoutMs: number;
  /** Serve wss:// and https:// with this certificate (portable engine only: the uWS build has no TLS). */
  tls?: ServingTls | undefined;
}

/** The header of a pre-authentication refusal, for engines that write raw HTTP. */
export function refusalResponse(r: PreAuthRefusalAnswer): string {
  const text = r.status === 429 ? '429 Too Many Requests' : '503 Service Unavailable';
  return `HTTP/1.1 ${text}\r\nRetry-After: ${r.retryAfterSec}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`;
}

export interface EdgeEngine {
  readonly name: 'uws' | 'portable';
  readonly port: number;
  readonly driver: WsDriver;
  /** WebSockets currently open (closing ones included). */
  openSockets(): number;
  /** Stops accepting new connections; open ones stay. */
  stopAccepting(): void;
  /** Closes everything, open connections included. */
  close(): Promise<void>;
}

export const WS_PATH = '/v1/ws';
export const POLL_PATH = '/v1/poll';

/** Headers of every long-poll answer: binary batches, never cached, readable cross-origin (browser SDK). */
export const POLL_HEADERS: [string, string][] = [
  ['Content-Type', 'application/octet-stream'],
  ['Cache-Control', 'no-store'],
  ['Access-Control-Allow-Origin', '*'],
];

/** Answer to a CORS preflight of /v1/poll (the SDK's custom headers need one in browsers). */
export const POLL_PREFLIGHT_HEADERS: [string, string][] = [
  ['Access-Control-Allow-Origin', '*'],
  ['Access-Control-Allow-Methods', 'GET, POST, OPTIONS'],
  ['Access-Control-Allow-Headers', 'Content-Type, X-MMGW-Session, X-MMGW-Token'],
  ['Access-Control-Max-Age', '86400'],
];
