/**
 * Frame compression on WebSocket carriers (SPEC.md §4.4) against a real
 * edge, both engines: asked for in Hello caps, on from the frame after
 * Welcome in both directions, never on long-poll or when the operator turned
 * it off; fresh contexts on every carrier (a cut and a resume lose and double
 * nothing); hostile compressed frames end only their own carrier.
 */
import assert from 'node:assert/strict';
import { deflateRawSync } from 'node:zlib';
import WebSocket from 'ws';
import { describe, test } from 'node:test';
import { eventually } from '../../testing/index.ts';
import { encodeFrame } from '../../device-protocol/codec.ts';
import { Handset } from '../../device-protocol/handset.ts';
import { COMPRESSED_FRAME, DEFLATE, FrameCompressor } from '../../device-protocol/compression.ts';
import { type ErrorFrame, Kind, PROTOCOL_VERSION, type Welcome } from '../../device-protocol/messages.ts';
import {
  ENGINES,
  WAIT,
  type RawClient,
  startTestEdge,
  type TestEdge,
  type WsRawClient,
} from './edge-client.ts';

const IMEI = '356938035643809';
const OTHER = '490154203237518';
const SECRET = 'secret';

async function hello(c: RawClient, imei: string, compression?: string[]): Promise<Welcome> {
  await c.send({
    kind: Kind.Hello,
    version: PROTOCOL_VERSION,
    imei,
    secret: SECRET,
    ...(compression === undefined ? {} : { caps: { compression } }),
  });
  return c.nextOf(Kind.Welcome);
}

const chatBody = (i: number) => ({
  account: 'x0123456789abcdef',
  from: 'carol@example.test',
  body: `message ${i}: see you at the station`,
});

async function edgeWithDevices(
  t: import('node:test').TestContext,
  engine: (typeof ENGINES)[number],
  compression?: boolean,
): Promise<TestEdge> {
  const e = await startTestEdge(t, { engine, ...(compression === undefined ? {} : { compression }) });
  e.directory.add(IMEI, SECRET);
  e.directory.add(OTHER, SECRET);
  return e;
}

