/**
 * Test helpers for the edge: a raw device client over both carriers (the
 * codec and a socket, nothing of the SDK, for precise control: pause the
 * socket, kill it, send garbage), an in-memory DeviceDirectory, an echo
 * transport responder and a fixture that starts an edge on a free port and
 * stops it after the test.
 *
 * Clients may bind a source address of 127.0.0.0/8 (`localAddress`), so that
 * one test can be several peers to the edge's per-address limits.
 */
import http from 'node:http';
import net from 'node:net';
import type { TestContext } from 'node:test';
import pino from 'pino';
import { Registry } from 'prom-client';
import WebSocket from 'ws';
import { decodeBatch, decodeFrame, encodeBatch, encodeFrame } from '../../device-protocol/codec.ts';
import {
  CarrierCompression,
  COMPRESSED_FRAME,
  DEFLATE,
  plainFrame,
} from '../../device-protocol/compression.ts';
import { GatewayError } from '../../device-protocol/errors.ts';
import {
  type ErrorFrame,
  type Event,
  type Frame,
  Kind,
  PROTOCOL_VERSION,
  type Value,
  type Welcome,
} from '../../device-protocol/messages.ts';
import type {
  Bus,
  DeviceDirectory,
  DeviceEventReply,
  DeviceInfo,
  DeviceMessage,
} from '../../server/bus/bus.ts';
import { Subjects } from '../../server/bus/bus.ts';
import { InProcessBus } from '../../server/bus/inproc.ts';
import { type EdgeHandle, type EdgeOptions, startEdge } from '../../server/edge/index.ts';
import type { TransportRequest } from '../../server/transport/types.ts';
import type { EventuallyOptions } from '../../testing/index.ts';

export type CarrierKind = 'ws' | 'poll';
export type EngineKind = 'uws' | 'portable';

export const ENGINES: EngineKind[] = ['uws', 'portable'];
export const CARRIERS: CarrierKind[] = ['ws', 'poll'];
export const JWT_SECRET = 'test-secret-0123456789abcdef';
export const TRANSPORT_NODE = 'transport-1';
/** Generous: only to keep a broken test from hanging, never a timing assertion. */
export const WAIT_MS = 15_000;
/** eventually()'s bound in the edge suites. */
export const WAIT: EventuallyOptions = { timeoutMs: WAIT_MS };

// ---------------------------------------------------------------------------
// Directory and transport

export class MemoryDirectory implements DeviceDirectory {
  readonly devices = new Map<string, { secret: string; status: 'enabled' | 'disabled' }>();
  lookups = 0;

  add(imei: string, secret: string, status: 'enabled' | 'disabled' = 'enabled'): void {
    this.devices.set(imei, { secret, status });
  }

  private info(imei: string): DeviceInfo {
    const d = this.devices.get(imei);
    if (d === undefined) throw new GatewayError('auth.unknown_device');
    if (d.status !== 'enabled') throw new GatewayError('auth.disabled');
    return { imei, operator: 'test', status: d.status };
  }

  async authenticate(imei: string, secret: string): Promise<DeviceInfo> {
    const d = this.devices.get(imei);
    if (d === undefined) throw new GatewayError('auth.unknown_device');
    if (d.secret !== secret) throw new GatewayError('auth.bad_secret');
    return this.info(imei);
  }

  async lookup(imei: string): Promise<DeviceInfo> {
    this.lookups++;
    return this.info(imei);
  }
}

/** A trivial transport node: `echo` answers its body, `fail` a non-retryable error, `count` how often it ran. */
export function startEchoTransport(bus: Bus, nodeId = TRANSPORT_NODE): { calls: TransportRequest[] } {
  const calls: TransportRequest[] = [];
  bus.subscribe(Subjects.transportRequest(nodeId), async (msg) => {
    const r = msg.data as TransportRequest;
    calls.push(r);
    if (r.method === 'echo') return r.body ?? null;
    if (r.method === 'slow') {
      await new Promise((resolve) => setTimeout(resolve, 300));
      return r.body ?? null;
    }
    if (r.method === 'fail') throw new GatewayError('request.bad_input', 'refused by the test transport');
    throw new GatewayError('request.unknown_method');
  });
  return { calls };
}

// ---------------------------------------------------------------------------
// Fixture

