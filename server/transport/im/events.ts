/**
 * The event name a handset shows for each IM method's response (the
 * JSON-lines vocabulary of issue 4). Its own module, free of I/O imports, so
 * that the handset CLI can use it without loading @xmpp/client or lmdb.
 */
export const IM_RESPONSE_EVENTS: Record<string, string> = {
  'im.login': 'im.online',
  'im.presets': 'im.presets',
  'im.logout': 'im.logged_out',
  'im.accounts': 'im.accounts',
  'im.roster': 'im.roster',
  'im.send': 'im.sent',
  // Not im.presence: that name is the pushed contact presence.
  'im.presence': 'im.presence.set',
  'im.contact.add': 'im.contact.added',
  'im.contact.remove': 'im.contact.removed',
  'im.subscription.answer': 'im.subscription.answered',
  'im.catchup': 'im.catchup',
  'im.typing': 'im.typing.sent',
};

/** Events the transport pushes to a device on its own (not answers). */
export const IM_PUSHED_EVENTS = [
  'im.state',
  'im.message',
  'im.presence',
  'im.subscription',
  'im.roster.changed',
  'im.receipt',
  'im.typing',
  // Operator-provisioned accounts the transport brought up or removed by itself (provisioned.ts).
  'im.online',
  'im.logged_out',
] as const;
