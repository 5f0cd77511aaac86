/**
 * SMS wake-ups over SMPP 3.4 (issue 14), the last resort: one transceiver
 * session per transport node to the operator's SMSC, bound at the first SMS
 * with system_id and password from `push.sms`, kept alive with enquire_link,
 * and bound again with a doubling backoff whenever it drops. Transceiver
 * rather than transmitter so that the SMSC's delivery receipts (deliver_sm,
 * asked for with registered_delivery) come back on the same link.
 *
 * An SMS carries the placeholder text only (channel.ts wakeText: counts,
 * never content), with a validity period of the wake-up's TTL. The SMSC's
 * answer becomes the channel's: ESME_ROK sent; ESME_RTHROTTLED,
 * ESME_RMSGQFUL and ESME_RSYSERR failed, worth another try; ESME_RINVDSTADR
 * gone (the number will never take one); anything else failed for good. A
 * refused bind (a wrong password) fails every SMS until the next bind, with
 * its status named, and is logged; it never throws.
 *
 * The SMSC's address obeys the outbound destination policy (service sms, port
 * 2775 by default), checked at each bind and the connection pinned to the
 * address checked.
 */
import { connect, type Socket } from 'node:net';
import type { Logger } from 'pino';
import smpp, { type PDU, Session } from 'smpp';
import type { DestinationPolicy } from '../../net/destination-policy.ts';
import { type Attempt, type ChannelSender, type WakeMessage, wakeText } from './channel.ts';
import type { SmsRegistration } from './registrations.ts';

export interface SmsSenderOptions {
  host: string;
  port: number;
  systemId: string;
  password: string;
  sourceAddress: string;
  policy: DestinationPolicy;
  logger?: Pick<Logger, 'info' | 'warn'>;
  /** enquire_link every this many ms while bound. Default 30 s. */
  enquireLinkMs?: number;
  /** How long a connect, a bind or an answer may take before the link counts as dead. Default 10 s. */
  responseTimeoutMs?: number;
  /** The first and the longest wait before binding again after a drop or a refusal. Default 1 s and 60 s. */
  rebindMinMs?: number;
  rebindMaxMs?: number;
  /** A delivery receipt from the SMSC: the message id submit_sm_resp gave, and its final state (DELIVRD, UNDELIV, …). */
  onReceipt?(messageId: string, state: string): void;
}

const ERR = smpp.errors;
const RETRYABLE = new Set([ERR.ESME_RTHROTTLED, ERR.ESME_RMSGQFUL, ERR.ESME_RSYSERR]);
const statusName = (status: number) =>
  Object.keys(ERR).find((k) => ERR[k] === status) ?? `0x${status.toString(16).padStart(8, '0')}`;

/** SMPP's relative validity period (YYMMDDhhmmss, then 000R) of `seconds`, at most 99 days. */
export function relativeValidity(seconds: number): string {
  let s = Math.max(0, Math.min(Math.floor(seconds), 99 * 86400));
  const days = Math.floor(s / 86400);
  s -= days * 86400;
  const two = (n: number) => String(n).padStart(2, '0');
  return `0000${two(days)}${two(Math.floor(s / 3600))}${two(Math.floor((s % 3600) / 60))}${two(s % 60)}000R`;
}

/** TON/NPI of the source address: international (1/1) for a number, alphanumeric (5/0) for a name. */
function sourceFields(source: string) {
  const number = /^\+?[0-9]+$/.test(source);
  return number
    ? { source_addr_ton: 1, source_addr_npi: 1, source_addr: source.replace(/^\+/, '') }
    : { source_addr_ton: 5, source_addr_npi: 0, source_addr: source };
}

/** A bound session and what closing it must settle. */
interface Link {
  session: Session;
  socket: Socket;
  pending: Set<(pdu: PDU | undefined) => void>;
  keepAlive?: NodeJS.Timeout;
}