for (const engine of ENGINES) {
  describe(`frame compression (${engine})`, () => {
    test('a device that asks gets compressed frames after Welcome, and its compressed frames are read', async (t) => {
      const e = await edgeWithDevices(t, engine);
      const c = (await e.client('ws')) as WsRawClient;
      const w = await hello(c, IMEI, [DEFLATE]);
      assert.equal(w.compression, DEFLATE);
      assert.equal(c.wire[0]?.compressed, false, 'Welcome itself is plain');
      for (let i = 0; i < 20; i++) await e.push(IMEI, 'im.message', chatBody(i));
      const events = await c.waitEvents(20);
      assert.deepEqual(
        events.map((ev) => ev.body),
        Array.from({ length: 20 }, (_, i) => chatBody(i)),
      );
      const pushed = c.wire.slice(1);
      assert.ok(
        pushed.every((f) => f.compressed),
        'every event after Welcome came compressed',
      );
      const plain = encodeFrame({ kind: Kind.Event, seq: 20, name: 'im.message', body: chatBody(19) }).length;
      const last = pushed[pushed.length - 1]!.bytes;
      assert.ok(last * 2 < plain, `a repeated shape costs ${last} bytes instead of ${plain}`);
      // Requests from the device, compressed with its own context.
      for (let i = 0; i < 5; i++) {
        await c.send({ kind: Kind.Request, id: `r${i}`, method: 'echo', body: chatBody(i) });
        const r = await c.nextOf(Kind.Response);
        assert.equal(r.id, `r${i}`);
        assert.deepEqual(r.body, chatBody(i));
      }
      assert.equal(c.sentCompressed, 5);
    });

    test('the Handset SDK compresses its requests, but one with a password goes plain', async (t) => {
      const e = await edgeWithDevices(t, engine);
      const sent: number[] = [];
      // The SDK's WebSocket, recording the first byte of every message it sends.
      class Recording extends WebSocket {
        override send(data: any, ...rest: any[]): void {
          sent.push(new Uint8Array(data)[0]!);
          (super.send as (...a: unknown[]) => void)(data, ...rest);
        }
      }
      const h = new Handset({
        url: `ws://127.0.0.1:${e.port}`,
        imei: IMEI,
        secret: SECRET,
        transport: 'ws',
        WebSocket: Recording,
        // No timed Ack between the three requests: what the recorder sees is the requests.
        ackIntervalMs: 60_000,
      });
      t.after(() => h.close());
      const w = await h.connect();
      assert.equal(w.compression, DEFLATE);
      const plain = { account: 'x0123456789abcdef', body: 'a body long enough to be worth compressing' };
      const secret = { jid: 'alice@example.test', password: 'a password that must not be compressed' };
      const mark = sent.length;
      assert.deepEqual(await h.request('echo', plain), plain);
      assert.deepEqual(await h.request('echo', secret), secret);
      assert.deepEqual(await h.request('echo', plain), plain);
      assert.deepEqual(sent.slice(mark), [COMPRESSED_FRAME, 0x01, COMPRESSED_FRAME]);
    });

    test('no compression on long-poll, for a device that does not ask, or when the operator turns it off', async (t) => {
      const e = await edgeWithDevices(t, engine);
      const poll = await e.client('poll');
      assert.equal((await hello(poll, IMEI, [DEFLATE])).compression, undefined);
      const plain = (await e.client('ws')) as WsRawClient;
      assert.equal((await hello(plain, OTHER)).compression, undefined);
      await e.push(OTHER, 'im.message', chatBody(1));
      await plain.waitEvents(1);
      assert.ok(plain.wire.every((f) => !f.compressed));

      const off = await edgeWithDevices(t, engine, false);
      const c = (await off.client('ws')) as WsRawClient;
      assert.equal((await hello(c, IMEI, [DEFLATE])).compression, undefined);
      await off.push(IMEI, 'im.message', chatBody(2));
      await c.waitEvents(1);
      assert.ok(c.wire.every((f) => !f.compressed));
    });

    test('an idle carrier parks its contexts and picks up where it was: both directions go on', async (t) => {
      const e = await startTestEdge(t, { engine, compressionIdleMs: 100, heartbeatMs: 2000 });
      e.directory.add(IMEI, SECRET);
      const c = (await e.client('ws')) as WsRawClient;
      await hello(c, IMEI, [DEFLATE]);
      const contexts = () => e.counter('mmgw_edge_compression_contexts');
      for (let round = 0; round < 3; round++) {
        await e.push(IMEI, 'im.message', chatBody(round));
        await c.send({ kind: Kind.Request, id: `r${round}`, method: 'echo', body: chatBody(round) });
        assert.deepEqual((await c.nextOf(Kind.Response)).body, chatBody(round));
        // Nothing compressed for a while: the sweep parks both (the client, which never parks, does not notice).
        await eventually('the contexts to park', async () => (await contexts()) === 0, WAIT);
      }
      const events = await c.waitEvents(3);
      assert.deepEqual(
        events.map((ev) => ev.body),
        [chatBody(0), chatBody(1), chatBody(2)],
      );
      assert.ok(c.wire.slice(1).every((f) => f.compressed));
      assert.equal(c.sentCompressed, 3);
      assert.equal(c.closeInfo, undefined);
    });

    test('a cut mid-stream: the resumed carrier starts fresh contexts, and every event arrives once, in order', async (t) => {
      const e = await edgeWithDevices(t, engine);
      const c1 = (await e.client('ws')) as WsRawClient;
      const w = await hello(c1, IMEI, [DEFLATE]);
      const total = 60;
      const pushes: Promise<number>[] = [];
      for (let i = 0; i < total; i++) {
        pushes.push(e.push(IMEI, 'im.message', chatBody(i)));
        if (i === 30) {
          await c1.waitEvents(10);
          c1.kill();
        }
      }
      await Promise.all(pushes);
      const seen = c1.events();
      const c2 = (await e.client('ws')) as WsRawClient;
      const last = seen.at(-1)?.seq ?? 0;
      const w2 = await c2.resume(w, last);
      assert.equal(w2.compression, DEFLATE, 'the session keeps the caps of its Hello');
      const rest = await c2.waitEvents(total - seen.length);
      const all = [...seen, ...rest];
      assert.deepEqual(
        all.map((ev) => ev.body),
        Array.from({ length: total }, (_, i) => chatBody(i)),
      );
      assert.deepEqual(
        all.map((ev) => ev.seq),
        Array.from({ length: total }, (_, i) => i + 1),
      );
      assert.ok(c2.wire.slice(1).every((f) => f.compressed));
    });

    for (const [name, bytes, code] of [
      [
        'a compressed frame on a carrier that did not ask',
        () => new FrameCompressor().compress(encodeFrame({ kind: Kind.Ping, nonce: 123456789 })),
        'protocol.bad_frame',
      ],
      [
        'bytes that do not inflate',
        () => new Uint8Array([COMPRESSED_FRAME, 0xff, 0xff, 0xff, 0xff, 0x13]),
        'protocol.bad_frame',
      ],
      [
        'a small frame that inflates past maxFrameBytes',
        () => new Uint8Array([COMPRESSED_FRAME, ...deflateRawSync(new Uint8Array(4 << 20))]),
        'protocol.frame_too_large',
      ],
    ] as const) {
      test(`${name}: a fatal ${code} for that carrier only; the session resumes`, async (t) => {
        const e = await edgeWithDevices(t, engine);
        const bystander = (await e.client('ws')) as WsRawClient;
        await hello(bystander, OTHER, [DEFLATE]);
        const c = (await e.client('ws')) as WsRawClient;
        const asked = name.includes('did not ask') ? undefined : [DEFLATE];
        const w = await hello(c, IMEI, asked);
        await e.push(IMEI, 'im.message', chatBody(1));
        await c.waitEvents(1);
        await c.sendBytes(bytes());
        const err = (await c.nextOf(Kind.Error)) as ErrorFrame;
        assert.equal(err.code, code);
        assert.equal(err.fatal, true);
        await c.waitClosed();
        // Nothing lost: the session is detached, not ended.
        await e.push(IMEI, 'im.message', chatBody(2));
        const again = (await e.client('ws')) as WsRawClient;
        await again.resume(w, 1);
        const [ev] = await again.waitEvents(1);
        assert.ok(ev);
        assert.deepEqual(ev.body, chatBody(2));
        // The other device did not notice.
        await e.push(OTHER, 'im.message', chatBody(3));
        assert.deepEqual((await bystander.waitEvents(1))[0]!.body, chatBody(3));
        assert.equal(bystander.closeInfo, undefined);
      });
    }
  });
}
