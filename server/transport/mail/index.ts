/**
 * Mail (IMAP/SMTP) for the transport role: the MethodDefinitions and the
 * per-node state they share. The node wires it as
 *
 *   const storage = TransportStorage.open(dataDir);   // the node's one lmdb environment
 *   const mail = openMailService({ dataDir, storage, logger, bus, transport: config.transport });
 *   startTransport({ …, methods: mail.methods });   // `await mail.close()`, then storage.close(), on stop
 *   watchDeviceSessions({ …, hooks: [{ up: (id, push) => mail.restoreDevice(id, push), … }] });
 *
 * `transport` (the config section) gives the outbound policy every IMAP and
 * SMTP connection goes through (destination.ts) and the accounts a device may
 * add; `mail.policy` is that policy, for the chat service to share.
 */
import type { Logger } from 'pino';
import type { Bus } from '../../bus/bus.ts';
import type { DestinationPolicy } from '../../net/destination-policy.ts';
import { nullRecorder, type Recorder } from '../../records/types.ts';
import { CredentialCipher } from '../credentials.ts';
import { type DevicePush, DevicePusher } from '../kit/device-pusher.ts';
import { DEFAULT_MAX_ACCOUNTS_PER_DEVICE, outboundPolicy, type TransportSettings } from '../kit/outbound.ts';
import type { WorkerPoolOptions } from '../kit/worker-pool.ts';
import { TransportStorage } from '../kit/transport-storage.ts';
import { orAfter } from '../kit/deadline.ts';
import type { PairRecords } from '../kit/pair-records.ts';
import type { MethodDefinition } from '../types.ts';
import { type MailAccount, type MailAccountStore, SealedMailAccountStore } from './account-store.ts';
import { accountStateBody } from './events.ts';
import type { MailDeps } from './deps.ts';
import { type ImapAccountState, ImapSessionPool, type UsageSink } from './imap-session.ts';
import type { MediaProfileSource } from './image-variants.ts';
import type { MailHeader } from './headers.ts';
import { InboxWatchers } from './inbox-watcher.ts';
import { accountAddMethod } from './methods/account-add.ts';
import { accountRemoveMethod, accountsMethod } from './methods/accounts.ts';
import { attachmentMethod } from './methods/attachment.ts';
import { bodyMethod } from './methods/body.ts';
import { deleteMethod } from './methods/delete.ts';
import { flagMethod } from './methods/flag.ts';
import { foldersMethod } from './methods/folders.ts';
import { moveMethod } from './methods/move.ts';
import { sendMethod } from './methods/send.ts';
import { syncMethod } from './methods/sync.ts';
import { presetsMethod } from './methods/presets.ts';
import { provisionMailAccounts } from './provisioned.ts';
import { subscribeMailPush } from './push-hook.ts';
import { type MimePool, openMimePool } from './mime-pool.ts';
import { recordMailUsage } from './records.ts';
import { MARK_TTL_MS, SentMarks } from './sent-marks.ts';
import { WATCH_MARK_TTL_MS, WatchMarks } from './watch-marks.ts';
import type { DeviceProfile } from '../../store/device-profile.ts';

export type { MailAccount, MailAccountStore, MailServerSettings, TlsMode } from './account-store.ts';
export { SealedMailAccountStore } from './account-store.ts';
export type { MailDeps } from './deps.ts';
export type { MailHeader } from './headers.ts';
export {
  ImapAccountSession,
  type ImapAccountState,
  ImapSessionPool,
  type MailUsageRecord,
  type UsageSink,
} from './imap-session.ts';
export { InboxWatcher, InboxWatchers } from './inbox-watcher.ts';
export { type MediaProfile, type MediaProfileSource, registryMediaProfiles } from './image-variants.ts';
export { MAIL_PUSH_PATH, type MailPushNotice, mailPushHook } from './push-hook.ts';

/** Every mail MethodDefinition, bound to the node's shared state. */
export function mailMethods(deps: MailDeps): MethodDefinition<any>[] {
  return [
    accountAddMethod(deps),
    presetsMethod(),
    accountsMethod(deps),
    accountRemoveMethod(deps),
    foldersMethod(deps),
    syncMethod(deps),
    bodyMethod(deps),
    attachmentMethod(deps),
    sendMethod(deps),
    flagMethod(deps),
    moveMethod(deps),
    deleteMethod(deps),
  ];
}

export { MAIL_PUSHED_EVENTS, MAIL_RESPONSE_EVENTS } from './events.ts';

