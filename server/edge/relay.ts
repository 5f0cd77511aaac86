/**
 * The request relay (SPEC.md §5, Requests): a device's Request goes over the
 * bus to the transport node the router picks for the device, and its answer
 * comes back as a sequenced Response or Error. Ids are remembered per
 * session, so a repeat of an answered id is answered again from memory and a
 * repeat of one in progress waits for the answer that is coming. A session
 * that moved to another edge meanwhile gets its answers passed on there.
 */
import type { Logger } from 'pino';
import {
  type ErrorCode,
  GatewayError,
  isErrorCode,
  presentError,
  toGatewayError,
} from '../../device-protocol/errors.ts';
import { type Frame, Kind, type Request, type Value } from '../../device-protocol/messages.ts';
import { type Bus, type DeviceRouter, Subjects } from '../bus/bus.ts';
import type { TransportRequest } from '../transport/types.ts';
import type { Carrier } from './carriers.ts';
import type { DeviceSession } from './device-session.ts';
import type { AnswerMessage } from './edge-messages.ts';
import { MAX_INFLIGHT_REQUESTS } from './limits.ts';

/** What the relay needs from the edge. */
export interface RelayHost {
  /** Sequences a frame on the session (Sequencer.append): its seq, or a throw when it cannot be. */
  appendSequenced(s: DeviceSession, frame: Frame): number;
}

export interface RelayOptions {
  bus: Bus;
  router: DeviceRouter;
  /** Bus timeout of a request to the transport node. */
  requestTimeoutMs: number;
  /** Bus timeout of an answer passed on to another edge. */
  busTimeoutMs: number;
  /** How long the requests of a transport that drained and left still wait for its answers (tests). */
  drainedAnswerMs?: number;
  logger: Logger;
}

/** What the device is told when a request failed: code, message, and whether the same id may be retried. */
export interface RequestFailure {
  code: ErrorCode;
  message: string;
  retryable: boolean;
}

/**
 * Turns a request's failure into what the device sees (the errors registry's
 * presentError): bus-level failures become request.timeout /
 * request.unavailable (retryable: the transport may answer a retry), other
 * server-internal codes become internal.
 */
export function requestFailure(g: GatewayError): RequestFailure {
  const p = presentError(g, 'handset');
  return { code: p.code, message: p.message, retryable: p.retryable };
}

/** How long the requests of a transport that drained and left still wait for its answers. */
const DRAINED_ANSWER_MS = 12_000;
/** Attempts at a request that found nobody listening (bus.no_responders), over the nodes picked in turn. */
const MAX_ROUTE_ATTEMPTS = 4;
const REROUTE_PAUSE_MS = 250;

export class RequestRelay {
  /** Requests sent to a transport and not answered yet, over all sessions. */
  private pending = 0;
  private onIdle: (() => void)[] = [];
  /** Per transport node, the requests waiting for it: failed at once when it leaves. */
  private readonly waiting = new Map<string, Set<(err: GatewayError) => void>>();
  private readonly stopWatching: () => void;

  constructor(
    private readonly host: RelayHost,
    private readonly o: RelayOptions,
  ) {
    // A transport that left (crashed, frozen past the TTL) answers nothing more: its requests get
    // the retryable request.unavailable now, and the device's retry goes to the node taking over,
    // instead of each waiting out its timeout. One that drained and stopped answers what it was
    // asked before it goes (it waits for them, CLOSE_WAIT_MS in server/transport/index.ts): its
    // requests keep waiting, up to DRAINED_ANSWER_MS, in case it died while stopping.
    this.stopWatching =
      o.router.onLeave?.((nodeId, left) => {
        // Taken out now: a request to the node once it is back is not one of these.
        const failing = this.waiting.get(nodeId);
        if (!failing) return;
        this.waiting.delete(nodeId);
        if (!left.draining) RequestRelay.fail(failing);
        else setTimeout(() => RequestRelay.fail(failing), o.drainedAnswerMs ?? DRAINED_ANSWER_MS).unref?.();
      }) ?? (() => {});
  }

  private static fail(failing: Set<(err: GatewayError) => void>): void {
    const err = new GatewayError('request.unavailable', 'The node serving it went away; retry.', {
      retryable: true,
      retryAfterMs: 0,
    });
    for (const fail of failing) fail(err);
    failing.clear();
  }

  close(): void {
    this.stopWatching();
  }

  /** The bus request, or a rejection once `nodeId` leaves the membership. */
  private untilLeft<T>(nodeId: string, asked: Promise<T>): Promise<T> {
    let set = this.waiting.get(nodeId);
    if (!set) this.waiting.set(nodeId, (set = new Set()));
    const failing = set;
    let fail!: (err: GatewayError) => void;
    const left = new Promise<never>((_, reject) => (fail = reject));
    failing.add(fail);
    return Promise.race([asked, left]).finally(() => {
      failing.delete(fail);
      if (failing.size === 0 && this.waiting.get(nodeId) === failing) this.waiting.delete(nodeId);
    });
  }

  /**
   * Resolves once no request is waiting for its transport, or after `ms`. A
   * draining edge waits for this before it hands its sessions over, so that
   * the answers travel in the replay buffers rather than behind them.
   */
  settled(ms: number): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.onIdle.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private settledOne(): void {
    if (--this.pending > 0) return;
    const waiting = this.onIdle;
    this.onIdle = [];
    for (const done of waiting) done();
  }

