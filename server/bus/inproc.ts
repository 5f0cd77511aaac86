/**
 * The in-process bus: every role in one process. It behaves like NATS where a
 * role could notice the difference: every payload is encoded to bytes at the
 * sender and decoded separately for each subscriber (nobody shares objects),
 * delivery is asynchronous, subjects match with `*` and `>`, queue groups
 * hand each message to one member, and a request to a subject nobody listens
 * on fails at once with bus.no_responders.
 *
 * It is also the broker behind the IPC bus of edge worker processes, which is
 * why it has a byte-level ("raw") side next to the typed one.
 *
 * One exception to "encoded to bytes": binaries a requester hands over
 * (`RequestOptions.transfer`) are moved, not packed (codec.ts, encodeMoving):
 * the sender's views are detached, so still nobody shares memory. A raw
 * subscriber gets them packed back in; several subscribers get copies each.
 */
import type { Logger } from 'pino';
import { GatewayError, toGatewayError } from '../../device-protocol/errors.ts';
import type { Bus, BusHandler, RequestOptions, SubscribeOptions, Subscription } from './bus.ts';
import {
  decodeMoved,
  decodeReply,
  encodeErrorReply,
  encodeHandlerResult,
  encodeMoving,
  encodePayload,
  inlineMoved,
  type MovedMessage,
} from './codec.ts';
import { checkPublishSubject, checkSubscribeSubject, hasWildcard, subjectMatches } from './subject.ts';

export const DEFAULT_REQUEST_TIMEOUT_MS = 5000;

/** Sends a reply envelope back to the requester; only the first call of any subscriber counts. */
export type RawReply = (envelope: Uint8Array) => void;

/** Receives a message as bytes; `reply` is set when the sender waits for an answer. */
export type RawHandler = (
  subject: string,
  bytes: Uint8Array,
  reply: RawReply | undefined,
  /** What was given to subscribeRaw as `context` (lets one handler serve many subscriptions). */
  context: unknown,
) => void;

/**
 * One subscription, and its own Subscription handle. A plain object without
 * closures: an edge holds one per device session, hundreds of thousands at once
 * (under tsx every closure costs some 240 bytes).
 */
class SubEntry implements Subscription {
  active = true;

  constructor(
    private readonly bus: InProcessBus,
    readonly subject: string,
    /** Pattern tokens; only for wildcard subscriptions. */
    readonly tokens: string[] | undefined,
    readonly queue: string | undefined,
    /** Byte-level handler (subscribeRaw), or undefined for a typed one. */
    readonly raw: RawHandler | undefined,
    /** Typed handler (subscribe). */
    readonly handler: BusHandler | undefined,
    /** Passed to the raw handler with each message. */
    readonly context: unknown,
  ) {}

  unsubscribe(): void {
    this.bus.remove(this);
  }
}

interface Delivery {
  entry: SubEntry;
  subject: string;
  bytes: Uint8Array;
  /** Binaries moved beside the bytes (a request's transfer list); usually none. */
  moved: Uint8Array[] | undefined;
  reply: RawReply | undefined;
  /** The same bytes went to more than one subscriber: each decodes its own copies. */
  shared: boolean;
}

interface PendingRequest {
  timer: ReturnType<typeof setTimeout>;
  reject(err: GatewayError): void;
}

export interface InProcessBusOptions {
  logger?: Logger;
}

export class InProcessBus implements Bus {
  /** Subscriptions without wildcards, by subject: the common case (device subjects) is one Map lookup. */
  private readonly exact = new Map<string, SubEntry[]>();
  private readonly wildcard: SubEntry[] = [];
  private readonly queueCursor = new Map<string, number>();
  private queued: Delivery[] = [];
  private scheduled = false;
  private closed = false;
  private readonly pending = new Set<PendingRequest>();
  private readonly logger: Logger | undefined;
  private inbox = 0;

