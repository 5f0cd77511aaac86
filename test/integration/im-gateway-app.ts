/**
 * What a chat application on a handset does with the IM vocabulary, for the
 * gateway tests: it keeps a timeline of one account's incoming messages,
 * exactly once (deduplicated by origin-id, else stanza-id) and in order, and
 * catches up through im.catchup from its cursor whenever it may have missed
 * something (a new device session, or its account coming back online after
 * the XMPP server or the transport node restarted). Live pushes that arrive
 * while a catch-up runs wait behind it, so they cannot overtake older ones.
 *
 * ChatSender sends one message after another and, like a real client, resends
 * with the same clientId until the gateway says im.sent.
 */
import type { XmppClient } from '@xmpp/client';
import { GatewayError } from '../../device-protocol/errors.ts';
import type { Handset } from '../../device-protocol/handset.ts';
import { eventually } from '../../testing/index.ts';
import { WAIT_MS } from './e2e-suite.ts';

export interface AppMessage {
  from: string;
  to: string;
  body: string;
  stanzaId?: string;
  originId?: string;
  at: string;
  direction: 'in' | 'out';
  carbon?: boolean;
}

/**
 * @xmpp/client 0.14 resets its inbound stanza count when it handles <enabled/>,
 * which can be after it counted (and acked) stanzas that came in the same
 * read; Prosody then closes the stream ("acknowledged less stanzas than
 * already acknowledged"). The plain test clients never send a lower ack.
 */
export function monotonicAcks(x: XmppClient): void {
  let highest = 0;
  const send = x.send.bind(x);
  x.send = ((el: any) => {
    if (el?.name === 'a' && el.attrs?.xmlns === 'urn:xmpp:sm:3') {
      const h = Number(el.attrs.h);
      if (h < highest) el.attrs.h = String(highest);
      else highest = h;
    }
    return send(el);
  }) as typeof x.send;
  x.on('offline', () => {
    highest = 0;
  });
}

/** A request retried on any error but bad input, each attempt with a fresh request id. */
export async function persistentRequest<T>(
  handset: Handset,
  method: string,
  body: Record<string, unknown>,
  errors: string[] = [],
): Promise<T> {
  const answer = await eventually(
    `an answer to ${method}`,
    async () => {
      try {
        return { value: await handset.request<T>(method, body as never, { timeoutMs: 20_000 }) };
      } catch (err) {
        const code = err instanceof GatewayError ? err.code : 'internal';
        // Asking again cannot mend these.
        if (['request.bad_input', 'im.auth_failed', 'im.not_found'].includes(code)) return { err };
        errors.push(code);
        throw err;
      }
    },
    { timeoutMs: WAIT_MS * 4, intervalMs: 250 },
  );
  if ('err' in answer) throw answer.err;
  return answer.value;
}

export class ChatApp {
  readonly timeline: AppMessage[] = [];
  readonly seen = new Set<string>();
  /** Events of other kinds, for assertions (im.state, im.presence …). */
  readonly events: Array<{ name: string; body: any }> = [];
  cursor: string | undefined;
  catchups = 0;
  errors: string[] = [];
  #synced = true;
  #buffer: AppMessage[] = [];
  #running: Promise<void> | undefined;
  #again = false;

  constructor(
    public handset: Handset,
    readonly account: string,
  ) {
    this.attach(handset);
  }

  /** Follows a (new) handset of the same device. */
  attach(handset: Handset): void {
    this.handset = handset;
    handset.on('event', (e) => {
      const body = e.body as any;
      this.events.push({ name: e.name, body });
      if (body?.account !== this.account) return;
      if (e.name === 'im.message') this.#live(body as AppMessage);
      else if (e.name === 'im.state' && body.state === 'online') void this.sync();
    });
    handset.on('connected', (e) => {
      if (!e.resumed) void this.sync();
    });
  }

  /** Starts at the newest archived message (what came before is not this app's business). */
  async start(): Promise<void> {
    const page = await persistentRequest<any>(this.handset, 'im.catchup', { account: this.account, max: 1 });
    this.cursor = page.last;
  }

  bodies(prefix: string): string[] {
    return this.timeline.filter((m) => m.body.startsWith(prefix)).map((m) => m.body);
  }

  #live(m: AppMessage): void {
    if (m.direction !== 'in') return;
    if (this.#synced) this.#apply(m);
    else this.#buffer.push(m);
  }

  #apply(m: AppMessage): void {
    if (m.direction === 'in') {
      const key = m.originId ?? m.stanzaId ?? `${m.from}|${m.at}|${m.body}`;
      if (!this.seen.has(key)) {
        this.seen.add(key);
        this.timeline.push(m);
      }
    }
    if (m.stanzaId) this.cursor = m.stanzaId;
  }

  /** Catches up from the cursor until the archive says complete; again if asked meanwhile. */
  sync(): Promise<void> {
    this.#synced = false;
    if (this.#running) {
      this.#again = true;
      return this.#running;
    }
    this.#running = (async () => {
      do {
        this.#again = false;
        this.catchups++;
        for (;;) {
          const page = await persistentRequest<any>(
            this.handset,
            'im.catchup',
            { account: this.account, max: 50, ...(this.cursor === undefined ? {} : { after: this.cursor }) },
            this.errors,
          );
          for (const m of page.messages as AppMessage[]) this.#apply(m);
          if (page.last) this.cursor = page.last;
          if (page.complete || page.messages.length === 0) break;
        }
      } while (this.#again);
      const buffered = this.#buffer.splice(0);
      for (const m of buffered) {
        const key = m.originId ?? m.stanzaId;
        if (key === undefined || !this.seen.has(key)) this.#apply(m);
      }
      this.#synced = true;
    })().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  /** Resolves once no catch-up runs. */
  async idle(): Promise<void> {
    while (this.#running) await this.#running.catch(() => {});
  }
}

export class ChatSender {
  readonly errors: string[] = [];
  constructor(
    public handset: Handset,
    readonly account: string,
  ) {}

  async send(to: string, body: string, clientId: string): Promise<void> {
    const sent = await persistentRequest<any>(
      this.handset,
      'im.send',
      { account: this.account, to, body, clientId },
      this.errors,
    );
    if (sent.clientId !== clientId) throw new Error(`im.sent for ${sent.clientId}, not ${clientId}`);
  }
}
