/**
 * Long-poll sessions on a gateway with two edge workers (`mmgw start
 * --edge-workers 2`): the workers share the device port, and each HTTP
 * request of a long-poll session may land on either of them (the SDK's GET
 * and POST go on different connections). Every request must be served where
 * it lands: the session keeps its id (no `auth.resume_failed`, no new
 * session), and every event arrives once, in order, while the devices make
 * many requests.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Handset, HandsetConnectedEvent } from '../../device-protocol/handset.ts';
import { type EventuallyOptions, eventually } from '../../testing/index.ts';
import { type Gateway, provisionDevice, startGateway } from '../harness/gateway.ts';
import { handsetFor, tickRecorder, WAIT } from './e2e-suite.ts';

/** Devices at once, each with its own long-poll session. */
const DEVICES = 4;
/** Events pushed to each device while it makes its requests. */
const TICKS = 150;
/** Requests each device makes meanwhile (each a POST, its answer on a GET). */
const REQUESTS = 25;

/** Workers starting: bounded only so that a broken start does not hang the run. */
const START: EventuallyOptions = { timeoutMs: 30_000, intervalMs: 100 };

interface Device {
  handset: Handset;
  connected: HandsetConnectedEvent[];
  lost: string[];
  ticks: number[];
}

for (const engine of ['uws', 'portable'] as const) {
  describe(`long-poll sessions over two edge workers (${engine})`, () => {
    let gw: Gateway;
    const devices: Device[] = [];

    before(async () => {
      gw = await startGateway({ args: ['--edge-workers', '2', '--engine', engine] });
      await eventually(
        'the node became ready',
        async () => (await fetch(`${gw.adminUrl}/readyz`)).status === 200,
        START,
      );
    });

    after(async () => {
      for (const d of devices) await d.handset.close().catch(() => {});
      await gw?.stop();
    });

    test('each session keeps its id; every event arrives once, in order', async (t) => {
      for (let i = 0; i < DEVICES; i++) {
        const handset = handsetFor(gw, await provisionDevice(gw.dataDir), { transport: 'poll' });
        const d: Device = { handset, connected: [], lost: [], ticks: tickRecorder(handset) };
        handset.on('connected', (e) => d.connected.push(e));
        handset.on('disconnected', (e) => d.lost.push(e.code ?? e.reason));
        devices.push(d);
      }
      const ids = await Promise.all(devices.map(async (d) => (await d.handset.connect()).sessionId));

      await Promise.all(
        devices.map(async (d, i) => {
          await d.handset.request('sys.stream', { count: TICKS, intervalMs: 10 });
          for (let r = 0; r < REQUESTS; r++) {
            assert.deepEqual(await d.handset.request('sys.echo', { i, r }), { i, r });
          }
        }),
      );
      // A device that got a new session gets no more ticks (the stream stops at a failed push).
      await eventually(
        'every tick at every device, or a new session',
        () => devices.every((d) => d.ticks.length >= TICKS || d.connected.length > 1),
        WAIT,
      );

      const expected = Array.from({ length: TICKS }, (_, k) => k + 1);
      devices.forEach((d, i) => {
        assert.deepEqual(d.lost, [], `device ${i}: the carrier was never lost`);
        assert.deepEqual(
          d.connected.map((e) => [e.sessionId, e.resumed]),
          [[ids[i], false]],
          `device ${i}: one session, never a new one`,
        );
        assert.equal(d.handset.sessionId, ids[i]);
        assert.deepEqual(d.ticks, expected, `device ${i}: each event once, in order`);
      });
      // The requests did land on both workers: those on the one without the session were passed on.
      const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
      const forwards = [...metrics.matchAll(/^mmgw_edge_poll_forwards_total\{[^}]*\} (\d+)$/gm)];
      assert.equal(forwards.length, 2, 'a figure from each worker');
      t.diagnostic(`poll requests forwarded: ${forwards.map((f) => f[1]).join(' + ')}`);
      assert.ok(forwards.reduce((n, f) => n + Number(f[1]), 0) > 0, forwards.map((f) => f[0]).join('\n'));
      const wrong = gw.stdout.filter((l) => l.includes('resume_failed') || l.includes('"level":50'));
      assert.deepEqual(wrong, [], 'no refused resume, no error logged');
    });
  });
}
