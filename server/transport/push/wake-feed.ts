/**
 * What the transport wakes a device for, from the events its pushers could
 * not give it (DevicePusher's undelivered listeners, kit/device-pusher.ts):
 * a chat message that found no session or only a detached one, and new mail
 * that its edge holds for a detached session (no carrier: the phone sleeps,
 * its session kept for a resume). New mail that found no session comes
 * through its INBOX watcher instead, which counts each message once however
 * often it is tried. Each carries the event's preview (sender, subject),
 * which the push service drops where the device's profile does not allow it.
 */
import type { UndeliveredListener } from '../kit/device-pusher.ts';
import type { WakeKind } from './coalescer.ts';
import { eventPreview, type WakePreview } from './preview.ts';

export function wakeFeed(
  wake: (deviceId: string, kind: WakeKind, n: number, preview?: WakePreview) => unknown,
): UndeliveredListener {
  return (deviceId, name, why, body) => {
    if (name === 'im.message' || name === 'im.m') wake(deviceId, 'chat', 1, eventPreview(name, body));
    else if (name === 'mail.new' && why === 'detached') wake(deviceId, 'mail', 1, eventPreview(name, body));
  };
}