export interface TestEdge {
  edge: EdgeHandle;
  port: number;
  bus: Bus;
  directory: MemoryDirectory;
  registry: Registry;
  engine: EngineKind;
  /** Pushes an event to a device through the bus, as a transport would; resolves with its seq. */
  push(imei: string, name: string, body?: Value): Promise<number>;
  /** A raw client of the given carrier kind (not yet authenticated), from 127.0.0.1 unless `localAddress` says. */
  client(kind: CarrierKind, localAddress?: string): Promise<RawClient>;
  /** Value of a counter with a `code` label (0 when absent). */
  counter(name: string, code?: string): Promise<number>;
}

export interface TestEdgeOptions extends Partial<Omit<EdgeOptions, 'engine' | 'bus' | 'directory'>> {
  engine: EngineKind;
  bus?: Bus;
  directory?: MemoryDirectory;
}

const silent = pino({ level: process.env.MMGW_TEST_LOG_LEVEL ?? 'silent' });

export async function startTestEdge(t: TestContext, o: TestEdgeOptions): Promise<TestEdge> {
  const ownBus = o.bus === undefined;
  const bus = o.bus ?? new InProcessBus();
  if (ownBus) startEchoTransport(bus);
  const directory = o.directory ?? new MemoryDirectory();
  const registry = new Registry();
  const { bus: _b, directory: _d, ...rest } = o;
  const edge = await startEdge({
    nodeId: 'edge-test',
    host: '127.0.0.1',
    port: 0,
    router: { pick: () => TRANSPORT_NODE },
    jwtSecret: JWT_SECRET,
    logger: silent,
    metrics: registry,
    ...rest,
    bus,
    directory,
  });
  t.after(async () => {
    await edge.close();
    if (ownBus) await bus.close();
  });
  const clients: RawClient[] = [];
  t.after(() => {
    for (const c of clients) c.kill();
  });
  return {
    edge,
    port: edge.port,
    bus,
    directory,
    registry,
    engine: o.engine,
    async push(imei, name, body) {
      const msg: DeviceMessage = { type: 'event', name, ...(body === undefined ? {} : { body }) };
      const reply = await bus.request<DeviceEventReply>(Subjects.device(imei), msg, { timeoutMs: WAIT_MS });
      return reply.seq;
    },
    async client(kind, localAddress) {
      const c = await rawClient(kind, edge.port, localAddress);
      clients.push(c);
      return c;
    },
    async counter(name, code) {
      const metric = await registry.getSingleMetric(name)?.get();
      if (metric === undefined) return 0;
      let n = 0;
      for (const v of metric.values) if (code === undefined || v.labels.code === code) n += v.value;
      return n;
    },
  };
}

// ---------------------------------------------------------------------------
// Raw clients

export interface CloseInfo {
  /** WebSocket close code, or HTTP status of the last long-poll answer. */
  code: number;
  reason: string;
}

export abstract class RawClient {
  abstract readonly kind: CarrierKind;
  /** Every frame received, in order, duplicates included. */
  readonly received: Frame[] = [];
  closeInfo: CloseInfo | undefined;
  private cursor = 0;
  private wake: (() => void) | undefined;

  /** Sends one frame (long-poll: the first one opens the carrier). */
  abstract send(frame: Frame): Promise<void>;
  /** Sends bytes as one frame (WebSocket message, or one frame of a poll batch). */
  abstract sendBytes(bytes: Uint8Array): Promise<void>;
  /** Stops reading (WebSocket: pauses the socket; long-poll: stops polling). */
  abstract pauseReading(): void;
  abstract resumeReading(): void;
  /** Drops the connection abruptly, as a lost network would. */
  abstract kill(): void;

  protected deliver(frame: Frame): void {
    this.received.push(frame);
    this.poke();
  }

  protected closed(info: CloseInfo): void {
    if (this.closeInfo !== undefined) return;
    this.closeInfo = info;
    this.poke();
  }

