/**
 * New-mail push: one extra IMAP connection per watched account, IDLE on INBOX,
 * pushing `mail.new` {account, folder, header} for every message whose UID is
 * above the last one the device was given (by mail.sync or an earlier push).
 *
 * A dedicated connection because IDLE occupies it: commands on the account's
 * session would keep breaking IDLE. When the server drops or restarts, the
 * watcher reconnects with exponential backoff and jitter, and first catches
 * up on UIDs above its mark, so nothing that arrived meanwhile is missed and,
 * the mark only moving forward, nothing is pushed twice.
 *
 * A mail server with the push hook (push-hook.ts) tells the gateway about
 * new mail sooner than IDLE does (Dovecot holds EXISTS back ~0.5 s): poke()
 * runs the same catch-up at once. Whichever of the two comes first pushes;
 * the other finds nothing above the mark.
 *
 * The watcher stops when pushes find no session for the device
 * (bus.no_responders) for NO_SESSION_CONFIRM_MS: a device that reconnects
 * syncs with its cursor, which starts a new watcher from there. Unless the
 * device can be woken (`wake`, server/transport/push/): then each push that
 * finds no session tells `wake` how many new messages it could not give, and
 * after NO_SESSION_CONFIRM_MS the watcher parks instead of stopping: it stays
 * on IDLE, its mark where the device left it, and pushes again only on news
 * (IDLE, the hook) or when the device's session or sync refreshes it.
 *
 * With WatchMarks (watch-marks.ts) the watched accounts outlive the node: each
 * mark moves once the edge took a push, and restore() starts a device's
 * watchers again from their marks when its session comes up after a restart.
 *
 * No silent gaps (SPEC.md §5 "Push cursors"): each mail.new carries `prev`,
 * the cursor it follows, so a device that missed one sees it and syncs. A push
 * the bus could not deliver (bus down, edge not answering) leaves the UID mark
 * and the cursor where they were, and the catch-up runs again with backoff:
 * the mail server is the outbox. There is no lmdb outbox on purpose: what it
 * would hold is already durable in the mailbox, and the device's own cursor
 * plus `prev` cover whatever this in-memory retry cannot (this node dies, the
 * session ends meanwhile).
 */
import type { ImapFlow } from 'imapflow';
import type { Logger } from 'pino';
import { GatewayError } from '../../../device-protocol/errors.ts';
import type { Value } from '../../../device-protocol/messages.ts';
import { pushRetryDelayMs } from '../kit/device-pusher.ts';
import type { MailAccount } from './account-store.ts';
import { accountStateBody } from './events.ts';
import { decodeCursor, encodeCursor, type SyncCursor } from './cursor.ts';
import { fetchHeaders, type MailHeader } from './headers.ts';
import { connectImap, type ImapAccountState, type ImapConnectOptions } from './imap-session.ts';
import type { MailPushNotice } from './push-hook.ts';
import type { WatchMark, WatchMarks } from './watch-marks.ts';

export type PushFn = (name: string, body?: Value) => Promise<number>;

/**
 * The INBOX cursor of the device's last sync. Each mail.new then carries that
 * cursor moved up to the pushed UID, so a device that takes it syncs next from
 * there and never gets the pushed message a second time (a replayed mail.new
 * after a resume included).
 */
export interface WatchedCursor {
  folder: string;
  cursor: SyncCursor;
}

export interface InboxWatcherOptions extends ImapConnectOptions {
  /** First reconnect delay; doubles up to maxBackoffMs, each with ±50 % jitter. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  random?: () => number;
  /**
   * `newMessages` arrived for the device and found no session: wake it
   * (coalesced). Returns whether the device can be woken (has a channel);
   * asked with 0 too. Absent: no wake-ups, the watcher stops as before.
   * `newest`: the header of the newest of them (what a wake-up may show of it).
   */
  wake?: (deviceId: string, newMessages: number, newest?: MailHeader) => boolean;
}

const FOLDER = 'INBOX';

