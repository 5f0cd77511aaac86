import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { GatewayError } from '../device-protocol/errors.ts';
import { loadConfig } from './config.ts';
import { startNode } from './node.ts';
import type { RoleDefinition } from './roles.ts';
import { LOCK_FILE } from './store/data-dir.ts';

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'mmgw-node-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function configIn(data: string, roles: string[]) {
  return loadConfig({
    env: {},
    flags: { data, roles, port: 0, adminPort: 0, host: '127.0.0.1', logLevel: 'silent' },
  });
}

/** A role that writes what happens to it into `log`; `file` is created (0644) as lmdb would. */
function fake(name: string, log: string[], options: { fail?: Error; file?: string } = {}): RoleDefinition {
  return {
    name,
    async start(ctx) {
      log.push(`start ${name}`);
      if (options.fail) throw options.fail;
      if (options.file) writeFileSync(join(ctx.config.data, options.file), 'x', { mode: 0o644 });
      return {
        stop: async () => {
          log.push(`stop ${name}`);
        },
      };
    },
  };
}

async function refused(port: number): Promise<boolean> {
  try {
    await fetch(`http://127.0.0.1:${port}/healthz`);
    return false;
  } catch {
    return true;
  }
}

describe('startNode over a role table', () => {
  test('roles start in order, the node is ready, close stops them in reverse', async (t) => {
    const data = tempDir(t);
    const log: string[] = [];
    const node = await startNode(configIn(data, ['admin', 'transport']), {
      table: [fake('admin', log), fake('transport', log, { file: 'store.mdb' })],
    });
    assert.deepEqual(node.readiness(), { ready: true, reasons: [] });
    const res = await fetch(`http://127.0.0.1:${node.adminPort}/readyz`);
    assert.equal(res.status, 200);
    // The files the roles created are the gateway's alone, in a directory only it may enter.
    assert.equal(statSync(join(data, 'store.mdb')).mode & 0o777, 0o600);
    assert.equal(statSync(data).mode & 0o777, 0o700);
    assert.ok(existsSync(join(data, LOCK_FILE)), 'the data directory is locked while the node runs');
    await node.close();
    assert.deepEqual(log, ['start admin', 'start transport', 'stop transport', 'stop admin']);
    assert.ok(await refused(node.adminPort), 'the ops endpoint is closed');
    assert.ok(!existsSync(join(data, LOCK_FILE)), 'the lock is released');
  });

  test('a role that fails to start stops the node cleanly with its error', async (t) => {
    const data = tempDir(t);
    const log: string[] = [];
    const boom = new GatewayError('config.invalid', 'the transport store is unreadable');
    await assert.rejects(
      startNode(configIn(data, ['admin', 'transport', 'edge']), {
        table: [fake('admin', log), fake('transport', log, { fail: boom }), fake('edge', log)],
      }),
      (err) => err === boom,
    );
    assert.deepEqual(log, ['start admin', 'start transport', 'stop admin']);
    assert.ok(!existsSync(join(data, LOCK_FILE)), 'the lock is released');
    // Nothing is left holding the data directory or a port: the next start works.
    const again = await startNode(configIn(data, ['admin']), { table: [fake('admin', log)] });
    await again.close();
  });

  test('readiness lists a role that is not started and what a started role says', async (t) => {
    const data = tempDir(t);
    let down = true;
    const node = await startNode(configIn(data, ['admin', 'transport']), {
      table: [
        {
          name: 'transport',
          start: async () => ({
            readiness: () => (down ? ['transport: restarting'] : []),
            stop: async () => {},
          }),
        },
      ],
    });
    t.after(() => node.close());
    assert.deepEqual(node.readiness(), {
      ready: false,
      reasons: ['admin: not started', 'transport: restarting'],
    });
    down = false;
    assert.deepEqual(node.readiness().reasons, ['admin: not started']);
  });
});
