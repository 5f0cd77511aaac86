/**
 * Subject rules, NATS style, checked the same way by every bus so that a
 * subject that works in one process also works over NATS: dot-separated
 * non-empty tokens without whitespace; `*` (one token) and `>` (the rest,
 * last token only) on the subscribe side only.
 */
import { GatewayError } from '../../device-protocol/errors.ts';

export function hasWildcard(subject: string): boolean {
  return subject.includes('*') || subject.includes('>');
}

/** Returns the tokens of a valid subscription subject; throws GatewayError('bus.bad_message') otherwise. */
export function checkSubscribeSubject(subject: string): string[] {
  if (typeof subject !== 'string' || subject.length === 0) {
    throw new GatewayError('bus.bad_message', 'A bus subject must be a non-empty string.');
  }
  const tokens = subject.split('.');
  tokens.forEach((token, i) => {
    if (token.length === 0 || /\s/.test(token)) {
      throw new GatewayError('bus.bad_message', `Bad bus subject "${subject}".`);
    }
    if ((token.includes('*') || token.includes('>')) && token.length > 1) {
      throw new GatewayError('bus.bad_message', `Bad wildcard in bus subject "${subject}".`);
    }
    if (token === '>' && i !== tokens.length - 1) {
      throw new GatewayError('bus.bad_message', `'>' must be the last token of "${subject}".`);
    }
  });
  return tokens;
}

/** Tokens without wildcards or whitespace (a space would split a NATS protocol line). */
const PUBLISH_SUBJECT = /^[^\s.*>]+(\.[^\s.*>]+)*$/;

/** Throws GatewayError('bus.bad_message') unless the subject is a valid one to publish or request to. */
export function checkPublishSubject(subject: string): void {
  if (typeof subject !== 'string' || !PUBLISH_SUBJECT.test(subject)) {
    throw new GatewayError('bus.bad_message', `Bad bus subject to publish to: "${String(subject)}".`);
  }
}

/** Does a subscription pattern (as tokens) match a subject (as tokens)? */
export function subjectMatches(pattern: string[], subject: string[]): boolean {
  const n = pattern.length;
  for (let i = 0; i < n; i++) {
    const p = pattern[i];
    if (p === '>') return subject.length > i;
    if (i >= subject.length) return false;
    if (p !== '*' && p !== subject[i]) return false;
  }
  return subject.length === n;
}
