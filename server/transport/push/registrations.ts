/**
 * A device's wake-up channels (issue 14): sub-database `push.reg` of the
 * node's TransportStorage, keyed [deviceId, registrationId], and in cluster
 * mode the shared table `push_reg` (PairRecords.share), so that whichever
 * transport serves the device finds them, and they survive restarts.
 *
 * The id is derived from the endpoint: registering the same subscription
 * again (a handset that does not know whether its first try got through)
 * answers the same id and rewrites the keys, never a second channel.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { PairRecords } from '../kit/pair-records.ts';
import type { TransportStorage } from '../kit/transport-storage.ts';

/** A Web Push subscription (RFC 8030, keys of RFC 8291), as the browser's PushSubscription.toJSON() gives it. */
export interface WebPushRegistration {
  kind: 'webpush';
  endpoint: string;
  /** The user agent's ECDH public key (P-256, uncompressed, base64url). */
  p256dh: string;
  /** The 16-byte authentication secret (base64url). */
  auth: string;
  /** Date.now() of the last register. */
  at: number;
}

export type PushRegistration = WebPushRegistration;

/** Version 1, the first: read with zod, as any record another node or release wrote. */
const storedV1 = z.object({
  v: z.literal(1),
  kind: z.literal('webpush'),
  endpoint: z.string().max(2048),
  p256dh: z.string().max(128),
  auth: z.string().max(64),
  at: z.number().finite(),
});

export function readPushRegistration(raw: unknown): PushRegistration | undefined {
  const parsed = storedV1.safeParse(raw);
  if (!parsed.success) return undefined;
  const { v: _v, ...record } = parsed.data;
  return record;
}

/** The registration id of an endpoint: stable, so a register sent twice is one channel. */
export function registrationId(endpoint: string): string {
  return `w${createHash('sha256').update(endpoint).digest('base64url').slice(0, 16)}`;
}

/** Keyed [deviceId, registrationId]. */
export class PushRegistrations extends PairRecords<PushRegistration> {
  constructor(storage: TransportStorage) {
    super(storage, 'push.reg', { version: 1, read: readPushRegistration, at: (r) => r.at });
  }
}
