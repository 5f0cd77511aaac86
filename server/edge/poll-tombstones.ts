/**
 * The last frame (fatal Error or Bye) of a long-poll carrier that ended while
 * no GET was held (SPEC.md §4.2): a long-poll device learns why only from its
 * next request, so the frame is kept for it, by session id, for one silence
 * window. Only a request with the session's resume token may take it.
 */
import { sameSecret } from './auth.ts';

/** Most tombstones kept; the oldest goes first. */
export const MAX_TOMBSTONES = 10_000;

interface Tombstone {
  token: string;
  status: number;
  frame: Uint8Array;
  at: number;
}

export class PollTombstones {
  /** Insertion order is age order: expiry stops at the first young one. */
  private readonly byId = new Map<string, Tombstone>();

  get size(): number {
    return this.byId.size;
  }

  keep(sessionId: string, token: string, status: number, frame: Uint8Array, at: number): void {
    if (this.byId.size >= MAX_TOMBSTONES) {
      const oldest = this.byId.keys().next().value as string;
      this.byId.delete(oldest);
    }
    this.byId.set(sessionId, { token, status, frame, at });
  }

  /** The frame kept for this session, once, when the token is the session's. */
  take(sessionId: string, token: string): { status: number; frame: Uint8Array } | undefined {
    const t = this.byId.get(sessionId);
    if (t === undefined || !sameSecret(t.token, token)) return undefined;
    this.byId.delete(sessionId);
    return t;
  }

  /**
   * The session continues on a new long-poll carrier: poll requests carry only
   * the session headers, so the frame kept for the old one must not end the new one.
   */
  forget(sessionId: string): void {
    this.byId.delete(sessionId);
  }

  /** Drops those kept longer than `maxAgeMs`. */
  expire(now: number, maxAgeMs: number): void {
    for (const [id, t] of this.byId) {
      if (now - t.at <= maxAgeMs) break;
      this.byId.delete(id);
    }
  }

  clear(): void {
    this.byId.clear();
  }
}
