/**
 * A child process of the chaos suite running some of its handsets through the
 * SDK, each with one of two applications (FleetSetup.app):
 * - 'sdk' (the default): items come from the SDK's PushCursors (cursors,
 *   gap re-syncs, catch-up after a lost session, repeats dropped), with no
 *   sync code of the application's own: what issue 12 asks of the SDK;
 * - 'manual': what docs/handset-json.md tells an application without it:
 *   it keeps its INBOX cursor and its chat cursor, and after a `connected`
 *   with `resumed: false` (or an `im.state` online) it syncs INBOX and
 *   catches chat up from them.
 * Nothing more in either: no dedup, no reordering of its own, so that what
 * the gateway and the SDK hand over is what is counted.
 *
 * Every handset sends chat and mail to the next one (`cx-c-<from>-<n>` in
 * the body, `cx-m-<from>-<n>` as the subject), resending an item with the
 * same clientId until it is accepted, and reports every attempt and every
 * item it sees to the parent over IPC (records.ts); the parent judges.
 */
import WebSocket from 'ws';
import { GatewayError } from '../../device-protocol/errors.ts';
import { Handset, type HandsetOptions } from '../../device-protocol/handset.ts';
import { PushCursors, type StoredCursors } from '../../device-protocol/push-cursors.ts';
import type { FleetCommand, FleetSetup, HandsetSpec, Rec } from './records.ts';

const ITEM = /cx-[cm]-\d+-\d+/;
const REQUEST_TIMEOUT_MS = 10_000;

let setup: FleetSetup | undefined;
let trafficOn = false;
let closing = false;
const outbox: Rec[] = [];
const apps: App[] = [];

function record(rec: Rec): void {
  outbox.push(rec);
}

const flusher = setInterval(() => {
  if (outbox.length > 0) process.send?.({ type: 'records', records: outbox.splice(0) });
}, 200);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The `ws` WebSocket bound to this handset's own 127.x source address. */
function boundWebSocket(localAddress: string): any {
  return class extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols, { localAddress });
    }
  };
}

class App {
  handset!: Handset;
  mailAccount = '';
  imAccount = '';
  mailCursor: string | undefined;
  chatCursor: string | undefined;
  connects = 0;
  /** The SDK's cursor keeper ('sdk' application) and its last snapshot, carried over a reopen. */
  cursors: PushCursors | undefined;
  #stored: StoredCursors | undefined;
  #syncing: Promise<void> | undefined;
  #again = false;
  /**
   * Pushes that came while a catch-up runs wait here, and those the catch-up
   * brought too are dropped (the overlap of a push and the page that covers
   * it is the application's to fold, as the docs' chat example does).
   */
  #held: Array<Extract<Rec, { r: 'seen' }>> | undefined;
  #brought = new Set<string>();

  constructor(readonly spec: HandsetSpec) {}