  private poke(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private waitChange(ms: number, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.wake = undefined;
        reject(new Error(`${this.kind} client: timed out waiting for ${what}`));
      }, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /** The next frame in arrival order. */
  async next(ms = WAIT_MS): Promise<Frame> {
    while (this.cursor >= this.received.length) {
      if (this.closeInfo !== undefined) {
        throw new Error(
          `${this.kind} client closed (${this.closeInfo.code} ${this.closeInfo.reason}) with no frame`,
        );
      }
      await this.waitChange(ms, 'a frame');
    }
    return this.received[this.cursor++]!;
  }

  /** Skips frames until one of this kind arrives. */
  async nextOf<K extends Kind>(kind: K, ms = WAIT_MS): Promise<Extract<Frame, { kind: K }>> {
    for (;;) {
      const f = await this.next(ms);
      if (f.kind === kind) return f as Extract<Frame, { kind: K }>;
    }
  }

  async waitClosed(ms = WAIT_MS): Promise<CloseInfo> {
    while (this.closeInfo === undefined) await this.waitChange(ms, 'the close');
    return this.closeInfo;
  }

  /** Waits until `n` distinct events were received. */
  async waitEvents(n: number, ms = WAIT_MS): Promise<Event[]> {
    while (this.events().length < n) {
      if (this.closeInfo !== undefined)
        throw new Error(`${this.kind} client closed after ${this.events().length} events`);
      await this.waitChange(ms, `${n} events`);
    }
    return this.events();
  }

  /** Events as the application would see them: each seq once, in seq order. */
  events(): Event[] {
    const bySeq = new Map<number, Event>();
    for (const f of this.received) if (f.kind === Kind.Event && !bySeq.has(f.seq)) bySeq.set(f.seq, f);
    return [...bySeq.values()].sort((a, b) => a.seq - b.seq);
  }

  /** Highest seq received. */
  lastSeq(): number {
    let n = 0;
    for (const f of this.received) {
      if ((f.kind === Kind.Event || f.kind === Kind.Response || f.kind === Kind.Error) && (f.seq ?? 0) > n) {
        n = f.seq ?? 0;
      }
    }
    return n;
  }

  /** The last frame received, if any. */
  last(): Frame | undefined {
    return this.received[this.received.length - 1];
  }

  /** Sends Hello and returns Welcome (throws with the code when refused). */
  async hello(imei: string, auth: { secret?: string; token?: string }): Promise<Welcome> {
    const answer = await this.helloAnswer(imei, auth);
    if (answer.kind !== Kind.Welcome) throw new Error(`refused: ${(answer as ErrorFrame).code}`);
    return answer;
  }

  async helloAnswer(imei: string, auth: { secret?: string; token?: string }): Promise<Welcome | ErrorFrame> {
    await this.send({ kind: Kind.Hello, version: PROTOCOL_VERSION, imei, ...auth });
    const f = await this.next();
    if (f.kind !== Kind.Welcome && f.kind !== Kind.Error) throw new Error(`unexpected frame kind ${f.kind}`);
    return f;
  }

  async resumeAnswer(welcome: Welcome, lastSeq: number): Promise<Welcome | ErrorFrame> {
    await this.send({
      kind: Kind.Resume,
      version: PROTOCOL_VERSION,
      sessionId: welcome.sessionId,
      resumeToken: welcome.resumeToken,
      lastSeq,
    });
    const f = await this.next();
    if (f.kind !== Kind.Welcome && f.kind !== Kind.Error) throw new Error(`unexpected frame kind ${f.kind}`);
    return f;
  }

  async resume(welcome: Welcome, lastSeq: number): Promise<Welcome> {
    const answer = await this.resumeAnswer(welcome, lastSeq);
    if (answer.kind !== Kind.Welcome) throw new Error(`resume refused: ${answer.code}`);
    return answer;
  }

  ack(seq: number): Promise<void> {
    return this.send({ kind: Kind.Ack, seq });
  }
}

export class WsRawClient extends RawClient {
  readonly kind = 'ws';
  /** Frame compression (SPEC.md §4.4), set up when a Welcome says so. */
  private compression: CarrierCompression | undefined;
  /** Per frame received: its size on the air and whether it came compressed. */
  readonly wire: { bytes: number; compressed: boolean }[] = [];
  /** Frames this client sent compressed. */
  sentCompressed = 0;

