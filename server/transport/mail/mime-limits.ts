/**
 * How complex a message's MIME structure may be for the gateway to read it
 * (issue #11): a sender controls it, and a 3,000-level nesting or 50,000
 * parts must cost a bounded amount of work and end in a typed answer. Past
 * these limits a message stays listed (no preview, no attachment count) and
 * mail.body and mail.attachment answer mail.too_complex, never mail.not_found.
 *
 * imapflow drops a BODYSTRUCTURE nested deeper than its own limit (100 list
 * levels) and keeps the message: a message without its structure is too
 * complex by the same rule. Pure functions: they run in the MIME workers too.
 */
import { GatewayError } from '../../../device-protocol/errors.ts';

export const MIME_LIMITS = {
  /** Nodes of the structure, multipart containers included. */
  parts: 1000,
  /** Multipart (and message/rfc822) levels. */
  depth: 32,
} as const;

interface StructureNode {
  childNodes?: StructureNode[];
}

/** Whether `root` is within MIME_LIMITS; the walk stops at the first node past them (no recursion). */
export function structureWithinLimits(root: StructureNode | undefined): boolean {
  if (!root) return false;
  let nodes = 0;
  const stack: [StructureNode, number][] = [[root, 0]];
  for (let top = stack.pop(); top !== undefined; top = stack.pop()) {
    const [node, depth] = top;
    if (++nodes > MIME_LIMITS.parts || depth > MIME_LIMITS.depth) return false;
    for (const child of node.childNodes ?? []) stack.push([child, depth + 1]);
    if (stack.length > MIME_LIMITS.parts) return false;
  }
  return true;
}

/** The answer for a message past the limits; `busy`: the MIME workers could not take it now (retryable). */
export function tooComplex(field = 'uid', busy = false): GatewayError {
  return busy
    ? new GatewayError(
        'mail.too_complex',
        'The gateway could not read the message structure now; retry later.',
        {
          field,
          retryable: true,
          retryAfterMs: 5000,
        },
      )
    : new GatewayError(
        'mail.too_complex',
        `The message has more than ${MIME_LIMITS.parts} MIME parts or more than ${MIME_LIMITS.depth} levels of nesting.`,
        { field },
      );
}
