/**
 * End to end over NATS with the edge and the transport (+ admin) in separate
 * OS processes, against a real nats-server; and the failover case: the
 * transport process is killed (SIGKILL) in the middle of a stream and
 * restarted, and the device continues from the last tick it got.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { GatewayError } from '../../device-protocol/errors.ts';
import { eventually } from '../../testing/index.ts';
import { type Gateway, provisionDevice, startGateway, waitReady } from '../harness/gateway.ts';
import { type NatsServerHandle, startNatsServer } from '../harness/nats.ts';
import {
  type Deployment,
  defineE2eSuite,
  handsetFor,
  range,
  requestWhenAvailable,
  tickRecorder,
  WAIT,
} from './e2e-suite.ts';

interface Cluster extends Deployment {
  nats: NatsServerHandle;
  edge: Gateway;
  transport(): Gateway;
  /** Starts the transport + admin process again on the same data directory and node id. */
  restartTransport(): Promise<Gateway>;
}

async function startCluster(): Promise<Cluster> {
  const nats = await startNatsServer();
  const started: { stop(): Promise<unknown> }[] = [nats];
  const transportDir = mkdtempSync(join(tmpdir(), 'mmgw-e2e-transport-'));
  try {
    // Every edge must accept the tokens of every other: one key for the cluster.
    const env = { MMGW_JWT_SECRET: randomBytes(32).toString('base64url') };
    const transportId = `transport-${process.pid}`;
    const transportArgs = ['--role', 'transport,admin', '--bus', nats.url, '--node-id', transportId];
    let transport = await startGateway({ args: transportArgs, env, dataDir: transportDir });
    started.push({ stop: () => transport.stop() });
    const edge = await startGateway({
      args: ['--role', 'edge', '--bus', nats.url, '--node-id', `edge-${process.pid}`],
      env,
    });
    started.push(edge);
    await waitReady(edge);
    return {
      nats,
      edge,
      url: edge.url,
      transportNodeIds: [transportId],
      transport: () => transport,
      provision: () => provisionDevice(transportDir),
      async restartTransport() {
        transport = await startGateway({ args: transportArgs, env, dataDir: transportDir });
        return transport;
      },
      async stop() {
        await edge.stop();
        await transport.stop();
        await nats.stop();
        rmSync(transportDir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    for (const s of started.reverse()) await s.stop().catch(() => undefined);
    rmSync(transportDir, { recursive: true, force: true });
    throw err;
  }
}

defineE2eSuite('NATS, edge and transport+admin in separate processes', startCluster);

test('NATS: the transport process is killed mid-stream and restarted; the application sees every tick exactly once, in order', async (t) => {
  const cluster = await startCluster();
  t.after(() => cluster.stop());
  const device = await cluster.provision();
  const handset = handsetFor(cluster, device);
  t.after(() => handset.close());
  await handset.connect();
  const ticks = tickRecorder(handset);
  const total = 400;

  // Slow enough that the kill lands in the middle.
  const answer = await requestWhenAvailable(handset, 'sys.stream', { count: total, intervalMs: 20 });
  assert.deepEqual(answer, { accepted: true, from: 1, count: total });
  await eventually('the stream to be under way', () => ticks.length >= 40, WAIT);

  const victim = cluster.transport();
  victim.kill();
  assert.equal(await victim.stop(), null, 'killed by a signal');
  const beforeRestart = ticks.length;
  assert.ok(beforeRestart < total, 'the kill landed before the end of the stream');

  // While no transport process runs, the gateway says so (retryable) rather than hanging or crashing.
  await assert.rejects(
    handset.request('sys.echo', 'during the outage', { timeoutMs: 15_000 }),
    (err: unknown) =>
      err instanceof GatewayError &&
      ['request.unavailable', 'request.timeout', 'bus.no_responders', 'bus.timeout'].includes(err.code),
  );

  await cluster.restartTransport();
  // Everything the edge took before the kill has reached the device once the
  // Pong is back (one carrier, in order): the last tick is now final.
  await handset.ping();
  const last = ticks.at(-1) ?? 0;
  assert.deepEqual(ticks, range(1, last), 'no gap and no double before the failover');

  const outage: string[] = [];
  const resumed = await requestWhenAvailable(
    handset,
    'sys.stream',
    { count: total - last, from: last + 1 },
    outage,
  );
  assert.deepEqual(resumed, { accepted: true, from: last + 1, count: total - last });
  await eventually(`all ${total} ticks`, () => ticks.length >= total, WAIT);
  await handset.ping();
  assert.deepEqual(ticks, range(1, total));
  t.diagnostic(
    `killed after ${beforeRestart} ticks; continued from ${last + 1}; retries: ${outage.join(',') || 'none'}`,
  );
});