  /** A Request frame from the device on carrier `c` of session `s`. */
  request(c: Carrier, s: DeviceSession, r: Request): void {
    const answered = s.answerSeq(r.id);
    if (answered !== undefined) {
      c.resend(answered);
      return;
    }
    if (s.isInflight(r.id)) return; // the answer will come once
    if (s.inflightCount >= MAX_INFLIGHT_REQUESTS) {
      this.answerError(
        s,
        r.id,
        new GatewayError('request.unavailable', 'Too many requests in progress.', {
          retryable: true,
          retryAfterMs: 1000,
        }),
      );
      return;
    }
    const nodeId = this.o.router.pick(s.imei);
    if (nodeId === undefined) {
      this.answerError(
        s,
        r.id,
        new GatewayError('request.unavailable', undefined, { retryable: true, retryAfterMs: 1000 }),
      );
      return;
    }
    s.startRequest(r.id);
    const id = r.id;
    this.pending++;
    this.ask(s, r, nodeId, Date.now() + this.o.requestTimeoutMs, 1)
      .then(
        (body) => this.answer(s, id, body),
        (err) => {
          s.finishRequest(id);
          this.answerError(s, id, err);
        },
      )
      .finally(() => this.settledOne());
  }

  /**
   * Asks `nodeId`. Nobody listening there (a transport that stopped, its
   * leave not heard yet) means nobody took the request: it goes to the node
   * the router picks then, without the device seeing an error, while the
   * time allowed lasts.
   */
  private async ask(
    s: DeviceSession,
    r: Request,
    nodeId: string,
    deadline: number,
    attempt: number,
  ): Promise<Value | undefined> {
    const budgetMs = Math.max(1, deadline - Date.now());
    const tr: TransportRequest = {
      deviceId: s.imei,
      sessionId: s.id,
      id: r.id,
      method: r.method,
      ...(r.body === undefined ? {} : { body: r.body }),
      ...(s.caps === undefined ? {} : { caps: s.caps }),
      budgetMs,
    };
    try {
      return await this.untilLeft(
        nodeId,
        this.o.bus.request<Value | undefined>(Subjects.transportRequest(nodeId), tr, { timeoutMs: budgetMs }),
      );
    } catch (err) {
      if (!(err instanceof GatewayError) || err.code !== 'bus.no_responders' || attempt >= MAX_ROUTE_ATTEMPTS)
        throw err;
      // The same pick again: wait for the membership to catch up (a heartbeat is one second).
      let next = this.o.router.pick(s.imei);
      if (next === nodeId) {
        await new Promise((resolve) => setTimeout(resolve, REROUTE_PAUSE_MS * attempt));
        next = this.o.router.pick(s.imei);
      }
      if (next === undefined || s.ended || Date.now() + REROUTE_PAUSE_MS >= deadline) throw err;
      return this.ask(s, r, next, deadline, attempt + 1);
    }
  }

  /** An answer passed on by the edge that started the request before the session moved here. */
  answerPassedOn(s: DeviceSession, m: AnswerMessage): void {
    if (typeof m.id !== 'string') throw new GatewayError('bus.bad_message', 'An answer needs an id.');
    if (m.error === undefined) {
      this.answer(s, m.id, m.body as Value | undefined);
      return;
    }
    const code = isErrorCode(m.error.code) ? m.error.code : 'internal';
    this.answerError(
      s,
      m.id,
      new GatewayError(code, String(m.error.message), {
        retryable: m.error.retryable === true,
        ...(typeof m.error.retryAfterMs === 'number' ? { retryAfterMs: m.error.retryAfterMs } : {}),
      }),
    );
  }

  private answer(s: DeviceSession, id: string, body: Value | undefined): void {
    s.finishRequest(id);
    if (s.ended) {
      // Moved to another edge meanwhile: the answer follows it. Otherwise the device resends
      // the request in its next session.
      if (s.moved)
        this.passAnswerOn(s, { type: 'answer', sessionId: s.id, id, ...(body == null ? {} : { body }) });
      return;
    }
    if (s.answerSeq(id) !== undefined) return; // answered already (an answer passed on from another edge)
    let seq: number;
    try {
      seq = this.host.appendSequenced(s, {
        kind: Kind.Response,
        seq: 0,
        id,
        ...(body == null ? {} : { body }),
      });
    } catch (err) {
      if (!s.ended) this.answerError(s, id, err);
      return;
    }
    s.rememberAnswer(id, seq);
  }

  private answerError(s: DeviceSession, id: string, err: unknown): void {
    const g = toGatewayError(err);
    if (s.ended) {
      if (s.moved) {
        // Passed on as it is: the edge that now holds the session maps it for the device.
        const error = {
          code: g.code,
          message: g.message,
          retryable: g.retryable,
          ...(g.retryAfterMs === undefined ? {} : { retryAfterMs: g.retryAfterMs }),
        };
        this.passAnswerOn(s, { type: 'answer', sessionId: s.id, id, error });
      }
      return;
    }
    if (s.answerSeq(id) !== undefined) return;
    const failure = requestFailure(g);
    let seq: number;
    try {
      seq = this.host.appendSequenced(s, {
        kind: Kind.Error,
        seq: 0,
        id,
        code: failure.code,
        message: failure.message,
        fatal: false,
        ...(g.retryAfterMs === undefined ? {} : { retryAfterMs: g.retryAfterMs }),
      });
    } catch {
      return;
    }
    // A retryable failure is not remembered: the device's retry with the same id runs again.
    if (!failure.retryable) s.rememberAnswer(id, seq);
  }

  private passAnswerOn(s: DeviceSession, m: AnswerMessage): void {
    this.o.bus.request(Subjects.device(s.imei), m, { timeoutMs: this.o.busTimeoutMs }).catch((err) => {
      this.o.logger.debug(
        { imei: s.imei, sessionId: s.id, code: toGatewayError(err).code },
        'answer for a moved session not delivered',
      );
    });
  }
}
