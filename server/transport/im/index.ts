/**
 * Chat (XMPP) for the transport role: the MethodDefinitions and the per-node
 * state they share. The node wires it as
 *
 *   const im = openImService({ dataDir, storage, logger, bus, recorder });   // storage: as for mail
 *   startTransport({ …, methods: [...mail.methods, ...im.methods] });   // `await im.close()` on stop
 *   watchDeviceSessions({ …, hooks: [{ up: im.restoreDevice, down: im.deviceGone }] });
 *   void im.restoreAll();
 * (server/transport/role.ts does exactly this). `lingerMs` comes from the config (im.lingerMs,
 * MMGW_IM_LINGER_MS).
 *
 * Pushed events: im.state {account, jid, state, error?}, im.message {account,
 * from, to, body, stanzaId, originId?, at, direction, carbon?, truncated?},
 * im.presence {account, items:[{jid, show, status?}]} (coalesced),
 * im.subscription {account, from, kind}, im.roster.changed {account, items},
 * im.receipt {account, from, id} (XEP-0184, id = the clientId of im.send),
 * im.typing {account, from, state} (XEP-0085).
 */
import type { Logger } from 'pino';
import type { Bus } from '../../bus/bus.ts';
import type { DestinationPolicy } from '../../net/destination-policy.ts';
import { CredentialCipher } from '../credentials.ts';
import { DevicePusher } from '../kit/device-pusher.ts';
import { TransportStorage } from '../kit/transport-storage.ts';
import type { MethodDefinition } from '../types.ts';
import { type ImAccountStore, SealedImAccountStore } from './account-store.ts';
import type { ImDeps } from './deps.ts';
import { imAccountsMethod } from './methods/accounts.ts';
import { imCatchupMethod } from './methods/catchup.ts';
import { imContactAddMethod } from './methods/contact-add.ts';
import { imContactRemoveMethod } from './methods/contact-remove.ts';
import { imLoginMethod } from './methods/login.ts';
import { imLogoutMethod } from './methods/logout.ts';
import { imPresenceMethod } from './methods/presence.ts';
import { imRosterMethod } from './methods/roster.ts';
import { imSendMethod } from './methods/send.ts';
import { imSubscriptionAnswerMethod } from './methods/subscription-answer.ts';
import { imTypingMethod } from './methods/typing.ts';
import { type DevicePush, XmppSessionPool, type XmppSessionPoolOptions } from './session-pool.ts';
import { imPresetsMethod } from './methods/presets.ts';
import { provisionImAccounts } from './provisioned.ts';
import { ImSentRecords, SENT_RECORD_TTL_MS } from './sent-records.ts';
import { ARCHIVE_CURSOR_TTL_MS, ImArchiveCursors } from './archive-cursors.ts';
import { orAfter } from '../kit/deadline.ts';
import type { PairRecords } from '../kit/pair-records.ts';
import type { DeviceProfile } from '../../store/device-profile.ts';

export type { ImAccount, ImAccountSettings, ImAccountStore } from './account-store.ts';
export { imAccountId, SealedImAccountStore } from './account-store.ts';
export type { ImDeps } from './deps.ts';
export { IM_PUSHED_EVENTS, IM_RESPONSE_EVENTS } from './events.ts';
export { type DevicePush, XmppSessionPool, type XmppSessionPoolOptions } from './session-pool.ts';
export {
  type ArchivePage,
  type ChatState,
  type ChatMessage,
  type ContactPresence,
  type RosterItem,
  XmppAccountSession,
  type XmppAccountSettings,
  type XmppAccountState,
} from './xmpp-session.ts';

