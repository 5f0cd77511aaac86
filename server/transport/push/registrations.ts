/**
 * A device's wake-up channels (issue 14): sub-database `push.reg` of the
 * node's TransportStorage, keyed [deviceId, registrationId], and in cluster
 * mode the shared table `push_reg` (PairRecords.share), so that whichever
 * transport serves the device finds them, and they survive restarts.
 *
 * The id is derived from what names the channel (the Web Push endpoint, the
 * FCM token, the APNs topic and token): registering the same channel again
 * (a handset that does not know whether its first try got through) answers
 * the same id and rewrites the rest, never a second channel.
 *
 * Versions: 1 (the first release) held Web Push subscriptions only; 2 adds
 * the kinds fcm and apns, and later sms (a new member of the union: a node
 * of the release before finds an sms record unreadable and keeps it for the
 * nodes that read it, as PairRecords keeps every record it cannot read).
 * Both versions read; put writes 2. A record of version 2 may carry `usedAt`
 * (when a wake-up through it last went through, written at most once a day:
 * the expiry of unused channels, index.ts); a reader without it ignores it.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { PairRecords } from '../kit/pair-records.ts';
import type { TransportStorage } from '../kit/transport-storage.ts';

/** What every kind records of its use: expiry (index.ts) runs from the later of the two. */
interface Used {
  /** Date.now() of the last register. */
  at: number;
  /** When a push service last accepted a wake-up through it (recorded at most once a day). */
  usedAt?: number;
}

/** A Web Push subscription (RFC 8030, keys of RFC 8291), as the browser's PushSubscription.toJSON() gives it. */
export interface WebPushRegistration extends Used {
  kind: 'webpush';
  endpoint: string;
  /** The user agent's ECDH public key (P-256, uncompressed, base64url). */
  p256dh: string;
  /** The 16-byte authentication secret (base64url). */
  auth: string;
}

/** An FCM registration token (what FirebaseMessaging.getToken() gives the app). */
export interface FcmRegistration extends Used {
  kind: 'fcm';
  token: string;
}

/** An APNs device token (hex) and the app's bundle id it was issued for (the apns-topic). */
export interface ApnsRegistration extends Used {
  kind: 'apns';
  token: string;
  topic: string;
}

/** A phone number for SMS wake-ups over SMPP (the last resort: index.ts). */
export interface SmsRegistration extends Used {
  kind: 'sms';
  /** E.164 with its plus: `+` and 8 to 15 digits, the first not 0. */
  msisdn: string;
}

export type PushRegistration = WebPushRegistration | FcmRegistration | ApnsRegistration | SmsRegistration;
export type PushKindOf<K extends PushRegistration['kind']> = Extract<PushRegistration, { kind: K }>;

/** Bounds of what a handset may register (methods.ts) and of what a stored record may hold. */
export const FCM_TOKEN = z
  .string()
  .min(1)
  .max(4096)
  .regex(/^[\x21-\x7e]+$/, { error: 'must be printable ASCII without spaces' });
export const APNS_TOKEN = z
  .string()
  .regex(/^(?:[0-9a-fA-F]{2}){32,100}$/, { error: 'must be 64 to 200 hex digits' })
  .transform((s) => s.toLowerCase());
/** E.164 (ITU-T E.164: at most 15 digits, country code first, never 0); 8 digits at least for a mobile. */
export const MSISDN = z.string().regex(/^\+[1-9][0-9]{7,14}$/, {
  error: 'must be an E.164 number: + and 8 to 15 digits',
});
/** A bundle id (reverse DNS), with the suffixes APNs topics may carry (`.voip`, `.complication`). */
export const APNS_TOPIC = z
  .string()
  .max(255)
  .regex(/^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$/, { error: 'must be a bundle id such as com.example.app' });

const usedFields = { at: z.number().finite(), usedAt: z.number().finite().optional() };

const webPushFields = {
  kind: z.literal('webpush'),
  endpoint: z.string().max(2048),
  p256dh: z.string().max(128),
  auth: z.string().max(64),
  ...usedFields,
};

/** Version 1, the first: Web Push only. */
const storedV1 = z.object({ v: z.literal(1), ...webPushFields });

/** Version 2: every kind. */
const storedV2 = z.discriminatedUnion('kind', [
  z.object({ v: z.literal(2), ...webPushFields }),
  z.object({ v: z.literal(2), kind: z.literal('fcm'), token: FCM_TOKEN, ...usedFields }),
  z.object({ v: z.literal(2), kind: z.literal('apns'), token: APNS_TOKEN, topic: APNS_TOPIC, ...usedFields }),
  z.object({ v: z.literal(2), kind: z.literal('sms'), msisdn: MSISDN, ...usedFields }),
]);

/** Read with zod, as any record another node or release wrote; undefined when unreadable. */
export function readPushRegistration(raw: unknown): PushRegistration | undefined {
  const parsed = (raw as { v?: unknown } | null)?.v === 1 ? storedV1.safeParse(raw) : storedV2.safeParse(raw);
  if (!parsed.success) return undefined;
  const { v: _v, ...record } = parsed.data;
  if (record.usedAt === undefined) delete record.usedAt;
  return record as PushRegistration;
}

const hashed = (prefix: string, text: string) =>
  `${prefix}${createHash('sha256').update(text).digest('base64url').slice(0, 16)}`;

/** The registration id of an endpoint: stable, so a register sent twice is one channel. */
export function registrationId(endpoint: string): string {
  return hashed('w', endpoint);
}

/**
 * The id of any registration: `w…` Web Push (by endpoint), `f…` FCM (token), `a…` APNs (topic and
 * token), `s…` SMS (number).
 */
export function channelId(r: PushRegistration): string {
  if (r.kind === 'webpush') return registrationId(r.endpoint);
  if (r.kind === 'fcm') return hashed('f', r.token);
  if (r.kind === 'sms') return hashed('s', r.msisdn);
  return hashed('a', `${r.topic} ${r.token}`);
}

/** When the channel was last registered or used: what it expires from. */
export const lastUse = (r: PushRegistration) => Math.max(r.at, r.usedAt ?? 0);

/** Keyed [deviceId, registrationId]. */
export class PushRegistrations extends PairRecords<PushRegistration> {
  constructor(storage: TransportStorage) {
    super(storage, 'push.reg', { version: 2, read: readPushRegistration, at: lastUse });
  }
}
