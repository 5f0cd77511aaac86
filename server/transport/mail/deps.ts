import type { DestinationPolicy } from '../../net/destination-policy.ts';
import type { MailAccountStore } from './account-store.ts';
import type { MimePool } from './mime-pool.ts';
import type { SentMarks } from './sent-marks.ts';
import type { ImapSessionPool, UsageSink } from './imap-session.ts';
import type { MediaProfileSource } from './image-variants.ts';
import type { InboxWatchers } from './inbox-watcher.ts';

/** Shared per-node state every mail method receives (injected, never imported globally). */
export interface MailDeps {
  accounts: MailAccountStore;
  sessions: ImapSessionPool;
  /** The node's outbound policy (kit/outbound.ts): where IMAP and SMTP may connect. */
  policy: DestinationPolicy;
  /** Accounts a device may add with mail.account.add (provisioned ones count, are never refused). */
  maxAccountsPerDevice: number;
  /** The MIME workers: large FETCH rows and text parts are parsed there (absent: on the event loop). */
  mime?: MimePool;
  /** mail.send's durable "sent" marks (resends of a clientId answer `duplicate`). */
  sentMarks: SentMarks;
  /** Tests only: runs after a send's mark is written, before its copy to Sent (a crash there). */
  afterSentMark?: () => void | Promise<void>;
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
