/**
 * The NATS bus: roles in several processes or hosts. Same envelope codec as
 * the in-process bus; NATS's own request errors are mapped onto the bus
 * error codes (no responders → bus.no_responders, timeout → bus.timeout).
 */
import { connect, errors as natsErrors, type Msg, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { GatewayError } from '../../device-protocol/errors.ts';
import type { Bus, BusHandler, RequestOptions, SubscribeOptions, Subscription } from './bus.ts';
import { decodePayload, decodeReply, encodeErrorReply, encodePayload } from './codec.ts';
import { DEFAULT_REQUEST_TIMEOUT_MS, invokeHandler } from './inproc.ts';
import { HELD_RELEASE_MS, NatsLink, NO_RESPONDERS_RETRY_MS } from './nats-link.ts';
import { checkPublishSubject, checkSubscribeSubject } from './subject.ts';

export interface NatsBusOptions {
  servers: string | string[];
  /** Connection name shown by the server (`nats-server` monitoring): use the node id. */
  name?: string;
  logger?: Logger;
  /** Give up the first connect after this long (default 10 s); later reconnects never give up. */
  connectTimeoutMs?: number;
}

/** Maps whatever the NATS client throws onto a bus GatewayError. */
export function natsErrorToGateway(err: unknown, subject: string, timeoutMs: number): GatewayError {
  if (err instanceof GatewayError) return err;
  const e = err as Error & { cause?: unknown; isNoResponders?: () => boolean };
  if (
    err instanceof natsErrors.NoRespondersError ||
    e?.cause instanceof natsErrors.NoRespondersError ||
    (err instanceof natsErrors.RequestError && err.isNoResponders())
  ) {
    return new GatewayError('bus.no_responders', `Nobody listens on "${subject}".`, { retryable: true });
  }
  if (err instanceof natsErrors.TimeoutError || e?.cause instanceof natsErrors.TimeoutError) {
    return new GatewayError('bus.timeout', `No answer on "${subject}" within ${timeoutMs} ms.`, {
      retryable: true,
    });
  }
  if (
    err instanceof natsErrors.ClosedConnectionError ||
    err instanceof natsErrors.DrainingConnectionError ||
    e?.cause instanceof natsErrors.ClosedConnectionError
  ) {
    return new GatewayError('bus.closed', undefined, { cause: err });
  }
  if (err instanceof natsErrors.InvalidSubjectError) {
    return new GatewayError('bus.bad_message', `Bad bus subject "${subject}".`, { cause: err });
  }
  if (err instanceof natsErrors.InvalidArgumentError) {
    // e.g. a payload over the server's max_payload (1 MiB by default).
    return new GatewayError('bus.bad_message', `Bus message on "${subject}" refused: ${e.message}`, {
      cause: err,
    });
  }
  // Disconnected mid-request and the like: the caller may retry.
  return new GatewayError(
    'bus.timeout',
    `The bus request on "${subject}" failed: ${e?.message ?? String(err)}`,
    {
      retryable: true,
      cause: err,
    },
  );
}

class NatsBus implements Bus {
  private closing: Promise<void> | undefined;

  constructor(
    private readonly nc: NatsConnection,
    private readonly logger: Logger | undefined,
    private readonly link: NatsLink,
  ) {}

  publish(subject: string, data: unknown): void {
    checkPublishSubject(subject);
    const bytes = encodePayload(data);
    if (this.link.holding) {
      // The client would drop it at its next dial: it goes out once the connection is back.
      this.link.hold(subject, bytes);
      return;
    }
    try {
      this.nc.publish(subject, bytes);
    } catch (err) {
      throw natsErrorToGateway(err, subject, 0);
    }
  }

  async request<T = unknown>(subject: string, data: unknown, options: RequestOptions = {}): Promise<T> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    checkPublishSubject(subject);
    const bytes = encodePayload(data);
    const deadline = Date.now() + timeoutMs;
    let reply: Msg;
    for (;;) {
      // Down: wait for the connection within the request's own time, rather than write into the void.
      if (!(await this.link.waitUp(deadline - Date.now()))) {
        if (this.link.closed) throw new GatewayError('bus.closed');
        throw new GatewayError(
          'bus.timeout',
          `No answer on "${subject}" within ${timeoutMs} ms: the bus connection is down.`,
          { retryable: true },
        );
      }
      try {
        reply = await this.ask(subject, bytes, Math.max(1, deadline - Date.now()));
        break;
      } catch (err) {
        const g = natsErrorToGateway(err, subject, timeoutMs);
        // Just reconnected: the other side may not have resubscribed yet.
        if (
          g.code === 'bus.no_responders' &&
          this.link.inGrace() &&
          deadline - Date.now() > NO_RESPONDERS_RETRY_MS
        ) {
          await new Promise((resolve) => setTimeout(resolve, NO_RESPONDERS_RETRY_MS));
          continue;
        }
        throw g;
      }
    }
    return decodeReply(reply.data, 'owned') as T;
  }

  /** One ask; fails at once when the connection goes before the answer came (the answer is lost with it). */
  private ask(subject: string, bytes: Uint8Array, timeoutMs: number): Promise<Msg> {
    return new Promise<Msg>((resolve, reject) => {
      const undo = this.link.whileUp(() =>
        reject(
          this.link.closed
            ? new GatewayError('bus.closed')
            : new GatewayError('bus.timeout', `The bus connection went before "${subject}" was answered.`, {
                retryable: true,
              }),
        ),
      );
      this.nc.request(subject, bytes, { timeout: timeoutMs }).then(resolve, reject).finally(undo);
    });
  }

  onConnection(listener: (up: boolean) => void): () => void {
    return this.link.onChange(listener);
  }

  subscribe(subject: string, handler: BusHandler, options: SubscribeOptions = {}): Subscription {
    const logger = this.logger;
    checkSubscribeSubject(subject);
    let sub: ReturnType<NatsConnection['subscribe']>;
    try {
      sub = this.nc.subscribe(subject, {
        ...(options.queue === undefined ? {} : { queue: options.queue }),
        callback: (err, msg) => {
          if (err) {
            logger?.warn({ subject, err }, 'bus subscription error');
            return;
          }
          const respond = msg.reply
            ? (envelope: Uint8Array) => {
                try {
                  msg.respond(envelope);
                } catch (e) {
                  logger?.warn({ subject: msg.subject, err: e }, 'bus reply could not be sent');
                }
              }
            : undefined;
          let data: unknown;
          try {
            // Each delivery has bytes of its own (a view of a socket read or of the
            // client's per-message buffer, neither of which is written again).
            data = decodePayload(msg.data, 'owned');
          } catch (e) {
            logger?.warn({ subject: msg.subject, err: e }, 'undecodable bus message dropped');
            respond?.(encodeErrorReply(e));
            return;
          }
          const busMsg = msg.reply
            ? { subject: msg.subject, data, reply: msg.reply }
            : { subject: msg.subject, data };
          invokeHandler(handler, busMsg, respond, logger);
        },
      });
    } catch (err) {
      throw natsErrorToGateway(err, subject, 0);
    }
    const queue = options.queue !== undefined;
    return {
      subject,
      unsubscribe: () => {
        try {
          // A queue member that leaves (an edge whose session moved) still handles what the
          // server routed to it before the UNSUB, as the IPC bus bounces it: unsubscribe would
          // drop those messages and leave their requesters waiting for a timeout.
          if (queue) sub.drain().catch(() => undefined);
          else sub.unsubscribe();
        } catch {
          // Already closed with the connection: nothing left to undo.
        }
      },
    };
  }

  async flush(): Promise<void> {
    try {
      await this.nc.flush();
    } catch (err) {
      throw natsErrorToGateway(err, '', 0);
    }
  }

  close(): Promise<void> {
    this.link.close();
    this.closing ??= (async () => {
      if (this.nc.isClosed()) return;
      // Drain lets handlers in progress answer; bounded, since a drain waits
      // for a server that may be gone.
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        this.nc.drain().catch(() => undefined),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, 2000);
        }),
      ]);
      clearTimeout(timer);
      if (!this.nc.isClosed()) await this.nc.close().catch(() => undefined);
    })();
    return this.closing;
  }
}

