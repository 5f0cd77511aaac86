/**
 * The bus of a node's child processes: edge workers (one machine runs several
 * edge processes sharing the device port; a process may hold at most 20,000
 * open files) and the supervised transport and transcoder. They reach the
 * rest of the node through the primary process: the primary
 * holds an InProcessBus (the broker) and serves each child over the Node IPC
 * channel; in the child, connectIpcBus() forwards publish, subscribe and
 * request to it. Payloads stay the bytes of the shared envelope codec end to
 * end, so a child's handler sees exactly what an in-process one would.
 *
 * Bytes over IPC: fork the children with `serialization: 'advanced'`
 * (child_process.fork option, or `cluster.setupPrimary({ serialization:
 * 'advanced' })`) and bytes travel as Uint8Array. With the default 'json'
 * serialization it still works, with bytes as base64 strings (slower): the
 * child reads its mode from NODE_CHANNEL_SERIALIZATION_MODE and announces it
 * in its first message, and both sides accept either form.
 *
 * Operations are batched: everything queued in one turn of the event loop
 * goes as one IPC message, which is what keeps 100k events/s affordable.
 */
import type { Logger } from 'pino';
import { GatewayError, toGatewayError } from '../../device-protocol/errors.ts';
import type { Bus, BusHandler, RequestOptions, SubscribeOptions, Subscription } from './bus.ts';
import { decodePayload, decodeReply, encodeErrorReply, encodePayload } from './codec.ts';
import {
  DEFAULT_REQUEST_TIMEOUT_MS,
  type InProcessBus,
  invokeHandler,
  type RawHandler,
  type RawReply,
} from './inproc.ts';
import { checkPublishSubject, checkSubscribeSubject } from './subject.ts';

/** The key of our IPC messages; anything else on the channel belongs to someone else. */
const TAG = '$mmgwBus';

enum Op {
  // child → primary
  Hello = 0,
  Sub = 1,
  Unsub = 2,
  Pub = 3,
  Req = 4,
  Res = 5,
  Ping = 6,
  Close = 7,
  // primary → child
  Msg = 8,
  Rep = 9,
  Pong = 10,
}

type Wire = Uint8Array | string;
type Mode = 'advanced' | 'json';
type Operation = unknown[];

/** What serveIpcBus needs from a ChildProcess or a cluster Worker. */
export interface IpcChild {
  send(message: unknown, callback?: (error: Error | null) => void): boolean | undefined;
  on(event: string, listener: (...args: any[]) => void): unknown;
  off?(event: string, listener: (...args: any[]) => void): unknown;
  readonly connected?: boolean;
}

function toWire(bytes: Uint8Array, mode: Mode): Wire {
  return mode === 'advanced'
    ? bytes
    : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

function fromWire(wire: unknown): Uint8Array {
  if (typeof wire === 'string') return Buffer.from(wire, 'base64');
  if (wire instanceof Uint8Array) return wire;
  throw new GatewayError('bus.bad_message', 'IPC bus payload is neither bytes nor base64.');
}

/** Queues operations and sends them as one IPC message per event-loop turn. */
class Outbox {
  private ops: Operation[] = [];
  private scheduled = false;

  constructor(
    private readonly sendBatch: (ops: Operation[]) => void,
    private readonly onSent?: () => void,
  ) {}

  push(op: Operation): void {
    this.ops.push(op);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flush);
    }
  }

  readonly flush = (): void => {
    this.scheduled = false;
    if (this.ops.length === 0) return;
    const ops = this.ops;
    this.ops = [];
    this.sendBatch(ops);
    this.onSent?.();
  };
}

interface ServedClient {
  mode: Mode;
  subs: Map<number, Subscription>;
  /** Forwards a message to this client; one function for all its subscriptions (sid as context). */
  deliver: RawHandler;
}

export interface ServeIpcBusOptions {
  logger?: Logger;
}

/**
 * Primary side: serves one child (ChildProcess or cluster Worker) from the
 * broker. Returns a function that stops serving and drops the child's
 * subscriptions (also done by itself when the child disconnects or exits).
 */
