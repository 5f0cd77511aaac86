/**
 * Frame-level fuzzing, below the SDK: random bytes, valid frames cut or with
 * bits flipped, valid frames in the wrong state (a Request before Hello, a
 * Welcome from the device, Hello twice), frames over the size and depth
 * limits, text messages, compressed frames nobody negotiated, and the
 * long-poll endpoint with batches that lie about their lengths and sessions
 * that do not exist. One episode is one connection; whatever comes back must
 * decode, and every Error or Bye must carry a handset code of the registry.
 */
import { encodeBatch, encodeFrame } from '../../device-protocol/codec.ts';
import { COMPRESSED_FRAME } from '../../device-protocol/compression.ts';
import { type Frame, type Hello, Kind, PROTOCOL_VERSION } from '../../device-protocol/messages.ts';
import { FULL_FRAMES, MINIMAL_FRAMES } from '../../testing/frames.ts';
import { isHandsetCode, leaksInternals, type Tally } from './answers.ts';
import { type RawAnswers, RawWebSocket, pollExchange } from './raw-client.ts';
import type { Rng } from './rng.ts';
import { EDGE_STRINGS, nested } from './values.ts';

export interface RawDevice {
  imei: string;
  secret: string;
}

export interface RawFuzzOptions {
  /** ws://127.0.0.1:<devicePort> */
  url: string;
  /** Provisioned for the raw fuzzer only (its Hellos replace their sessions, nobody else's). */
  devices: readonly RawDevice[];
  rng: Rng;
  tally: Tally;
  /** The gateway's frame limit (Welcome.maxFrameBytes). */
  maxFrameBytes: number;
}

/** Limits wide enough to encode frames the gateway must refuse. */
const LOOSE = {
  maxFrameBytes: 64 << 20,
  maxStringBytes: 64 << 20,
  maxBytesLength: 64 << 20,
  maxListLength: 1 << 20,
  maxMapEntries: 1 << 20,
  maxDepth: 1000,
};

export const WS_EPISODES = [
  'garbage-first',
  'text-message',
  'wrong-kind-first',
  'mutated-hello',
  'bad-hello',
  'bad-resume',
  'session',
  'session',
  'session',
  'silent',
] as const;

export const POLL_EPISODES = [
  'garbage-body',
  'batch-garbage',
  'mutated-hello',
  'bogus-session',
  'lying-batch',
  'session',
  'session',
] as const;

function randomBytes(rng: Rng, max: number): Uint8Array {
  const out = new Uint8Array(rng.int(0, max));
  for (let i = 0; i < out.length; i++) out[i] = rng.int(0, 255);
  return out;
}

/** Bit flips, a cut, junk inserted or appended, a varint that never ends, a wrong version byte. */
export function mutateBytes(bytes: Uint8Array, rng: Rng): Uint8Array {
  const out = Uint8Array.from(bytes);
  switch (rng.int(0, 6)) {
    case 0: {
      for (let n = rng.int(1, 8); n > 0 && out.length > 0; n--) {
        const i = rng.int(0, out.length - 1);
        out[i] = (out[i] as number) ^ (1 << rng.int(0, 7));
      }
      return out;
    }
    case 1:
      return out.subarray(0, rng.int(0, Math.max(0, out.length - 1)));
    case 2: {
      const at = rng.int(0, out.length);
      return Uint8Array.from([...out.subarray(0, at), ...randomBytes(rng, 32), ...out.subarray(at)]);
    }
    case 3:
      return Uint8Array.from([...out, ...randomBytes(rng, 64)]);
    case 4: {
      const at = rng.int(1, Math.max(1, out.length));
      return Uint8Array.from([
        ...out.subarray(0, at),
        0xff,
        0xff,
        0xff,
        0xff,
        0xff,
        0xff,
        0xff,
        0xff,
        0xff,
        0x7f,
      ]);
    }
    case 5:
      if (out.length > 0) out[0] = rng.int(0, 255);
      return out;
    default:
      return Uint8Array.from([...out, ...out]);
  }
}

export class RawFuzzer {
  readonly episodes = new Map<string, number>();
  readonly #o: RawFuzzOptions;
  #counter = 0;