/**
 * How long, and how many times, pushes of one message may keep failing (the
 * bus down, the edge not answering or refusing) before it is left to the
 * device's sync, whichever comes first. The tries come about a second apart
 * (pushRetryDelayMs) when they fail fast, and once per DEVICE_PUSH_TIMEOUT_MS
 * while the bus is down: a bus outage of minutes is ridden out, an edge that
 * refuses at once is given up within a minute.
 */
export const PUSH_GIVE_UP_MS = 5 * 60_000;
export const MAX_PUSH_ATTEMPTS = 60;

/**
 * How long every push must find no session (bus.no_responders) before the
 * watcher stops. A moment without one is no proof: right after a bus outage
 * the edge may not have resubscribed yet, or the cluster's routes not formed,
 * and a watcher stopped then leaves a live session without mail pushes, with
 * nothing to show the device a gap.
 */
export const NO_SESSION_CONFIRM_MS = 5000;

/**
 * What made the watcher look for new mail: its (re)connect, IDLE's EXISTS,
 * the mail server's hook, or a push that failed and is tried again.
 */
export type CatchUpTrigger = 'connect' | 'idle' | 'hook' | 'retry';

/**
 * Why a watcher stopped: its account went or the node stops ('stopped'), its device has no
 * session, or the device moved to another transport ('moved': the last mark is written first).
 */
export type WatcherStopReason = 'stopped' | 'no-session' | 'moved';

export class InboxWatcher {
  readonly account: MailAccount;
  state: ImapAccountState = 'idle';
  #push: PushFn;
  #lastUid: number;
  #cursor: WatchedCursor | undefined;
  #client: ImapFlow | undefined;
  #stopped = false;
  #wake: (() => void) | undefined;
  #chain: Promise<void> = Promise.resolve();
  /** The connection a catch-up is queued for and not started yet: a further trigger for it would find nothing more. */
  #queuedFor: ImapFlow | undefined;
  /** How often each trigger fired, and how many mail.new each trigger's catch-up pushed (metrics, tests). */
  readonly triggers: Record<CatchUpTrigger, number> = { connect: 0, idle: 0, hook: 0, retry: 0 };
  readonly pushedBy: Record<CatchUpTrigger, number> = { connect: 0, idle: 0, hook: 0, retry: 0 };
  /** Pushes in a row that the bus did not deliver: the retry's backoff. */
  #pushFailures = 0;
  /** When the first of those failed (Date.now()). */
  #pushFailingSince = 0;
  /** When pushes began to find no session (Date.now(); 0: the last one did not). */
  #noSessionSince = 0;
  /** The highest UID a wake-up was asked for: each new message counts once, whatever the retries. */
  #wokenUid = 0;
  /** No session, and the device can be woken: no retries, waiting for news or the device. */
  #parked = false;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  readonly #opts: InboxWatcherOptions;
  readonly #log: Logger | undefined;
  readonly #onStop: (reason: WatcherStopReason) => void;
  readonly #onMark: ((mark: WatchMark) => Promise<void>) | undefined;
  /** Resolves once the watcher is IDLE-ready on INBOX for the first time (tests, metrics). */
  readonly ready: Promise<void>;
  #markReady!: () => void;

