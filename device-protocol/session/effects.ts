/**
 * The effect list of one step of the session state machine
 * (handset-session.ts) and the set of its armed timers. The pieces of the
 * machine get the narrow parts of this they need (`TimerEffects`,
 * `CallEffects`), so that none of them can reach the carriers or the others.
 */

import type { GatewayError } from '../errors.ts';
import type { EmitEffect, HandsetEvents, SessionEffect, TimerKey } from '../handset-types.ts';
import type { Frame } from '../messages.ts';

/** Arming and cancelling the session's timers. */
export interface TimerEffects {
  schedule(timer: TimerKey, at: number): void;
  cancel(timer: TimerKey): void;
  armed(timer: TimerKey): boolean;
}

/** Settling the application's calls and cancelling their timeouts. */
export interface CallEffects {
  schedule(timer: TimerKey, at: number): void;
  cancel(timer: TimerKey): void;
  resolve(call: number, value: unknown): void;
  reject(call: number, error: GatewayError): void;
}

export class SessionEffects implements TimerEffects, CallEffects {
  #out: SessionEffect[] = [];
  readonly #armed = new Set<TimerKey>();

  /** Starts the effect list of a new step and returns it. */
  begin(): SessionEffect[] {
    const out: SessionEffect[] = [];
    this.#out = out;
    return out;
  }

  /** Pushes an effect that has no helper (open, close). */
  push(effect: SessionEffect): void {
    this.#out.push(effect);
  }

  /** A timer fired: true when it was still armed (a cancelled or replaced one is stale). */
  fired(timer: TimerKey): boolean {
    return this.#armed.delete(timer);
  }

  armed(timer: TimerKey): boolean {
    return this.#armed.has(timer);
  }

  send(carrier: number, frame: Frame): void {
    this.#out.push({ type: 'send', carrier, frame });
  }

  close(carrier: number): void {
    this.#out.push({ type: 'close', carrier });
  }

  schedule(timer: TimerKey, at: number): void {
    this.#armed.add(timer);
    this.#out.push({ type: 'schedule', timer, at });
  }

  cancel(timer: TimerKey): void {
    if (this.#armed.delete(timer)) this.#out.push({ type: 'cancel', timer });
  }

  emit<K extends keyof HandsetEvents>(name: K, payload: HandsetEvents[K]): void {
    this.#out.push({ type: 'emit', name, payload } as EmitEffect);
  }

  resolve(call: number, value: unknown): void {
    this.#out.push({ type: 'resolve', call, value });
  }

  reject(call: number, error: GatewayError): void {
    this.#out.push({ type: 'reject', call, error });
  }
}
