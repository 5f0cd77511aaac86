/**
 * The service worker of a browser handset (examples/web-push/README.md): it
 * turns each mmgw wake-up into a notification (a subscription made with
 * `userVisibleOnly: true`, as browsers require, must show one for every
 * push), tells the app's open windows so that they reconnect at once, and on
 * a click focuses the app or opens it.
 */
import { readWake, WAKE_MESSAGE, wakeNotification } from './wake-notification.ts';

declare const self: ServiceWorkerGlobalScope;

self.addEventListener('install', () => {
  void self.skipWaiting();
});

self.addEventListener('activate', (event) => {
  event.waitUntil(self.clients.claim());
});

self.addEventListener('push', (event) => {
  let data: unknown;
  try {
    data = event.data?.json();
  } catch {
    data = undefined; // not JSON: not ours; still shown, as the browser demands
  }
  event.waitUntil(onWake(readWake(data)));
});

async function onWake(wake: ReturnType<typeof readWake>): Promise<void> {
  const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
  for (const client of windows) client.postMessage({ type: WAKE_MESSAGE, wake: wake ?? null });
  const { title, options } = wakeNotification(wake);
  await self.registration.showNotification(title, options);
}

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  event.waitUntil(openApp());
});

/** Focuses a window of the app (its scope), or opens one. */
async function openApp(): Promise<void> {
  const scope = self.registration.scope;
  const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
  const open = windows.find((c) => c.url.startsWith(scope));
  if (open) await open.focus();
  else await self.clients.openWindow(scope);
}
