/**
 * The event name a handset shows for each mail method's response (the
 * JSON-lines vocabulary of issue 3). Its own module, free of I/O imports, so
 * that the handset CLI can use it without loading IMAP or lmdb.
 */
export const MAIL_RESPONSE_EVENTS: Record<string, string> = {
  'mail.account.add': 'mail.account.added',
  'mail.presets': 'mail.presets',
  'mail.accounts': 'mail.accounts',
  'mail.account.remove': 'mail.account.removed',
  'mail.folders': 'mail.folders',
  'mail.sync': 'mail.headers',
  'mail.body': 'mail.body',
  'mail.attachment': 'mail.attachment.chunk',
  'mail.send': 'mail.sent',
  'mail.flag': 'mail.flagged',
  'mail.move': 'mail.moved',
  'mail.delete': 'mail.deleted',
};

/** Events the transport pushes to a device on its own (not answers). */
export const MAIL_PUSHED_EVENTS = [
  'mail.new',
  'mail.account.state',
  // Operator-provisioned accounts the transport brought up or removed by itself (provisioned.ts).
  'mail.account.added',
  'mail.account.removed',
] as const;

/**
 * The body of `mail.account.state`, the same whether the account's session or
 * its INBOX watcher says it (a watcher restored after a restart may speak first).
 */
export function accountStateBody(
  account: { id: string; preset?: string | undefined },
  state: string,
): { account: string; state: string; preset?: string } {
  return { account: account.id, state, ...(account.preset === undefined ? {} : { preset: account.preset }) };
}
