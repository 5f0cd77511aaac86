/**
 * The page side of a browser handset's wake-ups (examples/web-push/README.md):
 * asks the gateway for its VAPID public key, registers the service worker,
 * subscribes the browser's push service with that key, and registers the
 * subscription with the gateway. Call it at every start of the app: it reuses
 * the browser's subscription, replaces one made with another key, and the
 * registration again keeps the gateway from expiring the channel
 * (push.expireDays).
 */
import type { Handset } from '../../device-protocol/index.ts';
import { WAKE_MESSAGE, type WakePayload } from './wake-notification.ts';

export interface WakeupOptions {
  /** The service worker's script (wake-worker.ts, built), on the app's origin. */
  workerUrl: string;
  /** Called in an open window on every wake-up (null: a push that was no wake-up): reconnect now. */
  onWake?: (wake: WakePayload | null) => void;
}

/** The VAPID key as the gateway gives it (base64url) in the bytes PushManager.subscribe wants. */
export function vapidKeyBytes(key: string): Uint8Array<ArrayBuffer> {
  const base64 = key
    .replace(/-/g, '+')
    .replace(/_/g, '/')
    .padEnd(Math.ceil(key.length / 4) * 4, '=');
  const raw = atob(base64);
  const bytes = new Uint8Array(new ArrayBuffer(raw.length));
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return bytes;
}

function sameKey(a: ArrayBuffer | null, b: Uint8Array): boolean {
  if (a === null || a.byteLength !== b.byteLength) return false;
  const bytes = new Uint8Array(a);
  return bytes.every((x, i) => x === b[i]);
}

/** Subscribes this browser for the handset's wake-ups; resolves with the gateway's registration id. */
export async function enableWakeups(
  handset: Pick<Handset, 'pushVapidKey' | 'registerPush'>,
  options: WakeupOptions,
): Promise<string> {
  if (!('serviceWorker' in navigator) || !('PushManager' in window)) {
    throw new Error('this browser has no Web Push');
  }
  if ((await Notification.requestPermission()) !== 'granted') throw new Error('notifications not allowed');
  const key = vapidKeyBytes(await handset.pushVapidKey());
  await navigator.serviceWorker.register(options.workerUrl);
  const registration = await navigator.serviceWorker.ready;
  let subscription = await registration.pushManager.getSubscription();
  if (subscription && !sameKey(subscription.options.applicationServerKey, key)) {
    // Made with another gateway's key (or an old one): useless, the push service would refuse.
    await subscription.unsubscribe();
    subscription = null;
  }
  subscription ??= await registration.pushManager.subscribe({
    userVisibleOnly: true,
    applicationServerKey: key,
  });
  const { endpoint, keys } = subscription.toJSON();
  if (!endpoint || !keys?.p256dh || !keys.auth)
    throw new Error('the push service gave an incomplete subscription');
  const onWake = options.onWake;
  if (onWake) {
    navigator.serviceWorker.addEventListener('message', (event) => {
      if (event.data?.type === WAKE_MESSAGE) onWake(event.data.wake);
    });
  }
  return handset.registerPush({ endpoint, keys: { p256dh: keys.p256dh, auth: keys.auth } });
}
