/**
 * What the session does with the application's plugins (handset-plugin.ts):
 * their rewrites of a request's body and answer, their expansion of pushed
 * events (their caps join Hello's in identity.ts). Plugins are pure by contract, so
 * the state machine may call these inside a step.
 */

import type { HandsetPlugin } from '../handset-plugin.ts';
import type { HandsetPushEvent } from '../handset-types.ts';
import type { Value } from '../messages.ts';

/** Turns the wire form of an answer back into the form the application asked for. */
export type ExpandAnswer = (answer: Value | undefined) => Value | undefined;

/**
 * A request's body as the plugins put it on the wire, and the way back from
 * the wire form of its answer. Throws what a plugin throws.
 */
export function rewriteRequest(
  plugins: readonly HandsetPlugin[],
  method: string,
  body: Value | undefined,
): { body: Value | undefined; expand?: ExpandAnswer } {
  let expand: ExpandAnswer | undefined;
  for (const plugin of plugins) {
    const rewrite = plugin.request?.(method, body);
    if (rewrite === undefined) continue;
    if (rewrite.body !== undefined) body = rewrite.body;
    const next = rewrite.expandResponse;
    if (next === undefined) continue;
    // Undone in the reverse order: the first plugin's form is the outermost.
    const prev = expand;
    expand = prev === undefined ? next : (answer) => prev(next(answer));
  }
  return expand === undefined ? { body } : { body, expand };
}

/** The event as the application sees it: the plugins' documented form. */
export function pushEvent(
  plugins: readonly HandsetPlugin[],
  name: string,
  body: Value | undefined,
  seq: number,
): HandsetPushEvent {
  for (const plugin of plugins) {
    try {
      const expanded = plugin.expandEvent?.(name, body);
      if (expanded === undefined) continue;
      name = expanded.name;
      body = expanded.body;
    } catch {
      // A plugin that cannot read the body leaves it as it came.
    }
  }
  const event: HandsetPushEvent = { name, seq };
  if (body !== undefined) event.body = body;
  return event;
}
