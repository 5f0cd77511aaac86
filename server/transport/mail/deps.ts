import type { MailAccountStore } from './account-store.ts';
import type { ImapSessionPool, UsageSink } from './imap-session.ts';
import type { MediaProfileSource } from './image-variants.ts';
import type { InboxWatchers } from './inbox-watcher.ts';

/** Shared per-node state every mail method receives (injected, never imported globally). */
export interface MailDeps {
  accounts: MailAccountStore;
  sessions: ImapSessionPool;
  /** New-mail push (IDLE on INBOX); started by a sync of INBOX. Absent: no push. */
  watchers?: InboxWatchers;
  /** Usage counters (bytes to/from mail servers per operation); the IMAP ones come from the pool. */
  usage?: UsageSink;
  /** Connect/greeting timeout for the login checks of mail.account.add and for SMTP. Default 15 s. */
  connectTimeoutMs?: number;
  /** Default text budget of mail.body in UTF-8 bytes when the device asks for none. Default 16 KiB. */
  bodyBudgetBytes?: number;
  /** The admin's capability and service profile of a device, for image variants. Absent: the device's caps. */
  mediaProfiles?: MediaProfileSource;
}