export interface MailServiceOptions {
  dataDir: string;
  logger?: Logger;
  /** The credentials key in base64 (config credentialsKey); absent: `<dataDir>/keys/credentials.key`. */
  credentialsKey?: string | undefined;
  /**
   * The config's `transport` section: allowed destinations and ports, the
   * accounts per device, the connect timeout. Absent: public mail servers on
   * the mail ports only, DEFAULT_MAX_ACCOUNTS_PER_DEVICE, 15 s.
   */
  transport?: TransportSettings;
  /** The node's outbound policy, when it has one already; default: made from `transport`. */
  policy?: DestinationPolicy;
  /** How long an account's IMAP session outlives its last use. Default 5 minutes. */
  lingerMs?: number;
  /** Connecting to a mail server (TCP, TLS, greeting); default `transport.mailConnectTimeoutMs`, else 15 s. */
  connectTimeoutMs?: number;
  bodyBudgetBytes?: number;
  /** Capability profile and service policies of a device (image variants); see registryMediaProfiles. */
  mediaProfiles?: MediaProfileSource;
  /** false: never ENABLE QRESYNC (exercises the expunge fallback). Default true. */
  qresync?: boolean;
  /** First reconnect delay of the INBOX watchers (doubles with jitter). Default 250 ms. */
  watcherBackoffMs?: number;
  /** New mail found no session: wake the device (server/transport/push/); whether it can be woken. */
  wake?: (deviceId: string, newMessages: number, newest?: MailHeader) => boolean;
  /** Injected store (tests); default the `mail.accounts` of `storage`. */
  accounts?: MailAccountStore;
  /**
   * The MIME workers (mime-pool.ts): large FETCH rows and text parts are parsed
   * there. Default: a pool sized to the cores; false: everything on the event loop.
   */
  mimeWorkers?: false | Omit<WorkerPoolOptions, 'entry'>;
  /** Tests only: runs after a send's durable mark, before its copy to Sent (MailDeps.afterSentMark). */
  afterSentMark?: () => void | Promise<void>;
  /** The node's transport storage (one lmdb environment per node); absent: opened under `dataDir`. */
  storage?: TransportStorage;
  onAccountState?: (accountId: string, deviceId: string, state: ImapAccountState) => void;
  /** Usage records of every login and operation (bytes to/from the mail servers), besides the recorder. */
  onUsage?: UsageSink;
  /** Per-device log records and usage counters (service 'mail'). Default: nullRecorder. */
  recorder?: Recorder;
  /**
   * The node's bus: account state changes of the request sessions are pushed to the
   * device as `mail.account.state` (the INBOX watchers push theirs through the
   * session that started them). Absent: states are only logged.
   */
  bus?: Bus;
}

export interface MailService {
  deps: MailDeps;
  methods: MethodDefinition<any>[];
  /** The outbound policy of every IMAP and SMTP connection (the chat service can share it). */
  policy: DestinationPolicy;
  /**
   * The device's session came up: keeps its operator-provisioned accounts in
   * step with the registry and brings them online (provisioned.ts).
   */
  provision(deviceId: string, profile: DeviceProfile, push: DevicePush): Promise<void>;
  /**
   * The device's session came up: its INBOX watchers that this node ran before
   * a restart start again from their marks (watch-marks.ts), pushing what
   * arrived meanwhile. Returns how many were started.
   */
  restoreDevice(deviceId: string, push: DevicePush): number;
  /** Resolves when every INBOX watcher of the device on this node is IDLE-ready, or after `timeoutMs`. */
  watchersReady(deviceId: string, timeoutMs: number): Promise<void>;
  /**
   * The device moved to another transport: its INBOX watchers stop after
   * writing their last marks, from which the other node goes on. Returns how many stopped.
   */
  releaseDevice(deviceId: string): Promise<number>;
  /** The records a cluster's shared state takes over (PairRecords.share): sent marks, watch marks. */
  records: PairRecords<object>[];
  close(): Promise<void>;
}

