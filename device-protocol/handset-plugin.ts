/**
 * Opt-in body encodings of the Handset SDK. A plugin asks for an encoding in
 * Hello caps, may rewrite the requests it knows before they go on the wire,
 * and turns what the gateway answers or pushes in that encoding back into the
 * documented form, so that the application sees the same shapes for fewer
 * bytes. The compact mail headers (mail-headers.ts) and the compact chat
 * forms (im-compact.ts) are the two the SDK uses by default.
 *
 * Plugins are pure (no I/O, no clock): the session state machine calls them
 * while it handles a request or a frame.
 */

import type { Capabilities, Value } from './messages.ts';

export interface HandsetPlugin {
  /**
   * Added to Hello caps: list fields (`encodings`, …) are joined with the
   * application's, without repeats; other fields fill in only what the
   * application left unset.
   */
  readonly caps?: Capabilities;
  /**
   * Called for every request before it is sent. Returns undefined to leave
   * it alone, or how it goes on the wire and how its answer comes back.
   */
  request?(method: string, body: Value | undefined): RequestRewrite | undefined;
  /**
   * The documented form of a pushed event, or undefined to hand it on as it
   * came (an event this plugin does not know, or not in its encoding).
   */
  expandEvent?(name: string, body: Value | undefined): { name: string; body?: Value } | undefined;
}

export interface RequestRewrite {
  /** The body to send instead; undefined sends the body as given. */
  body?: Value;
  /** Turns the answer to this request into what the application expects. */
  expandResponse?(answer: Value | undefined): Value | undefined;
}

/** A map Value (not a list, not bytes): the only body a plugin rewrites. */
export function isValueMap(v: unknown): v is { [key: string]: Value } {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}
