/**
 * Long-poll requests across edges that share a port (worker processes, SPEC.md
 * §4.2): each HTTP request of a long-poll session may land on any worker, since
 * a device's GET and POST travel on different connections. A request for a
 * session this edge does not hold is passed, whole, to the edge that holds it
 * (a request on the session's device subject, which reaches the holder as
 * events do), which serves it as its own and sends the HTTP answer back.
 *
 * Why forward rather than move the session to where the request landed: a
 * device's GET and POST are in flight together, so moving the session to each
 * request's worker makes the two claim it from each other at once, and the
 * request reaching the worker that has just let the session go finds nothing
 * (`auth.resume_failed`, a new session). Forwarded, the session never moves:
 * its held GET, its acks (the GET's `ack=`, Ack frames in POSTs), its replay
 * buffer and its request answers stay on one edge, and every request is served
 * by the one carrier there. The cost is one bus round trip (through the
 * primary's IPC broker) for a request that lands on another worker.
 *
 * A session moves only as before: a Resume (WebSocket or an opening POST)
 * claims it (handoff.ts), and a draining edge hands it to a survivor; forwarded
 * requests follow it there (they wait for a claim in progress, or are passed on).
 */
import type { Logger } from 'pino';
import { encodeBatch } from '../../device-protocol/codec.ts';
import { GatewayError, toGatewayError } from '../../device-protocol/errors.ts';
import { type Bus, Subjects } from '../bus/bus.ts';
import type { PollCarrier, PollExchange } from './carriers.ts';
import type { PollMessage } from './edge-messages.ts';
import { errorFrame } from './frames.ts';
import { pollWaitMs } from './long-poll.ts';

/**
 * A session opened or claimed on another worker a moment ago may not be known
 * to the primary's broker yet: the worker's subscription leaves it at the end
 * of the event-loop turn that answered Welcome, and the device's next request
 * can overtake it. No responder is asked again this often, this long apart,
 * before the request counts as one for no session.
 */
const NO_RESPONDER_RETRIES = 3;
const NO_RESPONDER_RETRY_MS = 100;

/** Longest query string passed on (the SDK sends `wait=` and `ack=`, a few dozen bytes). */
const MAX_QUERY_CHARS = 256;

/** The HTTP answer to a forwarded request, as the holder sends it back. */
export interface PollAnswer {
  status: number;
  body: Uint8Array;
  close?: boolean;
}

/**
 * How long a forwarded request waits for the holder's answer (also on each hop
 * it is passed on): a GET may be held for its `wait`, a POST is answered at once.
 */
export function forwardTimeoutMs(m: PollMessage, busTimeoutMs: number): number {
  return (m.method === 'GET' ? pollWaitMs(m.query) : 0) + busTimeoutMs;
}

/**
 * A forwarded request as the holder's long-poll code sees it: an exchange
 * whose answer goes back over the bus. Its client is on another edge, which
 * answers it even if this one never does (the bus request times out).
 */
class ForwardedExchange implements PollExchange {
  readonly method: string;
  readonly sessionId: string;
  readonly token: string;
  readonly query: string;
  readonly remoteAddress = '';
  body: Uint8Array;
  aborted = false;
  onAborted: ((ex: PollExchange) => void) | undefined = undefined;
  /** Served where its session is: never passed on again from here. */
  readonly forwarded = true;
  carrier: PollCarrier | undefined = undefined;
  private done = false;

  constructor(
    m: PollMessage,
    private readonly answered: (a: PollAnswer) => void,
  ) {
    this.method = m.method;
    this.sessionId = m.sessionId;
    this.token = m.token;
    this.query = m.query;
    this.body = m.body ?? new Uint8Array(0);
  }

  respond(status: number, body: Uint8Array, closeConnection = false): void {
    if (this.done) return;
    this.done = true;
    this.answered({ status, body, ...(closeConnection ? { close: true } : {}) });
  }
}