export function openMailService(opts: MailServiceOptions): MailService {
  // Opened lazily when injected accounts make it unneeded at start (tests).
  let cipher: CredentialCipher | undefined;
  const theCipher = () =>
    (cipher ??= CredentialCipher.open({
      dataDir: opts.dataDir,
      key: opts.credentialsKey,
      logger: opts.logger,
    }));
  // The node's storage when it gives one; else this service's own, closed with it.
  let ownStorage: TransportStorage | undefined;
  const storage = () => opts.storage ?? (ownStorage ??= TransportStorage.open(opts.dataDir));
  const accounts = opts.accounts ?? new SealedMailAccountStore({ storage: storage(), cipher: theCipher() });
  const policy = opts.policy ?? outboundPolicy(opts.transport);
  const connectTimeoutMs = opts.connectTimeoutMs ?? opts.transport?.mailConnectTimeoutMs;
  const sentMarks = new SentMarks(storage());
  const mime: MimePool | undefined =
    opts.mimeWorkers === false ? undefined : openMimePool(opts.mimeWorkers ?? {});
  sentMarks
    .prune(Date.now() - MARK_TTL_MS)
    .catch((err) => opts.logger?.warn({ err }, 'pruning old sent marks failed'));
  const recorder = opts.recorder ?? nullRecorder;
  const usage: UsageSink = (record) => {
    opts.logger?.debug({ ...record }, 'mail usage');
    opts.onUsage?.(record);
    recordMailUsage(recorder, record);
  };
  const bus = opts.bus;
  const pusher = bus ? new DevicePusher(bus) : undefined;
  // Best effort: the next answer (mail.accounts, a failed request) says it too.
  const pushState = (account: MailAccount, state: ImapAccountState): void => {
    if (!pusher || state === 'idle') return;
    pusher.push(account.deviceId, 'mail.account.state', accountStateBody(account, state)).catch(() => {});
  };
  const sessions = new ImapSessionPool({
    policy,
    ...(mime ? { mime } : {}),
    usage,
    lingerMs: opts.lingerMs,
    connectTimeoutMs,
    logger: opts.logger,
    ...(opts.qresync === undefined ? {} : { qresync: opts.qresync }),
    onState: (account, state) => {
      opts.logger?.info({ deviceId: account.deviceId, account: account.id, state }, 'mail account state');
      opts.onAccountState?.(account.id, account.deviceId, state);
      pushState(account, state);
    },
  });
  const watchMarks = new WatchMarks(storage());
  watchMarks
    .prune(Date.now() - WATCH_MARK_TTL_MS)
    .catch((err) => opts.logger?.warn({ err }, 'pruning old inbox marks failed'));
  const watchers = new InboxWatchers(
    {
      policy,
      ...(mime ? { mime } : {}),
      connectTimeoutMs,
      logger: opts.logger,
      ...(opts.qresync === undefined ? {} : { qresync: opts.qresync }),
      ...(opts.watcherBackoffMs === undefined ? {} : { minBackoffMs: opts.watcherBackoffMs }),
      ...(opts.wake ? { wake: opts.wake } : {}),
    },
    watchMarks,
  );
  // New-mail hooks of mail servers (push-hook.ts), published by whichever node's ops endpoint took them.
  const pushSub = bus ? subscribeMailPush(bus, (notice) => watchers.notify(notice), opts.logger) : undefined;
  const deps: MailDeps = {
    accounts,
    sessions,
    policy,
    maxAccountsPerDevice: opts.transport?.maxAccountsPerDevice ?? DEFAULT_MAX_ACCOUNTS_PER_DEVICE,
    sentMarks,
    ...(mime ? { mime } : {}),
    watchers,
    usage,
    ...(connectTimeoutMs === undefined ? {} : { connectTimeoutMs }),
    ...(opts.afterSentMark ? { afterSentMark: opts.afterSentMark } : {}),
    ...(opts.bodyBudgetBytes === undefined ? {} : { bodyBudgetBytes: opts.bodyBudgetBytes }),
    ...(opts.mediaProfiles === undefined ? {} : { mediaProfiles: opts.mediaProfiles }),
  };
  return {
    deps,
    methods: mailMethods(deps),
    policy,
    provision: (deviceId, profile, push) =>
      provisionMailAccounts(deps, {
        deviceId,
        profile,
        push,
        open: (sealed, context) => theCipher().decrypt(sealed, context),
        now: Date.now,
        ...(opts.logger ? { logger: opts.logger } : {}),
      }),
    restoreDevice(deviceId, push) {
      const started = watchers.restore(deviceId, push, (accountId) => {
        try {
          return accounts.get(deviceId, accountId);
        } catch {
          return undefined;
        }
      });
      if (started > 0) opts.logger?.info({ deviceId, watchers: started }, 'inbox watchers restored');
      return started;
    },
    async watchersReady(deviceId, timeoutMs) {
      await orAfter(Promise.all(watchers.ofDevice(deviceId).map((w) => w.ready)), timeoutMs, undefined);
    },
    releaseDevice: (deviceId) => watchers.release(deviceId),
    records: [sentMarks, watchMarks],
    async close() {
      pushSub?.unsubscribe();
      await watchers.stopAll();
      await sessions.closeAll();
      await mime?.close();
      await accounts.close();
      await ownStorage?.close();
    },
  };
}