  constructor(o: RawFuzzOptions) {
    this.#o = o;
  }

  get #rng(): Rng {
    return this.#o.rng;
  }

  #hello(device: RawDevice, over: Partial<Hello> = {}): Hello {
    return {
      kind: Kind.Hello,
      version: PROTOCOL_VERSION,
      imei: device.imei,
      secret: device.secret,
      client: 'mmgw-fuzz-raw/1',
      ...over,
    };
  }

  /** Source addresses: good credentials from 127.0.1.x, bad ones from 127.0.2.x (the auth limits are per address). */
  #address(bad: boolean): string {
    this.#counter++;
    return `127.0.${bad ? 2 : 1}.${(this.#counter % 250) + 1}`;
  }

  #frameOfAnotherKind(): Frame {
    const pool = [...FULL_FRAMES, ...MINIMAL_FRAMES].filter(
      (f) => f.kind !== Kind.Hello && f.kind !== Kind.Resume,
    );
    return this.#rng.pick(pool);
  }

  #badHello(device: RawDevice): Hello {
    const rng = this.#rng;
    const variants: (() => Hello)[] = [
      () => this.#hello(device, { version: rng.pick([0, 2, 255, 2 ** 31]) }),
      () =>
        this.#hello(device, {
          imei: rng.pick(['', 'abc', '12345678901234', '356938035643800', '3'.repeat(4096)]),
        }),
      () =>
        this.#hello(device, { secret: rng.pick(['', 'wrong', rng.pick(EDGE_STRINGS), 'x'.repeat(100_000)]) }),
      () => ({
        ...this.#hello(device),
        secret: undefined,
        token: rng.pick(['', 'a.b.c', 'eyJhbGciOiJub25lIn0.e30.', 'x'.repeat(10_000)]),
      }),
      () =>
        this.#hello(device, {
          caps: {
            screenWidth: rng.pick([0, 2 ** 53 - 1]),
            screenHeight: rng.pick([0, 2 ** 32]),
            imageFormats: new Array(rng.pick([0, 10_000])).fill('jpeg'),
            imageBudgetBytes: rng.pick([0, 2 ** 53 - 1]),
            model: rng.pick(EDGE_STRINGS),
            encodings: [rng.pick(['im.compact', 'zstd', '', '__proto__'])],
            compression: [rng.pick(['zstd', '', 'DEFLATE'])],
          },
        }),
      () => this.#hello(device, { client: 'c'.repeat(rng.pick([300, 200_000])) }),
    ];
    return rng.pick(variants)();
  }

  /** One frame (as bytes) to throw into a live session. */
  #inSessionBytes(device: RawDevice): { label: string; bytes: Uint8Array | string } {
    const rng = this.#rng;
    const request = (body: unknown, id = `r${rng.int(0, 1e9)}`, method = 'sys.echo') =>
      encodeFrame({ kind: Kind.Request, id, method, body } as Frame, LOOSE);
    const choices: (() => { label: string; bytes: Uint8Array | string })[] = [
      () => ({ label: 'random-bytes', bytes: randomBytes(rng, 512) }),
      () => ({
        label: 'mutated-request',
        bytes: mutateBytes(request({ n: rng.int(0, 1000), s: 'abc' }), rng),
      }),
      () => ({
        label: 'request',
        bytes: request(
          rng.pick(EDGE_STRINGS),
          undefined,
          rng.pick(['sys.echo', 'mail.sync', 'im.roster', 'nope', '']),
        ),
      }),
      () => ({ label: 'hello-again', bytes: encodeFrame(this.#hello(device)) }),
      () => ({
        label: 'resume-in-session',
        bytes: encodeFrame({ kind: Kind.Resume, version: 1, sessionId: 's', resumeToken: 'r', lastSeq: 0 }),
      }),
      () => ({ label: 'gateway-kind', bytes: encodeFrame(this.#frameOfAnotherKind(), LOOSE) }),
      () => ({
        label: 'oversize',
        bytes: request('x'.repeat(this.#o.maxFrameBytes + rng.pick([1, 1024, this.#o.maxFrameBytes]))),
      }),
      () => ({ label: 'too-deep', bytes: request(nested(rng.pick([17, 40, 300]), 1, rng.chance(0.5))) }),
      () => ({ label: 'too-many-entries', bytes: request(new Array(rng.pick([10_001, 100_000])).fill(0)) }),
      () => ({
        label: 'ack',
        bytes: encodeFrame({ kind: Kind.Ack, seq: rng.pick([0, 1, 2 ** 32, 2 ** 53 - 1]) }),
      }),
      () => ({ label: 'ping', bytes: encodeFrame({ kind: Kind.Ping, nonce: rng.pick([0, 2 ** 53 - 1]) }) }),
      () => ({
        label: 'compressed-unasked',
        bytes: Uint8Array.from([COMPRESSED_FRAME, ...randomBytes(rng, 64)]),
      }),
      () => ({ label: 'empty', bytes: new Uint8Array(0) }),
      () => ({ label: 'text', bytes: 'hello' }),
      () => ({ label: 'huge-id', bytes: request(null, 'i'.repeat(rng.pick([257, 70_000]))) }),
      () => ({ label: 'same-id-twice', bytes: request({ slow: true }, 'dup') }),
      () => ({
        label: 'logout',
        bytes: encodeFrame({
          kind: Kind.Bye,
          code: rng.pick(['session.logout', 'bus.timeout', 'x']),
          message: '',
          resumable: false,
        }),
      }),
    ];
    return rng.pick(choices)();
  }

  /** Checks and books what one episode got back. */
  #check(episode: string, answers: RawAnswers): void {
    const { tally } = this.#o;
    for (const problem of answers.undecodable) {
      tally.find({
        kind: 'raw',
        mode: 'raw',
        method: episode,
        detail: 'the gateway sent something that does not decode',
        evidence: problem,
      });
    }
    for (const f of answers.frames) {
      if (f.kind !== Kind.Error && f.kind !== Kind.Bye) continue;
      tally.recordRawCode(f.code);
      if (!isHandsetCode(f.code)) {
        tally.find({
          kind: 'untyped-answer',
          mode: 'raw',
          method: episode,
          detail: `raw episode answered with code ${JSON.stringify(f.code)}`,
          evidence: f.message,
        });
      } else if (leaksInternals(f.message)) {
        tally.find({
          kind: 'internal-leak',
          mode: 'raw',
          method: episode,
          detail: `the message of ${f.code} shows internals`,
          evidence: f.message,
        });
      }
    }
  }

  /** One episode on a fresh connection. */
  async episode(): Promise<void> {
    const rng = this.#rng;
    const poll = rng.chance(0.4);
    const name = poll ? `poll.${rng.pick(POLL_EPISODES)}` : `ws.${rng.pick(WS_EPISODES)}`;
    this.episodes.set(name, (this.episodes.get(name) ?? 0) + 1);
    const device = rng.pick(this.#o.devices);
    const answers = poll ? await this.#pollEpisode(name, device) : await this.#wsEpisode(name, device);
    this.#check(name, answers);
  }

  async #wsEpisode(name: string, device: RawDevice): Promise<RawAnswers> {
    const rng = this.#rng;
    const bad = name !== 'ws.session' && name !== 'ws.mutated-hello';
    const conn = await RawWebSocket.open(`${this.#o.url}/v1/ws`, this.#address(bad));
    if (!(conn instanceof RawWebSocket)) return conn;
    try {
      switch (name) {
        case 'ws.garbage-first':
          await conn.send(randomBytes(rng, 2048));
          break;
        case 'ws.text-message':
          await conn.send(rng.pick(['hello', '{"kind":1}', '\u0000']));
          break;
        case 'ws.wrong-kind-first':
          await conn.send(encodeFrame(this.#frameOfAnotherKind(), LOOSE));
          break;
        case 'ws.mutated-hello':
          await conn.send(mutateBytes(encodeFrame(this.#hello(device)), rng));
          break;
        case 'ws.bad-hello':
          await conn.send(encodeFrame(this.#badHello(device), LOOSE));
          break;
        case 'ws.bad-resume':
          await conn.send(
            encodeFrame({
              kind: Kind.Resume,
              version: PROTOCOL_VERSION,
              sessionId: rng.pick(['', 's', rng.pick(EDGE_STRINGS), 'x'.repeat(5000)]),
              resumeToken: rng.pick(['', 'r', 'eyJhbGciOiJub25lIn0.e30.']),
              lastSeq: rng.pick([0, 1, 2 ** 53 - 1]),
            }),
          );
          break;
        case 'ws.session': {
          await conn.send(encodeFrame(this.#hello(device)));
          await conn.next(5000);
          const welcomed = conn.answers.frames[0]?.kind === Kind.Welcome;
          for (let n = rng.int(1, 12); n > 0 && conn.open; n--) {
            const { bytes } = welcomed ? this.#inSessionBytes(device) : { bytes: randomBytes(rng, 64) };
            await conn.send(bytes);
          }
          break;
        }
        case 'ws.silent':
          break;
      }
      await conn.settle(300, 5000);
    } finally {
      await conn.close();
    }
    return conn.answers;
  }

  async #pollEpisode(name: string, device: RawDevice): Promise<RawAnswers> {
    const rng = this.#rng;
    const url = `${this.#o.url.replace(/^ws/, 'http')}/v1/poll`;
    const from = this.#address(name !== 'poll.session' && name !== 'poll.mutated-hello');
    const post = (body: Uint8Array, headers?: Record<string, string>) =>
      pollExchange(url, 'POST', from, { body, ...(headers === undefined ? {} : { headers }) });
    switch (name) {
      case 'poll.garbage-body':
        return post(randomBytes(rng, 4096));
      case 'poll.batch-garbage':
        return post(encodeBatch([randomBytes(rng, 256), randomBytes(rng, 16)]));
      case 'poll.mutated-hello':
        return post(
          rng.chance(0.5)
            ? mutateBytes(encodeBatch([encodeFrame(this.#hello(device))]), rng)
            : encodeBatch([mutateBytes(encodeFrame(this.#hello(device)), rng)]),
        );
      case 'poll.lying-batch':
        // A length prefix larger than the body, then one of a billion frames.
        return post(
          rng.chance(0.5)
            ? Uint8Array.from([0xff, 0xff, 0xff, 0x7f, 1, 2, 3])
            : Uint8Array.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]),
        );
      case 'poll.bogus-session': {
        const headers = {
          'X-MMGW-Session': rng.pick([
            '',
            's',
            rng.pick(EDGE_STRINGS).replace(/[^\x20-\x7e]/g, '?'),
            'x'.repeat(8000),
          ]),
          'X-MMGW-Token': rng.pick(['', 'r', 'x'.repeat(8000)]),
        };
        if (rng.chance(0.5)) return post(encodeBatch([encodeFrame({ kind: Kind.Ping, nonce: 1 })]), headers);
        const query = rng.pick([
          '?wait=-1',
          '?wait=1e99',
          '?ack=abc',
          '?ack=-5',
          '?wait=0&ack=18446744073709551616',
          '?wait=0',
        ]);
        return pollExchange(url + query, 'GET', from, { headers, timeoutMs: 35_000 });
      }
      default: {
        const opened = await post(encodeBatch([encodeFrame(this.#hello(device))]));
        const welcome = opened.frames[0];
        if (welcome?.kind !== Kind.Welcome) return opened;
        const headers = { 'X-MMGW-Session': welcome.sessionId, 'X-MMGW-Token': welcome.resumeToken };
        const all: RawAnswers = opened;
        for (let n = rng.int(1, 6); n > 0; n--) {
          const frames: Uint8Array[] = [];
          for (let k = rng.int(1, 4); k > 0; k--) {
            const { bytes } = this.#inSessionBytes(device);
            frames.push(typeof bytes === 'string' ? new TextEncoder().encode(bytes) : bytes);
          }
          const got = await post(encodeBatch(frames), headers);
          all.frames.push(...got.frames);
          all.undecodable.push(...got.undecodable);
          all.statuses.push(...got.statuses);
          if (got.statuses[0] !== 200) break;
        }
        const polled = await pollExchange(`${url}?wait=0`, 'GET', from, { headers });
        all.frames.push(...polled.frames);
        all.undecodable.push(...polled.undecodable);
        return all;
      }
    }
  }
}
