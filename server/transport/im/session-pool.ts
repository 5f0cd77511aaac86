/**
 * The XMPP sessions of the devices pinned to this transport node: one
 * XmppAccountSession per account, its events turned into device pushes.
 *
 * - Pushes to one device go out one after another (a chain per device), so
 *   im.message events reach the device in the order the server sent them.
 * - Contact presence is coalesced per account: only the latest state of each
 *   contact is kept and sent as one im.presence batch per window, at most
 *   `presenceBatchMax` items a push, so a big roster coming online does not
 *   flood a handset.
 * - When a device goes away its sessions stay for `lingerMs` (client state
 *   indication tells the server to hold back noise), then close, unless
 *   `keepAway` says the device can be woken: then they stay, still inactive.
 * - A push that fails (device offline) is dropped: the archive (im.catchup)
 *   is the device's way back to what it missed.
 * - No silent gaps (SPEC.md §5 "Push cursors"): every im.message carries
 *   `prev`, the archive id of the account's message pushed before it (null
 *   when this session cannot know: new, or its stream was re-established),
 *   so a device that missed one catches up from its own cursor. An
 *   im.message the bus could not deliver (bus down, edge not answering;
 *   not "no session") is tried again, in order, for `pushRetryMs`; after
 *   that it is dropped and `prev` of the next one tells the device. No lmdb
 *   outbox: the server's archive already is the durable copy, and the
 *   device's cursor reaches it from any node.
 */
import type { Logger } from 'pino';
import { nullRecorder, type Recorder } from '../../records/types.ts';
import { GatewayError } from '../../../device-protocol/errors.ts';
import { compactImEvent, IM_COMPACT } from '../../../device-protocol/im-compact.ts';
import type { Capabilities, Value } from '../../../device-protocol/messages.ts';
import { orAfter } from '../kit/deadline.ts';
import { type DevicePush, pushRetryDelayMs } from '../kit/device-pusher.ts';
import type { ImAccount } from './account-store.ts';
import {
  type ChatMessage,
  type ContactPresence,
  XmppAccountSession,
  type XmppAccountSessionOptions,
  type XmppAccountState,
} from './xmpp-session.ts';

export type { DevicePush } from '../kit/device-pusher.ts';

export interface XmppSessionPoolOptions {
  logger?: Pick<Logger, 'debug' | 'info' | 'warn'>;
  now?: () => number;
  /** How long an account's session outlives its device's departure. Default 10 minutes. */
  lingerMs?: number;
  /**
   * Whether a device that is away keeps its sessions past the linger time
   * (asked at each its end): one that can be woken (a push channel,
   * server/transport/push/) does, or chat that arrives while its phone sleeps
   * would find no session to say so. Absent: none does.
   */
  keepAway?: (deviceId: string) => boolean;
  /** Coalescing window of contact presence. Default 500 ms. */
  presenceWindowMs?: number;
  /** Most presence items per im.presence push. Default 100. */
  presenceBatchMax?: number;
  /** Passed to every XmppAccountSession (backoff, timeouts, limits). */
  session?: Pick<
    XmppAccountSessionOptions,
    | 'backoff'
    | 'connectTimeoutMs'
    | 'sendTimeoutMs'
    | 'maxBodyChars'
    | 'smRequestAckIntervalMs'
    | 'random'
    | 'policy'
    | 'closeTimeoutMs'
    | 'maxStanzaBytes'
  >;
  /**
   * Pushes to a device that has not sent a request yet (accounts restored at
   * start), e.g. DevicePusher.push. Requests refresh
   * the device's own push function.
   */
  push?: (deviceId: string, name: string, body?: Value) => Promise<number>;
  /** Per-device log records and usage counters (service 'im'). Default: nullRecorder. */
  recorder?: Recorder;
  /** How often socket byte counts go to the usage counters. Default 60 s. */
  trafficFlushMs?: number;
  /** Observes every account state change (metrics, logs). */
  onState?: (account: ImAccount, state: XmppAccountState, error?: GatewayError) => void;
  /** How long an im.message the bus did not deliver is tried again. Default 60 s. */
  pushRetryMs?: number;
  /** The device's edge took an im.message with this archive id (the cursor a takeover goes on from). */
  onPushed?: (account: ImAccount, archiveId: string) => void;
  /**
   * An outgoing message in the archive that the device itself sent (through
   * im.send): an archive catch-up leaves those out, as the live stream does.
   */
  sentByDevice?: (account: ImAccount, message: ChatMessage) => boolean;
}

