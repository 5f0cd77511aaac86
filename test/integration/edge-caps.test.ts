/**
 * Hello caps reach the transport with every request of the session (so that
 * images and bodies can be shrunk to fit), also after the session was claimed
 * by another edge.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type Capabilities, Kind, PROTOCOL_VERSION, type Welcome } from '../../device-protocol/messages.ts';
import { InProcessBus } from '../../server/bus/inproc.ts';
import {
  CARRIERS,
  ENGINES,
  MemoryDirectory,
  rawClient,
  startEchoTransport,
  startTestEdge,
} from './edge-client.ts';

const IMEI = '356938035643809';
const CAPS: Capabilities = { screenWidth: 240, screenHeight: 320, imageFormats: ['jpeg'], model: 'N95' };

for (const engine of ENGINES) {
  for (const kind of CARRIERS) {
    describe(`Hello caps to the transport (${engine} / ${kind})`, () => {
      test('every TransportRequest of the session carries the caps, on this edge and after a claim', async (t) => {
        const bus = new InProcessBus();
        t.after(() => bus.close());
        const transport = startEchoTransport(bus);
        const directory = new MemoryDirectory();
        directory.add(IMEI, 'secret');
        const e1 = await startTestEdge(t, { engine, bus, directory, nodeId: 'edge-1' });
        const e2 = await startTestEdge(t, { engine, bus, directory, nodeId: 'edge-2' });
        const c1 = await rawClient(kind, e1.port);
        t.after(() => c1.kill());
        await c1.send({
          kind: Kind.Hello,
          version: PROTOCOL_VERSION,
          imei: IMEI,
          secret: 'secret',
          caps: CAPS,
        });
        const w = (await c1.nextOf(Kind.Welcome)) as Welcome;
        await c1.send({ kind: Kind.Request, id: 'r1', method: 'echo', body: 1 });
        await c1.nextOf(Kind.Response);
        c1.kill();
        const c2 = await rawClient(kind, e2.port);
        t.after(() => c2.kill());
        await c2.resume(w, 1);
        await c2.send({ kind: Kind.Request, id: 'r2', method: 'echo', body: 2 });
        await c2.nextOf(Kind.Response);
        assert.deepEqual(
          transport.calls.map((c) => [c.id, c.caps]),
          [
            ['r1', CAPS],
            ['r2', CAPS],
          ],
        );
      });
    });
  }
}
