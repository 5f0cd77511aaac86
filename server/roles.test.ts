import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { GatewayError } from '../device-protocol/errors.ts';
import { InProcessBus } from './bus/inproc.ts';
import type { Config } from './config.ts';
import { silentLogger } from './ops/logger.ts';
import { createMetrics } from './ops/metrics.ts';
import { nullRecorder } from './records/types.ts';
import {
  listenError,
  type RoleContext,
  type RoleDefinition,
  type StartedRole,
  startRoles,
  stopRoles,
} from './roles.ts';
import { Membership } from './router/membership.ts';
import type { Registry } from './store/registry.ts';

function context(): RoleContext {
  const bus = new InProcessBus();
  return {
    config: { data: '/nonexistent' } as Config,
    nodeId: 'n1',
    bus,
    logger: silentLogger(),
    metrics: createMetrics({ nodeId: 'n1', roles: [], processMetrics: false }),
    membership: new Membership({ bus }),
    recorder: nullRecorder,
    announce: () => {},
  };
}

/** A role that writes what happens to it into `log`. */
function fake(name: string, log: string[], fail?: Error): RoleDefinition {
  return {
    name,
    async start() {
      log.push(`start ${name}`);
      if (fail) throw fail;
      return {
        stop: async () => {
          log.push(`stop ${name}`);
        },
      };
    },
  };
}

describe('role table', () => {
  test('roles start in table order and stop in reverse', async () => {
    const log: string[] = [];
    const started: StartedRole[] = [];
    const seen: string[] = [];
    await startRoles(
      [fake('admin', log), fake('transport', log), fake('edge', log)],
      context(),
      started,
      (r) => seen.push(r.name),
    );
    assert.deepEqual(
      started.map((r) => r.name),
      ['admin', 'transport', 'edge'],
    );
    assert.deepEqual(seen, ['admin', 'transport', 'edge']);
    await stopRoles(started, silentLogger());
    assert.deepEqual(log, [
      'start admin',
      'start transport',
      'start edge',
      'stop edge',
      'stop transport',
      'stop admin',
    ]);
  });

  test('a role that fails to start throws its error; the ones before it are listed, the ones after never start', async () => {
    const log: string[] = [];
    const started: StartedRole[] = [];
    const boom = new GatewayError('config.invalid', 'transport cannot open its store');
    await assert.rejects(
      startRoles([fake('admin', log), fake('transport', log, boom), fake('edge', log)], context(), started),
      (err) => err === boom,
    );
    assert.deepEqual(
      started.map((r) => r.name),
      ['admin'],
    );
    await stopRoles(started, silentLogger());
    assert.deepEqual(log, ['start admin', 'start transport', 'stop admin']);
  });

  test('a role alongside the previous one starts while that one starts; the next waits for both', async () => {
    const log: string[] = [];
    const started: StartedRole[] = [];
    let release!: () => void;
    const slow: RoleDefinition = {
      name: 'transport',
      async start() {
        log.push('start transport');
        await new Promise<void>((resolve) => (release = resolve));
        log.push('transport up');
        return { stop: async () => void log.push('stop transport') };
      },
    };
    const beside = { ...fake('transcoder', log), alongsidePrevious: true };
    const starting = startRoles([fake('admin', log), slow, beside, fake('edge', log)], context(), started);
    while (!log.includes('start transcoder')) await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(log, ['start admin', 'start transport', 'start transcoder']);
    release();
    await starting;
    assert.deepEqual(log.slice(3), ['transport up', 'start edge']);
    assert.deepEqual(
      started.map((r) => r.name),
      ['admin', 'transport', 'transcoder', 'edge'],
      'listed in table order, though the transcoder was up first',
    );
  });

  test('a role beside one that fails is still listed once up, so that it is stopped', async () => {
    const log: string[] = [];
    const started: StartedRole[] = [];
    const boom = new Error('transport cannot open its store');
    const late: RoleDefinition = {
      name: 'transcoder',
      alongsidePrevious: true,
      async start() {
        await new Promise((resolve) => setTimeout(resolve, 20));
        return { stop: async () => void log.push('stop transcoder') };
      },
    };
    await assert.rejects(
      startRoles(
        [fake('admin', log), fake('transport', log, boom), late, fake('edge', log)],
        context(),
        started,
      ),
      (err) => err === boom,
    );
    assert.deepEqual(
      started.map((r) => r.name),
      ['admin', 'transcoder'],
    );
  });

  test('a role that fails to stop does not keep the others from stopping', async () => {
    const log: string[] = [];
    const started: StartedRole[] = [];
    const broken: RoleDefinition = {
      name: 'transport',
      start: async () => ({
        stop: async () => {
          throw new Error('stuck');
        },
      }),
    };
    await startRoles([fake('admin', log), broken, fake('edge', log)], context(), started);
    await stopRoles(started, silentLogger());
    assert.deepEqual(log, ['start admin', 'start edge', 'stop edge', 'stop admin']);
  });

  test('the registry a role opens is in the context of the roles after it', async () => {
    const registry = { path: '/r' } as unknown as Registry;
    const ctx = context();
    let seenByLater: Registry | undefined;
    await startRoles(
      [
        { name: 'admin', start: async () => ({ registry, stop: async () => {} }) },
        {
          name: 'transport',
          start: async (c) => {
            seenByLater = c.registry;
            return { stop: async () => {} };
          },
        },
      ],
      ctx,
      [],
    );
    assert.equal(seenByLater, registry);
    assert.equal(ctx.registry, registry);
  });

  test('listen failures name the port', () => {
    const inUse = Object.assign(new Error('listen EADDRINUSE'), { code: 'EADDRINUSE' });
    const err = listenError(inUse, 'device', 8080) as GatewayError;
    assert.equal(err.code, 'config.invalid');
    assert.equal(err.message, 'device port 8080 is already in use');
    const other = new Error('other');
    assert.equal(listenError(other, 'admin', 1), other);
  });
});