interface PoolEntry {
  account: ImAccount;
  session: XmppAccountSession;
  /** Told of every state change (whenOnline). */
  stateWaiters?: Set<() => void>;
  presence: Map<string, ContactPresence>;
  presenceTimer?: NodeJS.Timeout;
  /** Its state changes reach neither the device nor the records (a candidate on trial, a replaced session). */
  muted?: boolean;
  /** Archive id of the last im.message pushed: the next one's `prev`; undefined when not known. */
  lastArchiveId?: string;
  /**
   * An archive catch-up to run once the session is online (open's `after`):
   * live messages wait in `held` until it is done, and those it pushed are not pushed again.
   */
  catchUp?: { after: string; held: ChatMessage[]; done: Promise<void>; finish: () => void };
}

/** Drops undefined fields: the device codec carries only Values. */
export function toValue(o: object): Value {
  return JSON.parse(JSON.stringify(o)) as Value;
}

export class XmppSessionPool {
  readonly #opts: XmppSessionPoolOptions;
  readonly #entries = new Map<string, PoolEntry>();
  readonly #pushers = new Map<string, DevicePush>();
  readonly #chains = new Map<string, Promise<boolean>>();
  readonly #lingers = new Map<string, NodeJS.Timeout>();
  /** Devices that take the compact IM event forms. */
  readonly #compact = new Set<string>();
  #closed = false;
  readonly #recorder: Recorder;
  readonly #trafficTimer: NodeJS.Timeout;