  constructor(
    account: MailAccount,
    fromUid: number,
    push: PushFn,
    opts: InboxWatcherOptions,
    onStop: (reason: WatcherStopReason) => void,
    cursor?: WatchedCursor,
    onMark?: (mark: WatchMark) => Promise<void>,
  ) {
    this.account = account;
    this.#lastUid = fromUid;
    this.#cursor = cursor;
    this.#push = push;
    this.#opts = opts;
    this.#log = opts.logger;
    this.#onStop = onStop;
    this.#onMark = onMark;
    this.ready = new Promise((resolve) => (this.#markReady = resolve));
    this.#queueMark();
    void this.#run();
  }

  /** The device was given everything up to `uid` (by sync); a newer session's push replaces the old one. */
  update(uid: number, push: PushFn, cursor?: WatchedCursor): void {
    if (uid > this.#lastUid) this.#lastUid = uid;
    // The device is back (its session or sync): pushes find it again.
    this.#parked = false;
    this.#noSessionSince = 0;
    if (cursor && (!this.#cursor || cursor.cursor.highestUid >= this.#cursor.cursor.highestUid)) {
      this.#cursor = cursor;
    }
    this.#push = push;
    this.#queueMark();
  }

  /** Writes the mark after whatever is queued: marks are written in the order they moved. */
  #queueMark(): void {
    if (!this.#onMark) return;
    this.#chain = this.#chain.then(() => this.#saveMark());
  }

  #mark(): WatchMark {
    const c = this.#cursor;
    return {
      uid: this.#lastUid,
      at: Date.now(),
      ...(c === undefined ? {} : { cursor: encodeCursor(c.folder, c.cursor) }),
    };
  }

  async #saveMark(): Promise<void> {
    if (!this.#onMark || this.#stopped) return;
    // A mark that is not written costs a second push of the same mail after a restart, not a lost one.
    await this.#onMark(this.#mark()).catch((err: Error) =>
      this.#log?.warn({ account: this.account.id, err: { message: err.message } }, 'inbox mark not written'),
    );
  }

  /**
   * The cursor a push of `uid` follows and the one it moves the device to,
   * when the watcher knows one of the same UIDVALIDITY below `uid`. Nothing
   * moves until the push was delivered (#delivered).
   */
  #cursorsAt(client: ImapFlow, uid: number): { prev: string; cursor: string; moved: SyncCursor } | undefined {
    const c = this.#cursor;
    const validity = client.mailbox ? String(client.mailbox.uidValidity) : undefined;
    if (!c || c.cursor.uidValidity !== validity || uid <= c.cursor.highestUid) return undefined;
    const moved = { ...c.cursor, highestUid: uid };
    return { prev: encodeCursor(c.folder, c.cursor), cursor: encodeCursor(c.folder, moved), moved };
  }

  /**
   * The mail server says INBOX has mail up to `uid` (push hook): look now
   * instead of waiting for IDLE. False when there is nothing to do (already
   * pushed, or not connected: the reconnect catches up anyway).
   */
  poke(uid?: number): boolean {
    if (uid !== undefined && uid <= this.#lastUid) return false;
    const client = this.#client;
    if (this.#stopped || !client?.usable) return false;
    this.#catchUp(client, 'hook');
    return true;
  }

  /** Resolves when every catch-up queued so far has finished. */
  settled(): Promise<void> {
    return this.#chain;
  }

  async stop(reason: WatcherStopReason = 'stopped'): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearTimeout(this.#retryTimer);
    this.#wake?.();
    const client = this.#client;
    this.#client = undefined;
    client?.close();
    this.#setState('idle');
    if (reason === 'moved' && this.#onMark) {
      // The node that takes the device over starts from this mark: the push under way counts.
      await this.#chain;
      await this.#onMark(this.#mark()).catch((err: Error) =>
        this.#log?.warn(
          { account: this.account.id, err: { message: err.message } },
          'last inbox mark not written',
        ),
      );
    }
    this.#onStop(reason);
  }

  async #run(): Promise<void> {
    let failures = 0;
    while (!this.#stopped) {
      try {
        const client = await connectImap(this.account.imap, { ...this.#opts, autoIdleDelayMs: 50 });
        if (this.#stopped) {
          client.close();
          break;
        }
        this.#client = client;
        const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
        client.on('exists', () => this.#catchUp(client, 'idle'));
        await client.mailboxOpen(FOLDER);
        failures = 0;
        this.#setState('online');
        // Whatever arrived while we were away, before waiting for IDLE news.
        this.#catchUp(client, 'connect');
        await this.#chain;
        this.#markReady();
        await closed;
        this.#client = undefined;
      } catch (err) {
        const code = err instanceof GatewayError ? err.code : 'internal';
        this.#log?.debug({ account: this.account.id, code }, 'inbox watcher connection failed');
        if (code === 'mail.auth_failed') this.#setState('auth_failed');
      }
      if (this.#stopped) break;
      if (this.state !== 'auth_failed') this.#setState('retrying');
      failures++;
      await this.#sleep(this.#backoff(failures));
    }
  }

  #backoff(failures: number): number {
    const min = this.#opts.minBackoffMs ?? 250;
    const max = this.#opts.maxBackoffMs ?? 30_000;
    const base = Math.min(max, min * 2 ** Math.min(failures - 1, 16));
    return Math.round(base * (0.5 + (this.#opts.random ?? Math.random)()));
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      timer.unref();
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /** Serialised: EXISTS can arrive again while we are still fetching the previous batch. */
  #catchUp(client: ImapFlow, trigger: CatchUpTrigger): void {
    this.triggers[trigger]++;
    if (this.#queuedFor === client) return;
    this.#queuedFor = client;
    this.#chain = this.#chain.then(async () => {
      if (this.#queuedFor === client) this.#queuedFor = undefined;
      if (this.#stopped || this.#client !== client || !client.usable) return;
      try {
        // A hook can come before this session has seen the message: IMAP shows new messages to a
        // session only once it has synced (EXISTS), so sync first or the SEARCH finds nothing.
        if (trigger === 'hook') await client.noop();
        const found = await client.search({ uid: `${this.#lastUid + 1}:*` }, { uid: true });
        const uids = (Array.isArray(found) ? found : [])
          .filter((u) => u > this.#lastUid)
          .sort((a, b) => a - b);
        if (uids.length === 0) return;
        const headers = (await fetchHeaders(client, uids, true)).sort((a, b) => a.uid - b.uid);
        for (const [i, header] of headers.entries()) {
          if (this.#stopped || header.uid <= this.#lastUid) continue;
          const cursors = this.#cursorsAt(client, header.uid);
          // `prev: null`: the device cannot tell what came before (no cursor of this UIDVALIDITY): it syncs.
          try {
            await this.#push('mail.new', {
              account: this.account.id,
              folder: FOLDER,
              header,
              ...(cursors === undefined ? { prev: null } : { cursor: cursors.cursor, prev: cursors.prev }),
            });
          } catch (err) {
            if (err instanceof GatewayError && err.code === 'bus.no_responders') {
              const wakeable = this.#wakeFor(headers.slice(i));
              if (this.#noSessionFor()) {
                if (!wakeable) throw err;
                this.#park();
                return;
              }
            }
            this.#pushFailed(client, header.uid, cursors?.moved, err);
            return;
          }
          this.#delivered(header.uid, cursors?.moved);
          this.pushedBy[trigger]++;
          // The edge took it: the mark on disk moves with it (a restart resumes from here).
          await this.#saveMark();
        }
      } catch (err) {
        if (err instanceof GatewayError && err.code === 'bus.no_responders') {
          this.#log?.debug({ account: this.account.id }, 'device has no session; inbox watcher stops');
          await this.stop('no-session');
          return;
        }
        this.#log?.debug(
          { account: this.account.id, err: { message: (err as Error).message } },
          'inbox catch-up failed',
        );
      }
    });
  }

  /**
   * Asks for a wake-up for the messages not asked for before, with the
   * newest one's sender and subject (the push service shows them only where
   * the profile allows); whether the device can be woken.
   */
  #wakeFor(headers: MailHeader[]): boolean {
    const wake = this.#opts.wake;
    if (!wake) return false;
    const fresh = headers.filter((h) => h.uid > this.#wokenUid);
    const newest = fresh.at(-1);
    if (newest) this.#wokenUid = Math.max(...fresh.map((h) => h.uid));
    return wake(this.account.deviceId, fresh.length, newest);
  }

  /** Waits for news without retrying: the mark stays, the device is woken, its sync or session refreshes us. */
  #park(): void {
    if (!this.#parked) this.#log?.debug({ account: this.account.id }, 'device asleep; inbox watcher parks');
    this.#parked = true;
    clearTimeout(this.#retryTimer);
  }

  /** Whether the watcher waits for a device woken through its push channels (tests, metrics). */
  get parked(): boolean {
    return this.#parked;
  }

  /** A push found no session: true once pushes have found none for NO_SESSION_CONFIRM_MS. */
  #noSessionFor(): boolean {
    const now = Date.now();
    if (this.#noSessionSince === 0) this.#noSessionSince = now;
    return now - this.#noSessionSince >= NO_SESSION_CONFIRM_MS;
  }

  /** The edge took the push of `uid`: the device now holds it (and the moved cursor, if any). */
  #delivered(uid: number, moved: SyncCursor | undefined): void {
    this.#pushFailures = 0;
    this.#pushFailingSince = 0;
    this.#noSessionSince = 0;
    this.#parked = false;
    if (uid > this.#lastUid) this.#lastUid = uid;
    // A sync that answered meanwhile may have given the device a cursor beyond this one: keep that.
    if (moved && this.#cursor && moved.highestUid > this.#cursor.cursor.highestUid) {
      this.#cursor = { folder: this.#cursor.folder, cursor: moved };
    }
  }

  /**
   * A push of `uid` failed (the bus, the edge): the mark stays, so the next
   * catch-up sends it again. One that keeps failing (a push the edge will
   * never take) is given up, as if delivered, so the rest of the mail goes
   * on: the next push's `prev` then shows the device the gap, and it syncs.
   */
  #pushFailed(client: ImapFlow, uid: number, moved: SyncCursor | undefined, err: unknown): void {
    if (this.#pushFailures++ === 0) this.#pushFailingSince = Date.now();
    if (this.#pushFailures >= MAX_PUSH_ATTEMPTS || Date.now() - this.#pushFailingSince >= PUSH_GIVE_UP_MS) {
      this.#log?.warn(
        { account: this.account.id, uid, err: { message: (err as Error).message } },
        'mail.new given up after repeated failures; the device syncs it',
      );
      this.#delivered(uid, moved);
    }
    this.#retryLater(client);
  }

  /** Another catch-up after a short pause that grows with the failed pushes in a row. */
  #retryLater(client: ImapFlow): void {
    clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(
      () => this.#catchUp(client, 'retry'),
      pushRetryDelayMs(this.#pushFailures, this.#opts.random),
    );
    this.#retryTimer.unref?.();
  }

  #setState(state: ImapAccountState): void {
    if (this.state === state) return;
    this.state = state;
    if (this.#stopped) return;
    // Best effort: the device also learns the state from its next request's answer or error.
    this.#push('mail.account.state', accountStateBody(this.account, state)).catch(() => {});
  }
}

/** The node's watchers, one per account at most. */
export class InboxWatchers {
  readonly #watchers = new Map<string, InboxWatcher>();
  /** Lower-cased IMAP login and address → the watchers of accounts with it (push hook lookup). */
  readonly #byUser = new Map<string, Set<InboxWatcher>>();
  readonly #opts: InboxWatcherOptions;
  readonly #marks: WatchMarks | undefined;

  /** With `marks`, what is watched and how far is kept there, for restore() after a restart. */
  constructor(opts: InboxWatcherOptions, marks?: WatchMarks) {
    this.#opts = opts;
    this.#marks = marks;
  }

  /** Starts (or refreshes) the watcher of `account`, pushing what is above `fromUid`. */
  watch(account: MailAccount, fromUid: number, push: PushFn, cursor?: WatchedCursor): InboxWatcher {
    const existing = this.#watchers.get(account.id);
    if (existing) {
      existing.update(fromUid, push, cursor);
      return existing;
    }
    const marks = this.#marks;
    const watcher = new InboxWatcher(
      account,
      fromUid,
      push,
      this.#opts,
      (reason) => {
        if (reason === 'no-session') this.#dropMark(account.deviceId, account.id);
        if (this.#watchers.get(account.id) === watcher) this.#watchers.delete(account.id);
        for (const key of userKeys(account)) {
          const set = this.#byUser.get(key);
          set?.delete(watcher);
          if (set?.size === 0) this.#byUser.delete(key);
        }
      },
      cursor,
      marks && ((mark) => marks.put(account.deviceId, account.id, mark)),
    );
    this.#watchers.set(account.id, watcher);
    for (const key of userKeys(account)) {
      let set = this.#byUser.get(key);
      if (!set) this.#byUser.set(key, (set = new Set()));
      set.add(watcher);
    }
    return watcher;
  }

  /** A push hook notice: pokes the INBOX watchers of that user (on that host, when given); returns how many. */
  notify(notice: MailPushNotice): number {
    if (notice.folder.toUpperCase() !== FOLDER) return 0;
    const host = notice.host?.toLowerCase();
    let poked = 0;
    for (const watcher of this.#byUser.get(notice.user.toLowerCase()) ?? []) {
      if (host !== undefined && watcher.account.imap.host.toLowerCase() !== host) continue;
      if (watcher.poke(notice.uid)) poked++;
    }
    return poked;
  }

  get(accountId: string): InboxWatcher | undefined {
    return this.#watchers.get(accountId);
  }

  /**
   * The device's session came up: starts the watchers its marks name (after a
   * restart of this node) with the session's push; `account` finds each
   * account, undefined when it is gone (its mark goes too). Returns how many
   * were started.
   */
  restore(deviceId: string, push: PushFn, account: (accountId: string) => MailAccount | undefined): number {
    if (!this.#marks) return 0;
    let started = 0;
    for (const { id: accountId, record: mark } of this.#marks.list(deviceId)) {
      const found = account(accountId);
      if (!found || found.deviceId !== deviceId) {
        this.#dropMark(deviceId, accountId);
        continue;
      }
      if (!this.#watchers.has(accountId)) started++;
      this.watch(found, mark.uid, push, watchedCursor(mark.cursor));
    }
    return started;
  }

  /** The device's watchers on this node. */
  ofDevice(deviceId: string): InboxWatcher[] {
    return [...this.#watchers.values()].filter((w) => w.account.deviceId === deviceId);
  }

  /**
   * The device moved to another transport: its watchers stop once their last
   * marks are written (the other node starts from them). Returns how many.
   */
  async release(deviceId: string): Promise<number> {
    const watchers = this.ofDevice(deviceId);
    await Promise.all(watchers.map((w) => w.stop('moved')));
    return watchers.length;
  }

  /** Stops the account's watcher for now (its mark stays: a restore starts it again). */
  async stop(accountId: string): Promise<void> {
    await this.#watchers.get(accountId)?.stop();
  }

  /** The account is gone: its watcher stops and its mark goes. */
  async forget(deviceId: string, accountId: string): Promise<void> {
    await this.stop(accountId);
    await this.#marks?.remove(deviceId, accountId);
  }

  #dropMark(deviceId: string, accountId: string): void {
    this.#marks
      ?.remove(deviceId, accountId)
      .catch((err: Error) =>
        this.#opts.logger?.warn(
          { account: accountId, err: { message: err.message } },
          'inbox mark not removed',
        ),
      );
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.#watchers.values()].map((w) => w.stop()));
  }
}

/** A stored cursor back as the watcher's; none when it does not decode (the pushes then carry none). */
function watchedCursor(cursor: string | undefined): WatchedCursor | undefined {
  if (cursor === undefined) return undefined;
  try {
    return { folder: FOLDER, cursor: decodeCursor(FOLDER, cursor) };
  } catch {
    return undefined;
  }
}

function userKeys(account: MailAccount): Set<string> {
  return new Set([account.imap.user.toLowerCase(), account.address.toLowerCase()]);
}