  open(): void {
    const s = this.spec;
    const options: HandsetOptions = {
      // Every edge, this handset's first: the SDK moves to another when one fails.
      urls: s.urls,
      imei: s.imei,
      secret: s.secret,
      transport: 'ws',
      WebSocket: boundWebSocket(s.localAddress),
      client: 'mmgw-chaos/1',
      requestTimeoutMs: REQUEST_TIMEOUT_MS,
      backoff: { initialMs: 200, maxMs: 2000 },
    };
    this.handset = new Handset(options);
    const h = this.handset;
    // A reopened application keeps its stored cursors; the first one gets them at the end of setUp.
    if (this.#stored) this.startCursors(this.#stored);
    h.on('connected', (e) => {
      this.connects++;
      record({ r: 'conn', h: s.index, t: Date.now(), resumed: e.resumed });
      if (!this.cursors && !e.resumed && this.connects > 1) this.catchUp();
    });
    h.on('disconnected', (e) => {
      record({ r: 'disc', h: s.index, t: Date.now(), code: e.code ?? '' });
    });
    h.on('error', () => {});
    h.on('event', (e) => {
      if (this.cursors) return;
      const body = e.body as any;
      if (e.name === 'mail.new' && body?.account === this.mailAccount) {
        // While a catch-up runs, its pages move the cursor; a push must not make it skip.
        if (body.cursor && !this.#held) this.mailCursor = body.cursor;
        this.seen(String(body.header?.subject ?? ''), 'push');
      } else if (e.name === 'im.message' && body?.account === this.imAccount && body.direction === 'in') {
        if (body.stanzaId && !this.#held) this.chatCursor = body.stanzaId;
        this.seen(String(body.body ?? ''), 'push');
      } else if (e.name === 'im.state' && body?.account === this.imAccount && body.state === 'online') {
        if (this.connects > 0 && this.imAccount) this.catchUp();
      }
    });
  }

  /** The 'sdk' application: every item from PushCursors, starting from `stored`. */
  startCursors(stored: StoredCursors): void {
    const cursors = new PushCursors(this.handset, { cursors: stored });
    this.cursors = cursors;
    cursors.on('cursors', (snapshot) => (this.#stored = snapshot));
    cursors.on('error', () => {});
    cursors.on('mail', ({ account, header }) => {
      if (account === this.mailAccount) this.seen(String(header.subject ?? ''), 'push');
    });
    cursors.on('chat', ({ account, message }) => {
      if (account === this.imAccount && message.direction === 'in')
        this.seen(String(message.body ?? ''), 'push');
    });
  }

  seen(text: string, via: 'push' | 'sync'): void {
    const id = ITEM.exec(text)?.[0];
    if (!id) return;
    const at = { r: 'seen', item: id, h: this.spec.index, t: Date.now(), via } as const;
    if (via === 'push' && this.#held) this.#held.push(at);
    else {
      if (via === 'sync') this.#brought.add(id);
      record(at);
    }
  }

  /** A request retried until it is answered or the fleet closes; each attempt a new request id. */
  async persistent<T>(method: string, body: Record<string, unknown>): Promise<T> {
    for (;;) {
      try {
        return await this.handset.request<T>(method, body as never, { timeoutMs: REQUEST_TIMEOUT_MS });
      } catch (err) {
        if (closing) throw err;
        // Asking again cannot mend these.
        if (
          err instanceof GatewayError &&
          ['request.bad_input', 'mail.auth_failed', 'im.auth_failed'].includes(err.code)
        )
          throw err;
        await sleep(500);
      }
    }
  }

  async setUp(): Promise<void> {
    const s = this.spec;
    const f = setup!;
    await this.handset.connect();
    const added = await this.persistent<any>('mail.account.add', {
      address: s.mailUser,
      imap: { host: f.imap.host, port: f.imap.port, tls: 'none', user: s.mailUser, password: s.password },
      smtp: { host: f.smtp.host, port: f.smtp.port, tls: 'none', user: s.mailUser, password: s.password },
    });
    this.mailAccount = added.account;
    const login = await this.persistent<any>('im.login', {
      jid: s.jid,
      password: s.password,
      host: f.xmpp.host,
      port: f.xmpp.port,
    });
    this.imAccount = login.account;
    // The newest of each: what came before is not this run's business.
    const page = await this.persistent<any>('mail.sync', {
      account: this.mailAccount,
      folder: 'INBOX',
      limit: 1,
    });
    this.mailCursor = page.cursor;
    const chat = await this.persistent<any>('im.catchup', { account: this.imAccount, max: 1 });
    this.chatCursor = chat.last ?? this.chatCursor;
    if (f.app === 'sdk') {
      this.#stored = {
        version: 1,
        mail: this.mailCursor
          ? [{ account: this.mailAccount, folder: 'INBOX', cursor: this.mailCursor, uid: 0 }]
          : [],
        chat: this.chatCursor ? [{ account: this.imAccount, cursor: this.chatCursor }] : [],
      };
      this.startCursors(this.#stored);
    }
  }

  /** What the docs tell an application to do after `resumed: false`: sync INBOX, catch chat up. */
  catchUp(): void {
    if (this.#syncing) {
      this.#again = true;
      return;
    }
    this.#held = [];
    this.#brought.clear();
    this.#syncing = (async () => {
      do {
        this.#again = false;
        for (;;) {
          const page = await this.persistent<any>('mail.sync', {
            account: this.mailAccount,
            folder: 'INBOX',
            limit: 50,
            ...(this.mailCursor ? { cursor: this.mailCursor } : {}),
          });
          for (const item of [...(page.items ?? [])].reverse()) this.seen(String(item.subject ?? ''), 'sync');
          if (page.cursor) this.mailCursor = page.cursor;
          if (!page.more) break;
        }
        for (;;) {
          const page = await this.persistent<any>('im.catchup', {
            account: this.imAccount,
            max: 100,
            ...(this.chatCursor ? { after: this.chatCursor } : {}),
          });
          for (const m of page.messages ?? [])
            if (m.direction === 'in') this.seen(String(m.body ?? ''), 'sync');
          if (page.last) this.chatCursor = page.last;
          if (page.complete || (page.messages ?? []).length === 0) break;
        }
      } while (this.#again);
    })()
      .catch(() => {})
      .finally(() => {
        for (const at of this.#held ?? []) if (!this.#brought.has(at.item)) record(at);
        this.#held = undefined;
        this.#syncing = undefined;
      });
  }

  async sendLoop(kind: 'c' | 'm', everyMs: number, seq: { n: number }): Promise<void> {
    const s = this.spec;
    // Spread the handsets over the interval.
    await sleep(Math.random() * everyMs);
    while (trafficOn && !closing) {
      const started = Date.now();
      const item = `cx-${kind}-${s.index}-${++seq.n}`;
      for (let attempt = 1; !closing; attempt++) {
        const t = Date.now();
        try {
          if (kind === 'c')
            await this.handset.request(
              'im.send',
              { account: this.imAccount, to: s.peerJid, body: item, clientId: item },
              {
                timeoutMs: REQUEST_TIMEOUT_MS,
              },
            );
          else
            await this.handset.request(
              'mail.send',
              { account: this.mailAccount, to: [s.peerMail], subject: item, text: item, clientId: item },
              { timeoutMs: REQUEST_TIMEOUT_MS },
            );
          record({ r: 'attempt', item, from: s.index, to: s.peer, t, ok: true, attempt, ms: Date.now() - t });
          break;
        } catch (err) {
          const code = err instanceof GatewayError ? err.code : 'internal';
          record({
            r: 'attempt',
            item,
            from: s.index,
            to: s.peer,
            t,
            ok: false,
            code,
            attempt,
            ms: Date.now() - t,
          });
          // A stopped run gives up the item (it stays "not accepted"); otherwise resend it.
          if (!trafficOn) break;
          await sleep(1000);
        }
      }
      await sleep(Math.max(0, everyMs - (Date.now() - started)));
    }
  }
}

const seqs = new Map<string, { n: number }>();
const loops: Promise<void>[] = [];

function startTraffic(): void {
  trafficOn = true;
  const f = setup!;
  for (const app of apps) {
    for (const [kind, every] of [
      ['c', f.chatEveryMs],
      ['m', f.mailEveryMs],
    ] as const) {
      const key = `${kind}${app.spec.index}`;
      const seq = seqs.get(key) ?? { n: 0 };
      seqs.set(key, seq);
      loops.push(app.sendLoop(kind, every, seq));
    }
  }
}

async function stopTraffic(): Promise<void> {
  trafficOn = false;
  await Promise.allSettled(loops.splice(0));
}

/** "Restart the app": a new SDK instance (new session), the same cursors and accounts. */
async function reopen(): Promise<void> {
  await Promise.allSettled(
    apps.map(async (app) => {
      await app.handset.close().catch(() => {});
      app.open();
      // The first `connected` of the new instance is a reconnect for the application: it catches up.
      app.connects = 1;
      await app.handset.connect();
    }),
  );
}

process.on('message', async (cmd: FleetCommand) => {
  try {
    if (cmd.type === 'setup') {
      setup = cmd.setup;
      for (const spec of cmd.setup.handsets) apps.push(new App(spec));
      for (const app of apps) app.open();
      // A few at a time: 40 Hellos, account adds and logins at once only measure the machine.
      for (let i = 0; i < apps.length; i += 4) await Promise.all(apps.slice(i, i + 4).map((a) => a.setUp()));
      process.send?.({ type: 'ready' });
    } else if (cmd.type === 'traffic') {
      if (cmd.on) startTraffic();
      else await stopTraffic();
      process.send?.({ type: 'done', of: cmd.type });
    } else if (cmd.type === 'reopen') {
      await reopen();
      process.send?.({ type: 'done', of: cmd.type });
    } else if (cmd.type === 'stop') {
      closing = true;
      trafficOn = false;
      await Promise.allSettled(apps.map((a) => a.handset.close()));
      process.send?.({ type: 'records', records: outbox.splice(0) });
      clearInterval(flusher);
      process.disconnect?.();
    }
  } catch (err) {
    process.send?.({ type: 'failed', error: String((err as Error)?.stack ?? err) });
  }
});
process.on('disconnect', () => process.exit(0));
