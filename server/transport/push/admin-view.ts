/**
 * The operators' view of a device's wake-up channels (issue 14): the admin
 * node asks the device's transport node (the one its router picks, as the
 * edge does) on Subjects.pushAdmin(nodeId) to list them or remove one. In a
 * cluster that node reads the shared table `push_reg`; on one node it is the
 * only transport, whose lmdb holds them; so the admin never opens the
 * transport's storage itself.
 *
 * What leaves the transport is redacted here, before it is on the bus: a
 * channel's name is a credential (whoever holds an FCM or APNs token or a Web
 * Push endpoint with its keys can push to the phone; a phone number is
 * personal data). The view says its kind, id, when it was registered, and
 * enough to tell channels apart: the Web Push endpoint's origin (the push
 * service), the last 6 characters of an FCM or APNs token (with the APNs
 * topic, the app's bundle id), the phone number with its middle digits
 * masked. Never the p256dh/auth keys.
 */
import { z } from 'zod';
import { GatewayError } from '../../../device-protocol/errors.ts';
import { type Bus, Subjects, type Subscription } from '../../bus/bus.ts';
import { parseInput } from '../kit/method-input.ts';
import type { PushRegistration, PushRegistrations } from './registrations.ts';

/** One channel as operators see it. */
export interface PushChannelView {
  id: string;
  kind: PushRegistration['kind'];
  /** Date.now() of the device's last register of it. */
  registeredAt: number;
  /** When a wake-up through it was last noted (at most once a day: expiry.ts); absent: none since registered. */
  usedAt?: number;
  /** What names the channel, redacted (see the module's comment). */
  channel: string;
}

/** The last `n` characters, after an ellipsis; all of it masked when it is that short. */
function tail(text: string, n: number): string {
  return text.length > n * 2 ? `…${text.slice(-n)}` : '…';
}

/** `+` and the first 3 digits, the last 2; every digit between them masked. */
export function maskMsisdn(msisdn: string): string {
  const digits = msisdn.replace(/^\+/, '');
  if (digits.length < 6) return `+${'*'.repeat(digits.length)}`;
  return `+${digits.slice(0, 3)}${'*'.repeat(digits.length - 5)}${digits.slice(-2)}`;
}

/** What names a channel, redacted: never a key, a whole token or a whole number. */
export function redactedChannel(r: PushRegistration): string {
  if (r.kind === 'webpush') return URL.canParse(r.endpoint) ? new URL(r.endpoint).origin : '(unreadable)';
  if (r.kind === 'fcm') return tail(r.token, 6);
  if (r.kind === 'apns') return `${tail(r.token, 6)} (${r.topic})`;
  return maskMsisdn(r.msisdn);
}

export function channelView(id: string, r: PushRegistration): PushChannelView {
  const view: PushChannelView = { id, kind: r.kind, registeredAt: r.at, channel: redactedChannel(r) };
  if (r.usedAt !== undefined) view.usedAt = r.usedAt;
  return view;
}

const deviceId = z.string().min(1).max(64);
const adminRequest = z.discriminatedUnion('op', [
  z.object({ op: z.literal('list'), deviceId }),
  z.object({ op: z.literal('remove'), deviceId, id: z.string().min(1).max(64) }),
]);
export type PushAdminRequest = z.infer<typeof adminRequest>;

/** The answers: `{items}` to a list, `{removed}` to a remove (push.not_found when there is none). */
export type PushAdminReply = { items: PushChannelView[] } | { removed: PushChannelView };

/** Answers the admin's requests about the devices' channels on this node's subject. */
export function servePushAdmin(bus: Bus, nodeId: string, registrations: PushRegistrations): Subscription {
  return bus.subscribe(Subjects.pushAdmin(nodeId), async (msg): Promise<PushAdminReply> => {
    const request = parseInput(adminRequest, msg.data, 'request');
    if (request.op === 'list') {
      const items = registrations.list(request.deviceId).map(({ id, record }) => channelView(id, record));
      return { items: items.sort((a, b) => a.registeredAt - b.registeredAt || (a.id < b.id ? -1 : 1)) };
    }
    const record = registrations.get(request.deviceId, request.id);
    if (record === undefined) throw new GatewayError('push.not_found', undefined, { field: 'id' });
    await registrations.remove(request.deviceId, request.id);
    return { removed: channelView(request.id, record) };
  });
}
