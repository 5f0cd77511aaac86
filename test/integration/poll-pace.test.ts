/**
 * test/fuzz/FINDINGS.md F2: a long-poll handset that keeps a GET held, as
 * SPEC.md §4.2 says, re-polls as fast as the gateway has frames for it; when
 * every GET cost a frame token, a stream of ~100 events a second ended the
 * session with session.rate_limited within seconds. The GET after an answer
 * with frames is the gateway's pace and costs nothing; the stream arrives
 * whole, in order, on one carrier.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Handset, HandsetPushEvent } from '../../device-protocol/handset.ts';
import { eventually } from '../../testing/index.ts';
import { type Gateway, provisionDevice, startGateway } from '../harness/gateway.ts';
import { handsetFor, WAIT } from './e2e-suite.ts';

let gw: Gateway;
let handset: Handset;

before(async () => {
  gw = await startGateway();
  handset = handsetFor(gw, await provisionDevice(gw.dataDir), { transport: 'poll' });
  await handset.connect();
});
after(async () => {
  await handset?.close();
  await gw?.stop();
});

test('a long-poll handset takes a stream of ~100 events a second without being cut', async () => {
  const ticks: number[] = [];
  const cuts: string[] = [];
  handset.on('event', (e: HandsetPushEvent) => {
    if (e.name === 'sys.tick') ticks.push((e.body as { n: number }).n);
  });
  handset.on('disconnected', (e) => cuts.push(e.code ?? e.reason));
  const TICKS = 800;
  await handset.request('sys.stream', { count: TICKS, intervalMs: 8 });
  await eventually('every tick', () => ticks.length >= TICKS || cuts.length > 0, WAIT);
  assert.deepEqual(cuts, [], 'the carrier was never cut');
  assert.deepEqual(
    ticks,
    Array.from({ length: TICKS }, (_, i) => i + 1),
  );
});
