/**
 * The Handset SDK's keeper of sync cursors (SPEC.md §5 "Push cursors"): it
 * sits beside a Handset and turns its pushes and sync answers into one stream
 * of items per cursor that an application takes as it comes, every item
 * once, in order, with no sync code of its own:
 *
 * - mail: one cursor per account and folder (the `mail.sync` cursor), items
 *   are headers in UID order (`mail` events); chat: one cursor per account
 *   (an archive id), items are messages in archive order (`chat` events);
 * - it starts from the cursors the application stored (`cursors` option,
 *   `readStoredCursors`) and emits a new snapshot whenever one moves
 *   (`cursors` event), which is what the application persists;
 * - a push whose `prev` is not the cursor it holds (or is null: the gateway
 *   lost track) is a gap: the stream re-syncs from its last good cursor
 *   (`mail.sync` until `more` is false, `im.catchup` until `complete`) and
 *   hands on the push, and anything that came after it, only then; what the
 *   re-sync already brought is dropped (mail by UID, chat by archive id and
 *   origin-id), so an overlap of pushes and sync answers doubles nothing;
 * - after every Welcome with `resumed: false` (the first one too) it looks
 *   up the device's accounts (`mail.accounts`, `im.accounts`) and re-syncs
 *   every stream: pushes of the ended session may be lost, and a mail.sync of
 *   INBOX is also what has the gateway push new mail again. Accounts that
 *   come later are tracked from their first `mail.account.state` online or
 *   `im.state` online push (or trackMail / trackChat).
 *
 * Not a HandsetPlugin: plugins are pure and cannot send requests. It uses
 * only the Handset's public surface (`on`, `request`), so it works with any
 * carrier logic underneath. Create it before `handset.connect()`, or it
 * starts with the next Welcome.
 *
 * Pushes without a `prev` field come from a gateway that does not send it:
 * they are handed on as they come (deduplicated), as before.
 */

import { type BackoffOptions, backoffDelay } from './backoff.ts';
import { TypedEmitter } from './emitter.ts';
import { GatewayError } from './errors.ts';
import type { HandsetConnectedEvent, HandsetPushEvent } from './handset-types.ts';
import type { Value } from './messages.ts';

type Body = { [key: string]: Value };

/** What PushCursors needs of a Handset (the Handset class has it). */
export interface CursorHandset {
  on(name: 'event', fn: (e: HandsetPushEvent) => void): () => void;
  on(name: 'connected', fn: (e: HandsetConnectedEvent) => void): () => void;
  request<T = Value>(method: string, body?: Value): Promise<T>;
  /** Set once connected: then PushCursors starts at once instead of at the next Welcome. */
  readonly welcome?: unknown;
}

/** The cursors an application persists (the `cursors` event) and hands back at start. */
export interface StoredCursors {
  version: 1;
  /** `uid`: the highest UID handed on under this cursor (drops what a re-sync brings again). */
  mail: { account: string; folder: string; cursor: string; uid: number }[];
  chat: { account: string; cursor: string }[];
}

export interface MailItem {
  account: string;
  folder: string;
  /** The header as in mail.sync `items` and mail.new `header` (server/transport/mail/METHODS.md). */
  header: Body & { uid: number };
}

export interface MailChanges {
  account: string;
  folder: string;
  /** Flag changes and expunged UIDs a re-sync reported (at least once: applying them twice is harmless). */
  changed: Value[];
  vanished: Value[];
  /** UIDVALIDITY changed: every UID the application holds for this folder is void. */
  reset: boolean;
}

export interface ChatItem {
  account: string;
  /** The im.message body (docs/handset-json.md), without `prev`. */
  message: Body;
}

export interface PushCursorsEvents {
  mail: MailItem;
  chat: ChatItem;
  changes: MailChanges;
  cursors: StoredCursors;
  /** A stream given up (account gone, service not allowed) or a malformed push; the rest goes on. */
  error: GatewayError;
}