  private constructor(private readonly ws: WebSocket) {
    super();
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) throw new Error('the edge sent a text message');
      const bytes = new Uint8Array(data);
      this.wire.push({ bytes: bytes.length, compressed: bytes[0] === COMPRESSED_FRAME });
      const decoded = decodeFrame(plainFrame(bytes, this.compression, 64 << 20));
      if (!decoded.ok) throw new Error(`undecodable frame from the edge: ${decoded.error.message}`);
      const f = decoded.frame;
      if (f.kind === Kind.Welcome && f.compression === DEFLATE) this.compression = new CarrierCompression();
      this.deliver(f);
    });
    ws.on('close', (code: number, reason: Buffer) => this.closed({ code, reason: reason.toString() }));
    ws.on('error', () => {});
  }

  static connect(port: number, localAddress?: string): Promise<WsRawClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/ws`, {
        perMessageDeflate: false,
        maxPayload: 64 << 20,
        ...(localAddress === undefined ? {} : { localAddress }),
      });
      ws.binaryType = 'nodebuffer';
      ws.once('open', () => resolve(new WsRawClient(ws)));
      ws.once('error', reject);
    });
  }

  /** Sends a frame, compressed once this carrier compresses (and the frame is worth it). */
  async send(frame: Frame): Promise<void> {
    const bytes = encodeFrame(frame);
    const wire = this.compression?.outgoing(bytes) ?? bytes;
    if (wire !== bytes) this.sentCompressed++;
    await this.sendBytes(wire);
  }

  sendBytes(bytes: Uint8Array): Promise<void> {
    return new Promise((resolve) => {
      if (this.ws.readyState !== WebSocket.OPEN) return resolve();
      this.ws.send(bytes, { binary: true }, () => resolve());
    });
  }

  sendText(text: string): Promise<void> {
    return new Promise((resolve) => this.ws.send(text, () => resolve()));
  }

  private get socket(): import('node:net').Socket {
    return (this.ws as unknown as { _socket: import('node:net').Socket })._socket;
  }

  pauseReading(): void {
    this.socket.pause();
  }

  resumeReading(): void {
    this.socket.resume();
  }

  kill(): void {
    this.ws.terminate();
  }

  close(): void {
    this.ws.close();
  }
}

/** One HTTP answer: its status and body (undefined: the request failed or was aborted). */
interface HttpAnswer {
  status: number;
  body: Uint8Array;
}

/** One HTTP request by node:http (fetch cannot choose the source address). */
function httpExchange(
  url: string,
  o: {
    method: string;
    headers?: Record<string, string>;
    body?: Uint8Array;
    signal?: AbortSignal;
    localAddress?: string;
  },
): Promise<HttpAnswer | undefined> {
  return new Promise((resolve) => {
    const req = http.request(
      url,
      {
        method: o.method,
        headers: { ...o.headers, ...(o.body === undefined ? {} : { 'Content-Length': o.body.length }) },
        ...(o.signal === undefined ? {} : { signal: o.signal }),
        ...(o.localAddress === undefined ? {} : { localAddress: o.localAddress }),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: new Uint8Array(Buffer.concat(chunks)) }),
        );
        res.on('error', () => resolve(undefined));
      },
    );
    req.on('error', () => resolve(undefined));
    req.end(o.body === undefined ? undefined : Buffer.from(o.body));
  });
}

/**
 * Long-poll client: the first frame opens the carrier (POST without headers);
 * after Welcome a GET loop runs (acking with `ack=` what it received) until a
 * fatal Error, a Bye, or a non-200 answer ends the carrier.
 */
export class PollRawClient extends RawClient {
  readonly kind = 'poll';
  private readonly url: string;
  private headers: Record<string, string> | undefined;
  private polling = false;
  private paused = false;
  private dead = false;
  private held: AbortController | undefined;
  waitMs = 10_000;
  /** Ack with `ack=` on each GET (what the SDK does). */
  autoAck = true;
  /** HTTP statuses of every answer, in order. */
  readonly statuses: number[] = [];

  constructor(
    port: number,
    private readonly localAddress?: string,
  ) {
    super();
    this.url = `http://127.0.0.1:${port}/v1/poll`;
  }

  async send(frame: Frame): Promise<void> {
    await this.sendBytes(encodeFrame(frame));
  }

  /** POSTs frames (already encoded) in one batch. */
  async sendBytes(...frames: Uint8Array[]): Promise<void> {
    await this.post(encodeBatch(frames));
  }

  /** POSTs a raw body, not necessarily a valid batch. */
  async post(body: Uint8Array): Promise<number> {
    if (this.dead) return 0;
    const opening = this.headers === undefined;
    const res = await httpExchange(this.url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/octet-stream', ...this.headers },
      body,
      ...(this.localAddress === undefined ? {} : { localAddress: this.localAddress }),
    });
    if (res === undefined) {
      this.closed({ code: 0, reason: 'network error' });
      return 0;
    }
    const frames = this.absorb(res);
    if (opening && res.status === 200) {
      const w = frames[0];
      if (w?.kind === Kind.Welcome) {
        this.headers = { 'X-MMGW-Session': w.sessionId, 'X-MMGW-Token': w.resumeToken };
        this.startPolling();
      }
    }
    return res.status;
  }

  /** Decodes an answer; a non-200 status, a fatal Error or a Bye ends the carrier. */
  private absorb(res: HttpAnswer): Frame[] {
    this.statuses.push(res.status);
    const batch = decodeBatch(res.body);
    if (!batch.ok) throw new Error(`undecodable batch (HTTP ${res.status}): ${batch.error.message}`);
    const frames: Frame[] = [];
    for (const bytes of batch.frames) {
      const decoded = decodeFrame(bytes);
      if (!decoded.ok) throw new Error(`undecodable frame: ${decoded.error.message}`);
      frames.push(decoded.frame);
      this.deliver(decoded.frame);
    }
    const last = frames[frames.length - 1];
    const terminal =
      last !== undefined && (last.kind === Kind.Bye || (last.kind === Kind.Error && last.fatal));
    if (res.status !== 200 || terminal) {
      this.dead = true;
      this.closed({ code: res.status, reason: last && 'code' in last ? String(last.code) : '' });
    }
    return frames;
  }

  private startPolling(): void {
    if (this.polling || this.paused || this.dead) return;
    this.polling = true;
    void this.loop();
  }

  private async loop(): Promise<void> {
    try {
      while (!this.paused && !this.dead) {
        const seq = this.lastSeq();
        const q = `?wait=${this.waitMs}${this.autoAck && seq > 0 ? `&ack=${seq}` : ''}`;
        this.held = new AbortController();
        const res = await httpExchange(this.url + q, {
          method: 'GET',
          ...(this.headers === undefined ? {} : { headers: this.headers }),
          signal: this.held.signal,
          ...(this.localAddress === undefined ? {} : { localAddress: this.localAddress }),
        });
        if (res === undefined) break; // aborted (pause/kill) or network error
        this.absorb(res);
      }
    } finally {
      this.held = undefined;
      this.polling = false;
    }
  }

  pauseReading(): void {
    this.paused = true;
    this.held?.abort();
  }

  resumeReading(): void {
    this.paused = false;
    this.startPolling();
  }

  kill(): void {
    this.dead = true;
    this.held?.abort();
  }

  /** One GET by hand (for tests that drive polling themselves); returns the status. */
  async getOnce(query: string): Promise<number> {
    const res = await httpExchange(this.url + query, {
      method: 'GET',
      ...(this.headers === undefined ? {} : { headers: this.headers }),
      ...(this.localAddress === undefined ? {} : { localAddress: this.localAddress }),
    });
    if (res === undefined) throw new Error('poll GET failed');
    this.absorb(res);
    return res.status;
  }

  get sessionHeaders(): Record<string, string> | undefined {
    return this.headers;
  }

  set sessionHeaders(h: Record<string, string> | undefined) {
    this.headers = h;
  }
}

/** A client of the given kind, connected to `port` (for tests that use several edges), from `localAddress` if given. */
export async function rawClient(kind: CarrierKind, port: number, localAddress?: string): Promise<RawClient> {
  return kind === 'ws' ? WsRawClient.connect(port, localAddress) : new PollRawClient(port, localAddress);
}

/** A TCP proxy in front of an edge whose connections the test can cut at once (a network drop). */
export async function startDropProxy(
  targetPort: number,
): Promise<{ port: number; dropAll(): void; close(): void }> {
  const pairs = new Set<[net.Socket, net.Socket]>();
  const server = net.createServer((inbound) => {
    const outbound = net.connect(targetPort, '127.0.0.1');
    const pair: [net.Socket, net.Socket] = [inbound, outbound];
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      inbound.destroy();
      outbound.destroy();
    };
    inbound.on('error', end).on('close', end);
    outbound.on('error', end).on('close', end);
    inbound.pipe(outbound);
    outbound.pipe(inbound);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const dropAll = (): void => {
    for (const [a, b] of pairs) {
      a.resetAndDestroy();
      b.resetAndDestroy();
    }
    pairs.clear();
  };
  return {
    port,
    dropAll,
    close() {
      dropAll();
      server.close();
    },
  };
}