export function serveIpcBus(
  broker: InProcessBus,
  child: IpcChild,
  options: ServeIpcBusOptions = {},
): () => void {
  const logger = options.logger;
  const clients = new Map<string, ServedClient>();
  /** Requests from the broker waiting for the child's answer, by message id. */
  const replies = new Map<number, { reply: RawReply; at: number }>();
  let nextMid = 0;
  let stopped = false;
  const sendFailed = (err: Error | null): void => {
    if (err && !stopped) logger?.debug({ err }, 'IPC bus send to child failed');
  };
  const outbox = new Outbox((ops) => {
    if (stopped || child.connected === false) return;
    try {
      child.send({ [TAG]: ops }, sendFailed);
    } catch (err) {
      logger?.debug({ err }, 'IPC bus send to child failed');
    }
  });

  const clientOf = (c: string): ServedClient => {
    let client = clients.get(c);
    if (client === undefined) {
      const served: ServedClient = {
        mode: 'json',
        subs: new Map(),
        deliver: (subject, bytes, reply, sid) => {
          let mid = 0;
          if (reply) {
            mid = ++nextMid;
            replies.set(mid, { reply, at: Date.now() });
          }
          outbox.push([Op.Msg, c, sid, subject, toWire(bytes, served.mode), mid]);
        },
      };
      client = served;
      clients.set(c, client);
    }
    return client;
  };

  const dropClient = (c: string): void => {
    const client = clients.get(c);
    if (client === undefined) return;
    for (const sub of client.subs.values()) sub.unsubscribe();
    clients.delete(c);
  };

  const handle = (op: Operation): void => {
    const c = op[1] as string;
    switch (op[0] as Op) {
      case Op.Hello:
        clientOf(c).mode = op[2] === 'advanced' ? 'advanced' : 'json';
        return;
      case Op.Sub: {
        const client = clientOf(c);
        const sid = op[2] as number;
        const queue = op[4] as string | null;
        try {
          // The primary holds every worker's subscriptions (one per device session): no closure each.
          const sub = broker.subscribeRaw(
            op[3] as string,
            client.deliver,
            queue === null ? {} : { queue },
            sid,
          );
          client.subs.set(sid, sub);
        } catch (err) {
          logger?.warn({ err, subject: op[3] }, 'IPC bus subscription refused');
        }
        return;
      }
      case Op.Unsub: {
        const client = clients.get(c);
        client?.subs.get(op[2] as number)?.unsubscribe();
        client?.subs.delete(op[2] as number);
        return;
      }
      case Op.Pub:
        broker.publishRaw(op[2] as string, fromWire(op[3]));
        return;
      case Op.Req: {
        const rid = op[2] as number;
        const mode = clientOf(c).mode;
        broker.requestRaw(op[3] as string, fromWire(op[4]), op[5] as number).then(
          (envelope) => outbox.push([Op.Rep, c, rid, toWire(envelope, mode)]),
          (err) => outbox.push([Op.Rep, c, rid, toWire(encodeErrorReply(toGatewayError(err)), mode)]),
        );
        return;
      }
      case Op.Res: {
        const pending = replies.get(op[2] as number);
        if (pending === undefined) return;
        replies.delete(op[2] as number);
        pending.reply(fromWire(op[3]));
        return;
      }
      case Op.Ping:
        outbox.push([Op.Pong, c, op[2]]);
        return;
      case Op.Close:
        dropClient(c);
        return;
      default:
        logger?.warn({ op: op[0] }, 'unknown IPC bus operation');
    }
  };

  const onMessage = (message: unknown): void => {
    if (stopped || message === null || typeof message !== 'object') return;
    const ops = (message as Record<string, unknown>)[TAG];
    if (!Array.isArray(ops)) return;
    for (const op of ops) {
      try {
        if (Array.isArray(op)) handle(op);
      } catch (err) {
        // A bad operation from one child must not take the primary down.
        logger?.warn({ err }, 'bad IPC bus operation dropped');
      }
    }
  };

  // An answer the child never sends would pin its entry; requesters have long
  // timed out by then.
  const sweep = setInterval(() => {
    const old = Date.now() - 5 * 60_000;
    for (const [mid, pending] of replies) if (pending.at < old) replies.delete(mid);
  }, 60_000);
  sweep.unref();

  const stop = (): void => {
    if (stopped) return;
    stopped = true;
    clearInterval(sweep);
    for (const c of [...clients.keys()]) dropClient(c);
    // Requests the child took and will never answer (it crashed): their requesters learn it now,
    // not at their timeout. Whether the child acted on them is unknown, as after a timeout.
    const gone = encodeErrorReply(
      new GatewayError('bus.timeout', 'The process serving this request exited before answering.', {
        retryable: true,
      }),
    );
    for (const pending of replies.values()) pending.reply(gone);
    replies.clear();
    child.off?.('message', onMessage);
    child.off?.('disconnect', stop);
    child.off?.('exit', stop);
  };

  child.on('message', onMessage);
  child.on('disconnect', stop);
  child.on('exit', stop);
  return stop;
}