export interface PushCursorsOptions {
  /** Cursors the application stored (a `cursors` event's snapshot, read with readStoredCursors). */
  cursors?: StoredCursors;
  /** Track every account the gateway lists at each new session (mail INBOX, chat). Default true. */
  discover?: boolean;
  /**
   * Chat messages with `direction: "out"` (the user's own, from this device
   * or another client) are items too: 'all'. Default 'none': only incoming
   * messages are handed on; the cursor moves over both.
   */
  outgoing?: 'none' | 'all';
  /** Page sizes of the re-syncs. Defaults 100 and 100. */
  mailLimit?: number;
  chatMax?: number;
  /** Delay before a failed re-sync is tried again. Default 500 ms doubling to 30 s, jittered. */
  backoff?: BackoffOptions;
  random?: () => number;
}

const CURSOR_DROPPED = Symbol('cursor dropped');

/** Streams kept at most: pushes naming ever new accounts or folders must not grow memory without end. */
const MAX_STREAMS = 1000;

/** Archive ids remembered per chat account to drop repeats (a re-sync never reaches further back). */
const SEEN_MAX = 2000;

interface Stream {
  readonly key: string;
  readonly kind: 'mail' | 'chat';
  readonly account: string;
  readonly folder: string;
  cursor: string | undefined;
  /** mail: highest UID handed on. */
  uid: number;
  /** chat: archive ids and origin keys handed on, oldest first. */
  readonly seen: Set<string>;
  /** A re-sync of this stream has run in this object's life (a missing cursor then means "empty"). */
  synced: boolean;
  syncing: boolean;
  /** Another re-sync is due once the running one ends (a new session meanwhile). */
  again: boolean;
  /** Pushes waiting for the re-sync, in arrival order. */
  queue: Body[];
  failures: number;
  timer: ReturnType<typeof setTimeout> | undefined;
  dropped: boolean;
}

const isBody = (v: unknown): v is Body =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
const isStr = (v: unknown): v is string => typeof v === 'string';

/** Codes after which a stream's account is gone for this device: stop syncing it. */
const GIVE_UP = new Set(['mail.not_found', 'im.not_found', 'service.not_allowed', 'request.unknown_method']);

/**
 * The stored cursors in `value` (parsed JSON of a `cursors` snapshot), or a
 * GatewayError `config.invalid` naming the field at fault. Accepts every
 * version written so far (1); entries it cannot read are refused, not skipped,
 * so that a damaged store is noticed.
 */
export function readStoredCursors(value: unknown): StoredCursors {
  const bad = (field: string) =>
    new GatewayError('config.invalid', `stored cursors: ${field} is invalid`, { field });
  if (!isBody(value)) throw bad('cursors');
  if (value.version !== 1) throw bad('version');
  const mail: StoredCursors['mail'] = [];
  const chat: StoredCursors['chat'] = [];
  const list = (name: 'mail' | 'chat') => {
    const l = value[name] ?? [];
    if (!Array.isArray(l)) throw bad(name);
    return l;
  };
  for (const [i, e] of list('mail').entries()) {
    if (!isBody(e) || !isStr(e.account) || !isStr(e.folder) || !isStr(e.cursor)) throw bad(`mail[${i}]`);
    const uid = e.uid ?? 0;
    if (typeof uid !== 'number' || !Number.isSafeInteger(uid) || uid < 0) throw bad(`mail[${i}].uid`);
    mail.push({ account: e.account, folder: e.folder, cursor: e.cursor, uid });
  }
  for (const [i, e] of list('chat').entries()) {
    if (!isBody(e) || !isStr(e.account) || !isStr(e.cursor)) throw bad(`chat[${i}]`);
    chat.push({ account: e.account, cursor: e.cursor });
  }
  return { version: 1, mail, chat };
}

export class PushCursors {
  readonly #handset: CursorHandset;
  readonly #emitter = new TypedEmitter<PushCursorsEvents>();
  readonly #streams = new Map<string, Stream>();
  readonly #opts: PushCursorsOptions;
  readonly #offs: (() => void)[];
  /** Pushes that came while the accounts were being looked up: fed in once they are known. */
  #early: HandsetPushEvent[] | undefined;
  #discoverFailures = 0;
  #discoverTimer: ReturnType<typeof setTimeout> | undefined;
  #stopped = false;