/** Every IM MethodDefinition, bound to the node's shared state. */
export function imMethods(deps: ImDeps): MethodDefinition<any>[] {
  return [
    imLoginMethod(deps),
    imPresetsMethod(),
    imLogoutMethod(deps),
    imAccountsMethod(deps),
    imRosterMethod(deps),
    imSendMethod(deps),
    imPresenceMethod(deps),
    imContactAddMethod(deps),
    imContactRemoveMethod(deps),
    imSubscriptionAnswerMethod(deps),
    imCatchupMethod(deps),
    imTypingMethod(deps),
  ];
}

export interface ImServiceOptions extends XmppSessionPoolOptions {
  dataDir: string;
  logger?: Logger;
  /** The credentials key in base64 (config credentialsKey); absent: `<dataDir>/keys/credentials.key`. */
  credentialsKey?: string | undefined;
  /** Injected store (tests); default the `im.accounts` of `storage`. */
  accounts?: ImAccountStore;
  /** The node's transport storage (one lmdb environment per node); absent: opened under `dataDir`. */
  storage?: TransportStorage;
  restoreTimeoutMs?: number;
  /** The node's bus: pushes to devices that have not sent a request since the node started. */
  bus?: Bus;
  /**
   * The node's outbound policy (the mail service's: one per node). Every XMPP
   * login is checked against it after DNS (SRV targets included) and pinned to
   * the checked address; absent, the library resolves and connects unchecked.
   */
  policy?: DestinationPolicy;
}

export interface ImService {
  deps: ImDeps;
  methods: MethodDefinition<any>[];
  /**
   * Brings a device's stored accounts back online (after a node restart or
   * when the device reconnects), without a new im.login. Resolves once each has
   * had its first attempt; failures arrive as im.state pushes.
   */
  restoreDevice(deviceId: string, push?: DevicePush): Promise<void>;
  /**
   * At node start: brings back the accounts of every device stored here
   * (needs `bus` for their pushes). Each device's sessions then linger as if it
   * had just left, until one of its requests arrives.
   */
  restoreAll(holds?: (deviceId: string) => boolean): Promise<void>;
  /**
   * The device's session came up: keeps its operator-provisioned chat accounts
   * in step with the registry and brings new ones online (provisioned.ts).
   * Call before restoreDevice, which brings back the others.
   */
  provision(deviceId: string, profile: DeviceProfile, push: DevicePush): Promise<void>;
  /** The device's session ended: CSI inactive now, sessions closed after the linger time. */
  deviceGone(deviceId: string): void;
  /**
   * This node takes the device over from another transport, without the
   * device asking: its accounts come online (lingering until the device is
   * heard from) and each reads its archive after the last pushed message, so
   * what came meanwhile is pushed. Resolves once each account had its first
   * attempt and its catch-up, or after `timeoutMs`; with how many are online.
   */
  takeOver(deviceId: string, timeoutMs: number): Promise<number>;
  /**
   * The device moved to another transport: its sessions close once the pushes
   * under way are through. Returns how many closed.
   */
  releaseDevice(deviceId: string): Promise<number>;
  /** The records a cluster's shared state takes over (PairRecords.share): sent records, archive cursors. */
  records: PairRecords<object>[];
  close(): Promise<void>;
}