/** Checks a forwarded request from the bus by hand (no zod in edge workers, docs/architecture.md). */
export function checkPollMessage(m: Record<string, unknown>): PollMessage {
  const ok =
    typeof m.sessionId === 'string' &&
    typeof m.token === 'string' &&
    (m.method === 'GET' || m.method === 'POST') &&
    typeof m.query === 'string' &&
    m.query.length <= MAX_QUERY_CHARS &&
    (m.body === undefined || m.body instanceof Uint8Array);
  if (!ok) throw new GatewayError('bus.bad_message', 'Bad forwarded poll request.');
  return m as unknown as PollMessage;
}

function isAnswer(a: unknown): a is PollAnswer {
  if (a === null || typeof a !== 'object') return false;
  const { status, body } = a as Record<string, unknown>;
  return typeof status === 'number' && Number.isInteger(status) && body instanceof Uint8Array;
}

export interface PollForwardOptions {
  bus: Bus;
  busTimeoutMs: number;
  logger: Logger;
  /** The edge's long-poll entry point: serves an exchange (handlePoll, internal errors answered). */
  serve(ex: PollExchange): void;
  /** Counts a request passed on to the holder. */
  counted(): void;
}

export class PollForwarding {
  constructor(private readonly o: PollForwardOptions) {}

  /**
   * Passes a request for a session not held here to the edge that holds it
   * and answers it with what that edge answered. Nobody holds the session (or
   * the answer says so): the request is served here again, marked forwarded,
   * which answers from a tombstone or with `auth.resume_failed`.
   */
  forward(imei: string, ex: PollExchange): void {
    ex.forwarded = true;
    const m: PollMessage = {
      type: 'poll',
      sessionId: ex.sessionId,
      token: ex.token,
      method: ex.method === 'POST' ? 'POST' : 'GET',
      query: ex.query.length <= MAX_QUERY_CHARS ? ex.query : '',
      ...(ex.body.length > 0 ? { body: ex.body } : {}),
    };
    this.o.counted();
    this.ask(imei, ex, m, 0);
  }

  private ask(imei: string, ex: PollExchange, m: PollMessage, retries: number): void {
    const timeoutMs = forwardTimeoutMs(m, this.o.busTimeoutMs);
    this.o.bus.request<unknown>(Subjects.device(imei), m, { timeoutMs }).then(
      (a) => {
        if (isAnswer(a)) ex.respond(a.status, a.body, a.close === true);
        else this.busy(ex, new GatewayError('bus.bad_message', 'Bad answer to a forwarded poll request.'));
      },
      (err) => {
        const code = toGatewayError(err).code;
        if (code === 'bus.no_responders' && retries < NO_RESPONDER_RETRIES && !ex.aborted) {
          setTimeout(() => this.ask(imei, ex, m, retries + 1), NO_RESPONDER_RETRY_MS);
        } else if (code === 'bus.no_responders' || code === 'auth.resume_failed') {
          this.o.serve(ex);
        } else {
          this.busy(ex, err);
        }
      },
    );
  }

  /**
   * The holder did not answer in time (overloaded, or it just exited): the
   * device is told to come back (retryable), not to start afresh. A POST's
   * frames may or may not have been taken; the SDK resends its requests after
   * it resumes, and the gateway answers a repeated id from memory.
   */
  private busy(ex: PollExchange, err: unknown): void {
    this.o.logger.warn({ code: toGatewayError(err).code }, 'forwarded poll request not answered');
    const frame = errorFrame('session.busy', 'The session is busy elsewhere; resume again shortly.', 1000);
    ex.respond(503, encodeBatch([frame]));
  }

  /** A request another edge forwarded, for a session held here: served as if it had landed here. */
  serve(m: PollMessage): Promise<PollAnswer> {
    return new Promise<PollAnswer>((resolve) => {
      this.o.serve(new ForwardedExchange(m, resolve));
    });
  }
}