  constructor(handset: CursorHandset, options: PushCursorsOptions = {}) {
    this.#handset = handset;
    this.#opts = options;
    const stored = options.cursors ? readStoredCursors(options.cursors) : undefined;
    for (const m of stored?.mail ?? []) {
      const s = this.#stream('mail', m.account, m.folder);
      s.cursor = m.cursor;
      s.uid = m.uid;
    }
    for (const c of stored?.chat ?? []) this.#stream('chat', c.account).cursor = c.cursor;
    this.#offs = [
      handset.on('event', (e) => this.#onEvent(e)),
      handset.on('connected', (e) => {
        if (!e.resumed) this.#newSession();
      }),
    ];
    if (handset.welcome !== undefined) this.#newSession();
  }

  on<K extends keyof PushCursorsEvents>(name: K, fn: (e: PushCursorsEvents[K]) => void): () => void {
    return this.#emitter.on(name, fn);
  }

  /** The cursors now, in the form to persist. */
  snapshot(): StoredCursors {
    const out: StoredCursors = { version: 1, mail: [], chat: [] };
    for (const s of this.#streams.values()) {
      if (s.cursor === undefined) continue;
      if (s.kind === 'mail')
        out.mail.push({ account: s.account, folder: s.folder, cursor: s.cursor, uid: s.uid });
      else out.chat.push({ account: s.account, cursor: s.cursor });
    }
    return out;
  }