export function openImService(opts: ImServiceOptions): ImService {
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
  const accounts = opts.accounts ?? new SealedImAccountStore({ storage: storage(), cipher: theCipher() });
  const sent = new ImSentRecords(storage());
  sent
    .prune(Date.now() - SENT_RECORD_TTL_MS)
    .catch((err) => opts.logger?.warn({ err }, 'pruning old chat sent records failed'));
  const cursors = new ImArchiveCursors(storage());
  /** Cursor writes under way: a device that moves to another node goes once they are stored. */
  const cursorWrites = new Set<Promise<unknown>>();
  cursors
    .prune(Date.now() - ARCHIVE_CURSOR_TTL_MS)
    .catch((err) => opts.logger?.warn({ err }, 'pruning old chat archive cursors failed'));
  const pusher = opts.bus ? new DevicePusher(opts.bus) : undefined;
  const push = opts.push ?? (pusher ? pusher.push.bind(pusher) : undefined);
  const sessions = new XmppSessionPool({
    ...opts,
    ...(opts.policy ? { session: { ...opts.session, policy: opts.policy } } : {}),
    ...(push ? { push } : {}),
    ...(opts.logger ? { logger: opts.logger.child({ service: 'im' }) } : {}),
    onPushed: (account, last) => {
      opts.onPushed?.(account, last);
      const written = cursors
        .put(account.deviceId, account.id, { last, at: Date.now() })
        .catch((err) => opts.logger?.warn({ err, account: account.id }, 'chat archive cursor not written'));
      cursorWrites.add(written);
      void written.finally(() => cursorWrites.delete(written));
    },
    sentByDevice: (account, message) =>
      message.originId !== undefined && sent.get(account.id, message.originId) !== undefined,
  });
  /** Devices whose session came up (restoreDevice with a push) and has not gone down since. */
  const present = new Set<string>();
  const deps: ImDeps = {
    accounts,
    sessions,
    sent,
    cursors,
    ...(opts.restoreTimeoutMs === undefined ? {} : { restoreTimeoutMs: opts.restoreTimeoutMs }),
    ...(opts.policy ? { policy: opts.policy } : {}),
  };
  return {
    deps,
    methods: imMethods(deps),
    restoreDevice,
    async restoreAll(holds) {
      const queue = holds ? accounts.devices().filter(holds) : accounts.devices();
      // A few devices at a time: a node with thousands must not storm its XMPP servers.
      const worker = async () => {
        for (let deviceId = queue.shift(); deviceId !== undefined; deviceId = queue.shift()) {
          // A device whose session the edge announced meanwhile is here, not gone (a restarted
          // transport hears of every held session while this runs).
          if (!present.has(deviceId)) sessions.deviceGone(deviceId);
          await restoreDevice(deviceId);
        }
      };
      await Promise.all(Array.from({ length: 16 }, worker));
    },
    provision(deviceId, profile, devicePush) {
      sessions.setPusher(deviceId, devicePush);
      return provisionImAccounts(deps, {
        deviceId,
        profile,
        push: devicePush,
        open: (sealed, context) => theCipher().decrypt(sealed, context),
        now: Date.now,
        ...(opts.logger ? { logger: opts.logger } : {}),
      });
    },
    deviceGone: (deviceId) => {
      present.delete(deviceId);
      sessions.deviceGone(deviceId);
    },
    async takeOver(deviceId, timeoutMs) {
      if (!present.has(deviceId)) sessions.deviceGone(deviceId);
      const list = accounts.list(deviceId);
      await orAfter(
        restoreDevice(deviceId).then(() => Promise.all(list.map((a) => sessions.caughtUp(a.id)))),
        timeoutMs,
        undefined,
      );
      return list.filter((a) => sessions.get(a.id)?.state === 'online').length;
    },
    async releaseDevice(deviceId) {
      present.delete(deviceId);
      const released = await sessions.release(deviceId);
      await Promise.all([...cursorWrites]);
      return released;
    },
    records: [sent, cursors],
    async close() {
      await sessions.closeAll();
      await accounts.close();
      await ownStorage?.close();
    },
  };

  async function restoreDevice(deviceId: string, devicePush?: DevicePush): Promise<void> {
    if (devicePush) {
      present.add(deviceId);
      sessions.setPusher(deviceId, devicePush);
    }
    await Promise.all(
      accounts.list(deviceId).map(async (account) => {
        if (sessions.get(account.id)) return;
        // From the last message pushed (by this node or the one the device moved from), when known.
        const after = cursors.get(deviceId, account.id)?.last;
        // persistent: an unreachable server is retried in the background, not given up.
        const started = sessions.open(account, {
          persistent: true,
          ...(after === undefined ? {} : { after }),
        });
        started.catch(() => {});
        await orAfter(started, 2000, undefined);
      }),
    );
  }
}
