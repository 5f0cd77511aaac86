/**
 * Moving a live session to the other carrier kind (Handset.switch): a
 * candidate carrier opened beside the live one, promoted when it is
 * welcomed, dropped (the mode restored) when it is refused, closes or times
 * out, and the switch calls waiting for each kind.
 */

import type { CarrierCloseInfo, CarrierKind } from '../carriers/carrier.ts';
import { GatewayError } from '../errors.ts';
import type { TransportMode } from '../handset-types.ts';
import { type Frame, Kind, type Welcome } from '../messages.ts';
import type { CallEffects } from './effects.ts';
import { errorFromFrame } from './refusals.ts';

/** A carrier the session opened: its number in effects and inputs, its kind, its URL. */
export interface CarrierRef {
  id: number;
  kind: CarrierKind;
  /** Index into the gateway URLs. */
  url: number;
}

/** The carrier being opened to move a live session. */
export interface Candidate extends CarrierRef {
  /** Restored when the switch fails: a failed switch leaves things as they were. */
  previousMode: TransportMode;
}

export interface SwitchHost {
  readonly fx: CallEffects & { close(carrier: number): void };
  /** The transport mode the route follows: a failed switch restores it. */
  readonly route: { mode: TransportMode };
  now(): number;
  /** Opens a carrier of `kind` to URL `url`, the next attempt's if undefined (with the session's Resume). */
  open(kind: CarrierKind, url: number | undefined): Pick<CarrierRef, 'id' | 'url'>;
  /** The candidate was dropped: the host reconnects if the live carrier already left. */
  dropped(): void;
}

export class CarrierSwitch {
  readonly #host: SwitchHost;
  readonly #timeoutMs: number;
  #candidate?: Candidate;
  #waiters: Array<{ kind: CarrierKind; call: number }> = [];

  constructor(host: SwitchHost, timeoutMs: number) {
    this.#host = host;
    this.#timeoutMs = timeoutMs;
  }

  get candidate(): Candidate | undefined {
    return this.#candidate;
  }

  /** Call `call` waits until the session is on `kind`. */
  wait(kind: CarrierKind, call: number): void {
    this.#waiters.push({ kind, call });
  }

  /** Opens a candidate of `kind` to the live carrier's URL (the same gateway moves the session). */
  open(kind: CarrierKind, previousMode: TransportMode, url: number | undefined): void {
    if (this.#candidate !== undefined) {
      if (this.#candidate.kind === kind) return;
      previousMode = this.#candidate.previousMode;
      this.drop(new GatewayError('session.moved', 'another switch was requested'), false);
    }
    this.#host.fx.schedule('switch', this.#host.now() + this.#timeoutMs);
    const carrier = this.#host.open(kind, url);
    this.#candidate = { id: carrier.id, kind, url: carrier.url, previousMode };
  }

  /**
   * A frame on the candidate: its Welcome comes back for the host to promote
   * the candidate with (this forgets it); a refusal drops it.
   */
  onFrame(frame: Frame): { candidate: Candidate; welcome: Welcome } | undefined {
    const candidate = this.#candidate;
    if (candidate === undefined) return undefined;
    if (frame.kind === Kind.Welcome) {
      this.#host.fx.cancel('switch');
      this.#candidate = undefined;
      return { candidate, welcome: frame };
    }
    if (frame.kind === Kind.Error || frame.kind === Kind.Bye) this.drop(errorFromFrame(frame));
    return undefined;
  }

  onClose(info: CarrierCloseInfo): void {
    const kind = this.#candidate?.kind;
    if (kind === undefined) return;
    this.drop(
      info.error ??
        new GatewayError('request.unavailable', `cannot switch to ${kind}: ${info.reason}`, {
          retryable: true,
        }),
    );
  }

  /** The switch timer: the candidate got no Welcome in time. */
  onTimer(): void {
    const kind = this.#candidate?.kind;
    if (kind === undefined) return;
    this.drop(new GatewayError('request.timeout', `no Welcome on ${kind}`, { retryable: true }));
  }

  drop(err: GatewayError, restoreMode = true): void {
    const candidate = this.#candidate;
    if (candidate === undefined) return;
    this.#candidate = undefined;
    if (restoreMode) this.#host.route.mode = candidate.previousMode;
    this.#host.fx.cancel('switch');
    this.#host.fx.close(candidate.id);
    this.settle(candidate.kind, err);
    this.#host.dropped();
  }

  /** Forgets the candidate without settling anything (the session ends); returns its number. */
  forget(): number | undefined {
    const id = this.#candidate?.id;
    this.#candidate = undefined;
    return id;
  }

  /** Resolves (no error) or rejects the switch calls waiting for `kind`. */
  settle(kind: CarrierKind, err?: GatewayError): void {
    if (this.#waiters.length === 0) return;
    const rest: Array<{ kind: CarrierKind; call: number }> = [];
    for (const w of this.#waiters) {
      if (w.kind !== kind) rest.push(w);
      else if (err === undefined) this.#host.fx.resolve(w.call, undefined);
      else this.#host.fx.reject(w.call, err);
    }
    this.#waiters = rest;
  }

  /** Rejects every waiting switch call. */
  rejectAll(err: GatewayError): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) this.#host.fx.reject(w.call, err);
  }
}