  constructor(options: InProcessBusOptions = {}) {
    this.logger = options.logger;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  publish(subject: string, data: unknown): void {
    this.publishRaw(subject, encodePayload(data));
  }

  async request<T = unknown>(subject: string, data: unknown, options: RequestOptions = {}): Promise<T> {
    const message: MovedMessage =
      options.transfer !== undefined && options.transfer.length > 0
        ? encodeMoving(data, options.transfer)
        : { bytes: encodePayload(data), moved: [] };
    const envelope = await this.send(subject, message, options.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS);
    // A reply envelope goes to its one requester only.
    return decodeReply(envelope, 'owned') as T;
  }

  subscribe(subject: string, handler: BusHandler, options: SubscribeOptions = {}): Subscription {
    return this.add(subject, undefined, handler, options, undefined);
  }

  /**
   * Subscribes with a byte-level handler (used by the IPC broker to forward
   * without re-encoding). `context` is handed to the handler with each message,
   * so that one handler can serve many subscriptions without a closure each.
   */
  subscribeRaw(
    subject: string,
    deliver: RawHandler,
    options: SubscribeOptions = {},
    context?: unknown,
  ): Subscription {
    return this.add(subject, deliver, undefined, options, context);
  }

  private deliver(d: Delivery): void {
    const { entry, subject, bytes, moved, reply } = d;
    if (entry.raw !== undefined) {
      entry.raw(subject, moved === undefined ? bytes : inlineMoved({ bytes, moved }), reply, entry.context);
      return;
    }
    let data: unknown;
    try {
      // Bytes routed to this subscriber alone are its own: nobody else reads or writes them
      // (the sender's were packed into them or moved, a raw sender hands them over).
      data = decodeMoved({ bytes, moved: moved ?? [] }, d.shared ? 'shared' : 'owned');
    } catch (err) {
      this.logger?.warn({ subject, err }, 'undecodable bus message dropped');
      if (reply) reply(encodeErrorReply(err));
      return;
    }
    const msg =
      reply === undefined ? { subject, data } : { subject, data, reply: `_INBOX.inproc.${++this.inbox}` };
    invokeHandler(entry.handler!, msg, reply, this.logger);
  }

  private add(
    subject: string,
    raw: RawHandler | undefined,
    handler: BusHandler | undefined,
    options: SubscribeOptions,
    context: unknown,
  ): Subscription {
    if (this.closed) throw new GatewayError('bus.closed');
    const tokens = checkSubscribeSubject(subject);
    const wild = hasWildcard(subject);
    const entry = new SubEntry(
      this,
      subject,
      wild ? tokens : undefined,
      options.queue,
      raw,
      handler,
      context,
    );
    if (wild) {
      this.wildcard.push(entry);
    } else {
      const list = this.exact.get(subject);
      if (list === undefined) this.exact.set(subject, [entry]);
      else list.push(entry);
    }
    return entry;
  }

  publishRaw(subject: string, bytes: Uint8Array): void {
    if (this.closed) throw new GatewayError('bus.closed');
    checkPublishSubject(subject);
    this.route(subject, bytes, undefined, undefined);
  }

  /**
   * Sends a request as bytes and resolves with the reply envelope as bytes
   * (decode it with decodeReply). Rejects with bus.no_responders, bus.timeout
   * or bus.closed.
   */
  requestRaw(subject: string, bytes: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    return this.send(subject, { bytes, moved: [] }, timeoutMs);
  }

  private send(subject: string, message: MovedMessage, timeoutMs: number): Promise<Uint8Array> {
    if (this.closed) return Promise.reject(new GatewayError('bus.closed'));
    try {
      checkPublishSubject(subject);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<Uint8Array>((resolve, reject) => {
      let done = false;
      const pending: PendingRequest = {
        timer: setTimeout(() => {
          if (done) return;
          done = true;
          this.pending.delete(pending);
          reject(
            new GatewayError('bus.timeout', `No answer on "${subject}" within ${timeoutMs} ms.`, {
              retryable: true,
            }),
          );
        }, timeoutMs),
        reject: (err) => {
          if (done) return;
          done = true;
          clearTimeout(pending.timer);
          reject(err);
        },
      };
      const reply: RawReply = (envelope) => {
        if (done) return;
        done = true;
        clearTimeout(pending.timer);
        this.pending.delete(pending);
        resolve(envelope);
      };
      const moved = message.moved.length > 0 ? message.moved : undefined;
      if (this.route(subject, message.bytes, moved, reply) === 0) {
        done = true;
        clearTimeout(pending.timer);
        reject(new GatewayError('bus.no_responders', `Nobody listens on "${subject}".`, { retryable: true }));
        return;
      }
      this.pending.add(pending);
    });
  }

  flush(): Promise<void> {
    // Deliveries run in setImmediate callbacks, which run in order: by the
    // time this one fires, everything queued before it has been handed over.
    return new Promise((resolve) => setImmediate(resolve));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const list of this.exact.values()) for (const entry of list) entry.active = false;
    for (const entry of this.wildcard) entry.active = false;
    this.exact.clear();
    this.wildcard.length = 0;
    this.queued = [];
    for (const pending of this.pending) pending.reject(new GatewayError('bus.closed'));
    this.pending.clear();
  }

  /** How many subscriptions exist (for tests and metrics). */
  subscriptionCount(): number {
    let n = this.wildcard.length;
    for (const list of this.exact.values()) n += list.length;
    return n;
  }

  /** @internal Called by a subscription's unsubscribe(). */
  remove(entry: SubEntry): void {
    if (!entry.active) return;
    entry.active = false;
    if (entry.tokens === undefined) {
      const list = this.exact.get(entry.subject);
      if (list === undefined) return;
      const i = list.indexOf(entry);
      if (i >= 0) list.splice(i, 1);
      if (list.length === 0) this.exact.delete(entry.subject);
    } else {
      const i = this.wildcard.indexOf(entry);
      if (i >= 0) this.wildcard.splice(i, 1);
    }
  }

  /** Queues the message for every matching subscriber (one per queue group); returns how many. */
  private route(
    subject: string,
    bytes: Uint8Array,
    moved: Uint8Array[] | undefined,
    reply: RawReply | undefined,
  ): number {
    const list = this.exact.get(subject);
    // Fast path: one subscriber (a lone queue group member gets it too), no wildcards anywhere.
    if (this.wildcard.length === 0 && list !== undefined && list.length === 1) {
      this.enqueue({ entry: list[0]!, subject, bytes, moved, reply, shared: false });
      return 1;
    }
    const targets: SubEntry[] = list === undefined ? [] : list.slice();
    if (this.wildcard.length > 0) {
      const tokens = subject.split('.');
      for (const entry of this.wildcard) if (subjectMatches(entry.tokens!, tokens)) targets.push(entry);
    }
    if (targets.length === 0) return 0;
    let groups: Map<string, SubEntry[]> | undefined;
    const chosen: SubEntry[] = [];
    for (const entry of targets) {
      if (entry.queue === undefined) {
        chosen.push(entry);
      } else {
        groups ??= new Map();
        const members = groups.get(entry.queue);
        if (members === undefined) groups.set(entry.queue, [entry]);
        else members.push(entry);
      }
    }
    if (groups !== undefined) {
      for (const [queue, members] of groups) {
        // Round robin per queue name: bounded by the number of groups, fair enough for load spreading.
        // A group is created with its first member, so `members` is never empty.
        const cursor = this.queueCursor.get(queue) ?? 0;
        this.queueCursor.set(queue, (cursor + 1) % 1_000_000_007);
        chosen.push(members[cursor % members.length]!);
      }
    }
    const shared = chosen.length > 1;
    for (const entry of chosen) this.enqueue({ entry, subject, bytes, moved, reply, shared });
    return chosen.length;
  }

  private rerouteQueued(d: Delivery): void {
    const members: SubEntry[] = [];
    for (const entry of this.exact.get(d.subject) ?? [])
      if (entry.queue === d.entry.queue) members.push(entry);
    if (this.wildcard.length > 0) {
      const tokens = d.subject.split('.');
      for (const entry of this.wildcard) {
        if (entry.queue === d.entry.queue && subjectMatches(entry.tokens!, tokens)) members.push(entry);
      }
    }
    if (members.length === 0) {
      d.reply?.(noResponders(d.subject));
      return;
    }
    const cursor = this.queueCursor.get(d.entry.queue!) ?? 0;
    this.queueCursor.set(d.entry.queue!, (cursor + 1) % 1_000_000_007);
    this.enqueue({
      entry: members[cursor % members.length]!,
      subject: d.subject,
      bytes: d.bytes,
      moved: d.moved,
      reply: d.reply,
      shared: d.shared,
    });
  }

  private enqueue(delivery: Delivery): void {
    this.queued.push(delivery);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.drain);
    }
  }

  private readonly drain = (): void => {
    this.scheduled = false;
    const batch = this.queued;
    this.queued = [];
    for (const d of batch) {
      if (!d.entry.active) {
        // A queue group member that left after the message was routed to it: another member
        // takes it (as the NATS server would have picked one), so that a request is not lost.
        if (d.entry.queue !== undefined) this.rerouteQueued(d);
        continue;
      }
      try {
        this.deliver(d);
      } catch (err) {
        // A subscriber must never take the bus (or the process) down.
        this.logger?.error({ subject: d.subject, err }, 'bus subscriber threw');
        if (d.reply) d.reply(encodeErrorReply(toGatewayError(err)));
      }
    }
  };
}

