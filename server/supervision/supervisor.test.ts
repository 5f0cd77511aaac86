import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import pino from 'pino';
import { Counter, Registry } from 'prom-client';
import { GatewayError } from '../../device-protocol/errors.ts';
import { eventually, processAlive } from '../../testing/index.ts';
import { InProcessBus } from '../bus/inproc.ts';
import type { Config } from '../config.ts';
import { nullRecorder } from '../records/types.ts';
import type { RoleContext } from '../roles.ts';
import { Membership } from '../router/membership.ts';
import { type BackoffOptions, DEFAULT_BACKOFF, RoleSupervisor, restartDelay } from './supervisor.ts';

const FAKE = fileURLToPath(new URL('../../testing/fake-role-worker.ts', import.meta.url));

function setup(mode: 'ok' | 'fail', backoff: BackoffOptions) {
  const records: Array<Record<string, unknown>> = [];
  const logger = pino(
    { level: 'debug' },
    new Writable({
      write(chunk, _enc, done) {
        records.push(JSON.parse(String(chunk)));
        done();
      },
    }),
  );
  const bus = new InProcessBus();
  const metrics = new Registry();
  let announced = 0;
  const ctx: RoleContext = {
    config: { bus: 'inproc' } as Config,
    nodeId: 'n1',
    bus,
    logger,
    metrics,
    membership: new Membership({ bus }),
    recorder: nullRecorder,
    announce: () => announced++,
  };
  const restarts = new Counter({ name: 'restarts', help: 'h', labelNames: ['role'], registers: [metrics] });
  const supervisor = new RoleSupervisor({
    role: 'transport',
    ctx,
    restarts,
    backoff,
    entry: { module: FAKE, args: [mode], execArgv: ['--import', 'tsx'] },
  });
  const restartCount = async () => (await restarts.get()).values[0]?.value ?? 0;
  return { supervisor, records, restartCount, announced: () => announced };
}

describe('role supervisor', () => {
  test('backoff: 0.2 s doubling to 10 s', () => {
    assert.deepEqual(
      [0, 1, 2, 3, 4, 5, 6, 7, 8].map((n) => restartDelay(n)),
      [200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000],
    );
    assert.equal(DEFAULT_BACKOFF.resetAfterMs, 60_000);
  });

  test('a child that fails to start fails the start with its own error', async () => {
    const { supervisor } = setup('fail', DEFAULT_BACKOFF);
    await assert.rejects(
      supervisor.start(),
      (err) =>
        err instanceof GatewayError &&
        err.code === 'config.invalid' &&
        err.message === 'the store is unreadable',
    );
    assert.deepEqual(supervisor.readiness(), []);
  });

  test('a killed child is forked again with growing delays, counted, and reported down meanwhile', async (t) => {
    const { supervisor, records, restartCount, announced } = setup('ok', {
      initialMs: 100,
      maxMs: 400,
      resetAfterMs: 60_000,
    });
    t.after(() => supervisor.stop());
    assert.deepEqual(supervisor.readiness(), ['transport: not started']);
    await supervisor.start();
    assert.ok(supervisor.up);
    assert.deepEqual(supervisor.readiness(), []);
    assert.equal(announced(), 1, 'coming up is announced');

    const pids: number[] = [supervisor.pid!];
    for (let kill = 1; kill <= 3; kill++) {
      process.kill(pids[pids.length - 1]!, 'SIGKILL');
      await eventually('down after the kill', () => !supervisor.up);
      assert.deepEqual(supervisor.readiness(), ['transport: restarting']);
      await eventually(`back after kill ${kill}`, () => supervisor.up && supervisor.pid !== pids.at(-1), {
        timeoutMs: 30_000,
      });
      pids.push(supervisor.pid!);
      assert.equal(await restartCount(), kill);
    }
    // Each restart waited for the old process's exit: it is gone, only the new one runs.
    for (const pid of pids.slice(0, -1)) assert.ok(!processAlive(pid), `old child ${pid} gone`);
    assert.ok(processAlive(pids.at(-1)!));
    const delays = records.filter((r) => typeof r.delayMs === 'number').map((r) => r.delayMs);
    assert.deepEqual(delays, [100, 200, 400]);
    // Down and up again for every restart.
    assert.equal(announced(), 1 + 2 * 3);
    assert.deepEqual(await supervisor.metrics(), [
      [
        {
          name: 'fake_jobs_total',
          help: 'jobs',
          type: 'counter',
          aggregator: 'sum',
          values: [{ value: 7, labels: { node: 'child' } }],
        },
      ],
    ]);
  });

  test('stop ends the child and nothing restarts it', async () => {
    const { supervisor, restartCount } = setup('ok', { initialMs: 10, maxMs: 10, resetAfterMs: 60_000 });
    await supervisor.start();
    const pid = supervisor.pid!;
    await supervisor.stop();
    assert.ok(!processAlive(pid));
    assert.deepEqual(supervisor.readiness(), []);
    assert.equal(supervisor.pid, undefined);
    assert.equal(await restartCount(), 0);
  });
});
