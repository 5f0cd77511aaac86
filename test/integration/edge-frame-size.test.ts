/**
 * Oversized WebSocket messages, both engines alike: up to the engine's own
 * (bounded) message limit, far above maxFrameBytes, the device gets a fatal
 * protocol.frame_too_large Error before the close; beyond it the engine
 * closes by itself (ws: close code 1009; uWS: the connection is cut). Either way the other devices are untouched.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { encodeFrame } from '../../device-protocol/codec.ts';
import { Kind } from '../../device-protocol/messages.ts';
import { enginePayloadLimit } from '../../server/edge/index.ts';
import { ENGINES, startTestEdge, type TestEdge } from './edge-client.ts';

const IMEI_A = '356938035643809';
const IMEI_B = '490154203237518';
const MAX_FRAME = 4096;

async function twoDevices(e: TestEdge) {
  e.directory.add(IMEI_A, 'secret-a');
  e.directory.add(IMEI_B, 'secret-b');
  const a = await e.client('ws');
  await a.hello(IMEI_A, { secret: 'secret-a' });
  const b = await e.client('ws');
  await b.hello(IMEI_B, { secret: 'secret-b' });
  return { a, b };
}

function requestOf(bytes: number): Uint8Array {
  return encodeFrame({ kind: Kind.Request, id: 'big', method: 'echo', body: 'x'.repeat(bytes) });
}

for (const engine of ENGINES) {
  describe(`oversized WebSocket frames (${engine})`, () => {
    test('well over twice maxFrameBytes: a fatal protocol.frame_too_large Error, then the close', async (t) => {
      const e = await startTestEdge(t, { engine, limits: { maxFrameBytes: MAX_FRAME } });
      const { a, b } = await twoDevices(e);
      for (const size of [MAX_FRAME * 3, MAX_FRAME * 7]) {
        const c = size === MAX_FRAME * 3 ? a : await e.client('ws');
        if (c !== a) await c.hello(IMEI_A, { secret: 'secret-a' });
        await c.sendBytes(requestOf(size));
        const f = await c.nextOf(Kind.Error);
        assert.equal(f.code, 'protocol.frame_too_large', `a ${size}-byte frame`);
        assert.equal(f.fatal, true);
        const closed = await c.waitClosed();
        assert.equal(closed.code, 4001);
      }
      await e.push(IMEI_B, 'still-here');
      assert.equal((await b.nextOf(Kind.Event)).name, 'still-here');
      assert.equal(b.closeInfo, undefined);
    });

    test("beyond the engine's own bound the engine closes by itself; the other devices stay", async (t) => {
      const e = await startTestEdge(t, { engine, limits: { maxFrameBytes: MAX_FRAME } });
      const { a, b } = await twoDevices(e);
      // Any bytes: the engine refuses the message before anything decodes it.
      await a.sendBytes(new Uint8Array(enginePayloadLimit(MAX_FRAME) + 1024).fill(7));
      const closed = await a.waitClosed();
      // `ws` sends a close frame with 1009; uWS cuts the connection (1006 at the client).
      assert.ok([1006, 1009].includes(closed.code), `closed with ${closed.code}`);
      assert.equal(a.received.filter((f) => f.kind === Kind.Error).length, 0);
      await e.push(IMEI_B, 'still-here');
      assert.equal((await b.nextOf(Kind.Event)).name, 'still-here');
    });
  });
}