  /** Looking up accounts, re-syncing, or holding pushes back: items may still come without a new push. */
  get busy(): boolean {
    if (this.#early !== undefined) return true;
    for (const s of this.#streams.values()) {
      if (s.syncing || s.queue.length > 0 || s.timer !== undefined) return true;
    }
    return false;
  }

  /** Keeps (and re-syncs now) the cursor of a mail folder, e.g. one the gateway does not push. */
  trackMail(account: string, folder = 'INBOX'): void {
    this.#resync(this.#stream('mail', account, folder));
  }

  /** Keeps (and catches up now) the cursor of a chat account, e.g. one just logged in. */
  trackChat(account: string): void {
    this.#resync(this.#stream('chat', account));
  }

  /** Stops listening and syncing; the cursors stay readable. */
  stop(): void {
    this.#stopped = true;
    for (const off of this.#offs) off();
    clearTimeout(this.#discoverTimer);
    for (const s of this.#streams.values()) clearTimeout(s.timer);
  }

  // ---- streams --------------------------------------------------------------

  #stream(kind: 'mail' | 'chat', account: string, folder = ''): Stream {
    const key = streamKey(kind, account, folder);
    let s = this.#streams.get(key);
    if (s === undefined) {
      s = {
        key,
        kind,
        account,
        folder,
        cursor: undefined,
        uid: 0,
        seen: new Set(),
        synced: false,
        syncing: false,
        again: false,
        queue: [],
        failures: 0,
        timer: undefined,
        dropped: false,
      };
      this.#streams.set(key, s);
    }
    return s;
  }

  #drop(s: Stream, err: GatewayError): void {
    s.dropped = true;
    clearTimeout(s.timer);
    this.#streams.delete(s.key);
    this.#emitter.emit('error', err);
    this.#emitCursors();
  }

  // ---- sessions and accounts ------------------------------------------------

  /** A new session: pushes of the old one may be lost. Look up the accounts, then re-sync everything. */
  #newSession(): void {
    if (this.#stopped) return;
    if (this.#opts.discover === false) {
      for (const s of this.#streams.values()) this.#resync(s);
      return;
    }
    if (this.#early !== undefined) return; // a lookup is under way; it re-syncs everything when done
    this.#early = [];
    void this.#discover();
  }

  async #discover(): Promise<void> {
    try {
      const [mail, chat] = await Promise.all([
        this.#accounts('mail.accounts'),
        this.#accounts('im.accounts'),
      ]);
      for (const account of mail) this.#stream('mail', account, 'INBOX');
      for (const account of chat) this.#stream('chat', account);
      this.#discoverFailures = 0;
    } catch (err) {
      if (this.#stopped || (err instanceof GatewayError && err.code === 'session.closed')) {
        this.#early = undefined;
        return;
      }
      // Not now (bus down, no transport): look again shortly; the pushes wait meanwhile.
      this.#discoverTimer = setTimeout(() => void this.#discover(), this.#delay(this.#discoverFailures++));
      return;
    }
    const early = this.#early ?? [];
    this.#early = undefined;
    for (const s of this.#streams.values()) this.#resync(s);
    for (const e of early) this.#onEvent(e);
  }

  /** The account ids of one service; none when the device's profile leaves the service out. */
  async #accounts(method: string): Promise<string[]> {
    try {
      const answer = await this.#handset.request(method);
      const list = isBody(answer) && Array.isArray(answer.accounts) ? answer.accounts : [];
      return list.flatMap((a) => (isBody(a) && isStr(a.account) ? [a.account] : []));
    } catch (err) {
      if (err instanceof GatewayError && GIVE_UP.has(err.code)) return [];
      throw err;
    }
  }

  // ---- pushes ---------------------------------------------------------------

  #onEvent(e: HandsetPushEvent): void {
    if (this.#stopped) return;
    const relevant = e.name === 'mail.new' || e.name === 'im.message';
    if (this.#early !== undefined && relevant) {
      this.#early.push(e);
      return;
    }
    const body = e.body;
    if (!isBody(body) || !isStr(body.account)) {
      if (relevant) this.#malformed(e.name, 'account');
      return;
    }
    switch (e.name) {
      case 'mail.new': {
        const header = body.header;
        if (!isStr(body.folder) || !isBody(header) || !Number.isSafeInteger(header.uid)) {
          this.#malformed(e.name, 'header.uid');
          return;
        }
        this.#pushTo('mail', body.account, body.folder, body);
        return;
      }
      case 'im.message':
        this.#pushTo('chat', body.account, '', body);
        return;
      case 'mail.account.added':
        this.trackMail(body.account);
        return;
      case 'mail.account.state':
        // An account added since the lookup (mail.account.add): its INBOX is synced once, which
        // also has the gateway push its new mail. Known ones catch up by their watcher.
        if (body.state === 'online' && !this.#streams.has(streamKey('mail', body.account, 'INBOX'))) {
          this.trackMail(body.account);
        }
        return;
      case 'mail.account.removed':
        for (const s of [...this.#streams.values()]) {
          if (s.kind === 'mail' && s.account === body.account) {
            this.#drop(
              s,
              new GatewayError('mail.not_found', 'the mail account was removed', { field: 'account' }),
            );
          }
        }
        return;
      case 'im.state':
        // Online again: the stream to the chat server may have been down, and its messages not pushed.
        if (body.state === 'online') this.trackChat(body.account);
        return;
    }
  }

  #malformed(name: string, field: string): void {
    this.#emitter.emit(
      'error',
      new GatewayError('protocol.bad_frame', `a ${name} push without a valid ${field}`, { field }),
    );
  }

  /** A push for a stream; one for a stream it does not keep yet counts against MAX_STREAMS. */
  #pushTo(kind: 'mail' | 'chat', account: string, folder: string, body: Body): void {
    if (!this.#streams.has(streamKey(kind, account, folder)) && this.#streams.size >= MAX_STREAMS) {
      this.#malformed(kind === 'mail' ? 'mail.new' : 'im.message', 'account');
      return;
    }
    this.#push(this.#stream(kind, account, folder), body);
  }