/** Sends what was published while the connection was down (see nats-link.ts). */
function releaseHeld(nc: NatsConnection, link: NatsLink, logger: Logger | undefined): void {
  const held = link.release();
  for (const h of held) {
    try {
      nc.publish(h.subject, h.bytes);
    } catch {
      // Closed meanwhile: nothing more goes out.
    }
  }
  if (held.length > 0 || link.dropped > 0) {
    logger?.info({ sent: held.length, dropped: link.dropped }, 'publishes held while the bus was down');
    link.dropped = 0;
  }
}

const connections = new WeakMap<Bus, NatsConnection>();

/**
 * The NATS connection under a bus, or undefined for another bus: JetStream
 * state (alarm history) and the connection's status events need it.
 */
export function natsConnectionOf(bus: Bus): NatsConnection | undefined {
  return connections.get(bus);
}

/** Connects to NATS and reconnects forever after that (a bus outage must not end the node). */
export async function connectNatsBus(opts: NatsBusOptions): Promise<Bus> {
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers: opts.servers,
      ...(opts.name === undefined ? {} : { name: opts.name }),
      maxReconnectAttempts: -1,
      reconnectTimeWait: 500,
      timeout: opts.connectTimeoutMs ?? 10_000,
    });
  } catch (err) {
    throw new GatewayError(
      'bus.closed',
      `Cannot connect to NATS at ${String(opts.servers)}: ${(err as Error).message}`,
      {
        retryable: true,
        cause: err,
      },
    );
  }
  const logger = opts.logger;
  const link = new NatsLink();
  void nc.closed().then(() => link.close());
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') link.down();
      else if (s.type === 'reconnect') {
        link.reconnected();
        setTimeout(() => releaseHeld(nc, link, logger), HELD_RELEASE_MS).unref();
      }
      if (logger && (s.type === 'disconnect' || s.type === 'reconnect' || s.type === 'error')) {
        logger.warn(
          { status: s.type, server: 'server' in s ? s.server : undefined },
          'nats connection status',
        );
      }
    }
  })().catch(() => undefined);
  const bus = new NatsBus(nc, logger, link);
  connections.set(bus, nc);
  return bus;
}