let clientCounter = 0;

class IpcSubscription implements Subscription {
  constructor(
    private readonly bus: IpcClientBus,
    private readonly sid: number,
    readonly subject: string,
    private readonly queue: boolean,
  ) {}

  unsubscribe(): void {
    this.bus.unsubscribeSid(this.sid, this.queue);
  }
}

interface ProcessChannel {
  send?: (
    message: unknown,
    sendHandle?: undefined,
    options?: undefined,
    callback?: (err: Error | null) => void,
  ) => boolean;
  connected?: boolean;
  on(event: string, listener: (...args: any[]) => void): unknown;
  off(event: string, listener: (...args: any[]) => void): unknown;
}

class IpcClientBus implements Bus {
  private readonly c = `${process.pid}.${++clientCounter}`;
  private readonly mode: Mode =
    process.env.NODE_CHANNEL_SERIALIZATION_MODE === 'advanced' ? 'advanced' : 'json';
  private readonly outbox: Outbox;
  private readonly handlers = new Map<number, BusHandler>();
  private readonly requests = new Map<
    number,
    {
      resolve(bytes: Uint8Array): void;
      reject(err: GatewayError): void;
      timer: ReturnType<typeof setTimeout>;
    }
  >();
  private readonly pings = new Map<number, () => void>();
  /** Queue group subscriptions left recently, by sid, with when (see bounce). */
  private readonly leftQueueSubs = new Map<number, number>();
  private nextId = 0;
  private closed = false;

  constructor(
    private readonly proc: ProcessChannel,
    private readonly logger: Logger | undefined,
  ) {
    const sendFailed = (err: Error | null): void => {
      if (err) this.logger?.debug({ err }, 'IPC bus send to primary failed');
    };
    this.outbox = new Outbox((ops) => {
      if (this.proc.connected === false || this.proc.send === undefined) return;
      try {
        this.proc.send({ [TAG]: ops }, undefined, undefined, sendFailed);
      } catch (err) {
        this.logger?.debug({ err }, 'IPC bus send to primary failed');
      }
    });
    proc.on('message', this.onMessage);
    proc.on('disconnect', this.onDisconnect);
    this.outbox.push([Op.Hello, this.c, this.mode]);
  }

  publish(subject: string, data: unknown): void {
    if (this.closed) throw new GatewayError('bus.closed');
    checkPublishSubject(subject);
    this.outbox.push([Op.Pub, this.c, subject, toWire(encodePayload(data), this.mode)]);
  }

  async request<T = unknown>(subject: string, data: unknown, options: RequestOptions = {}): Promise<T> {
    if (this.closed) throw new GatewayError('bus.closed');
    const timeoutMs = options.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    checkPublishSubject(subject);
    const bytes = encodePayload(data);
    const rid = ++this.nextId;
    const envelope = await new Promise<Uint8Array>((resolve, reject) => {
      // The primary times the request out itself; this timer only covers a
      // primary that stopped answering altogether.
      const timer = setTimeout(() => {
        this.requests.delete(rid);
        reject(
          new GatewayError('bus.timeout', `No answer on "${subject}" within ${timeoutMs} ms.`, {
            retryable: true,
          }),
        );
      }, timeoutMs + 1000);
      this.requests.set(rid, { resolve, reject, timer });
      this.outbox.push([Op.Req, this.c, rid, subject, toWire(bytes, this.mode), timeoutMs]);
    });
    return decodeReply(envelope) as T;
  }

  subscribe(subject: string, handler: BusHandler, options: SubscribeOptions = {}): Subscription {
    if (this.closed) throw new GatewayError('bus.closed');
    checkSubscribeSubject(subject);
    const sid = ++this.nextId;
    this.handlers.set(sid, handler);
    this.outbox.push([Op.Sub, this.c, sid, subject, options.queue ?? null]);
    // A plain object, no closure: an edge holds one subscription per device session.
    return new IpcSubscription(this, sid, subject, options.queue !== undefined);
  }

  /** @internal Called by IpcSubscription.unsubscribe. */
  unsubscribeSid(sid: number, queue: boolean): void {
    if (!this.handlers.delete(sid) || this.closed) return;
    this.outbox.push([Op.Unsub, this.c, sid]);
    if (queue) {
      const now = Date.now();
      this.leftQueueSubs.set(sid, now);
      // Messages in flight to a left subscription arrive within one IPC round trip; keep ten seconds.
      for (const [old, at] of this.leftQueueSubs) {
        if (now - at < 10_000) break;
        this.leftQueueSubs.delete(old);
      }
    }
  }