  constructor(opts: XmppSessionPoolOptions = {}) {
    this.#opts = opts;
    this.#recorder = opts.recorder ?? nullRecorder;
    this.#trafficTimer = setInterval(() => {
      for (const entry of this.#entries.values()) this.#flushTraffic(entry);
    }, opts.trafficFlushMs ?? 60_000);
    this.#trafficTimer.unref?.();
  }

  /** A device logged out of an account (the record; the session is closed by close()). */
  recordLogout(account: ImAccount): void {
    this.#recorder.log({
      imei: account.deviceId,
      kind: 'backend_logout',
      service: 'im',
      detail: { account: account.id },
    });
    this.#recorder.usage({ imei: account.deviceId, service: 'im', logouts: 1 });
  }

  #flushTraffic(entry: PoolEntry): void {
    const { bytesIn, bytesOut } = entry.session.takeTraffic();
    if (bytesIn === 0 && bytesOut === 0) return;
    this.#recorder.usage({ imei: entry.account.deviceId, service: 'im', bytesIn, bytesOut });
  }

  /**
   * Remembers how to reach a device; every request of the device refreshes it.
   * `caps` (the device's Hello caps, {} for none) says whether it takes the
   * compact IM forms (SPEC.md §9); without it the last known answer stands.
   */
  setPusher(deviceId: string, push: DevicePush, caps?: Capabilities): void {
    this.#pushers.set(deviceId, push);
    if (caps !== undefined) {
      if (caps.encodings?.includes(IM_COMPACT)) this.#compact.add(deviceId);
      else this.#compact.delete(deviceId);
    }
    this.#present(deviceId);
  }

  /** The device expands the compact IM forms (it said so in its Hello caps). */
  compact(deviceId: string): boolean {
    return this.#compact.has(deviceId);
  }

  /** The device is reachable (a request came, or the edge took a push): no linger, CSI active. */
  #present(deviceId: string): void {
    const linger = this.#lingers.get(deviceId);
    if (linger) {
      clearTimeout(linger);
      this.#lingers.delete(deviceId);
      for (const entry of this.#entries.values()) {
        if (entry.account.deviceId === deviceId) void entry.session.setActive(true);
      }
    }
  }

  /**
   * The running session of an account, or a new one. A new session resolves
   * once online; `persistent` keeps retrying an unreachable server (accounts
   * restored after a restart) instead of failing the first attempt.
   */
  async open(
    account: ImAccount,
    opts: { persistent?: boolean; after?: string } = {},
  ): Promise<XmppAccountSession> {
    if (this.#closed) throw new GatewayError('bus.closed', 'the chat session pool is closed');
    const existing = this.#entries.get(account.id);
    if (existing) {
      const same =
        existing.account.password === account.password &&
        existing.account.host === account.host &&
        existing.account.port === account.port;
      // A session still retrying an unreachable server is replaced on a login, so that
      // the login gets a definite answer instead of waiting for the server to return.
      const usable =
        existing.session.state === 'online' || (opts.persistent && existing.session.state !== 'auth_failed');
      if (same && usable && existing.session.state !== 'stopped') {
        await existing.session.start();
        return existing.session;
      }
      // Other credentials or another server for an account that works: the new session must
      // work before it replaces it (#11: a wrong password stopped the working account).
      if (existing.session.state === 'online') return this.#replace(existing, account);
      await this.close(account.id);
    }
    const entry = this.#create(account);
    if (opts.after !== undefined) {
      let finish!: () => void;
      const done = new Promise<void>((resolve) => (finish = resolve));
      entry.catchUp = { after: opts.after, held: [], done, finish };
    }
    this.#entries.set(account.id, entry);
    // A device that is away (lingering) gets a session that tells the server so from the start.
    if (this.#lingers.has(account.deviceId)) void entry.session.setActive(false);
    try {
      await entry.session.start({ persistent: opts.persistent ?? false });
    } catch (err) {
      if (this.#entries.get(account.id) === entry) this.#entries.delete(account.id);
      await entry.session.stop();
      throw err;
    }
    return entry.session;
  }

  /** Tries `account` beside the online `existing` one; only a session that came online replaces it. */
  async #replace(existing: PoolEntry, account: ImAccount): Promise<XmppAccountSession> {
    const candidate = this.#create(account);
    candidate.muted = true;
    try {
      await candidate.session.start();
    } catch (err) {
      await candidate.session.stop();
      throw err;
    }
    if (this.#closed || this.#entries.get(account.id) !== existing) {
      // Closed or replaced meanwhile: the candidate lost.
      await candidate.session.stop();
      throw new GatewayError('im.unreachable', 'the chat account changed meanwhile; retry', {
        retryable: true,
      });
    }
    existing.muted = true;
    candidate.muted = false;
    this.#entries.set(account.id, candidate);
    if (this.#lingers.has(account.deviceId)) void candidate.session.setActive(false);
    this.#announce(candidate, 'online');
    if (candidate.presence.size > 0) this.#schedulePresence(candidate);
    clearTimeout(existing.presenceTimer);
    await existing.session.stop();
    this.#flushTraffic(existing);
    return candidate.session;
  }

  /** The account's session if one runs on this node. */
  get(accountId: string): XmppAccountSession | undefined {
    return this.#entries.get(accountId)?.session;
  }

  /**
   * Resolves true once the account's session is online, false when it is not
   * within `ms` (or its login failed). For a request that arrives
   * while a moved or restarted account is still connecting: it waits a
   * moment rather than refuse at once.
   */
  async whenOnline(accountId: string, ms: number): Promise<boolean> {
    const entry = this.#entries.get(accountId);
    if (!entry) return false;
    const settled = () => {
      // Not 'stopped': a session not started yet is in it too.
      const state = entry.session.state;
      return state === 'online' || state === 'auth_failed';
    };
    if (!settled() && ms > 0) {
      let wake!: () => void;
      const changed = new Promise<void>((resolve) => {
        wake = () => {
          if (settled()) resolve();
        };
      });
      entry.stateWaiters ??= new Set();
      entry.stateWaiters.add(wake);
      await orAfter(changed, ms, undefined);
      entry.stateWaiters.delete(wake);
    }
    return entry.session.state === 'online';
  }

  /** Resolves once the account's archive catch-up (open's `after`) is done; at once when none runs. */
  caughtUp(accountId: string): Promise<void> {
    return this.#entries.get(accountId)?.catchUp?.done ?? Promise.resolve();
  }

  /**
   * The device moved to another transport: its sessions close once every push
   * under way is through (their archive cursors written), so the other node
   * goes on from there. Returns how many closed.
   */
  async release(deviceId: string): Promise<number> {
    const entries = [...this.#entries.values()].filter((e) => e.account.deviceId === deviceId);
    for (const entry of entries) entry.muted = true;
    await Promise.all(entries.map((e) => e.session.stop()));
    await this.#chains.get(deviceId);
    await Promise.all(entries.map((e) => this.close(e.account.id)));
    const linger = this.#lingers.get(deviceId);
    clearTimeout(linger);
    this.#lingers.delete(deviceId);
    this.#pushers.delete(deviceId);
    return entries.length;
  }

  states(deviceId: string): Array<{ account: string; jid: string; state: XmppAccountState }> {
    return [...this.#entries.values()]
      .filter((e) => e.account.deviceId === deviceId)
      .map((e) => ({ account: e.account.id, jid: e.account.jid, state: e.session.state }));
  }

  async close(accountId: string): Promise<void> {
    const entry = this.#entries.get(accountId);
    if (!entry) return;
    this.#entries.delete(accountId);
    clearTimeout(entry.presenceTimer);
    entry.catchUp?.finish();
    await entry.session.stop();
    this.#flushTraffic(entry);
  }

  /**
   * The device's session ended: tell the servers nobody is looking (XEP-0352)
   * and close its XMPP sessions after the linger time unless it comes back.
   */
  deviceGone(deviceId: string): void {
    if (this.#lingers.has(deviceId)) return;
    for (const entry of this.#entries.values()) {
      if (entry.account.deviceId === deviceId) void entry.session.setActive(false);
    }
    const lingerMs = this.#opts.lingerMs ?? 600_000;
    const expire = () => {
      if (this.#opts.keepAway?.(deviceId) === true) {
        // Still away, and wakeable: the sessions stay inactive; asked again after another period.
        const again = setTimeout(expire, lingerMs);
        again.unref?.();
        this.#lingers.set(deviceId, again);
        return;
      }
      this.#lingers.delete(deviceId);
      for (const entry of [...this.#entries.values()]) {
        if (entry.account.deviceId === deviceId) void this.close(entry.account.id);
      }
    };
    const timer = setTimeout(expire, lingerMs);
    timer.unref?.();
    this.#lingers.set(deviceId, timer);
  }

  async closeAll(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#trafficTimer);
    for (const timer of this.#lingers.values()) clearTimeout(timer);
    this.#lingers.clear();
    await Promise.all([...this.#entries.keys()].map((id) => this.close(id)));
    await Promise.all([...this.#chains.values()]);
  }

  #create(account: ImAccount): PoolEntry {
    const id = account.id;
    const entry = {
      account,
      presence: new Map<string, ContactPresence>(),
    } as PoolEntry;
    // A muted session's events are dropped: the device hears one session per account.
    const push = (name: string, body: Value) =>
      entry.muted ? Promise.resolve(false) : this.#push(account.deviceId, name, body);
    entry.session = new XmppAccountSession({
      ...this.#opts.session,
      settings: {
        jid: account.jid,
        password: account.password,
        ...(account.host === undefined ? {} : { host: account.host }),
        ...(account.port === undefined ? {} : { port: account.port }),
      },
      ...(this.#opts.logger ? { logger: this.#opts.logger } : {}),
      ...(this.#opts.now ? { now: this.#opts.now } : {}),
      listener: {
        state: (state, error) => {
          for (const wake of entry.stateWaiters ?? []) wake();
          // Messages may pass by unseen until the stream is back: the chain of `prev` starts anew.
          if (state !== 'online') entry.lastArchiveId = undefined;
          if (!entry.muted) this.#announce(entry, state, error);
          if (state === 'online' && entry.catchUp) void this.#catchUp(entry, push);
        },
        message: (message) => {
          if (entry.muted) return;
          if (message.direction === 'in' && !message.carbon) {
            this.#recorder.usage({ imei: account.deviceId, service: 'im', messagesIn: 1 });
            this.#recordMessage(account, 'message_in');
          }
          if (entry.catchUp) entry.catchUp.held.push(message);
          else this.#pushMessage(entry, message, push);
        },
        sent: () => {
          this.#recorder.usage({ imei: account.deviceId, service: 'im', messagesOut: 1 });
          this.#recordMessage(account, 'message_out');
        },
        receipt: (from, receiptId) => void push('im.receipt', { account: id, from, id: receiptId }),
        typing: (from, state) => void push('im.typing', { account: id, from, state }),
        subscription: (from, kind) => void push('im.subscription', { account: id, from, kind }),
        roster: (items) => void push('im.roster.changed', toValue({ account: id, items })),
        presence: (p) => {
          entry.presence.delete(p.jid); // re-insert: the batch keeps the order of last change
          entry.presence.set(p.jid, p);
          this.#schedulePresence(entry);
        },
      },
    });
    return entry;
  }

  /** A chat message in the device log, like mail's; who and what stay out (records hold nothing private). */
  #recordMessage(account: ImAccount, kind: 'message_in' | 'message_out'): void {
    const detail = { account: account.id };
    this.#recorder.log({ imei: account.deviceId, kind, service: 'im', message: 'chat message', detail });
  }

  #pushMessage(
    entry: PoolEntry,
    message: ChatMessage,
    push: (name: string, body: Value) => Promise<boolean>,
  ) {
    const prev = entry.lastArchiveId ?? null;
    // A message without an archive id cannot be a cursor: the next one follows the same.
    const archiveId = message.stanzaId;
    if (archiveId !== undefined) entry.lastArchiveId = archiveId;
    void push('im.message', toValue({ account: entry.account.id, ...message, prev })).then((delivered) => {
      if (!delivered) return;
      if (archiveId !== undefined) this.#opts.onPushed?.(entry.account, archiveId);
      void entry.session.confirmDelivery(message);
    });
  }

  /**
   * Pushes what the archive holds after the catch-up's cursor (what came while
   * no node had the account online), then the live messages held meanwhile
   * that it did not already push. A cursor the archive no longer knows, or a
   * failed query, pushes the held ones with `prev: null`: the device re-syncs.
   */
  async #catchUp(entry: PoolEntry, push: (name: string, body: Value) => Promise<boolean>): Promise<void> {
    const catchUp = entry.catchUp;
    if (!catchUp) return;
    const pushed = new Set<string>();
    entry.lastArchiveId = catchUp.after;
    try {
      for (let after = catchUp.after; ; ) {
        const page = await entry.session.archive({ after, max: 100 });
        for (const message of page.messages) {
          if (message.stanzaId !== undefined) pushed.add(message.stanzaId);
          if (message.direction === 'out' && this.#opts.sentByDevice?.(entry.account, message)) continue;
          this.#pushMessage(entry, message, push);
        }
        if (page.complete || page.last === undefined || page.messages.length === 0) break;
        after = page.last;
      }
    } catch (err) {
      entry.lastArchiveId = undefined;
      this.#opts.logger?.warn(
        { account: entry.account.id, err: String(err) },
        'chat archive catch-up failed; the device re-syncs',
      );
    }
    entry.catchUp = undefined;
    for (const message of catchUp.held) {
      if (message.stanzaId === undefined || !pushed.has(message.stanzaId))
        this.#pushMessage(entry, message, push);
    }
    catchUp.finish();
  }

  /** A state change of the account's session: observers, records, and the device. */
  #announce(entry: PoolEntry, state: XmppAccountState, error?: GatewayError): void {
    const { account } = entry;
    this.#opts.onState?.(account, state, error);
    this.#recordState(account, state, error);
    const body: Record<string, Value> = { account: account.id, jid: account.jid, state };
    if (error) body.error = { code: error.code, message: error.message };
    void this.#push(account.deviceId, 'im.state', body);
  }

  #recordState(account: ImAccount, state: XmppAccountState, error?: GatewayError): void {
    // The preset too: an alarm counts failures per preset as well as per device (server/alarms).
    const detail = {
      account: account.id,
      ...(account.preset === undefined ? {} : { preset: account.preset }),
    };
    const base = { imei: account.deviceId, service: 'im' as const, detail };
    if (state === 'online') {
      this.#recorder.log({ ...base, kind: 'backend_login', message: 'xmpp online' });
      this.#recorder.usage({ imei: account.deviceId, service: 'im', logins: 1 });
    } else if (error) {
      this.#recorder.log({ ...base, kind: 'backend_error', message: `xmpp ${state}`, code: error.code });
    }
  }

  #schedulePresence(entry: PoolEntry): void {
    if (entry.presenceTimer) return;
    entry.presenceTimer = setTimeout(() => {
      entry.presenceTimer = undefined;
      if (entry.presence.size === 0 || entry.muted) return;
      const max = this.#opts.presenceBatchMax ?? 100;
      const items: ContactPresence[] = [];
      for (const [jid, p] of entry.presence) {
        if (items.length >= max) break;
        items.push(p);
        entry.presence.delete(jid);
      }
      void this.#push(entry.account.deviceId, 'im.presence', toValue({ account: entry.account.id, items }));
      // What did not fit goes in the next window, not at once: that is the rate limit.
      if (entry.presence.size > 0) this.#schedulePresence(entry);
    }, this.#opts.presenceWindowMs ?? 500);
    entry.presenceTimer.unref?.();
  }

  #retryMs(): number {
    return this.#opts.pushRetryMs ?? 60_000;
  }

  /** Resolves true once the device's edge took the event (false: no session, dropped). */
  #push(deviceId: string, name: string, body: Value): Promise<boolean> {
    const previous = this.#chains.get(deviceId) ?? Promise.resolve(true);
    const next = previous.then(async () => {
      const push = this.#pushers.get(deviceId);
      const fallback = this.#opts.push;
      if (!push && !fallback) return false;
      const compact = this.#compact.has(deviceId) ? compactImEvent(name, body) : undefined;
      if (compact) {
        name = compact.name;
        body = compact.body;
      }
      const retryUntil = name === 'im.message' || name === 'im.m' ? Date.now() + this.#retryMs() : 0;
      for (let attempt = 1; ; attempt++) {
        try {
          if (push) await push(name, body);
          else {
            await fallback?.(deviceId, name, body);
            this.#present(deviceId);
          }
          return true;
        } catch (err) {
          // Only the bus failing is worth waiting for; no session (no_responders) means catch-up later.
          const transient =
            err instanceof GatewayError && err.code.startsWith('bus.') && err.code !== 'bus.no_responders';
          if (!transient || this.#closed || Date.now() >= retryUntil) {
            this.#opts.logger?.debug({ deviceId, event: name, err: String(err) }, 'im push not delivered');
            return false;
          }
          await new Promise((resolve) => setTimeout(resolve, pushRetryDelayMs(attempt)).unref?.());
        }
      }
    });
    this.#chains.set(deviceId, next);
    void next.then(() => {
      if (this.#chains.get(deviceId) === next) this.#chains.delete(deviceId);
    });
    return next;
  }
}