/** A receipt's text (SMPP 3.4 appendix B): `id:… sub:… dlvrd:… … stat:DELIVRD err:… text:…`. */
function receiptOf(pdu: PDU): { id: string; state: string } | undefined {
  const raw = pdu.short_message as { message?: unknown } | Buffer | undefined;
  const text = Buffer.isBuffer(raw) ? raw.toString('latin1') : String(raw?.message ?? '');
  const id = /\bid:(\S+)/.exec(text)?.[1] ?? (pdu.receipted_message_id as string | undefined);
  const state = /\bstat:(\S+)/.exec(text)?.[1];
  return id && state ? { id, state } : undefined;
}

export class SmsSender implements ChannelSender<SmsRegistration> {
  readonly #o: SmsSenderOptions;
  readonly #timeoutMs: number;
  #link: Promise<Link> | undefined;
  #up: Link | undefined;
  /** Why the last bind failed, while the backoff lasts; and when the next bind may start. */
  #refused: { why: string; retry: boolean; until: number } | undefined;
  #failures = 0;
  #rebind: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(opts: SmsSenderOptions) {
    this.#o = opts;
    this.#timeoutMs = opts.responseTimeoutMs ?? 10_000;
  }

  /** Whether a bound link is up now (tests, health). */
  get bound(): boolean {
    return this.#up !== undefined;
  }

  attempt(record: SmsRegistration, message: WakeMessage): Promise<Attempt> {
    return this.submit(record.msisdn, wakeText(message.tally), message.ttl);
  }

  /**
   * One SMS of `text` to `msisdn` (`+` and digits) valid for `validitySeconds`, over the link (bound
   * now if it is not): a wake-up, or an administrator's alarm (server/alarms/channels/sms.ts).
   */
  async submit(msisdn: string, text: string, validitySeconds: number): Promise<Attempt> {
    if (this.#closed) return { result: 'failed', why: 'sms sender closed', retry: false };
    const refused = this.#refused;
    if (refused && Date.now() < refused.until) {
      const wait = String(Math.ceil((refused.until - Date.now()) / 1000));
      return { result: 'failed', why: refused.why, retry: refused.retry, retryAfter: wait };
    }
    let link: Link;
    try {
      link = await this.#bound();
    } catch (err) {
      const r = this.#refused;
      return { result: 'failed', why: r?.why ?? (err as Error).message, retry: r?.retry ?? true };
    }
    const answer = await this.#request(link, (cb) =>
      link.session.submit_sm(
        {
          ...sourceFields(this.#o.sourceAddress),
          dest_addr_ton: 1,
          dest_addr_npi: 1,
          destination_addr: msisdn.replace(/^\+/, ''),
          short_message: text,
          validity_period: relativeValidity(validitySeconds),
          registered_delivery: this.#o.onReceipt ? 1 : 0,
        },
        cb,
      ),
    );
    if (!answer) return { result: 'failed', why: 'no submit_sm_resp (link lost)', retry: true };
    const status = answer.command_status;
    if (status === ERR.ESME_ROK) return { result: 'sent' };
    const name = statusName(status);
    if (status === ERR.ESME_RINVDSTADR) return { result: 'gone', code: `smpp_${name}`, why: `SMSC: ${name}` };
    return { result: 'failed', why: `SMSC: ${name}`, retry: RETRYABLE.has(status) };
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#rebind);
    const link = await this.#link?.catch(() => undefined);
    if (!link) return;
    await this.#request(link, (cb) => link.session.unbind({}, cb), 1000);
    link.socket.destroy();
  }

  /** The bound link: the one up, or a new bind (one at a time). */
  #bound(): Promise<Link> {
    this.#link ??= this.#bind().catch((err: unknown) => {
      this.#link = undefined;
      throw err;
    });
    return this.#link;
  }

  async #bind(): Promise<Link> {
    const o = this.#o;
    // The policy's refusal or an unknown host: failed for good until the next try after the backoff.
    const target = await o.policy.check('sms', o.host, o.port).catch((err: unknown) => {
      throw this.#failed(`SMSC ${o.host} not allowed or not found: ${(err as Error).message}`, false);
    });
    const socket = connect({ host: target.address, port: target.port, family: target.family });
    socket.setNoDelay(true);
    const link: Link = { session: new Session({ socket }), socket, pending: new Set() };
    link.session.on('error', () => socket.destroy());
    socket.once('close', () => this.#dropped(link));
    const up = await new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(false), this.#timeoutMs);
      socket.once('connect', () => {
        clearTimeout(t);
        resolve(true);
      });
      socket.once('close', () => {
        clearTimeout(t);
        resolve(false);
      });
    });
    if (!up) {
      socket.destroy();
      throw this.#failed(`SMSC ${o.host}:${o.port} unreachable`, true);
    }
    const answer = await this.#request(link, (cb) =>
      link.session.bind_transceiver({ system_id: o.systemId, password: o.password }, cb),
    );
    if (!answer || answer.command_status !== ERR.ESME_ROK) {
      socket.destroy();
      const why = answer ? `bind refused: ${statusName(answer.command_status)}` : 'no bind answer';
      // A refused bind is the operator's config (system_id, password): no SMS will pass until it changes.
      throw this.#failed(`SMSC ${o.host}: ${why}`, !answer);
    }
    this.#serve(link);
    this.#up = link;
    this.#failures = 0;
    this.#refused = undefined;
    o.logger?.info({ smsc: `${o.host}:${o.port}` }, 'SMPP link bound');
    return link;
  }

  /** What the SMSC asks of a bound ESME: keep-alives, receipts, unbind; and our own keep-alive. */
  #serve(link: Link): void {
    const { session, socket } = link;
    session.on('enquire_link', (pdu: PDU) => session.send(pdu.response()));
    session.on('unbind', (pdu: PDU) => {
      session.send(pdu.response());
      socket.end();
    });
    session.on('deliver_sm', (pdu: PDU) => {
      session.send(pdu.response());
      const receipt = receiptOf(pdu);
      if (receipt) this.#o.onReceipt?.(receipt.id, receipt.state);
    });
    link.keepAlive = setInterval(() => {
      void this.#request(link, (cb) => session.enquire_link({}, cb)).then((ok) => {
        if (!ok) socket.destroy();
      });
    }, this.#o.enquireLinkMs ?? 30_000);
    link.keepAlive.unref();
  }

  /** Sends a request; resolves with its answer, or undefined when the link closes or the answer is late. */
  #request(link: Link, send: (cb: (pdu: PDU) => void) => boolean, timeoutMs = this.#timeoutMs) {
    return new Promise<PDU | undefined>((resolve) => {
      const done = (pdu: PDU | undefined) => {
        clearTimeout(t);
        link.pending.delete(done);
        resolve(pdu);
      };
      const t = setTimeout(() => done(undefined), timeoutMs);
      link.pending.add(done);
      if (link.socket.destroyed || !send(done)) done(undefined);
    });
  }

  /** The doubling wait before the next bind. */
  #backoff(): number {
    return Math.min(this.#o.rebindMaxMs ?? 60_000, (this.#o.rebindMinMs ?? 1000) * 2 ** this.#failures);
  }

  #failed(why: string, retry: boolean): Error {
    const wait = this.#backoff();
    this.#failures++;
    this.#refused = { why, retry, until: Date.now() + wait };
    this.#o.logger?.warn(
      { smsc: `${this.#o.host}:${this.#o.port}`, why, retryInMs: wait },
      'SMPP bind failed',
    );
    return new Error(why);
  }

  /** The link closed: what waited on it is answered, and a bound link is bound again after the backoff. */
  #dropped(link: Link): void {
    clearInterval(link.keepAlive);
    for (const done of [...link.pending]) done(undefined);
    if (this.#closed || link !== this.#up) return;
    this.#up = undefined;
    this.#link = undefined;
    const wait = this.#backoff();
    this.#o.logger?.warn({ smsc: `${this.#o.host}:${this.#o.port}`, retryInMs: wait }, 'SMPP link dropped');
    this.#rebindAfter(wait);
  }

  /** Binds again after `wait`, and again after each failure, until bound or closed. */
  #rebindAfter(wait: number): void {
    clearTimeout(this.#rebind);
    this.#rebind = setTimeout(() => {
      if (this.#closed || this.#up) return;
      this.#bound().catch(() => {
        if (!this.#closed) this.#rebindAfter(Math.max(0, (this.#refused?.until ?? Date.now()) - Date.now()));
      });
    }, wait);
    this.#rebind.unref();
  }
}