  private bounce(subject: string, wire: unknown, mid: number): void {
    const rid = ++this.nextId;
    const answer = (envelope: Uint8Array): void => {
      this.outbox.push([Op.Res, this.c, mid, toWire(envelope, this.mode)]);
    };
    const timer = setTimeout(() => {
      this.requests.delete(rid);
    }, DEFAULT_REQUEST_TIMEOUT_MS + 1000);
    this.requests.set(rid, {
      resolve: answer,
      reject: (err) => answer(encodeErrorReply(err)),
      timer,
    });
    // Bytes of their own: the primary's broker lets a lone receiver decode a large message as views
    // of its bytes, and the same received object sent twice in one batch would arrive as one object.
    const own = wire instanceof Uint8Array ? wire.slice() : wire;
    this.outbox.push([Op.Req, this.c, rid, subject, own, DEFAULT_REQUEST_TIMEOUT_MS]);
  }

  flush(): Promise<void> {
    if (this.closed) return Promise.reject(new GatewayError('bus.closed'));
    const id = ++this.nextId;
    return new Promise((resolve) => {
      this.pings.set(id, resolve);
      this.outbox.push([Op.Ping, this.c, id]);
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.outbox.push([Op.Close, this.c]);
    this.outbox.flush();
    this.shutdown();
  }

  private shutdown(): void {
    this.closed = true;
    this.handlers.clear();
    for (const pending of this.requests.values()) {
      clearTimeout(pending.timer);
      pending.reject(new GatewayError('bus.closed'));
    }
    this.requests.clear();
    for (const resolve of this.pings.values()) resolve();
    this.pings.clear();
    this.proc.off('message', this.onMessage);
    this.proc.off('disconnect', this.onDisconnect);
  }

  private readonly onDisconnect = (): void => {
    this.logger?.warn('IPC bus: the primary process is gone');
    this.shutdown();
  };

  private readonly onMessage = (message: unknown): void => {
    if (this.closed || message === null || typeof message !== 'object') return;
    const ops = (message as Record<string, unknown>)[TAG];
    if (!Array.isArray(ops)) return;
    for (const op of ops) {
      if (!Array.isArray(op) || op[1] !== this.c) continue;
      try {
        this.handle(op);
      } catch (err) {
        this.logger?.warn({ err }, 'bad IPC bus operation dropped');
      }
    }
  };

  private handle(op: Operation): void {
    switch (op[0] as Op) {
      case Op.Msg: {
        const handler = this.handlers.get(op[2] as number);
        const subject = op[3] as string;
        const mid = op[5] as number;
        if (handler === undefined) {
          // Routed to a queue group subscription this process just left: ask again, so that
          // another member answers (the Unsub went out before this, so it cannot come back here).
          if (mid > 0 && this.leftQueueSubs.has(op[2] as number)) this.bounce(subject, op[4], mid);
          return;
        }
        const reply: RawReply | undefined =
          mid > 0
            ? (envelope) => this.outbox.push([Op.Res, this.c, mid, toWire(envelope, this.mode)])
            : undefined;
        let data: unknown;
        try {
          data = decodePayload(fromWire(op[4]));
        } catch (err) {
          this.logger?.warn({ subject, err }, 'undecodable bus message dropped');
          reply?.(encodeErrorReply(err));
          return;
        }
        const msg = reply ? { subject, data, reply: `_INBOX.ipc.${mid}` } : { subject, data };
        invokeHandler(handler, msg, reply, this.logger);
        return;
      }
      case Op.Rep: {
        const pending = this.requests.get(op[2] as number);
        if (pending === undefined) return;
        this.requests.delete(op[2] as number);
        clearTimeout(pending.timer);
        pending.resolve(fromWire(op[3]));
        return;
      }
      case Op.Pong: {
        const resolve = this.pings.get(op[2] as number);
        this.pings.delete(op[2] as number);
        resolve?.();
        return;
      }
      default:
        return;
    }
  }
}

/**
 * Child side: a Bus that forwards everything to the primary process over the
 * IPC channel (the child must have been forked with an IPC channel, and the
 * primary must serve it with serveIpcBus).
 */
export function connectIpcBus(options: { logger?: Logger } = {}): Bus {
  if (typeof process.send !== 'function') {
    throw new GatewayError(
      'bus.closed',
      'connectIpcBus: this process has no IPC channel to a primary process.',
    );
  }
  return new IpcClientBus(process as unknown as ProcessChannel, options.logger);
}
