import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type EventuallyOptions, eventually, processAlive } from '../../testing/index.ts';
import { provisionDevice, runMmgw, startGateway } from '../harness/gateway.ts';

/** Edge worker processes: one device port, one ops endpoint, metrics of every worker. */

/** Processes starting and stopping: 30 s, every 100 ms. */
const POLL: EventuallyOptions = { timeoutMs: 30_000, intervalMs: 100 };

/** Worker pids by node id, from the workers' "node started" log lines. */
function workerPids(stdout: string[]): Map<string, number> {
  const pids = new Map<string, number>();
  for (const line of stdout) {
    try {
      const rec = JSON.parse(line);
      if (rec.msg === 'node started' && /-w\d+$/.test(rec.nodeId)) pids.set(rec.nodeId, rec.pid);
    } catch {}
  }
  return pids;
}

async function ping(url: string, imei: string, secret: string, transport: 'ws' | 'poll'): Promise<unknown[]> {
  const r = await runMmgw(
    ['handset', '--url', url, '--imei', imei, '--secret', secret, '--json', '--transport', transport],
    {
      input: '{"id":"p","cmd":"ping"}\n',
    },
  );
  return r.stdout
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}

for (const engine of ['uws', 'portable'] as const) {
  describe(`edge workers (${engine})`, () => {
    test('two workers share the device port; metrics cover both; SIGTERM stops all', async (t) => {
      const gw = await startGateway({
        args: ['--edge-workers', '2', '--engine', engine],
        env: { MMGW_LOG_LEVEL: 'info' },
      });
      t.after(() => gw.stop());
      await eventually(
        'the node became ready',
        async () => (await fetch(`${gw.adminUrl}/readyz`)).status === 200,
        POLL,
      );
      const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
      assert.match(metrics, new RegExp(`^mmgw_edge_sessions\\{node="${gw.nodeId}-w0"\\} 0$`, 'm'));
      assert.match(metrics, new RegExp(`^mmgw_edge_sessions\\{node="${gw.nodeId}-w1"\\} 0$`, 'm'));
      assert.match(
        metrics,
        new RegExp(
          `^mmgw_node_info\\{roles="admin,transport,transcoder,edge",release="[^"]+",node="${gw.nodeId}"\\} 1$`,
          'm',
        ),
      );

      const { imei, secret } = await provisionDevice(gw.dataDir);
      for (let i = 0; i < 4; i++) {
        const events = await ping(gw.url, imei, secret, 'ws');
        assert.ok(
          events.some((e) => (e as { event?: string }).event === 'pong'),
          JSON.stringify(events),
        );
      }

      const pids = workerPids(gw.stdout);
      assert.equal(pids.size, 2, gw.stdout.join('\n'));
      assert.equal(await gw.stop(), 0);
      for (const pid of pids.values())
        await eventually(`worker ${pid} gone with the node`, () => !processAlive(pid), {
          ...POLL,
          timeoutMs: 10_000,
        });
    });
  });
}

/** The delays of the primary's "edge worker died" log lines, in order. */
function restartDelays(stdout: string[]): number[] {
  const delays: number[] = [];
  for (const line of stdout) {
    try {
      const rec = JSON.parse(line);
      if (typeof rec.msg === 'string' && rec.msg.startsWith('edge worker died')) delays.push(rec.delayMs);
    } catch {}
  }
  return delays;
}

test('a worker killed with -9 is forked again, with backoff; the primary killed with -9 leaves no worker behind', async (t) => {
  const gw = await startGateway({ args: ['--edge-workers', '2'], env: { MMGW_LOG_LEVEL: 'info' } });
  t.after(() => gw.stop());
  // Killed twice in a row (the second before it stayed up a minute): the second restart waits longer.
  for (let kill = 0; kill < 2; kill++) {
    const before = workerPids(gw.stdout).get(`${gw.nodeId}-w0`)!;
    process.kill(before, 'SIGKILL');
    await eventually(
      'worker 0 came back',
      () => {
        const now = workerPids(gw.stdout).get(`${gw.nodeId}-w0`);
        return now !== undefined && now !== before;
      },
      POLL,
    );
    await eventually('ready again', async () => (await fetch(`${gw.adminUrl}/readyz`)).status === 200, POLL);
  }
  assert.deepEqual(restartDelays(gw.stdout), [200, 400]);
  const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
  assert.match(metrics, /mmgw_role_restarts_total\{[^}]*role="edge-worker"[^}]*\} 2\b/);
  const { imei, secret } = await provisionDevice(gw.dataDir);
  for (let i = 0; i < 3; i++) {
    const events = await ping(gw.url, imei, secret, 'ws');
    assert.ok(
      events.some((e) => (e as { event?: string }).event === 'pong'),
      JSON.stringify(events),
    );
  }

  const workers = [...workerPids(gw.stdout).values()];
  gw.kill();
  await gw.stop();
  for (const pid of workers)
    await eventually(`worker ${pid} gone, not an orphan`, () => !processAlive(pid), {
      ...POLL,
      timeoutMs: 15_000,
    });
});
