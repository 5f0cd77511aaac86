/**
 * The drain hand-over (why a push: handoff.ts header). An edge that drains
 * offers its sessions, in batches, to one surviving edge (Subjects.edgeHandover,
 * queue group: any one edge that still serves); the survivor claims each
 * offered session from it over the device subject, as a Resume would, and
 * answers with the ids it took. The draining edge stops listening for offers
 * first (it must not be its own survivor), and an edge that drains itself
 * refuses offers with session.draining, so that the offer goes to another.
 *
 * An offer is bytes from another node: checked in full before anything is
 * claimed (bus.bad_message otherwise).
 */
import type { Logger } from 'pino';
import { GatewayError, toGatewayError } from '../../device-protocol/errors.ts';
import { type Bus, type BusMessage, Subjects, type Subscription } from '../bus/bus.ts';
import type { DeviceSession } from './device-session.ts';
import { DEVICE_QUEUE } from './edge-messages.ts';
import { CLAIM_PATIENCE } from './handoff.ts';

/** Sessions per offer: one claim each, all at once on the survivor. */
export const OFFER_BATCH = 128;
/** An offer that reached an edge draining itself is made again (the queue group picks anew). */
const OFFER_ATTEMPTS = 6;

export interface OfferedSession {
  imei: string;
  sessionId: string;
  resumeToken: string;
}

/** Draining edge → survivor on Subjects.edgeHandover. */
export interface HandoverOffer {
  type: 'offer';
  v: 1;
  byNode: string;
  sessions: OfferedSession[];
}

export interface HandoverReply {
  /** Ids of the offered sessions the survivor now holds. */
  taken: string[];
}

/** What the hand-over needs from its edge. */
export interface DrainHandoverHost {
  readonly instanceId: string;
  readonly draining: boolean;
  readonly closed: boolean;
  /** The sessions held here now (the ones still to hand over). */
  sessions(): Iterable<DeviceSession>;
  /** HandOff.adopt: claims an offered session; false when it was not taken. */
  adopt(imei: string, sessionId: string, resumeToken: string): Promise<boolean>;
}

export interface HandoverOutcome {
  /** Sessions a survivor took. */
  handedOver: number;
  /** Sessions still here (no survivor, or it did not take them in time). */
  left: number;
  /** Whether any other edge answered an offer (false: this edge is the last one). */
  survivor: boolean;
}

/** Checks an offer from the bus; bus.bad_message when it is not one. */
export function parseOffer(data: unknown): HandoverOffer {
  const bad = (why: string) => new GatewayError('bus.bad_message', `Bad hand-over offer: ${why}.`);
  if (data === null || typeof data !== 'object') throw bad('not an object');
  const o = data as Record<string, unknown>;
  if (o.type !== 'offer' || o.v !== 1) throw bad('unknown type or version');
  if (typeof o.byNode !== 'string' || o.byNode.length === 0) throw bad('byNode');
  if (!Array.isArray(o.sessions) || o.sessions.length > OFFER_BATCH) throw bad('sessions');
  const sessions: OfferedSession[] = [];
  for (const e of o.sessions as unknown[]) {
    const r = e as Record<string, unknown> | null;
    if (
      r === null ||
      typeof r !== 'object' ||
      typeof r.imei !== 'string' ||
      typeof r.sessionId !== 'string' ||
      typeof r.resumeToken !== 'string' ||
      r.imei.length === 0 ||
      r.imei.length > 64 ||
      r.sessionId.length === 0 ||
      r.sessionId.length > 128 ||
      r.resumeToken.length > 256 ||
      // The IMEI becomes part of a subject name.
      /[\s.*>]/.test(r.imei)
    ) {
      throw bad('a session entry');
    }
    sessions.push({ imei: r.imei, sessionId: r.sessionId, resumeToken: r.resumeToken });
  }
  return { type: 'offer', v: 1, byNode: o.byNode, sessions };
}

export class DrainHandover {
  private sub: Subscription | undefined;

  constructor(
    private readonly host: DrainHandoverHost,
    private readonly o: { bus: Bus; busTimeoutMs: number; logger: Logger },
  ) {}

  /** Takes offers from draining edges (until stopListening). */
  listen(): void {
    this.sub = this.o.bus.subscribe(Subjects.edgeHandover, (msg) => this.offered(msg), {
      queue: DEVICE_QUEUE,
    });
  }

  stopListening(): void {
    this.sub?.unsubscribe();
    this.sub = undefined;
  }

  /** An offer from a draining edge: claim every session of it. */
  async offered(msg: BusMessage): Promise<HandoverReply> {
    const offer = parseOffer(msg.data);
    if (this.host.draining || this.host.closed || offer.byNode === this.host.instanceId) {
      throw new GatewayError('session.draining', 'This edge drains too; offer the sessions elsewhere.', {
        retryable: true,
      });
    }
    const results = await Promise.all(
      offer.sessions.map((s) => this.host.adopt(s.imei, s.sessionId, s.resumeToken)),
    );
    const taken = offer.sessions.filter((_, i) => results[i] === true).map((s) => s.sessionId);
    this.o.logger.info(
      { from: offer.byNode, offered: offer.sessions.length, taken: taken.length },
      'sessions adopted from a draining edge',
    );
    return { taken };
  }

  /**
   * Offers every session held here to survivors until none is left, no other
   * edge answers, or `deadline` (on `now`) passes.
   */
  async handOverAll(now: () => number, deadline: number): Promise<HandoverOutcome> {
    this.stopListening();
    let handedOver = 0;
    let survivor = false;
    let refusals = 0;
    while (now() < deadline) {
      const batch: OfferedSession[] = [];
      for (const s of this.host.sessions()) {
        if (s.ended) continue;
        batch.push({ imei: s.imei, sessionId: s.id, resumeToken: s.resumeToken });
        if (batch.length === OFFER_BATCH) break;
      }
      if (batch.length === 0) break;
      const offer: HandoverOffer = { type: 'offer', v: 1, byNode: this.host.instanceId, sessions: batch };
      let reply: HandoverReply;
      try {
        reply = await this.o.bus.request<HandoverReply>(Subjects.edgeHandover, offer, {
          timeoutMs: Math.max(1, Math.min(this.o.busTimeoutMs * CLAIM_PATIENCE, deadline - now())),
        });
      } catch (err) {
        const code = toGatewayError(err).code;
        if (code === 'bus.no_responders') break;
        if (code === 'session.draining' && ++refusals < OFFER_ATTEMPTS) continue;
        this.o.logger.warn({ code }, 'sessions not handed over');
        break;
      }
      survivor = true;
      const taken = Array.isArray(reply?.taken) ? reply.taken.length : 0;
      handedOver += taken;
      // A survivor that took none of a batch (each went elsewhere or failed): do not offer it forever.
      if (taken === 0 && this.stillHeld(batch)) break;
    }
    let left = 0;
    for (const s of this.host.sessions()) if (!s.ended) left++;
    return { handedOver, left, survivor };
  }

  private stillHeld(batch: OfferedSession[]): boolean {
    const ids = new Set(batch.map((b) => b.sessionId));
    for (const s of this.host.sessions()) if (!s.ended && ids.has(s.id)) return true;
    return false;
  }
}