  #push(s: Stream, body: Body): void {
    if (s.syncing) {
      s.queue.push(body);
      return;
    }
    if (this.#take(s, body, false) === 'gap') {
      s.queue.push(body);
      this.#resync(s);
    }
  }

  /**
   * Hands on a push that follows what the stream holds; 'gap' when it does
   * not. `lenient`: the re-sync just run brought nothing new, so waiting for
   * another cannot help (a message the archive does not keep): hand it on.
   */
  #take(s: Stream, body: Body, lenient: boolean): 'taken' | 'gap' {
    if (this.#already(s, body)) return 'taken';
    const hasPrev = Object.hasOwn(body, 'prev');
    const follows =
      !hasPrev ||
      lenient ||
      (s.cursor === undefined && !s.synced) ||
      (isStr(body.prev) && body.prev === s.cursor);
    if (!follows) return 'gap';
    if (s.kind === 'mail') this.#deliverMail(s, body.header as MailItem['header'], body.cursor);
    else this.#deliverChat(s, body, true);
    return 'taken';
  }

  #already(s: Stream, body: Body): boolean {
    if (s.kind === 'mail') return (body.header as MailItem['header']).uid <= s.uid;
    return chatKeys(body).some((k) => s.seen.has(k));
  }

  #deliverMail(s: Stream, header: MailItem['header'], cursor: Value | undefined): void {
    if (header.uid > s.uid) {
      s.uid = header.uid;
      this.#emitter.emit('mail', { account: s.account, folder: s.folder, header });
    }
    if (isStr(cursor)) this.#moveCursor(s, cursor);
  }

  #deliverChat(s: Stream, message: Body, pushed: boolean): void {
    const keys = chatKeys(message);
    if (keys.some((k) => s.seen.has(k))) return;
    for (const k of keys) s.seen.add(k);
    while (s.seen.size > SEEN_MAX) s.seen.delete(s.seen.values().next().value as string);
    const { prev: _prev, ...rest } = message;
    if (message.direction !== 'out' || this.#opts.outgoing === 'all') {
      this.#emitter.emit('chat', { account: s.account, message: rest });
    }
    // From a push, the archive id is the cursor; a page's own `last` moves it in #syncChat.
    if (pushed && isStr(message.stanzaId)) this.#moveCursor(s, message.stanzaId);
  }

  #moveCursor(s: Stream, cursor: string): void {
    if (s.cursor === cursor) return;
    s.cursor = cursor;
    this.#emitCursors();
  }

  #emitCursors(): void {
    this.#emitter.emit('cursors', this.snapshot());
  }

  // ---- re-sync --------------------------------------------------------------

  #resync(s: Stream): void {
    if (this.#stopped || s.dropped) return;
    if (s.syncing) {
      s.again = true;
      return;
    }
    clearTimeout(s.timer);
    s.timer = undefined;
    s.syncing = true;
    void this.#runSync(s);
  }

  async #runSync(s: Stream): Promise<void> {
    let progress: boolean;
    try {
      s.again = false;
      progress = s.kind === 'mail' ? await this.#syncMail(s) : await this.#syncChat(s);
      s.synced = true;
      s.failures = 0;
    } catch (err) {
      s.syncing = false;
      if (this.#stopped || s.dropped) return;
      const e = err instanceof GatewayError ? err : new GatewayError('internal', String(err));
      if (e.code === 'session.closed') return;
      if (GIVE_UP.has(e.code)) {
        this.#drop(s, e);
        return;
      }
      s.timer = setTimeout(
        () => {
          s.timer = undefined;
          this.#resync(s);
        },
        this.#delay(s.failures++),
      );
      return;
    }
    s.syncing = false;
    if (this.#stopped || s.dropped) return;
    if (s.again) {
      this.#resync(s);
      return;
    }
    const queued = s.queue;
    s.queue = [];
    for (let i = 0; i < queued.length; i++) {
      if (this.#take(s, queued[i]!, !progress) === 'gap') {
        s.queue = [...queued.slice(i), ...s.queue];
        this.#resync(s);
        return;
      }
    }
  }

  /** mail.sync from the stream's cursor until `more` is false; true when it moved anything. */
  async #syncMail(s: Stream): Promise<boolean> {
    let progress = false;
    for (;;) {
      const body: Body = { account: s.account, folder: s.folder, limit: this.#opts.mailLimit ?? 100 };
      if (s.cursor !== undefined) body.cursor = s.cursor;
      // Without a readable cursor the folder is synced afresh (UIDs already handed on stay dropped).
      const answer = await this.#ask(s, 'mail.sync', body, 'mail.bad_cursor');
      if (answer === CURSOR_DROPPED) {
        progress = true;
        continue;
      }
      if (!isBody(answer) || !isStr(answer.cursor)) {
        throw new GatewayError('protocol.bad_frame', 'a mail.sync answer without a cursor', {
          field: 'cursor',
        });
      }
      if (answer.reset === true) s.uid = 0;
      const items = (Array.isArray(answer.items) ? answer.items : [])
        .filter((h): h is MailItem['header'] => isBody(h) && Number.isSafeInteger(h.uid))
        .sort((a, b) => a.uid - b.uid);
      for (const header of items) {
        if (header.uid > s.uid) progress = true;
        this.#deliverMail(s, header, undefined);
      }
      const changed = Array.isArray(answer.changed) ? answer.changed : [];
      const vanished = Array.isArray(answer.vanished) ? answer.vanished : [];
      if (changed.length > 0 || vanished.length > 0 || answer.reset === true) {
        this.#emitter.emit('changes', {
          account: s.account,
          folder: s.folder,
          changed,
          vanished,
          reset: answer.reset === true,
        });
      }
      if (answer.cursor !== s.cursor) progress = true;
      this.#moveCursor(s, answer.cursor);
      if (answer.more !== true) return progress;
    }
  }

  /** im.catchup after the stream's cursor until `complete`; true when it moved anything. */
  async #syncChat(s: Stream): Promise<boolean> {
    let progress = false;
    for (;;) {
      const body: Body = { account: s.account, max: this.#opts.chatMax ?? 100 };
      if (s.cursor !== undefined) body.after = s.cursor;
      // An archive that no longer knows the cursor gives its latest page; repeats are dropped by id.
      const answer = await this.#ask(s, 'im.catchup', body, 'im.bad_cursor');
      if (answer === CURSOR_DROPPED) {
        progress = true;
        continue;
      }
      if (!isBody(answer))
        throw new GatewayError('protocol.bad_frame', 'an im.catchup answer that is not a map');
      for (const m of Array.isArray(answer.messages) ? answer.messages : []) {
        if (!isBody(m)) continue;
        if (!chatKeys(m).some((k) => s.seen.has(k))) progress = true;
        this.#deliverChat(s, { ...m, account: s.account }, false);
      }
      if (isStr(answer.last) && answer.last !== s.cursor) {
        progress = true;
        this.#moveCursor(s, answer.last);
      }
      if (answer.complete !== false || !isStr(answer.last)) return progress;
    }
  }

  /** The answer to a re-sync request, or CURSOR_DROPPED when the gateway cannot read the cursor (`badCursor`). */
  async #ask(s: Stream, method: string, body: Body, badCursor: string): Promise<unknown> {
    try {
      return await this.#handset.request(method, body);
    } catch (err) {
      if (err instanceof GatewayError && err.code === badCursor && s.cursor !== undefined) {
        s.cursor = undefined;
        return CURSOR_DROPPED;
      }
      throw err;
    }
  }

  #delay(failures: number): number {
    return backoffDelay(failures, this.#opts.backoff, this.#opts.random ?? Math.random);
  }
}

function streamKey(kind: 'mail' | 'chat', account: string, folder: string): string {
  return `${kind}\u0000${account}\u0000${folder}`;
}

/** What identifies a chat message across push and archive: its archive id, and its sender's origin-id. */
function chatKeys(m: Body): string[] {
  const keys: string[] = [];
  if (isStr(m.stanzaId)) keys.push(`s:${m.stanzaId}`);
  if (isStr(m.originId)) keys.push(`o:${m.direction}|${m.from}|${m.originId}`);
  return keys;
}
