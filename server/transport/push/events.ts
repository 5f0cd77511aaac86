/**
 * The event name a handset shows for each push.* method's answer (the
 * JSON-lines vocabulary of `mmgw handset`, docs/handset-json.md). Its own
 * module, free of I/O imports, so that the handset CLI can use it without
 * loading web-push or lmdb.
 */
export const PUSH_RESPONSE_EVENTS: Record<string, string> = {
  'push.register': 'push.registered',
  'push.list': 'push.registrations',
  'push.unregister': 'push.unregistered',
  'push.vapid': 'push.vapid',
};