/** Hands a message routed to a member that left to another member of its queue group (or answers no_responders). */
function noResponders(subject: string): Uint8Array {
  return encodeErrorReply(
    new GatewayError('bus.no_responders', `Nobody listens on "${subject}".`, { retryable: true }),
  );
}

/**
 * Runs a typed handler and, when a reply is wanted, sends its result or its
 * error back as an envelope. Shared by the in-process and IPC buses.
 */
export function invokeHandler(
  handler: BusHandler,
  msg: { subject: string; data: unknown; reply?: string },
  reply: RawReply | undefined,
  logger: Logger | undefined,
): void {
  const fail = (err: unknown): void => {
    if (reply) {
      if (!(err instanceof GatewayError)) logger?.error({ subject: msg.subject, err }, 'bus handler failed');
      reply(encodeHandlerResult({ ok: false, error: err }));
    } else {
      logger?.warn({ subject: msg.subject, err }, 'bus handler failed');
    }
  };
  let result: unknown;
  try {
    result = handler(msg);
  } catch (err) {
    fail(err);
    return;
  }
  if (
    result !== null &&
    typeof result === 'object' &&
    typeof (result as Promise<unknown>).then === 'function'
  ) {
    (result as Promise<unknown>).then((data) => reply?.(encodeHandlerResult({ ok: true, data })), fail);
  } else if (reply) {
    reply(encodeHandlerResult({ ok: true, data: result }));
  }
}
